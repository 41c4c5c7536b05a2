"""benchmarks/fid_real_vs_real.py on a tiny image folder: FID of real images against real ones at
several N from one set of cached Inception features (no download: the weights are local)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_real_vs_real_fid_reports_every_n_and_caches_the_features(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(image_folder))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import fid_real_vs_real

    out = tmp_path / "out"
    r = fid_real_vs_real.main(["--n", "10", "--points", "4", "--out", str(out)])
    assert list(r["train_vs_test"]) == ["4", "10"] and r["weights"] == "default_1.pt"
    assert all(v > 0 for v in r["train_vs_test"].values()) and r["test_half_vs_half"] > 0
    assert json.loads((out / "fid-real-vs-real-10.json").read_text()) == r
    assert len(list((out / "fid-cache").glob("inception-10-*.pt"))) == 2      # one file per split
    again = fid_real_vs_real.main(["--n", "10", "--points", "4", "--out", str(out)])
    assert again["train_vs_test"] == r["train_vs_test"]                      # read back, same numbers


def test_real_vs_real_fid_refuses_an_uneven_n(image_folder, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import fid_real_vs_real

    with pytest.raises(SystemExit, match="multiple of 10"):
        fid_real_vs_real.main(["--n", "25"])

"""The grader: fake submissions of every kind graded to the expected table, in isolated kernels."""
from __future__ import annotations

import csv
from pathlib import Path

import nbformat

from cvae_lib.grade import main

ROOT = Path(__file__).resolve().parents[1]
NAME = "ex01_autoencoder.ipynb"


def _write(folder: Path, student: str, nb) -> None:
    (folder / student).mkdir(parents=True)
    nbformat.write(nb, folder / student / NAME)


def _edit(nb, old: str, new: str):
    nb = nbformat.from_dict(nb)
    hits = [c for c in nb.cells if old in c.source]
    assert hits, old
    hits[0].source = hits[0].source.replace(old, new)
    return nb


def make_submissions(folder: Path) -> None:
    solution = nbformat.read(ROOT / "solutions" / NAME, as_version=4)
    stub = nbformat.read(ROOT / "exercises" / NAME, as_version=4)
    _write(folder, "correct", solution)
    # psnr from the batch-mean MSE: one property fails, the others hold
    _write(folder, "partial", _edit(solution, "mse = (x - x_hat).pow(2).flatten(1).mean(dim=1)",
                                    "mse = (x - x_hat).pow(2).mean().expand(len(x))"))
    _write(folder, "stub", stub)
    _write(folder, "crash", _edit(solution, "def interpolate(", "import os; os._exit(3)\ndef interpolate("))
    _write(folder, "loop", _edit(solution, "def interpolate(", "while True: pass\ndef interpolate("))
    _write(folder, "syntax", _edit(solution, "def bottleneck_forward(", "def bottleneck_forward(:"))
    nodel = nbformat.from_dict(solution)
    nodel.cells = [c for c in nodel.cells if "check_bottleneck" not in c.source]
    _write(folder, "deleted", nodel)
    (folder / "malformed").mkdir()
    (folder / "malformed" / NAME).write_text("{ this is not json")


def test_grades_every_kind_of_submission(tmp_path):
    subs = tmp_path / "submitted"
    make_submissions(subs)
    before = sorted(p.name for p in ROOT.iterdir())
    assert main([str(subs), "--out", str(tmp_path / "book"), "--timeout", "45"]) == 0
    assert sorted(p.name for p in ROOT.iterdir()) == before  # nothing written into the course tree

    rows = list(csv.DictReader(open(tmp_path / "book" / "gradebook.csv")))
    table = {}
    for r in rows:
        table.setdefault(r["student"], []).append(r["status"])
    n = len(table["correct"])
    assert n == 12 and set(table["correct"]) == {"passed"}
    assert table["partial"].count("failed") == 1 and table["partial"].count("passed") == n - 1
    partial_fail = [r for r in rows if r["student"] == "partial" and r["status"] == "failed"][0]
    assert "per image" in partial_fail["check"] and "expected" in partial_fail["message"]
    assert set(table["stub"]) == {"not implemented"}
    # crash during task 2: task 1 passed, the rest could not run
    assert table["crash"][:5] == ["passed"] * 5 and set(table["crash"][5:]) == {"error"}
    assert any("kernel died" in r["message"] for r in rows if r["student"] == "crash")
    assert table["loop"][:5] == ["passed"] * 5 and set(table["loop"][5:]) == {"error"}
    assert any("time limit" in r["message"] for r in rows if r["student"] == "loop")
    assert table["syntax"][:9] == ["passed"] * 9 and set(table["syntax"][9:]) == {"error"}
    assert any("SyntaxError" in r["message"] for r in rows if r["student"] == "syntax")
    assert table["deleted"][:9] == ["passed"] * 9 and set(table["deleted"][9:]) == {"missing"}
    assert table["malformed"] == ["error"] * n
    assert "not a readable notebook" in [r for r in rows if r["student"] == "malformed"][0]["message"]

    summary = (tmp_path / "book" / "gradebook.md").read_text()
    assert "| correct | ex01_autoencoder | 12 | 12 | - |" in summary
    assert "| stub | ex01_autoencoder | 0 | 12 |" in summary

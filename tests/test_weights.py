"""Shipped weights: safetensors round trip with config and metrics, checksum verification."""
from __future__ import annotations

import pytest
import torch

from cvae_lib.models.ae import AEConfig, Autoencoder
from cvae_lib.weights import WeightsError, export_weights, load_weights, read_metadata


def test_round_trip_with_metadata(tmp_path):
    torch.manual_seed(0)
    model = Autoencoder(AEConfig(latent_dim=8, width=8))
    export_weights(model, tmp_path / "ae.safetensors", metrics={"test_psnr": 21.5, "n_test": 100})
    meta = read_metadata(tmp_path / "ae.safetensors")
    assert meta["metrics"] == {"test_psnr": 21.5, "n_test": 100} and meta["model_config"]["latent_dim"] == 8
    loaded = load_weights(tmp_path / "ae.safetensors", Autoencoder, AEConfig)
    assert loaded.cfg == model.cfg
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert "ae.safetensors" in (tmp_path / "SHA256SUMS").read_text()


def test_altered_file_is_refused(tmp_path):
    export_weights(Autoencoder(AEConfig(latent_dim=8, width=8)), tmp_path / "ae.safetensors")
    data = bytearray((tmp_path / "ae.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "ae.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its checksum"):
        load_weights(tmp_path / "ae.safetensors", Autoencoder, AEConfig)


def test_wrong_model_class_is_refused(tmp_path):
    export_weights(Autoencoder(AEConfig(latent_dim=8, width=8)), tmp_path / "ae.safetensors")

    class Other(torch.nn.Module):
        def __init__(self, cfg):
            super().__init__()
    with pytest.raises(WeightsError, match="holds a Autoencoder, not a Other"):
        load_weights(tmp_path / "ae.safetensors", Other, AEConfig)


def test_float16_storage_halves_the_file_and_loads_back_as_float32(tmp_path):
    torch.manual_seed(0)
    model = Autoencoder(AEConfig(latent_dim=8, width=8))
    export_weights(model, tmp_path / "full.safetensors")
    export_weights(model, tmp_path / "half.safetensors", dtype=torch.float16)
    full, half = ((tmp_path / f"{n}.safetensors").stat().st_size for n in ("full", "half"))
    assert half < 0.55 * full
    assert read_metadata(tmp_path / "half.safetensors")["storage"] == "float16"
    assert read_metadata(tmp_path / "full.safetensors")["storage"] == "as trained"
    loaded = load_weights(tmp_path / "half.safetensors", Autoencoder, AEConfig)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == a.dtype, k                                   # cast back to the model's dtype
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0)  # exactly the rounded weights


def test_a_file_whose_config_does_not_rebuild_its_tensors_is_refused_by_name(tmp_path):
    """Config says width 8, tensors are of width 16: the file was edited or written by another version."""
    import json

    from safetensors.torch import load_file, save_file

    from cvae_lib.weights import SUMS

    path = tmp_path / "ae.safetensors"
    export_weights(Autoencoder(AEConfig(latent_dim=8, width=16)), path)
    meta = read_metadata(path)
    meta["model_config"]["width"] = 8
    save_file(load_file(str(path)), str(path), metadata={"model_class": "Autoencoder", "storage": "as trained",
                                                         "model_config": json.dumps(meta["model_config"]),
                                                         "metrics": "{}"})
    with pytest.raises(WeightsError, match="stored config does not rebuild its stored tensors"):
        load_weights(path, Autoencoder, AEConfig, verify=False)
    assert (tmp_path / SUMS).exists()


def test_verify_shipped_names_missing_and_altered_files(tmp_path):
    from cvae_lib.weights import verify_shipped

    for name in ("a", "b", "c"):
        export_weights(Autoencoder(AEConfig(latent_dim=8, width=8)), tmp_path / f"{name}.safetensors")
    (tmp_path / "b.safetensors").unlink()
    data = bytearray((tmp_path / "c.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "c.safetensors").write_bytes(bytes(data))
    assert verify_shipped(tmp_path) == {"a.safetensors": "ok", "b.safetensors": "missing",
                                        "c.safetensors": "altered"}
    assert set(verify_shipped().values()) == {"ok"}     # the course's own shipped files


def test_a_malformed_checksum_line_names_the_file_and_line(tmp_path):
    """A one-word line in SHA256SUMS is a WeightsError naming the file and the line, not
    'not enough values to unpack' from every load."""
    path = tmp_path / "ae.safetensors"
    export_weights(Autoencoder(AEConfig(latent_dim=8, width=8)), path)
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(sums.read_text() + "deadbeef\n")
    with pytest.raises(WeightsError, match=r"SHA256SUMS, line 2, is not '<sha256>  <file name>'"):
        load_weights(path, Autoencoder, AEConfig)

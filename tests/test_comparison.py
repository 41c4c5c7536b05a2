"""Chapter 05's line-up: the own runs that exist, the ones that are missing, and the shipped models."""
from __future__ import annotations

import torch

from cvae_lib.comparison import OWN_RUNS, SHIPPED_DDPM_ROWS, TEN_CLASS, TEN_CLASS_ROW, _shipped_pixel, load_lineup
from cvae_lib.data import CLASSES, TensorSet
from cvae_lib.models.ae import AEConfig, Autoencoder, ae_loss
from cvae_lib.profiles import get_profile
from cvae_lib.train import TrainConfig, fit
from cvae_lib.weights import shipped

PAIR = ["airplane", "frog"]
OWN_ROWS = ["AE", "CVAE, study recipe", "CVAE, improved for bits/dim", "CVAE, improved for samples",
            "DDPM, chapter 04 run", "LDM, chapter 06 run", "LDM, chapter 06 run, guided",
            "flow matching, chapter 07 run, guided"]


def test_without_own_runs_the_shipped_rows_stay_and_the_others_name_their_chapter(tmp_path):
    lineup = load_lineup(get_profile("smoke"), tmp_path, "cpu", 2, PAIR)
    ten = [TEN_CLASS_ROW] if shipped(TEN_CLASS).exists() else []          # chapter 07's, once it is shipped
    assert lineup.order == ["AE", "CVAE, study recipe", "CVAE, improved for bits/dim", "CVAE, improved for samples",
                            "CVAE, shipped", "DDPM, chapter 04 run", *SHIPPED_DDPM_ROWS, "LDM, chapter 06 run",
                            "LDM, chapter 06 run, guided", "flow matching, chapter 07 run, guided",
                            "LDM, shipped, guided", *ten]
    assert list(lineup.missing) == OWN_ROWS
    assert {lineup.missing[r] for r in OWN_ROWS} == set(OWN_RUNS.values())
    assert lineup.missing["LDM, chapter 06 run, guided"] == "06" and lineup.missing["AE"] == "01"
    assert list(lineup.entries) == ["CVAE, shipped", *SHIPPED_DDPM_ROWS, "LDM, shipped, guided", *ten]
    assert lineup.guidance_ldm > 1 and lineup.first_stage_minutes > 0
    y = torch.tensor([0, 6])
    x = lineup.entries["DDPM, shipped, guided"].draw(y)
    assert x.shape == (2, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x, lineup.entries["DDPM, shipped, guided"].draw(y))          # seeded: the same twice
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first = lineup.entries["LDM, shipped, guided"].reconstruct(images, y[:1].repeat(3))
    assert lineup.reconstruct_first(images, None) is first                            # computed once, shared
    assert lineup.entries["CVAE, shipped"].bits_per_dim and not lineup.entries["DDPM, shipped"].bits_per_dim


def test_an_own_run_that_exists_gets_its_row(tmp_path):
    P = get_profile("smoke")
    g = torch.Generator().manual_seed(0)
    data = TensorSet(torch.rand(8, 3, 32, 32, generator=g), torch.zeros(8, dtype=torch.long))
    fit(Autoencoder(AEConfig(latent_dim=16, width=8)), ae_loss, data, TrainConfig(epochs=1, batch_size=4),
        checkpoint=tmp_path / P.name / "ae.pt")
    lineup = load_lineup(P, tmp_path / P.name, "cpu", 2, PAIR)
    assert "AE" in lineup.entries and "AE" not in lineup.missing
    ae = lineup.entries["AE"]
    assert ae.draw is None and ae.minutes >= 0 and ae.params > 0
    assert ae.reconstruct(data.x, data.y).shape == data.x.shape


def test_the_shipped_pixel_models_are_the_ones_that_learned_these_classes():
    assert _shipped_pixel(PAIR) == ("cvae_cpu", "ddpm_cpu")
    assert _shipped_pixel(list(CLASSES)) == ("cvae_ten_class", "ddpm_ten_class")
    assert _shipped_pixel(["cat", "dog"]) is None

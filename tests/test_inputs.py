"""The models name a wrong input at their entry instead of failing deep inside torch."""
from __future__ import annotations

import pytest
import torch

from cvae_lib.models.ae import AEConfig, Autoencoder
from cvae_lib.models.classifier import Classifier, ClassifierConfig
from cvae_lib.models.cvae import CVAE, CVAEConfig
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.models.vae import VAE, VAEConfig

IMAGE_MODELS = {
    "Autoencoder": lambda: (Autoencoder(AEConfig(latent_dim=8, width=8)), lambda m, x: m.encode(x)),
    "VAE": lambda: (VAE(VAEConfig(latent_dim=8, width=8)), lambda m, x: m.encode(x)),
    "CVAE": lambda: (CVAE(CVAEConfig(latent_dim=8, width=8)),
             lambda m, x: m.encode(x, torch.zeros(len(x), dtype=torch.long))),
    "Classifier": lambda: (Classifier(ClassifierConfig()), lambda m, x: m(x)),
    "FirstStage": lambda: (FirstStage(FirstStageConfig(width=8, disc_width=8)), lambda m, x: m(x)),
}


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("bad, error, words", [
    (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8), TypeError, "x.float() / 255"),
    (torch.rand(2, 3, 32, 32) * 255, ValueError, "divide by 255"),
    (torch.rand(3, 32, 32), ValueError, "x[None]"),
    (torch.rand(2, 32, 32, 3), ValueError, "permute"),
    (torch.rand(2, 1, 32, 32), ValueError, "(B, 3, 32, 32)"),
    (torch.rand(2, 3, 64, 64), ValueError, "(B, 3, 32, 32)"),
    ([[0.5]], TypeError, "takes a tensor"),
])
def test_image_models_name_a_wrong_image_batch(name, bad, error, words):
    model, call = IMAGE_MODELS[name]()
    with pytest.raises(error, match=name) as e:
        call(model.eval(), bad)
    assert words in str(e.value)


def test_values_are_read_only_in_eval_mode_on_the_cpu():
    """In training (what fit does) only metadata is read: no value check, so no device sync."""
    model = Autoencoder(AEConfig(latent_dim=8, width=8))
    model.train().encode(torch.rand(2, 3, 32, 32) * 255)             # not checked: fit's own data
    with pytest.raises(ValueError, match="divide by 255"):
        model.eval().encode(torch.rand(2, 3, 32, 32) * 255)
    model.eval().encode(torch.rand(2, 3, 32, 32))                     # fine


@pytest.mark.parametrize("y, error, words", [
    (torch.tensor([0, 10]), ValueError, "class ids 0..9"),
    (torch.tensor([0.0, 1.0]), TypeError, "integer class ids"),
    (torch.tensor([0, 1, 2]), ValueError, "shape (2,)"),
])
def test_the_cvae_names_bad_class_ids(y, error, words):
    with pytest.raises(error, match="CVAE") as e:
        CVAE(CVAEConfig(latent_dim=8, width=8)).eval().encode(torch.rand(2, 3, 32, 32), y)
    assert words in str(e.value)


def test_the_unet_checks_its_grid_and_allows_the_null_class():
    unet = UNet(UNetConfig.course(8)).eval()          # 10 classes + the null class 10
    t = torch.tensor([1, 2])
    assert unet(torch.randn(2, 3, 32, 32), t, torch.tensor([3, 10])).shape == (2, 3, 32, 32)   # x_t: any values
    with pytest.raises(ValueError, match=r"class ids 0\.\.10 \(10 is the null class"):
        unet(torch.randn(2, 3, 32, 32), t, torch.tensor([3, 11]))
    with pytest.raises(ValueError, match=r"noisy inputs x_t of shape \(B, 3, 32, 32\)"):
        unet(torch.randn(2, 8, 8, 8), t)
    latent = UNet(UNetConfig.latent(width=16)).eval()
    assert latent(torch.randn(2, 8, 8, 8), t).shape == (2, 8, 8, 8)

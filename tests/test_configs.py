"""Every model, the diffusion process and `fit` build a fresh default config: changing one
instance's config must never change another's (a shared mutable default argument would)."""
import pytest

from cvae_lib.diffusion import Diffusion
from cvae_lib.models.ae import Autoencoder
from cvae_lib.models.classifier import Classifier
from cvae_lib.models.cvae import CVAE
from cvae_lib.models.first_stage import FirstStage
from cvae_lib.models.unet import UNet
from cvae_lib.models.vae import VAE


@pytest.mark.parametrize("cls", [VAE, CVAE, Autoencoder, Classifier, UNet, FirstStage, Diffusion],
                         ids=lambda c: c.__name__)
def test_default_configs_are_not_shared_between_instances(cls):
    a, b = cls(), cls()
    assert a.cfg == b.cfg and a.cfg is not b.cfg
    field = next(iter(vars(a.cfg)))
    setattr(a.cfg, field, "changed")
    assert getattr(cls().cfg, field) != "changed"

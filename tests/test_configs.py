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


def test_files_written_before_a_field_was_renamed_still_load():
    """n_classes -> num_classes (CVAE, classifier), ch/ch_mult -> width/width_mult (U-Net)."""
    from cvae_lib.configs import config_from_dict
    from cvae_lib.models.classifier import ClassifierConfig
    from cvae_lib.models.cvae import CVAEConfig
    from cvae_lib.models.unet import UNetConfig

    assert config_from_dict(CVAEConfig, {"n_classes": 3}).num_classes == 3
    assert config_from_dict(ClassifierConfig, {"n_classes": 4, "widths": [8, 16, 32]}).widths == (8, 16, 32)
    assert config_from_dict(UNetConfig, {"ch": 8, "ch_mult": [1, 2]}) == UNetConfig(width=8, width_mult=(1, 2))
    with pytest.raises(TypeError, match=r"no field\(s\) \['depth'\]"):
        config_from_dict(UNetConfig, {"depth": 3})


def test_the_course_recipes_are_the_values_the_chapters_trained_with():
    """The recipes live once in the library; their values are pinned so that the shipped runs
    and chapter 05's table stay reproducible."""
    from cvae_lib.diffusion import DiffusionConfig
    from cvae_lib.models.unet import UNetConfig

    assert DiffusionConfig.course(500) == DiffusionConfig(T=500, schedule="linear", null_label=10, p_uncond=0.1)
    assert DiffusionConfig.course(data="latent").data == "latent"
    assert UNetConfig.course(16) == UNetConfig(width=16, width_mult=(1, 2, 2), num_res_blocks=1,
                                               attn_resolutions=(16,), groups=8, num_classes=10)


def test_a_null_label_that_is_not_the_unets_extra_class_is_refused():
    import torch

    from cvae_lib.diffusion import DiffusionConfig
    from cvae_lib.models.unet import UNetConfig

    net = UNet(UNetConfig(width=8, groups=4, num_classes=5))
    bad = Diffusion(DiffusionConfig(T=100, null_label=10))
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="null_label=10.*num_classes=5.*null_label=5"):
        bad.train_loss(net, x, y)
    with pytest.raises(ValueError, match="num_classes=5"):
        bad.guided_eps(net, x, torch.tensor([3, 3]), y, guidance=2.0)
    Diffusion(DiffusionConfig(T=100, null_label=5)).train_loss(net, x, y)       # matching: fine

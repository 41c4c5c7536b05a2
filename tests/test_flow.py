"""Flow matching (cvae_lib/flow.py): the path and the velocity target pinned to Meta's
`flow_matching` package, one Euler step to diffusers' FlowMatchEulerDiscreteScheduler, and the
properties a student can check by hand (endpoints, straight paths, exact transport of a point mass,
guidance, Heun's order)."""
from __future__ import annotations

import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from flow_matching.path import AffineProbPath
from flow_matching.path.scheduler import CondOTScheduler

from cvae_lib.flow import FlowConfig, FlowMatching, flow_times
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.train import TrainConfig, fit


def _batch(seed=0, shape=(4, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g), torch.rand(shape[0], generator=g)


def test_path_and_target_match_meta_flow_matching():
    """Meta's convention runs the other way (x_0 noise, x_1 data, t = 1 at the data): with
    t_ours = 1 - t_theirs the points agree and the velocities are opposite."""
    x0, eps, t = _batch()
    theirs = AffineProbPath(scheduler=CondOTScheduler()).sample(x_0=eps, x_1=x0, t=1 - t)
    assert torch.allclose(FlowMatching.interpolate(x0, eps, t), theirs.x_t, atol=1e-6)
    assert torch.allclose(FlowMatching.velocity_target(x0, eps), -theirs.dx_t, atol=1e-6)


def test_euler_step_matches_diffusers_scheduler():
    """diffusers' FlowMatchEulerDiscreteScheduler uses our convention (sigma = t, the model
    predicts noise - data); one of its steps equals ours at its own sigmas."""
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    sched.set_timesteps(10)
    _, v, _ = _batch(1)
    x = torch.randn_like(v)
    for i in (0, 4, 9):
        sched._step_index = i
        sigma, sigma_next = float(sched.sigmas[i]), float(sched.sigmas[i + 1])
        theirs = sched.step(v, sched.timesteps[i], x).prev_sample
        assert torch.allclose(FlowMatching.euler_step(v, sigma, sigma_next, x), theirs, atol=1e-6)


def test_path_endpoints_and_straightness():
    x0, eps, _ = _batch(2)
    B = x0.shape[0]
    assert torch.equal(FlowMatching.interpolate(x0, eps, torch.zeros(B)), x0)
    assert torch.equal(FlowMatching.interpolate(x0, eps, torch.ones(B)), eps)
    # straight: the finite difference between two times is the (constant) target velocity
    a, b = torch.full((B,), 0.3), torch.full((B,), 0.7)
    slope = (FlowMatching.interpolate(x0, eps, b) - FlowMatching.interpolate(x0, eps, a)) / 0.4
    assert torch.allclose(slope, FlowMatching.velocity_target(x0, eps), atol=1e-5)


def test_flow_times():
    assert flow_times(4).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match="at least 1"):
        flow_times(0)


class PointMass(torch.nn.Module):
    """The exact velocity field of data concentrated at one point c: v(x, t) = (x - c) / t
    (every path is the straight line from its noise to c), with t shown as t * 1000."""

    def __init__(self, c: torch.Tensor):
        super().__init__()
        self.c = torch.nn.Parameter(c, requires_grad=False)

    def forward(self, xt, t, y=None):
        return (xt - self.c) / (t / 1000).view(-1, 1, 1, 1)


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_sampler_transports_a_point_mass_exactly(solver):
    """With the exact field, any number of steps lands on the data point: the path is straight."""
    c = torch.full((1, 2, 4, 4), 0.25)
    flow = FlowMatching(FlowConfig(data="latent"))
    x = flow.sample(PointMass(c), 3, steps=2, solver=solver, shape=(2, 4, 4), progress=False)
    assert torch.allclose(x, c.expand(3, -1, -1, -1), atol=1e-5)


def test_heun_is_second_order_on_a_curved_field():
    """On dx/dt = x (a curved field), Heun's error shrinks about 4x when the steps double, Euler's 2x."""
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, xt, t, y=None):
            return xt

    flow, g = FlowMatching(FlowConfig(data="latent")), torch.Generator().manual_seed(0)
    x1 = torch.randn((2, 1, 1, 1), generator=g)

    def error(solver, steps):
        torch.manual_seed(0)
        x = flow.sample(Linear(), 2, steps=steps, solver=solver, shape=(1, 1, 1),
                        generator=torch.Generator().manual_seed(0), progress=False)
        return float((x - x1 * math.exp(-1)).abs().max())

    assert torch.allclose(torch.randn((2, 1, 1, 1), generator=torch.Generator().manual_seed(0)), x1)
    assert 3.0 < error("heun", 8) / error("heun", 16) < 5.0
    assert 1.5 < error("euler", 8) / error("euler", 16) < 2.5
    assert FlowMatching.nfe(10, "heun") == 19 and FlowMatching.nfe(10) == 10


def test_guidance_combines_conditional_and_unconditional_velocities():
    flow = FlowMatching(FlowConfig.course(data="latent"))
    calls = []

    def model(xt, t, y):
        calls.append(y.clone())
        return torch.where(y.view(-1, 1, 1, 1) == 10, torch.zeros_like(xt), torch.ones_like(xt))

    x, t, y = torch.zeros(2, 1, 2, 2), torch.full((2,), 0.5), torch.tensor([3, 4])
    assert torch.allclose(flow.guided_velocity(model, x, t, y, 2.5), torch.full_like(x, 2.5))
    assert calls[-1].tolist() == [3, 4, 10, 10]                 # one call on a doubled batch
    assert torch.equal(flow.guided_velocity(model, x, t, y, 0.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="guidance weight"):
        flow.guided_velocity(model, x, t, y, float("nan"))


def test_null_label_must_match_the_unet():
    flow = FlowMatching(FlowConfig(null_label=5))
    unet = UNet(UNetConfig.course(width=8, num_classes=10))
    with pytest.raises(ValueError, match="null_label=5"):
        flow.loss(unet, torch.zeros(2, 3, 32, 32), torch.tensor([1, 2]))


@pytest.mark.slow
def test_a_unet_overfits_one_batch_with_the_flow_loss():
    """The course's U-Net and `fit` train with the flow loss unchanged: on one small batch the
    held-out loss (same images, fixed t and noise) falls well below its value at the start."""
    from cvae_lib.data import TensorSet
    torch.manual_seed(0)
    z = torch.randn(8, 4, 8, 8) * 0.5
    data = TensorSet(z, torch.arange(8) % 2, ["a", "b"])
    flow = FlowMatching(FlowConfig(null_label=2, p_uncond=0.0, data="latent"))
    unet = UNet(UNetConfig.latent(in_channels=4, num_classes=2, width=16))
    before = flow.heldout_loss(unet, z, data.y)
    fit(unet, flow.train_loss, data, TrainConfig(epochs=150, batch_size=8, lr=3e-3, progress=False))
    assert flow.heldout_loss(unet, z, data.y) < 0.6 * before


def test_images_leave_the_sampler_in_unit_range():
    flow = FlowMatching(FlowConfig.course())
    unet = UNet(UNetConfig.course(width=8, num_classes=10))
    x = flow.sample(unet, 2, torch.tensor([0, 1]), steps=2, guidance=2.0, progress=False)
    assert x.shape == (2, 3, 32, 32) and x.min() >= 0 and x.max() <= 1

"""Chapter 07's 2-D toy: the data, the paths the two processes train on and sample along, and the
small network that both processes train unchanged."""
from __future__ import annotations

import math

import pytest
import torch

from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.flow import FlowConfig, FlowMatching
from cvae_lib.models.toy import ToyConfig, ToyNet
from cvae_lib.toy import ring_distance, ring_of_gaussians, sample_paths, straightness, training_paths
from cvae_lib.train import TrainConfig, fit

FLOW = FlowMatching(FlowConfig(data="latent"))
DDPM = Diffusion(DiffusionConfig(data="latent"))


def test_ring_data_sits_on_its_blobs():
    ring = ring_of_gaussians(4000, std=0.1)
    assert ring.x.shape == (4000, 2, 1, 1) and set(ring.y.tolist()) == set(range(8))
    # the mean distance to the nearest centre of a 2-D Gaussian of std s is s * sqrt(pi / 2)
    assert ring_distance(ring.x) == pytest.approx(0.1 * math.sqrt(math.pi / 2), rel=0.05)
    assert ring_distance(torch.zeros(10, 2)) == pytest.approx(2.0)


def test_the_flow_trains_on_straight_segments_and_the_ddpm_on_arcs():
    ring = ring_of_gaussians(16)
    eps = torch.randn(16, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    flow, ddpm = training_paths(FLOW, ring.x, eps), training_paths(DDPM, ring.x, eps)
    assert flow.shape == ddpm.shape == (50, 16, 2)
    for path in (flow, ddpm):                       # from the noise end to the data end
        assert torch.allclose(path[-1], ring.x.flatten(1), atol=0.05)
        assert torch.allclose(path[0], eps.flatten(1), atol=0.02)
    assert straightness(flow) == pytest.approx(1.0, abs=1e-5)
    assert straightness(ddpm) < 0.95


def test_a_straight_path_has_straightness_one_and_a_detour_less():
    line = torch.linspace(0, 1, 11)[:, None, None] * torch.tensor([[1.0, 2.0]])     # (11, 1, 2)
    corner = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, 1.0]]])
    assert straightness(line) == pytest.approx(1.0)
    assert straightness(corner) == pytest.approx(math.sqrt(2) / 2)


def test_toy_net_has_the_denoisers_interface_and_learns_the_ring():
    net = ToyNet(ToyConfig(hidden=32))
    x, t = torch.randn(5, 2, 1, 1), torch.rand(5) * 1000
    assert net(x, t, None).shape == x.shape
    with pytest.raises(ValueError, match="unconditional"):
        net(x, t, torch.zeros(5, dtype=torch.long))
    torch.manual_seed(0)
    ring = ring_of_gaussians(2048)
    net = ToyNet()
    x1 = torch.randn(500, 2, 1, 1, generator=torch.Generator().manual_seed(1))
    before = ring_distance(sample_paths(FLOW, net, x1, steps=8)[-1])
    fit(net, FLOW.train_loss, ring, TrainConfig(epochs=60, batch_size=256, lr=3e-3, progress=False))
    path = sample_paths(FLOW, net, x1, steps=8)
    assert path.shape == (9, 500, 2) and torch.equal(path[0], x1.flatten(1))
    assert ring_distance(path[-1]) < 0.5 * before


def test_sample_paths_follow_the_library_samplers():
    """The recorded end points are the samplers' own results from the same noise."""
    net = ToyNet(ToyConfig(hidden=16))
    x1 = torch.randn(4, 2, 1, 1, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    flow_end = FLOW.sample(net, 4, steps=5, shape=(2, 1, 1), generator=g, progress=False)
    assert torch.allclose(sample_paths(FLOW, net, x1, steps=5)[-1], flow_end.flatten(1), atol=1e-5)
    g = torch.Generator().manual_seed(2)
    ddim_end = DDPM.ddim_sample(net, 4, steps=5, eta=0.0, shape=(2, 1, 1), generator=g, progress=False)
    assert torch.allclose(sample_paths(DDPM, net, x1, steps=5)[-1], ddim_end.flatten(1), atol=1e-4)

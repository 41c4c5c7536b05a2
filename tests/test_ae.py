"""The autoencoder's helpers that chapter 01 calls: latent interpolation."""
from __future__ import annotations

import torch

from cvae_lib.checks import ex01
from cvae_lib.models.ae import interpolate


def test_interpolate_passes_exercise_01s_checks():
    assert all(r.status == "passed" for r in ex01.check_interpolate(interpolate))


def test_interpolate_keeps_the_code_shape():
    z0, z1 = torch.zeros(2, 4, 4), torch.ones(2, 4, 4)        # a spatial code (Z, s, s)
    path = interpolate(z0, z1, 5)
    assert path.shape == (5, 2, 4, 4)
    torch.testing.assert_close(path[:, 0, 0, 0], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))

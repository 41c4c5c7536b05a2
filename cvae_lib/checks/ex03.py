"""Checks for exercise 03 (conditional VAE): label conditioning, the class grid, fixing the noise."""
from __future__ import annotations

import torch

from ..models.cvae import CVAE, CVAEConfig
from . import expect, expect_close, expect_shape, run_checks


def _small_cvae(weight: float = 0.5) -> CVAE:
    torch.manual_seed(0)
    return CVAE(CVAEConfig(width=8, hidden=32, latent_dim=6, label_weight=weight)).eval()


def check_conditioned_code(conditioned_code) -> list:
    """`conditioned_code(model, z, y)` -> z + w * MLP(Embedding(y)), the decoder's input code."""
    model = _small_cvae()
    z, y = torch.randn(4, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 3, 3, 9])
    with torch.no_grad():
        expected = z + 0.5 * model.label_mlp(model.embed(y))

    def shape():
        with torch.no_grad():
            expect_shape(conditioned_code(model, z, y), (4, 6))

    def value():
        with torch.no_grad():
            expect_close(conditioned_code(model, z, y), expected, atol=1e-5,
                         what="z + label_weight * label_mlp(embed(y))")

    def uses_weight():
        m0 = _small_cvae(weight=0.0)
        with torch.no_grad():
            expect_close(conditioned_code(m0, z, y), z, what="code with label_weight = 0 (should be z)")

    def same_label_same_shift():
        with torch.no_grad():
            c = conditioned_code(model, torch.zeros(4, 6), y)
        expect_close(c[1], c[2], what="shift of two samples with the same label")
        expect(not torch.allclose(c[0], c[1]), "different labels should give different shifts")

    return run_checks("conditioned_code", [
        ("keeps the shape of z", shape),
        ("is z plus the weighted label code", value),
        ("uses model.cfg.label_weight", uses_weight),
        ("the shift depends on the label only", same_label_same_shift),
    ])


def check_class_grid(class_grid) -> list:
    """`class_grid(n_rows, num_classes, latent_dim, generator)` -> (z, y) for a grid: one class per
    column, one z per row shared by the whole row; z (R*K, Z), y (R*K,)."""
    def grid():
        return class_grid(3, 10, 5, torch.Generator().manual_seed(0))

    def shapes():
        z, y = grid()
        expect_shape(z, (30, 5))
        expect_shape(y, (30,))

    def columns_are_classes():
        _, y = grid()
        expect(y.dtype == torch.long, f"labels must be integers (torch.long), got {y.dtype}")
        expect(y.view(3, 10).tolist() == [list(range(10))] * 3,
               f"each row should hold labels 0..9 in order; got rows {y.view(3, 10).tolist()}")

    def rows_share_z():
        g = grid()[0].view(3, 10, 5)
        expect(bool((g == g[:, :1]).all()), "every image in a row should use the same z")
        expect(not torch.allclose(g[0, 0], g[1, 0]), "different rows should use different z")

    def standard_normal():
        big, _ = class_grid(4000, 2, 3, torch.Generator().manual_seed(1))
        expect(abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1) < 0.05,
               f"z should come from N(0, I): mean {float(big.mean()):.3f}, std {float(big.std()):.3f}")

    return run_checks("class_grid", [
        ("z is (rows * classes, Z) and y is (rows * classes,)", shapes),
        ("column k holds class k in every row", columns_are_classes),
        ("one z per row, shared along the row", rows_share_z),
        ("z is drawn from the prior N(0, I)", standard_normal),
    ])


def check_uniform_to_normal(uniform_to_normal) -> list:
    """`uniform_to_normal(u)`: U(0, 1) noise -> N(0, 1) noise by the inverse normal CDF."""
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(3)).clamp(1e-6, 1 - 1e-6)

    def shape():
        expect_shape(uniform_to_normal(u[:10].view(2, 5)), (2, 5))

    def centre():
        expect_close(uniform_to_normal(torch.tensor([0.5])), [0.0], atol=1e-5, what="value at u = 0.5")

    def quantile():
        expect_close(uniform_to_normal(torch.tensor([0.8413447])), [1.0], atol=1e-3,
                     what="value at u = Phi(1) = 0.8413 (should be 1)")

    def moments():
        z = uniform_to_normal(u)
        expect(abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02,
               f"transformed noise should have mean 0 and std 1; got {float(z.mean()):.3f}, {float(z.std()):.3f}")

    def monotone():
        z = uniform_to_normal(torch.linspace(0.01, 0.99, 50))
        expect(bool((z[1:] > z[:-1]).all()), "the transform should be increasing in u")

    return run_checks("uniform_to_normal", [
        ("keeps the shape", shape),
        ("maps 0.5 to 0", centre),
        ("maps Phi(1) to 1", quantile),
        ("gives mean 0 and standard deviation 1", moments),
        ("is increasing", monotone),
    ])

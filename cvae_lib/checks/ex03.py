"""Checks for exercise 03 (conditional VAE): label conditioning, the class grid, fixing the noise,
an encoder that sees the label, and a trained CVAE whose decoder must use the label."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.cvae import CVAE, CVAEConfig
from . import expect, expect_close, expect_shape, input_generator, run_checks, seeded

__all__ = ["check_conditioned_code", "check_class_grid", "check_uniform_to_normal", "check_encode_with_label",
           "check_train_cvae", "REFERENCES"]

# The library's own versions of the graded functions (the grader flags a submission that calls them).
REFERENCES: dict[str, list[str]] = {
    "conditioned_code": ["cvae_lib.models.cvae.CVAE.label_code", "cvae_lib.models.cvae.CVAE.decode"],
    "class_grid": [],
    "uniform_to_normal": [],
    "encode_with_label": ["cvae_lib.models.cvae.CVAE.encode"],
    "train_cvae": ["cvae_lib.train.fit", "cvae_lib.train.load_or_train", "cvae_lib.models.cvae.cvae_loss"],
}


def _small_cvae(weight: float = 0.5, condition_encoder: bool = False) -> CVAE:
    with seeded("ex03.cvae"):
        return CVAE(CVAEConfig(width=8, hidden=32, latent_dim=6, label_weight=weight,
                               condition_encoder=condition_encoder)).eval()


def check_conditioned_code(conditioned_code) -> list:
    """`conditioned_code(model, z, y)` -> z + w * MLP(Embedding(y)), the decoder's input code."""
    model = _small_cvae()
    g = input_generator("ex03.conditioned_code")
    z = torch.randn(4, 6, generator=g)
    a, b, c = torch.randperm(10, generator=g)[:3].tolist()
    y = torch.tensor([a, b, b, c])
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
    seed = int(torch.randint(0, 2**31, (), generator=input_generator("ex03.class_grid")))

    def grid():
        return class_grid(3, 10, 5, torch.Generator().manual_seed(seed))

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
        big, _ = class_grid(4000, 2, 3, torch.Generator().manual_seed(seed + 1))
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
    g = input_generator("ex03.uniform_to_normal")
    u = torch.rand(200_000, generator=g).clamp(1e-6, 1 - 1e-6)
    q = float(torch.rand((), generator=g)) * 4 - 2                    # a quantile in (-2, 2)
    u_q = 0.5 * (1 + math.erf(q / math.sqrt(2)))                     # Phi(q)

    def shape():
        expect_shape(uniform_to_normal(u[:10].view(2, 5)), (2, 5))

    def centre():
        expect_close(uniform_to_normal(torch.tensor([0.5])), [0.0], atol=1e-5, what="value at u = 0.5")

    def quantile():
        expect_close(uniform_to_normal(torch.tensor([0.8413447, u_q], dtype=torch.float64)), [1.0, q], atol=1e-3,
                     what=f"values at u = Phi(1) = 0.8413 and at u = Phi({q:.3f}) = {u_q:.4f} "
                          f"(should be 1 and {q:.3f})")

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


def check_encode_with_label(encode_with_label) -> list:
    """`encode_with_label(model, x, y)` -> (mu, logvar) of q(z | x, y): the encoder's features plus
    one bias per channel computed from the label, then the two heads."""
    model = _small_cvae(condition_encoder=True)
    g = input_generator("ex03.encode_with_label")
    x = torch.rand(4, 3, 32, 32, generator=g)
    y = torch.randperm(10, generator=g)[:4]
    other = (y + 1 + torch.randint(0, 9, (4,), generator=g)) % 10                # a different label each
    with torch.no_grad():
        mu_ref, logvar_ref = model.encode(x, y)

    def call(xx, yy):
        with torch.no_grad():
            out = encode_with_label(model, xx, yy)
        expect(isinstance(out, (tuple, list)) and len(out) == 2, f"expected (mu, logvar), got {type(out).__name__}")
        return out

    def shapes():
        mu, logvar = call(x, y)
        expect_shape(mu, (4, 6))
        expect_shape(logvar, (4, 6))

    def matches_library():
        mu, logvar = call(x, y)
        expect_close(mu, mu_ref, atol=1e-5, what="mu of q(z | x, y) (the label's bias label_to_features(embed(y)), "
                                                 "added to the encoder's features before the heads)")
        expect_close(logvar, logvar_ref, atol=1e-5, what="logvar of q(z | x, y)")

    def label_matters():
        mu, _ = call(x, y)
        mu_other, _ = call(x, other)
        expect(not torch.allclose(mu, mu_other, atol=1e-6),
               "the same images with other labels gave the same code: the encoder does not see the label")

    def per_image():
        mu, _ = call(x, y)
        for i in range(4):
            one, _ = call(x[i:i + 1], y[i:i + 1])
            expect_close(mu[i:i + 1], one, atol=1e-5,
                         what=f"image {i} in a batch vs alone (each image gets its own label's bias: reshape the "
                              f"(B, C) bias to (B, C, 1, 1) so that it is added at every position)")

    return run_checks("encode_with_label", [
        ("returns mu and logvar, each (B, Z)", shapes),
        ("matches q(z | x, y) of a CVAE whose encoder sees the label", matches_library),
        ("the label changes the code", label_matters),
        ("each image gets its own label's bias", per_image),
    ])


def coloured_classes(n: int, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n smooth random images (n, 3, 32, 32) in (0, 1) of k classes (n,), each class a colour of its own:
    the stand-in for CIFAR-10 that `check_train_cvae` learns from in a second."""
    colours = 2.5 * torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [-1, 1, 1], [1, -1, 1]])[:k]
    y = torch.arange(n) % k
    field = torch.randn(n, 3, 4, 4, generator=generator) + colours[y][:, :, None, None]
    return torch.sigmoid(F.interpolate(field, size=32, mode="bilinear", align_corners=False)), y


TRAIN_CVAE = dict(num_classes=4, latent_dim=8, width=8)   # the small CVAE check_train_cvae asks for


def check_train_cvae(train_cvae) -> list:
    """`train_cvae(images, labels, steps, batch_size, lr, num_classes, latent_dim, width, seed)` ->
    {"rec", "kl": (steps,), "state": the trained model's state_dict}; the grader rebuilds the model
    from the state and asks its decoder whether it uses the label."""
    g = input_generator("ex03.train_cvae")
    k, steps = TRAIN_CVAE["num_classes"], 25
    images, labels = coloured_classes(64, k, g)
    seed = int(torch.randint(0, 2**31, (), generator=g))
    z = torch.randn(8, TRAIN_CVAE["latent_dim"], generator=g)        # 8 codes, each decoded with every label
    runs = []

    def run() -> dict:
        if not runs:
            out = train_cvae(images, labels, steps, batch_size=8, lr=3e-3, seed=seed, **TRAIN_CVAE)
            expect(isinstance(out, dict), f"expected a dict, got {type(out).__name__}")
            runs.append(out)
        return runs[0]

    def series(key: str) -> torch.Tensor:
        out = run()
        expect(key in out, f"the result has no {key!r}; it should hold 'rec', 'kl' and 'state'")
        v = torch.as_tensor(out[key], dtype=torch.float64)
        expect_shape(v, (steps,))
        return v

    def trained(initial: bool = False) -> CVAE:
        cfg = CVAEConfig(likelihood="bernoulli", condition_encoder=True, residual=True, **TRAIN_CVAE)
        if initial:                                  # the weights train_cvae starts from
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return CVAE(cfg).eval()
        state = run().get("state")
        expect(isinstance(state, dict), f"'state' should be the model's state_dict(), got {type(state).__name__}")
        model = CVAE(cfg)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            raise AssertionError(f"'state' is not the state_dict of the CVAE that train_cvae builds "
                                 f"({str(e)[:200]})") from None
        return model.eval()

    def shapes():
        series("rec"), series("kl")
        trained()

    def learns():
        rec = series("rec")
        first, last = float(rec[:3].mean()), float(rec[-5:].mean())
        expect(last < first - 0.05 * 3 * 32 * 32 * math.log(2),
               f"the reconstruction term did not fall: {first:.1f} in the first 3 steps, {last:.1f} in the last 5")

    def encoder_sees_label():
        before, after = trained(initial=True), trained()
        moved = (after.label_to_features.weight - before.label_to_features.weight).detach().abs().max()
        expect(float(moved) > 1e-4, "the encoder's label path (label_to_features) never changed in training: the "
                                    "loss does not depend on it (encode with encode_with_label(model, x, y))")

    def decoder_uses_label():
        model = trained()
        ys = torch.arange(k).repeat(len(z))                                    # (8 k,)
        with torch.no_grad():
            x = model.decode_mean(z.repeat_interleave(k, 0), ys)               # (8 k, 3, 32, 32)
        colour = x.mean((2, 3)).view(len(z), k, 3)                             # each code's colour per label
        shift = colour - colour.mean(1, keepdim=True)                          # what the label changes
        class_colour = torch.stack([images[labels == c].mean((0, 2, 3)) for c in range(k)])   # (k, 3)
        target = (class_colour - class_colour.mean(0)).flatten()
        change = float(shift.abs().mean())
        towards = float(F.cosine_similarity(shift.flatten(1), target.expand(len(z), -1), dim=1).mean())
        expect(change > 0.05 and towards > 0.5,
               f"with z fixed, changing y changes the decoded image's colour by {change:.3f} on average, and "
               f"towards the label's class colour with cosine {towards:.2f} (a decoder that uses the label: above "
               f"0.05 and 0.5): the decoder does not use the label (decode with model.decode(z, y) and the "
               f"batch's true labels)")

    return run_checks("train_cvae", [
        ("returns rec and kl per step and the trained weights", shapes),
        ("the reconstruction term falls during training", learns),
        ("training changes the encoder's label path", encoder_sees_label),
        ("the trained decoder uses the label", decoder_uses_label),
    ])

"""The new checks of the exercises catch plausible mistakes, by name (issue 33).

Each case is the reference solution with one plausible mistake written into its source (a wrong
sign, a missing square root, eta on the wrong term, guidance as (1 + w) on the wrong branch, a
KL summed over the batch, a decoder that ignores y, ...). The check must fail the properties the
mistake breaks, with a message that says what to fix, and (where the mistake is specific) pass
the properties it does not break. That the unmutated solutions pass every check, under any
input seed, is tested in test_checks_inputs.py.
"""
from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
from test_checks_inputs import failed

ROOT = Path(__file__).resolve().parents[1]


def mutant(name: str, function: str, *edits: tuple[str, str]):
    """`function` as solutions/<name>.py defines it after replacing each `old` by `new` in the source
    (each `old` must occur exactly once), with every cell it depends on run again on the edited source."""
    source = (ROOT / "solutions" / f"{name}.py").read_text()
    for old, new in edits:
        assert source.count(old) == 1, f"{old!r} occurs {source.count(old)} times in solutions/{name}.py"
        source = source.replace(old, new)
    from cvae_lib.grade.plan import check_calls
    ns: dict = {"__name__": "__main__"}
    for cell in jupytext.reads(source, fmt="py:percent").cells:
        if cell.cell_type == "code" and "experiment" not in cell.metadata.get("tags", []) \
                and not check_calls(cell.source):
            exec(compile(cell.source, f"mutant of solutions/{name}.py", "exec"), ns)
    return ns[function]


# (exercise, check module, check, function, edits, properties that must fail, a word of the message,
#  properties that must still pass)
CASES = {
    # ---------------------------------------------------------------- ex02: the likelihood, warm-up, objective, run
    "bernoulli_nll: averaged over the pixels": (
        "ex02_vae", "check_bernoulli_nll", "bernoulli_nll",
        [("return bce.flatten(1).sum(dim=1)", "return bce.flatten(1).mean(dim=1)")],
        {"is the binary cross-entropy summed over the pixels"}, "summed over the", {"is never negative"}),
    "bernoulli_nll: log(sigmoid(l)) written out": (
        "ex02_vae", "check_bernoulli_nll", "bernoulli_nll",
        [('bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")',
          "p = torch.sigmoid(logits); bce = -(x * p.log() + (1 - x) * (1 - p).log())")],
        {"stays finite and exact for confident logits"}, "underflows",
        {"is the binary cross-entropy summed over the pixels"}),
    "bernoulli_nll: wrong sign": (
        "ex02_vae", "check_bernoulli_nll", "bernoulli_nll",
        [('bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")',
          'bce = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")')],
        {"is never negative", "is the binary cross-entropy summed over the pixels"}, "check the sign", set()),
    "kl_weight: counts steps from 1": (
        "ex02_vae", "check_kl_weight", "kl_weight",
        [("return beta * min(1.0, step / warmup_steps)", "return beta * min(1.0, (step + 1) / warmup_steps)")],
        {"is 0 at the first step", "grows linearly during the warm-up"}, "step 0",
        {"is beta at once without a warm-up"}),
    "kl_weight: never stops growing": (
        "ex02_vae", "check_kl_weight", "kl_weight",
        [("return beta * min(1.0, step / warmup_steps)", "return beta * step / warmup_steps")],
        {"reaches beta at the end of the warm-up and stays there"}, "never more",
        {"grows linearly during the warm-up"}),
    "kl_weight: divides by a zero warm-up": (
        "ex02_vae", "check_kl_weight", "kl_weight",
        [("    if warmup_steps <= 0:\n        return beta\n", "")],
        {"is beta at once without a warm-up"}, "ZeroDivisionError", {"is 0 at the first step"}),
    "vae_objective: KL summed over the batch": (
        "ex02_vae", "check_vae_objective", "vae_objective",
        [("return (rec + beta * kl).mean(), rec.mean(), kl.mean()",
          "return rec.mean() + beta * kl.sum(), rec.mean(), kl.sum()")],
        {"kl is summed over z and averaged over the batch", "loss = rec + beta * kl"}, "summed over the batch",
        {"rec is the reconstruction term in nats per image"}),
    "vae_objective: beta on the reconstruction term": (
        "ex02_vae", "check_vae_objective", "vae_objective",
        [("return (rec + beta * kl).mean(), rec.mean(), kl.mean()",
          "return (beta * rec + kl).mean(), rec.mean(), kl.mean()")],
        {"beta weights the KL term only", "loss = rec + beta * kl"}, "not the reconstruction",
        {"kl is summed over z and averaged over the batch"}),
    "vae_objective: KL averaged over z": (
        "ex02_vae", "check_vae_objective", "vae_objective",
        [("kl = kl_normal(mu, logvar).sum(dim=1)", "kl = kl_normal(mu, logvar).mean(dim=1)")],
        {"kl is summed over z and averaged over the batch"}, "summed over the latent dimensions",
        {"rec is the reconstruction term in nats per image"}),
    "train_vae: no optimizer.step()": (
        "ex02_vae", "check_train_vae", "train_vae",
        [("    optimizer.step()\n    return {\"loss\"", "    return {\"loss\"")],
        {"the reconstruction term falls during training"}, "optimizer.step()",
        {"beta follows the warm-up step by step"}),
    "train_vae: warm-up counted from step 1": (
        "ex02_vae", "check_train_vae", "train_vae",
        [("weight = kl_weight(step, warmup_steps, beta)", "weight = kl_weight(step + 1, warmup_steps, beta)")],
        {"beta follows the warm-up step by step"}, "counted from 0", {"the reconstruction term falls during training"}),
    # ---------------------------------------------------------------- ex03: the encoder's label, the trained decoder
    "encode_with_label: the label never reaches the features": (
        "ex03_conditional_vae", "check_encode_with_label", "encode_with_label",
        [("    h = h + bias[:, :, None, None]", "    h = h + 0 * bias[:, :, None, None]")],
        {"matches q(z | x, y) of a CVAE whose encoder sees the label", "the label changes the code"},
        "does not see the label", {"returns mu and logvar, each (B, Z)"}),
    "encode_with_label: one bias for the whole batch": (
        "ex03_conditional_vae", "check_encode_with_label", "encode_with_label",
        [("    h = h + bias[:, :, None, None]", "    h = h + bias.mean(0)[None, :, None, None]")],
        {"each image gets its own label's bias"}, "(B, C, 1, 1)", {"the label changes the code"}),
    "train_cvae: a decoder that ignores y": (
        "ex03_conditional_vae", "check_train_cvae", "train_cvae",
        [("rec = model.likelihood.nll(model.decode(z, y), x)",
          "rec = model.likelihood.nll(model.decode(z, torch.zeros_like(y)), x)")],
        {"the trained decoder uses the label"}, "does not use the label",
        {"the reconstruction term falls during training", "training changes the encoder's label path"}),
    "train_cvae: an encoder that ignores y": (
        "ex03_conditional_vae", "check_train_cvae", "train_cvae",
        [("mu, logvar = encode_with_label(model, x, y)", "mu, logvar = model._stats(model.encoder(from_unit(x)))")],
        {"training changes the encoder's label path"}, "encode_with_label", {"the trained decoder uses the label"}),
    # ---------------------------------------------------------------- ex04: the DDIM update and the guided sampler
    "ddim_step: eta on the direction term, not on sigma": (
        "ex04_ddpm", "check_ddim_step", "ddim_step",
        [("sigma = eta * ((1 - ab_prev)", "sigma = ((1 - ab_prev)"),
         ("+ (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps_hat",
          "+ eta * (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps_hat")],
        {"eta = 0 is the deterministic DDIM step", "eta scales the noise by sigma of Eq. 16"}, "Eq. 16",
        {"t_prev = -1 gives the predicted x0"}),
    "ddim_step: alpha_bar_prev without its square root": (
        "ex04_ddpm", "check_ddim_step", "ddim_step",
        [("return ab_prev.sqrt() * x0 +", "return ab_prev * x0 +")],
        {"eta = 0 is the deterministic DDIM step", "any eta matches Eq. 12"}, "sqrt(ab_prev) x0_hat",
        {"eta scales the noise by sigma of Eq. 16"}),
    "ddim_step: the direction keeps sqrt(1 - alpha_bar_prev) whatever sigma": (
        "ex04_ddpm", "check_ddim_step", "ddim_step",
        [("(1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps_hat", "(1 - ab_prev).sqrt() * eps_hat")],
        {"any eta matches Eq. 12", "eta = 1 one step back is the DDPM step"}, "sigma^2",
        {"eta = 0 is the deterministic DDIM step", "eta scales the noise by sigma of Eq. 16"}),
    "sample: guidance (1 + w) on the wrong branch": (
        "ex04_ddpm", "check_sample", "sample",
        [("eps = eps_null + w * (eps_y - eps_null)", "eps = (1 + w) * eps_null - w * eps_y")],
        {"w = 2, eta = 0 matches the library's sampler", "w = 2, eta = 1 matches the library's sampler"},
        "eps_null + w (eps_y - eps_null)",
        {"w = 0, eta = 0 matches the library's sampler", "w = 0, eta = 1 matches the library's sampler"}),
    "sample: no clipping of x0_hat": (
        "ex04_ddpm", "check_sample", "sample",
        [("x = ddim_step(eps, x, t, t_prev, eta, z, alpha_bar, clip=True)",
          "x = ddim_step(eps, x, t, t_prev, eta, z, alpha_bar, clip=False)")],
        {"w = 2, eta = 0 matches the library's sampler"}, "Diffusion.ddim_sample", set()),
    "sample: images left in [-1, 1]": (
        "ex04_ddpm", "check_sample", "sample",
        [("return ((x + 1) / 2).clamp(0, 1)", "return x")],
        {"returns images (n, 3, 32, 32) in [0, 1]"}, "map x0 from [-1, 1]", set()),
    # ---------------------------------------------------------------- ex05: KID
    "kid: the biased estimate (diagonal kept)": (
        "ex05_frechet", "check_kid", "kid",
        [("within_a = (k_aa.sum() - k_aa.diagonal().sum()) / (n * (n - 1))", "within_a = k_aa.mean()"),
         ("within_b = (k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))", "within_b = k_bb.mean()")],
        {"matches torchmetrics' KID estimator", "is unbiased: about 0 for two samples of one distribution"},
        "leaves out the pairs k(x_i, x_i)", {"is symmetric"}),
    "kid: the dot product not divided by D": (
        "ex05_frechet", "check_kid", "kid",
        [("(u @ v.T / d + 1) ** 3", "(u @ v.T + 1) ** 3")],
        {"uses the cubic kernel (x.y / D + 1)^3", "matches torchmetrics' KID estimator"}, "divide the dot",
        {"is symmetric"}),
    "kid: the cross term added": (
        "ex05_frechet", "check_kid", "kid",
        [("return float(within_a + within_b - 2 * k_ab.mean())",
          "return float(within_a + within_b + 2 * k_ab.mean())")],
        {"matches torchmetrics' KID estimator", "is unbiased: about 0 for two samples of one distribution"}, "KID",
        {"is symmetric"}),
    # ---------------------------------------------------------------- ex06: the latent sampler
    "sample_latent: the last step goes to 0, not to -1": (
        "ex06_latent_diffusion", "check_sample_latent", "sample_latent",
        [("t_prev = ts[i + 1] if i + 1 < len(ts) else -1\n        z = guided",
          "t_prev = ts[i + 1] if i + 1 < len(ts) else 0\n        z = guided")],
        {"w = 1 matches the library's latent sampler", "w > 1 matches the library's latent sampler"},
        "-1 after the last", {"returns latents (n, C, h, w)"}),
    "sample_latent: z_T not drawn from the generator": (
        "ex06_latent_diffusion", "check_sample_latent", "sample_latent",
        [("z = torch.randn((len(y), *shape), generator=generator)", "z = torch.randn((len(y), *shape))")],
        {"w = 1 matches the library's latent sampler"}, "generator=generator", set()),
    "sample_latent: the guidance weight ignored": (
        "ex06_latent_diffusion", "check_sample_latent", "sample_latent",
        [("z = guided_latent_step(prior, z, t, t_prev, y, w, null, alpha_bar)",
          "z = guided_latent_step(prior, z, t, t_prev, y, 1.0, null, alpha_bar)")],
        {"w > 1 matches the library's latent sampler"}, "same guidance",
        {"w = 1 matches the library's latent sampler"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_plausible_mistake_fails_the_property_it_breaks(case):
    name, check, function, edits, must_fail, word, must_pass = CASES[case]
    got = failed(name[:4], check, mutant(name, function, *edits))
    assert must_fail <= set(got), f"{case}: expected {must_fail} to fail, got {got}"
    assert any(word in message for message in got.values()), f"{case}: no message says {word!r}: {got}"
    assert not must_pass & set(got), f"{case}: {must_pass & set(got)} should still pass: {got}"

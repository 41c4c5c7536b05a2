"""Checks for exercise 07 (flow matching): the straight path, its velocity target, one guided
Euler step, and the whole guided Euler sampler. Each compares the student's function with closed
forms and with `cvae_lib.flow`, and names the property that does not hold. The velocity model
is a formula, so no data or shipped weights are needed."""
from __future__ import annotations

import torch

from ..flow import FlowConfig, FlowMatching
from . import expect, expect_close, expect_shape, input_generator, run_checks

__all__ = ["check_interpolate", "check_velocity_target", "check_guided_euler_step", "check_sample_flow",
           "REFERENCES"]

# The library's own versions of the graded functions (the grader flags a submission that calls them).
REFERENCES: dict[str, list[str]] = {
    "interpolate": ["cvae_lib.flow.FlowMatching.interpolate"],
    "velocity_target": ["cvae_lib.flow.FlowMatching.velocity_target"],
    "guided_euler_step": ["cvae_lib.flow.FlowMatching.guided_velocity", "cvae_lib.flow.FlowMatching.euler_step"],
    "sample_flow": ["cvae_lib.flow.FlowMatching.sample", "cvae_lib.latent.LatentDiffusion.sample",
                    "cvae_lib.flow.FlowMatching.guided_velocity", "cvae_lib.flow.FlowMatching.euler_step"],
}
NULL = 10


def _pair(name: str, shape=(3, 2, 4, 4)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, eps, t): data and noise (B, C, H, W) and one time (B,) in [0.1, 0.9] per sample."""
    g = input_generator(name)
    x0, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    return x0, eps, 0.1 + 0.8 * torch.rand(shape[0], generator=g)


def check_interpolate(interpolate):
    """interpolate(x0, eps, t) -> x_t = (1 - t) x0 + t eps, with t (B,) one time per sample."""
    x0, eps, t = _pair("ex07.interpolate")
    B = len(x0)

    def same_shape():
        expect_shape(interpolate(x0, eps, t), x0.shape)

    def data_at_zero():
        expect_close(interpolate(x0, eps, torch.zeros(B)), x0, atol=1e-6,
                     what="x_t at t = 0 (should be the data x0: t = 0 is the data end of the path)")

    def noise_at_one():
        expect_close(interpolate(x0, eps, torch.ones(B)), eps, atol=1e-6,
                     what="x_t at t = 1 (should be the noise eps)")

    def one_time_per_sample():
        expect_close(interpolate(x0, eps, t), FlowMatching.interpolate(x0, eps, t), atol=1e-5,
                     what=f"x_t for the times {[round(v, 3) for v in t.tolist()]}, one per sample (reshape t "
                          "to (B, 1, 1, 1) so it broadcasts over each sample's entries)")

    def straight():
        a, b = interpolate(x0, eps, torch.full((B,), 0.25)), interpolate(x0, eps, torch.full((B,), 0.75))
        expect_close(interpolate(x0, eps, torch.full((B,), 0.5)), (a + b) / 2, atol=1e-5,
                     what="x_0.5 against the midpoint of x_0.25 and x_0.75 (the path is a straight line)")

    return run_checks("ex07.interpolate", [
        ("keeps the shape (B, C, H, W)", same_shape),
        ("t = 0 gives the data", data_at_zero),
        ("t = 1 gives the noise", noise_at_one),
        ("one time per sample, broadcast over its entries", one_time_per_sample),
        ("the path is a straight line", straight),
    ])


def check_velocity_target(velocity_target):
    """velocity_target(x0, eps) -> d x_t / dt = eps - x0 along the straight path."""
    x0, eps, _ = _pair("ex07.velocity_target")

    def same_shape():
        expect_shape(velocity_target(x0, eps), x0.shape)

    def direction():
        v = velocity_target(x0, eps)
        expect(float(((v) * (eps - x0)).sum()) > 0, "the velocity points from the noise to the data: "
               "t grows from the data (t = 0) to the noise (t = 1), so dx_t/dt points towards eps")
        expect_close(v, eps - x0, atol=1e-6, what="the velocity eps - x0")

    def derivative_of_the_path():
        h = 1e-3
        t = torch.full((len(x0),), 0.4, dtype=torch.float64)
        xa = FlowMatching.interpolate(x0.double(), eps.double(), t)
        xb = FlowMatching.interpolate(x0.double(), eps.double(), t + h)
        expect_close(velocity_target(x0, eps), (xb - xa) / h, atol=1e-4,
                     what="the velocity against the path's finite difference (x_{t+h} - x_t) / h")

    return run_checks("ex07.velocity_target", [
        ("keeps the shape (B, C, H, W)", same_shape),
        ("points from the data to the noise: eps - x0", direction),
        ("is the derivative of the path", derivative_of_the_path),
    ])


def _spy_velocity():
    """v_theta(x, t, y) that depends on all three, with null class NULL; t (B,) floats in [0, 1]."""
    def v_theta(x, t, y):
        return -0.4 * x + 0.3 * t.float().view(-1, 1, 1, 1) + 0.1 * (y.float().view(-1, 1, 1, 1) - 4)
    return v_theta


def check_guided_euler_step(guided_euler_step):
    """guided_euler_step(v_theta, x, t, t_next, y, w, null) -> x_{t_next} = x_t + (t_next - t) v with the
    guided velocity v = v(x, t, null) + w (v(x, t, y) - v(x, t, null)), t and t_next floats."""
    flow = FlowMatching(FlowConfig(null_label=NULL, data="latent", t_scale=1.0))
    v_theta = _spy_velocity()
    g = input_generator("ex07.guided_euler_step")
    x = torch.randn(3, 2, 4, 4, generator=g)
    a, b = torch.randperm(10, generator=g)[:2].tolist()
    y = torch.tensor([a, b, b])
    t, t_next = 0.6 + 0.2 * float(torch.rand((), generator=g)), 0.4
    w3 = 2.5 + float(torch.rand((), generator=g))

    def library(w):
        v = flow.guided_velocity(v_theta, x, torch.full((3,), t), y, w)
        return flow.euler_step(v, t, t_next, x)

    def same_shape():
        expect_shape(guided_euler_step(v_theta, x, t, t_next, y, 2.0, NULL), x.shape)

    def conditional_at_w1():
        v = v_theta(x, torch.full((3,), t), y)
        expect_close(guided_euler_step(v_theta, x, t, t_next, y, 1.0, NULL), x + (t_next - t) * v, atol=1e-5,
                     what=f"the step from t = {t:.3f} to {t_next} with w = 1: x + (t_next - t) v(x, t, y) "
                          "(t_next < t, so the step moves against the velocity, towards the data)")

    def unconditional_at_w0():
        expect_close(guided_euler_step(v_theta, x, t, t_next, y, 0.0, NULL), library(0.0), atol=1e-5,
                     what="the step with w = 0 (only the null-class velocity counts)")

    def guidance_formula():
        expect_close(guided_euler_step(v_theta, x, t, t_next, y, w3, NULL), library(w3), atol=1e-5,
                     what=f"the step with w = {w3:.3f}: v = v_null + w (v_y - v_null)")

    def velocity_at_t():
        out = guided_euler_step(v_theta, x, t, t_next, y, 1.0, NULL)
        wrong = x + (t_next - t) * v_theta(x, torch.full((3,), t_next), y)
        expect(not torch.allclose(out, wrong, atol=1e-6),
               "the velocity is evaluated at t_next: Euler's method uses the slope at the current time t")

    return run_checks("ex07.guided_euler_step", [
        ("keeps the shape (B, C, H, W)", same_shape),
        ("w = 1 is the conditional Euler step", conditional_at_w1),
        ("w = 0 is the unconditional step", unconditional_at_w0),
        ("w > 1 follows the guidance formula", guidance_formula),
        ("evaluates the velocity at the current time", velocity_at_t),
    ])


def check_sample_flow(sample_flow):
    """sample_flow(v_theta, y, w, steps, generator, null, shape) -> the final points (n, *shape): x_1 drawn
    with `generator`, then `steps` guided Euler steps from t = 1 to t = 0 over equal intervals, as
    `FlowMatching.sample(..., solver="euler")`."""
    flow = FlowMatching(FlowConfig(null_label=NULL, data="latent", t_scale=1.0))
    v_theta = _spy_velocity()
    g = input_generator("ex07.sample_flow")
    y = torch.randint(0, 10, (3,), generator=g)
    seed = int(torch.randint(0, 2**31, (), generator=g))
    shape, steps = (2, 4, 4), 5
    w3 = 2.5 + float(torch.rand((), generator=g))

    def mine(w: float, k: int = steps) -> torch.Tensor:
        return sample_flow(v_theta, y, w, k, torch.Generator().manual_seed(seed), NULL, shape)

    def library(w: float, k: int = steps) -> torch.Tensor:
        return flow.sample(v_theta, len(y), y, steps=k, guidance=w, shape=shape,
                           generator=torch.Generator().manual_seed(seed), progress=False)

    def points():
        expect_shape(mine(1.0), (3, *shape))

    def conditional():
        expect_close(mine(1.0), library(1.0), atol=1e-4,
                     what=f"the samples for labels {y.tolist()} with w = 1 and {steps} steps vs FlowMatching.sample "
                          "(x_1 = torch.randn((n, *shape), generator=generator), then one guided Euler step from each "
                          "time of torch.linspace(1, 0, steps + 1) to the next)")

    def one_step():
        expect_close(mine(1.0, 1), library(1.0, 1), atol=1e-4,
                     what="one step: x_0 = x_1 - v(x_1, 1, y), the whole path in one Euler step")

    def guided():
        expect_close(mine(w3), library(w3), atol=1e-4,
                     what=f"the samples with w = {w3:.3f} vs FlowMatching.sample with the same guidance")

    return run_checks("ex07.sample_flow", [
        ("returns samples (n, C, H, W)", points),
        ("w = 1 matches the library's Euler sampler", conditional),
        ("one step goes from t = 1 to t = 0", one_step),
        ("w > 1 matches the library's Euler sampler", guided),
    ])

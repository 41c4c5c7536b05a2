"""Exercise 07's checks (flow matching) pass the library's own functions and fail plausible
mistakes with a message that names the broken property."""
from __future__ import annotations

import torch

from cvae_lib.checks import collecting, ex07, set_input_seed
from cvae_lib.flow import FlowConfig, FlowMatching

NULL = 10


def _failed(check, fn) -> dict[str, str]:
    """{property: message} of the properties that did not pass."""
    with collecting():
        return {r.prop: r.message for r in check(fn) if r.status != "passed"}


def _guided_step(v, x, t, t_next, y, w, null, *, at=None, weights=None):
    """A guided Euler step; `at` the time the model is called at, `weights` (conditional,
    unconditional) coefficients instead of (w, 1 - w)."""
    tt = torch.full((x.shape[0],), t if at is None else at)
    vc, vu = v(x, tt, y), v(x, tt, torch.full_like(y, null))
    a, b = weights if weights is not None else (w, 1 - w)
    return x + (t_next - t) * (a * vc + b * vu)


def _library_sampler(v, y, w, steps, generator, null, shape):
    flow = FlowMatching(FlowConfig(null_label=null, data="latent", t_scale=1.0))
    return flow.sample(v, len(y), y, steps=steps, guidance=w, shape=shape, generator=generator, progress=False)


def test_the_library_passes_every_property_under_any_seed():
    for seed in (None, 12345):
        set_input_seed(seed)
        try:
            assert not _failed(ex07.check_interpolate, FlowMatching.interpolate)
            assert not _failed(ex07.check_velocity_target, FlowMatching.velocity_target)
            assert not _failed(ex07.check_guided_euler_step, _guided_step)
            assert not _failed(ex07.check_sample_flow, _library_sampler)
        finally:
            set_input_seed(None)


def test_interpolate_catches_swapped_ends_and_a_missing_reshape():
    def swapped_ends(x0, eps, t):
        t = t.view(-1, 1, 1, 1)
        return t * x0 + (1 - t) * eps
    swapped = _failed(ex07.check_interpolate, swapped_ends)
    assert "t = 0 gives the data" in swapped and "should be the data" in swapped["t = 0 gives the data"]
    mean_t = _failed(ex07.check_interpolate, lambda x0, eps, t: (1 - t.mean()) * x0 + t.mean() * eps)
    assert "one time per sample, broadcast over its entries" in mean_t
    assert "reshape t" in mean_t["one time per sample, broadcast over its entries"]


def test_velocity_catches_the_wrong_sign():
    failed = _failed(ex07.check_velocity_target, lambda x0, eps: x0 - eps)
    assert "points from the noise to the data" in failed["points from the data to the noise: eps - x0"]


def test_guided_step_catches_guidance_on_the_wrong_branch_and_the_wrong_time():
    wrong_branch = _failed(ex07.check_guided_euler_step,
                           lambda *a: _guided_step(*a, weights=(1 + a[5], -a[5])))   # (1 + w) v_c - w v_u
    assert {"w > 1 follows the guidance formula", "w = 1 is the conditional Euler step"} <= set(wrong_branch)
    late = _failed(ex07.check_guided_euler_step,
                   lambda v, x, t, tn, y, w, null: _guided_step(v, x, t, tn, y, w, null, at=tn))
    assert "evaluates the velocity at the current time" in late
    forward = _failed(ex07.check_guided_euler_step,
                      lambda v, x, t, tn, y, w, null: 2 * x - _guided_step(v, x, t, tn, y, w, null))   # x - (t' - t) v
    assert "w = 1 is the conditional Euler step" in forward


def test_sampler_catches_a_missing_last_step_and_fixed_noise():
    def one_step_short(v, y, w, steps, generator, null, shape):
        if steps == 1:
            return torch.zeros(len(y), *shape)
        return _library_sampler(v, y, w, steps - 1, generator, null, shape)
    assert "w = 1 matches the library's Euler sampler" in _failed(ex07.check_sample_flow, one_step_short)

    def ignores_generator(v, y, w, steps, generator, null, shape):
        return _library_sampler(v, y, w, steps, torch.Generator().manual_seed(0), null, shape)
    assert "w = 1 matches the library's Euler sampler" in _failed(ex07.check_sample_flow, ignores_generator)

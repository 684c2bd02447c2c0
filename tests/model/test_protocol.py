"""Unit tests of model.protocol: the static step schedule and protocol validation (pure numpy / Python)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxsim.model.protocol import Charge, Discharge, Rest, check_protocol, step_fractions

EPS = np.finfo(float).eps

n_steps = st.integers(4, 2000)
first_ratios = st.floats(1e-4, 1.0)
widths = st.floats(1e-3, 0.5)


@settings(max_examples=30, deadline=None)
@given(n=n_steps, first_ratio=first_ratios, width=widths)
def test_step_fractions_sum_to_one_and_grow(n, first_ratio, width):
    """The n fractions are positive, sum to 1 (to n eps: they are differences of a map normalised to [0, 1], so the
    sum telescopes) and are non-decreasing (the density F' grows monotonically)."""
    f = step_fractions(n, first_ratio, width)
    assert f.shape == (n,)
    assert np.all(f > 0)
    assert abs(f.sum() - 1.0) <= 4 * n * EPS
    # Monotone up to the rounding of each difference (|F| <= 1 + width * log(1/first_ratio)).
    assert np.all(np.diff(f) >= -8 * EPS * (1 + width * math.log(1 / first_ratio)))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(8, 1000), first_ratio=first_ratios, width=widths)
def test_first_step_is_first_ratio_times_last(n, first_ratio, width):
    """first / last = first_ratio up to the discretisation of the density: with a = 1/first_ratio - 1 the density is
    F'(s) ~ 1 / (1 + a exp(-s / w)) (increasing), and each step is the mean of F' over its interval of length
    h = 1/n: the first step lies in [F'(0), F'(h)] h and the last in [F'(1 - h), F'(1)] h, so first / last lies in
    [F'(0) / F'(1), F'(h) / F'(1 - h)] (computed here; 1e-9 slack for rounding). When h << w that interval is
    first_ratio * (1 + O(h / w)), i.e. 'a few %' for the default n = 400, w = 0.025."""
    f = step_fractions(n, first_ratio, width)
    a = 1.0 / first_ratio - 1.0

    def density(s):
        return 1.0 / (1.0 + a * math.exp(-s / width))

    h = 1.0 / n
    ratio = f[0] / f[-1]
    lo, hi = density(0.0) / density(1.0), density(h) / density(1.0 - h)
    assert lo * (1 - 1e-9) <= ratio <= hi * (1 + 1e-9)


def test_default_schedule_first_ratio_within_a_few_percent():
    """With the solver defaults (n = 400, first_ratio = 0.01, width = 0.025) the first step is 0.01 of the last to
    within exp(h / w) - 1 = 10.5 % (F'(h) / F'(0) <= exp(h / w)); it is 5.1 % above in fact, the mean density over
    the first step being about F'(h / 2)."""
    f = step_fractions(400, 0.01, 0.025)
    ratio = f[0] / f[-1]
    assert 0.01 <= ratio <= 0.01 * math.exp(1 / 400 / 0.025)
    # The last steps are uniform: the density has saturated after 1 / w = 40 e-folds.
    np.testing.assert_allclose(f[-50:], f[-1], rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(4, 1000), first_ratio=first_ratios, width=widths)
def test_doubling_n_steps_splits_every_step_in_two(n, first_ratio, width):
    """The schedule samples one fixed map F at s = k / n, so the 2n-step schedule contains every node of the n-step
    one: consecutive pairs of fine steps sum to the coarse steps, to the rounding of F (a few eps)."""
    coarse = step_fractions(n, first_ratio, width)
    fine = step_fractions(2 * n, first_ratio, width)
    np.testing.assert_allclose(fine[0::2] + fine[1::2], coarse, rtol=0, atol=16 * EPS)
    # Each coarse step is split unevenly only by the grading (the later half is not smaller).
    assert np.all(fine[1::2] >= fine[0::2] * (1 - 1e-12))


def test_uniform_schedule_when_first_ratio_is_one():
    """first_ratio = 1 means no grading: all steps equal 1 / n."""
    np.testing.assert_allclose(step_fractions(10, 1.0, 0.025), 0.1, rtol=8 * EPS)


@pytest.mark.parametrize(("first_ratio", "width"), [(0.0, 0.025), (1.5, 0.025), (-0.1, 0.025), (0.01, 0.0),
                                                    (0.01, -1.0), (math.nan, 0.025), (0.01, math.nan)])
def test_step_fractions_rejects_bad_arguments(first_ratio, width):
    """first_ratio must lie in (0, 1] and grading_width be > 0 (NaN is rejected, not propagated)."""
    with pytest.raises(ValueError, match="first_ratio" if not 0 < first_ratio <= 1 else "grading_width"):
        step_fractions(10, first_ratio, width)


# ---- check_protocol ------------------------------------------------------------------------------------------------
def test_check_protocol_accepts_and_returns_tuple():
    """A valid protocol (list or generator) comes back as a tuple of the same steps."""
    steps = [Charge(), Rest(600.0), Discharge(rate_mA_per_g=50.0, max_duration_s=3600.0), Charge(n_steps=8)]
    assert check_protocol(steps) == tuple(steps)
    assert check_protocol(s for s in steps) == tuple(steps)
    assert check_protocol([Charge(until_cutoff=False, max_duration_s=1200.0)])[0].max_duration_s == 1200.0


def test_check_protocol_rejects_empty():
    with pytest.raises(ValueError, match="at least one step"):
        check_protocol([])


@pytest.mark.parametrize("rate", [0.0, -100.0, math.nan, -math.inf])
@pytest.mark.parametrize("kind", [Charge, Discharge])
def test_check_protocol_rejects_bad_rates(kind, rate):
    """Charge / discharge rates must be > 0 (the sign comes from the step kind); NaN is rejected."""
    with pytest.raises(ValueError, match=r"rate_mA_per_g = .* mA g-1 is outside the allowed range \(0, inf\)"):
        check_protocol([Charge(), kind(rate_mA_per_g=rate)])


@pytest.mark.parametrize("duration", [math.inf, 0.0, -5.0, math.nan])
def test_check_protocol_rejects_bad_rest(duration):
    """A rest needs a finite, positive duration (an infinite rest never ends)."""
    with pytest.raises(ValueError, match="rest|duration"):
        check_protocol([Rest(duration)])


@pytest.mark.parametrize("kind", [Charge, Discharge])
def test_check_protocol_rejects_charge_without_end(kind):
    """A charge / discharge with until_cutoff=False and an infinite max_duration_s would never end."""
    with pytest.raises(ValueError, match="until_cutoff=True or a finite max_duration_s"):
        check_protocol([kind(until_cutoff=False)])
    # Either way of ending it is fine.
    check_protocol([kind(until_cutoff=False, max_duration_s=10.0)])
    check_protocol([kind(until_cutoff=True)])


@pytest.mark.parametrize("duration", [0.0, -1.0, math.nan])
def test_check_protocol_rejects_bad_max_duration(duration):
    with pytest.raises(ValueError, match="duration must be > 0"):
        check_protocol([Charge(max_duration_s=duration)])


@pytest.mark.parametrize("n", [3, 0, -4, 10.0, "8"])
def test_check_protocol_rejects_bad_n_steps(n):
    with pytest.raises(ValueError, match="n_steps must be an integer >= 4"):
        check_protocol([Rest(60.0, n_steps=n)])


@pytest.mark.parametrize("step", [None, 1.0, "charge", (Charge(),)])
def test_check_protocol_rejects_non_steps(step):
    with pytest.raises(TypeError, match="must be Charge, Rest or Discharge"):
        check_protocol([Charge(), step])

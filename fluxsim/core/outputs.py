"""Scalar and resampled outputs of a :class:`~fluxsim.core.solution.Solution`, as pure differentiable functions.

These are what users fit and differentiate: ``jax.grad(lambda p: capacity_at_cutoff(simulate(p)))(params)``.
Times are seconds since the start of the protocol, distances nanometres.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from fluxsim.core.solution import Solution


def capacity_at_cutoff(solution: Solution, step: int = 0) -> Float[Array, ""]:
    """Capacity passed [mAh g-1] when protocol step ``step`` ended (for a charge to cut-off: the extracted Li).

    Saved times after the end of the protocol hold the final state, so they count as the end time: the value at
    the end of the last step is then exact on any time grid (the mesh core saves on the user's grid, not at step
    ends); an earlier step's end is interpolated linearly between the saved times around it.
    """
    t = jnp.minimum(solution.t_s, solution.step_end_s[-1])
    return jnp.interp(solution.step_end_s[step], t, solution.passed_capacity_mAh_per_g)


def time_to_cutoff(solution: Solution, step: int = 0) -> Float[Array, ""]:
    """Duration [s] of protocol step ``step`` (for the first step: the time to cut-off)."""
    start = 0.0 if step == 0 else solution.step_end_s[step - 1]
    return solution.step_end_s[step] - start


def _centroid_series(solution: Solution, smooth: bool):
    if smooth:
        return solution.smooth_core_fraction, solution.smooth_core_x_nm, solution.smooth_core_y_nm
    return solution.core_fraction, solution.core_x_nm, solution.core_y_nm


def offset_nm(solution: Solution, smooth: bool = False) -> Float[Array, " saves"]:
    """Core offset series ``d`` [nm] (distance between the particle and Li-rich core centroids); NaN without a core.

    Gradient-safe: where there is no core (or the core is exactly centred) the NaN / zero branches do not leak
    into derivatives.
    """
    fraction, x, y = _centroid_series(solution, smooth)
    present = fraction > 0
    nonzero = present & ((x != 0) | (y != 0))
    d = jnp.hypot(jnp.where(nonzero, x, 1.0), jnp.where(nonzero, y, 0.0))
    return jnp.where(present, jnp.where(nonzero, d, 0.0), jnp.nan)


def offset_direction_rad(solution: Solution, smooth: bool = False) -> Float[Array, " saves"]:
    """Direction of the core offset [rad], counter-clockwise from +x; NaN without a core or for a centred core."""
    fraction, x, y = _centroid_series(solution, smooth)
    defined = (fraction > 0) & ((x != 0) | (y != 0))
    angle = jnp.arctan2(jnp.where(defined, y, 0.0), jnp.where(defined, x, 1.0))
    return jnp.where(defined, angle, jnp.nan)


def at_times(solution: Solution, series: Float[Array, " saves"], times_s) -> Float[Array, "*times"]:
    """Linear interpolation of a saved series at ``times_s`` [s]; NaN after the end of the protocol.

    ``times_s`` must be within one protocol step's span for the value to refer to that step (at a step boundary the
    saved series holds both sides).
    """
    times_s = jnp.asarray(times_s)
    values = jnp.interp(times_s, solution.t_s, series)
    return jnp.where(times_s <= solution.t_s[-1], values, jnp.nan)


def _first_crossing(x, y, level):
    """First ``x`` at which a decreasing-through-``level`` series ``y`` crosses ``level`` (linear), NaN if never."""
    above = y > level
    crosses = above[:-1] & ~above[1:]
    k = jnp.argmax(crosses)
    y0, y1 = y[k], y[k + 1]
    span = jnp.where(y0 != y1, y0 - y1, 1.0)
    value = x[k] + (x[k + 1] - x[k]) * (y0 - level) / span
    return jnp.where(jnp.any(crosses), value, jnp.nan)


def offset_at_core_fraction(solution: Solution, fraction: float, smooth: bool = False) -> Float[Array, ""]:
    """Core offset ``d`` [nm] at the moment the core area fraction first falls to ``fraction``.

    docs/model.md recommends d at fixed core fractions (0.25, 0.01) as the robust summary: the largest d is reached as
    the core vanishes and depends on resolution.
    """
    core = solution.smooth_core_fraction if smooth else solution.core_fraction
    t = _first_crossing(solution.t_s, core, fraction)
    d = offset_nm(solution, smooth)
    # Where the core has vanished d is NaN: hold the last value that had a core. When the crossing falls in the
    # saved interval in which the core disappears, the result is that interval's start value (save cadence limits
    # the 0.01 level; Numerics.save_every sets the cadence).
    finite = jnp.isfinite(d)
    last = jax.lax.cummax(jnp.where(finite, jnp.arange(d.shape[0]), 0))
    held = jnp.where(finite[last], d[last], jnp.nan)
    return jnp.where(jnp.isfinite(t), jnp.interp(t, solution.t_s, held), jnp.nan)


def core_vanish_capacity(solution: Solution) -> Float[Array, ""]:
    """Passed capacity [mAh g-1] at which the Li-rich core disappears (NaN if it never does)."""
    return jnp.interp(solution.core_vanish_s, solution.t_s, solution.passed_capacity_mAh_per_g)


def spread(solution: Solution) -> Float[Array, " saves"]:
    """``max(theta) - min(theta)`` over the particle, per saved state (relaxation during rest)."""
    return solution.theta_max - solution.theta_min

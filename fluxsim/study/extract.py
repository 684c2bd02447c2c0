"""What is kept of one simulation of a study: :func:`point_outputs` reduces a ``Solution`` inside the compiled batch
program to the stored series (resampled on the common time grid), scalars, snapshots and line cut, plus a ``status``
(0 ok; bit 1: non-finite output; bit 2: Newton not converged), so one bad point never loses the others.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fluxsim.core import outputs
from fluxsim.core.solution import Solution
from fluxsim.model.params import Params

#: Bits of the per-point ``status`` (CF ``flag_masks``); 0 is success.
STATUS_NONFINITE = 1


STATUS_NOT_CONVERGED = 2


STATUS_CHUNK_FAILED = 4


STATUS_MEANINGS = {
    STATUS_NONFINITE: "nonfinite_output",
    STATUS_NOT_CONVERGED: "newton_not_converged",
    STATUS_CHUNK_FAILED: "chunk_failed",
}


#: Solution series stored on the common time grid (plus ``offset_nm``, ``offset_direction_rad``,
#: ``smooth_offset_nm``, derived here).
SERIES = (
    "passed_capacity_mAh_per_g",
    "mean_theta",
    "surface_min_theta",
    "surface_max_theta",
    "theta_min",
    "theta_max",
    "core_fraction",
    "smooth_core_fraction",
)


@dataclasses.dataclass(frozen=True)
class Extraction:
    """Static settings of :func:`point_outputs` (hashable: part of the compiled function).

    Attributes:
        times_s: common time grid of the series [s].
        core_fraction_levels: core area fractions at which the offset d is reported.
        line_cut: also resample the line cut along the arc axis.
        voltage: also store the cell voltage (surface model B).
        newton_tolerance: a point whose largest final Newton update exceeds this gets ``STATUS_NOT_CONVERGED``.
    """

    times_s: tuple[float, ...]
    core_fraction_levels: tuple[float, ...] = (0.25, 0.01)
    line_cut: bool = False
    voltage: bool = False
    newton_tolerance: float = 1e-7


def point_outputs(solution: Solution, params: Params, spec: Extraction) -> dict[str, jax.Array]:
    """Everything stored for one simulation (pure and vmappable; names match :mod:`fluxsim.io.store`)."""
    times = jnp.asarray(spec.times_s, solution.t_s.dtype)

    def resample(series):
        return outputs.at_times(solution, series, times)

    out = {name: resample(getattr(solution, name)) for name in SERIES}
    out["offset_nm"] = resample(outputs.offset_nm(solution))
    # Direction from the resampled centroid components: interpolating an angle across its wrap would be wrong.
    # NaN where there is no core (the centroid components may be NaN or 0 there).
    direction = jnp.arctan2(resample(solution.core_y_nm), resample(solution.core_x_nm))
    out["offset_direction_rad"] = jnp.where(jnp.isnan(out["offset_nm"]), jnp.nan, direction)
    out["smooth_offset_nm"] = resample(outputs.offset_nm(solution, smooth=True))
    if spec.voltage:
        out["voltage_V"] = resample(solution.voltage_V)
    if spec.line_cut:
        out["line_cut"] = jax.vmap(resample, in_axes=1, out_axes=1)(solution.line_cut)
    out["theta"] = solution.snapshots

    angle = params.blocking.arc_center_rad
    out.update(
        capacity_at_cutoff_mAh_per_g=outputs.capacity_at_cutoff(solution),
        time_to_cutoff_s=outputs.time_to_cutoff(solution),
        reached_cutoff=solution.step_cutoff[0],
        step_end_s=solution.step_end_s,
        step_cutoff=solution.step_cutoff,
        core_vanish_capacity_mAh_per_g=outputs.core_vanish_capacity(solution),
        core_vanish_time_s=solution.core_vanish_s,
        core_vanish_position_nm=solution.core_vanish_x_nm * jnp.cos(angle)
        + solution.core_vanish_y_nm * jnp.sin(angle),
        newton_iterations=solution.newton_iterations.astype(jnp.int32),
        newton_total=solution.newton_total.astype(jnp.int32),
        newton_change=solution.newton_change,
    )
    levels = spec.core_fraction_levels
    out["offset_at_core_fraction_nm"] = jnp.stack(
        [outputs.offset_at_core_fraction(solution, f) for f in levels]
    ) if levels else jnp.zeros((0,), solution.t_s.dtype)

    finite = jnp.all(jnp.isfinite(solution.mean_theta)) & jnp.all(jnp.isfinite(solution.theta_min))
    finite &= jnp.all(jnp.isfinite(solution.theta_max)) & jnp.all(jnp.isfinite(solution.step_end_s))
    finite &= jnp.all(jnp.isfinite(solution.passed_capacity_mAh_per_g))
    converged = solution.newton_change <= spec.newton_tolerance  # False for NaN
    out["status"] = (jnp.where(finite, 0, STATUS_NONFINITE) | jnp.where(converged, 0, STATUS_NOT_CONVERGED)).astype(
        jnp.int8
    )
    return out


def extraction_for(job) -> Extraction:
    """The :class:`Extraction` of a :class:`fluxsim.study.spec.JobConfig`."""
    return Extraction(
        times_s=tuple(float(t) for t in job.output.times_s),
        core_fraction_levels=job.output.core_fraction_levels,
        line_cut=job.output.line_cut,
        voltage=job.base_inputs.get("surface_model", "A") == "B",
        newton_tolerance=job.numerics.newton_tolerance,
    )

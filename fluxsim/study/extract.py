"""What is kept of one simulation of a study: :func:`point_outputs` reduces a mesh-core ``Solution``
(:func:`fluxsim.core.solve.simulate`, already on the study's common time grid) inside the compiled batch program to
the stored series, scalars, nodal snapshots and line cut, plus a ``status`` (0 ok; bit 1: non-finite output; bit 2:
a protocol step ran out of ``numerics.max_steps``), so one bad point never loses the others.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fluxsim.core import outputs
from fluxsim.core.mesh import TriMesh
from fluxsim.core.solve import Solution
from fluxsim.model.params import Params

#: Bits of the per-point ``status`` (CF ``flag_masks``); 0 is success.
STATUS_NONFINITE = 1


STATUS_INCOMPLETE = 2


STATUS_CHUNK_FAILED = 4


STATUS_MEANINGS = {
    STATUS_NONFINITE: "nonfinite_output",
    STATUS_INCOMPLETE: "step_limit_reached",
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
        times_s: common time grid of the series [s] (the solver's output grid).
        core_fraction_levels: core area fractions at which the offset d is reported.
        line_cut: also keep the line cut along the arc axis.
        voltage: also store the cell voltage (surface model B).
    """

    times_s: tuple[float, ...]
    core_fraction_levels: tuple[float, ...] = (0.25, 0.01)
    line_cut: bool = False
    voltage: bool = False


def first_step_capacity(params: Params, protocol: tuple, solution: Solution) -> jax.Array:
    """Net charge passed [mAh g-1] when the first protocol step ended: its constant current times its duration
    (exact: the discrete Li balance of the core is; interpolating the saved series across the end would not be)."""
    step = protocol[0]
    if step.kind == "rest":
        return jnp.zeros((), solution.t_s.dtype)
    rate = params.rate_mA_per_g if step.rate_mA_per_g is None else step.rate_mA_per_g
    return step.sign * rate * solution.step_end_s[0] / 3600.0


def point_outputs(solution: Solution, params: Params, mesh: TriMesh, protocol: tuple, spec: Extraction
                  ) -> dict[str, jax.Array]:
    """Everything stored for one simulation (pure and vmappable; names match :mod:`fluxsim.io.store`).

    Series are NaN at the grid times after the end of the protocol (``Solution.reached`` False), snapshots NaN at
    the mesh's padded nodes.
    """
    reached = solution.reached

    def series(values):
        return jnp.where(reached.reshape((-1,) + (1,) * (values.ndim - 1)), values, jnp.nan)

    out = {name: series(getattr(solution, name)) for name in SERIES}
    out["offset_nm"] = series(outputs.offset_nm(solution))
    out["offset_direction_rad"] = series(outputs.offset_direction_rad(solution))
    out["smooth_offset_nm"] = series(outputs.offset_nm(solution, smooth=True))
    if spec.voltage:
        out["voltage_V"] = series(solution.voltage_V)
    if spec.line_cut:
        out["line_cut"] = series(solution.line_cut)
    out["theta"] = jnp.where(mesh.node_mask[None, :], solution.snapshots, jnp.nan)

    angle = params.blocking.arc_center_rad
    out.update(
        capacity_at_cutoff_mAh_per_g=first_step_capacity(params, protocol, solution),
        time_to_cutoff_s=outputs.time_to_cutoff(solution),
        reached_cutoff=solution.step_cutoff[0],
        step_end_s=solution.step_end_s,
        step_cutoff=solution.step_cutoff,
        core_vanish_capacity_mAh_per_g=outputs.core_vanish_capacity(solution),
        core_vanish_time_s=solution.core_vanish_s,
        core_vanish_position_nm=solution.core_vanish_x_nm * jnp.cos(angle)
        + solution.core_vanish_y_nm * jnp.sin(angle),
        n_steps=solution.n_steps.astype(jnp.int32),
        n_rejected=solution.n_rejected.astype(jnp.int32),
        n_evaluations=solution.n_evaluations.astype(jnp.int32),
    )
    levels = spec.core_fraction_levels
    out["offset_at_core_fraction_nm"] = jnp.stack(
        [outputs.offset_at_core_fraction(solution, f) for f in levels]
    ) if levels else jnp.zeros((0,), solution.t_s.dtype)

    finite = jnp.all(jnp.isfinite(solution.mean_theta)) & jnp.all(jnp.isfinite(solution.theta_min))
    finite &= jnp.all(jnp.isfinite(solution.theta_max)) & jnp.all(jnp.isfinite(solution.step_end_s))
    finite &= jnp.all(jnp.isfinite(solution.passed_capacity_mAh_per_g))
    out["status"] = (jnp.where(finite, 0, STATUS_NONFINITE)
                     | jnp.where(solution.complete, 0, STATUS_INCOMPLETE)).astype(jnp.int8)
    return out


def extraction_for(job) -> Extraction:
    """The :class:`Extraction` of a :class:`fluxsim.study.spec.JobConfig`."""
    return Extraction(
        times_s=tuple(float(t) for t in job.output.times_s),
        core_fraction_levels=job.output.core_fraction_levels,
        line_cut=job.output.line_cut,
        voltage=job.base_inputs.get("surface_model", "A") == "B",
    )

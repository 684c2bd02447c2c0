"""Simulate one particle of any outline through a protocol with the solver core v2.

``simulate(params, mesh, protocol, numerics, save_times_s)`` integrates the semi-discrete Kirchhoff-form system of
:mod:`fluxsim.core.fv` on a :class:`~fluxsim.core.mesh.TriMesh` with the error-controlled RKL2 integrator of
:mod:`fluxsim.core.rkl`, one protocol step after another, and returns a :class:`Solution` on the user's fixed time
grid (dense output, not step times). It is a pure function of the pytrees ``params`` and ``mesh``: ``jax.jit``,
``jax.vmap`` (over parameters and over meshes padded to the same buckets), ``jax.jacfwd`` and, with
``differentiable=True``, ``jax.grad`` apply directly. ``protocol``, ``numerics`` and the time grids are static.

* time is nondimensional inside (``R_eq**2 / D_ref``, :func:`fluxsim.core.fv.time_scale_s`), SI at the edges;
* a charge ends where the surface minimum of theta reaches ``theta_cut`` (model B: or the voltage reaches
  ``voltage_cut_V``), a discharge where the surface maximum reaches ``theta_upper``: terminal events located inside
  the step. The core vanishes where the maximum of theta falls to ``theta_core``: a watched event, in whichever
  protocol step it happens;
* each protocol step is integrated to at most its horizon: ``max_duration_s``, and for a charge (discharge) to
  cut-off also 1.05 x the time at which the *mean* occupancy would reach the cut-off (the surface is the most
  delithiated part of a charging particle, so the event comes first);
* the passed capacity is ``(mean theta(0) - mean theta) Q_th``: the discrete Li balance is exact
  (:mod:`fluxsim.core.fv`), so this equals the time integral of the applied current to rounding;
* entries of the time grid after the protocol has ended (a cut-off before the last time) repeat the final state and
  are flagged by ``Solution.reached``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxsim.core import observables
from fluxsim.core.fv import kirchhoff_system, spectral_radius_bound, spectral_radius_estimate, time_scale_s
from fluxsim.core.mesh import DEFAULT_SPACING, TriMesh
from fluxsim.core.outline import check_spacing
from fluxsim.core.rim import make_drive, rim_outflow, rim_weights
from fluxsim.core.rkl import RKLSettings, Saves, Schedule, integrate
from fluxsim.model.diffusivity import PowerLaw
from fluxsim.model.protocol import Charge, check_protocol
from fluxsim.precision import FLOAT64_OFF

#: Default output time grid [s]: every minute for an hour.
DEFAULT_SAVE_TIMES_S = tuple(float(t) for t in np.arange(0.0, 3601.0, 60.0))
#: Margin on the mean-occupancy horizon of a step that runs to its cut-off (the event ends it well before).
HORIZON_MARGIN = 1.05


@dataclasses.dataclass(frozen=True)
class Numerics:
    """Static settings of the core-v2 time integration (changing them recompiles).

    Attributes:
        spacing: target mesh node spacing in units of the equivalent radius (default 1/32, about 3,800 nodes on a
            disk; in [0.004, 0.25]). :func:`simulate` takes the mesh itself; the front doors (``fluxsim.run``,
            sweeps, fits) mesh the outline at this spacing with :func:`fluxsim.core.mesh.mesh_outline`.
        integrator: tolerances and loop bounds, :class:`fluxsim.core.rkl.RKLSettings` (rtol, atol [occupancy],
            max_steps per protocol step, max_stages, saves_per_step).
        line_cut_samples: samples of the line cut along the arc axis (default 65).
        dtype: "float64" (default) or "float32".
        integer_exponent: None (default), or the promise that the power law's exponent is this integer (>= 1) in
            every simulation, e.g. the default 3: the Kirchhoff potential then takes multiplications instead of an
            exp and a log per node (a third of an evaluation; same values to rounding, same gradients, also w.r.t.
            the exponent). Checked before tracing where the exponent is concrete; a traced exponent that breaks
            the promise gives NaN results.
    """

    spacing: float = DEFAULT_SPACING
    integrator: RKLSettings = RKLSettings()
    line_cut_samples: int = observables.DEFAULT_LINE_CUT_SAMPLES
    dtype: str = "float64"
    integer_exponent: int | None = None

    def __post_init__(self):
        check_spacing(self.spacing)
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"numerics.dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if not (isinstance(self.line_cut_samples, int) and self.line_cut_samples >= 3):
            raise ValueError(f"numerics.line_cut_samples must be an integer >= 3, got {self.line_cut_samples}")
        n = self.integer_exponent
        if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise ValueError(f"numerics.integer_exponent must be None or an integer >= 1, got {n!r}")


class Solution(NamedTuple):
    """Outputs of :func:`simulate` (a pytree of arrays). Series are on the time grid ``t_s`` (``n_save`` times)."""

    t_s: jax.Array  # (n_save,) the requested times [s]
    reached: jax.Array  # (n_save,) bool: the protocol was still running (False: final state repeated)
    protocol_step: jax.Array  # (n_save,) index of the protocol step the time falls in
    passed_capacity_mAh_per_g: jax.Array  # (n_save,) net charge passed (charge positive) [mAh g-1]
    mean_theta: jax.Array  # (n_save,)
    surface_min_theta: jax.Array
    surface_max_theta: jax.Array
    theta_min: jax.Array  # over the whole particle
    theta_max: jax.Array
    core_fraction: jax.Array  # area fraction of the Li-rich core
    core_x_nm: jax.Array  # core centroid relative to the particle's area centroid [nm] (0 where no core)
    core_y_nm: jax.Array
    smooth_core_fraction: jax.Array  # sigmoid-weighted versions
    smooth_core_x_nm: jax.Array
    smooth_core_y_nm: jax.Array
    voltage_V: jax.Array  # cell voltage (model B; NaN for model A)
    line_cut: jax.Array  # (n_save, line_cut_samples) occupancy along the arc axis through the centroid
    line_cut_position_nm: jax.Array  # (line_cut_samples,) signed position, positive towards the arc [nm]
    step_end_s: jax.Array  # (n_protocol,) time each protocol step ended [s]
    step_cutoff: jax.Array  # (n_protocol,) it ended at its cut-off (not its time limit)
    snapshots: jax.Array  # (n_snapshots, n_nodes) nodal occupancy at the snapshot times (final state after the end)
    core_vanish_s: jax.Array  # first time the maximum occupancy falls to theta_core [s] (NaN: never)
    core_vanish_x_nm: jax.Array  # where the last of the core was (node of maximum occupancy) [nm]
    core_vanish_y_nm: jax.Array
    complete: jax.Array  # bool: every protocol step finished within numerics.integrator.max_steps
    n_steps: jax.Array  # accepted steps, all protocol steps
    n_rejected: jax.Array
    n_evaluations: jax.Array  # right-hand-side evaluations (the cost)
    schedule: tuple  # per protocol step, its accepted steps (rkl.Schedule, nondimensional): simulate(schedule=)


def _check_times(name, times) -> np.ndarray:
    times = np.asarray(times, dtype=float).reshape(-1)
    if times.size and (not np.all(np.isfinite(times)) or times[0] < 0 or np.any(np.diff(times) < 0)):
        raise ValueError(f"{name} must be finite, >= 0 s and sorted, got {times}")
    return times


def _cast(params, dtype):
    return jax.tree.map(
        lambda x: jnp.asarray(x, dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x, params)


def _select(mask, new, old):
    """Per time entry: ``new`` where ``mask`` (leading axis), else ``old`` (pytrees)."""
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)


def _masked(mesh: TriMesh, theta, fill):
    return jnp.where(mesh.node_mask, theta, fill)


def _check_integer_exponent(promise, law):
    """``numerics.integer_exponent`` needs a power law, and a concrete exponent must keep the promise."""
    if promise is None:
        return
    if not isinstance(law, PowerLaw):
        raise ValueError(f"numerics.integer_exponent needs the power-law diffusivity, got {type(law).__name__}")
    if not isinstance(law.exponent, jax.core.Tracer) and np.any(np.asarray(law.exponent) != promise):
        raise ValueError(f"numerics.integer_exponent = {promise} but the diffusivity exponent is "
                         f"{np.asarray(law.exponent)}; they must be equal (or leave integer_exponent None)")


def with_integer_exponent(numerics: Numerics, law) -> Numerics:
    """``numerics`` with ``integer_exponent`` promised when ``law`` is a power law whose (concrete, scalar) exponent
    is an integer >= 1: the Kirchhoff potential then takes multiplications, same values to rounding. The front
    doors call this with the inputs they simulate; otherwise ``numerics`` unchanged."""
    if numerics.integer_exponent is None and isinstance(law, PowerLaw):
        m = np.asarray(law.exponent)
        if m.ndim == 0 and float(m).is_integer() and float(m) >= 1:
            return dataclasses.replace(numerics, integer_exponent=int(m))
    return numerics


def simulate(
    params,
    mesh: TriMesh,
    protocol=(Charge(),),
    numerics: Numerics = Numerics(),
    save_times_s=DEFAULT_SAVE_TIMES_S,
    snapshot_times_s=(),
    differentiable: bool = False,
    schedule: tuple[Schedule, ...] | None = None,
) -> Solution:
    """Simulate one particle through a protocol on a mesh.

    Args:
        params: :class:`fluxsim.model.params.Params` (traced; ``radius_m`` is the equivalent radius).
        mesh: a :class:`~fluxsim.core.mesh.TriMesh` (traced arrays; sizes static), from
            :func:`fluxsim.core.mesh.mesh_outline`.
        protocol: :class:`~fluxsim.model.protocol.Charge` / :class:`~fluxsim.model.protocol.Rest` /
            :class:`~fluxsim.model.protocol.Discharge` steps (static; their ``n_steps`` is ignored: steps are adaptive).
        numerics: static :class:`Numerics`.
        save_times_s: the output time grid [s] since the start (static, sorted, >= 0).
        snapshot_times_s: times [s] at which to keep the whole nodal field (static, sorted, >= 0).
        differentiable: reverse-mode differentiable loops (a checkpointed scan of ``max_steps`` per protocol step,
            in chunks skipped once done, with the stages' exact adjoint of :mod:`fluxsim.core.rkl2`) instead of
            while loops that end once the whole batch is done; the same numbers. For ``jax.grad`` / ``jax.vjp``;
            forward mode (``jax.jvp`` / ``jax.jacfwd``) takes the default while loops.
        schedule: None (default), or ``Solution.schedule`` of an earlier run with the same protocol and numerics,
            to replay its steps (:class:`fluxsim.core.rkl.Schedule`): the outputs are then smooth functions of
            the inputs near that run, whose derivatives there are what ``jax.grad`` / ``jax.jacfwd`` of the
            adaptive run give (central differences of a replayed run check them; adaptive runs re-decide their
            steps). Forward-mode loops only.

    Returns:
        A :class:`Solution`.
    """
    protocol = check_protocol(protocol)
    if schedule is not None and len(schedule) != len(protocol):
        raise ValueError(f"schedule has {len(schedule)} entries for a protocol of {len(protocol)} steps")
    save_times_s = _check_times("save_times_s", save_times_s)
    snapshot_times_s = _check_times("snapshot_times_s", snapshot_times_s)
    _check_integer_exponent(numerics.integer_exponent, params.diffusivity)
    dtype = jnp.dtype(numerics.dtype)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError(FLOAT64_OFF)
    params = _cast(params, dtype)
    mesh = _cast(mesh, dtype)
    scale_s = time_scale_s(params)
    q_th = params.material.theoretical_capacity_mAh_per_g
    radius_nm = params.radius_m * 1e9
    weights = rim_weights(mesh, params.blocking)
    stencil = observables.line_cut_stencil(mesh, params.blocking.arc_center_rad, numerics.line_cut_samples)
    rho_model_a = spectral_radius_estimate(mesh, params)

    theta0 = jnp.full(mesh.mass.shape, params.theta0, dtype)
    mean0 = observables.mean_theta(mesh, theta0)
    ts_nd = jnp.asarray(save_times_s, dtype) / scale_s
    snap_nd = jnp.asarray(snapshot_times_s, dtype) / scale_s

    def observe(theta, drive):
        o = observables.observe(mesh, theta, params.theta_core, params.core_smoothing, stencil)
        voltage = rim_outflow(params, theta[: mesh.n_rim], drive)[2]
        return o, voltage

    n_save, n_snap = ts_nd.shape[0], snap_nd.shape[0]
    saved, saved_filled = None, jnp.zeros((n_save,), bool)
    snaps, snaps_filled = jnp.zeros((n_snap,) + theta0.shape, dtype), jnp.zeros((n_snap,), bool)
    theta, t = theta0, jnp.zeros((), dtype)
    vanish_found, vanish_t, vanish_y = jnp.zeros((), bool), jnp.zeros((), dtype), theta0
    step_end, step_cutoff = [], []
    complete = jnp.ones((), bool)
    n_steps = n_rejected = n_eval = jnp.zeros((), jnp.int32)
    schedules = []
    for k, step in enumerate(protocol):
        rate = params.rate_mA_per_g if step.rate_mA_per_g is None else step.rate_mA_per_g
        drive = make_drive(mesh, params, step.sign * rate, weights)

        rhs = kirchhoff_system(mesh, params, drive, numerics.integer_exponent)

        if params.kinetics.state_dependent:
            def rho(y, drive=drive):
                return spectral_radius_bound(mesh, params, y, drive) * 1.2  # the stages move the rim Jacobian
        else:
            rho = rho_model_a
        horizon_s = jnp.asarray(step.max_duration_s, dtype)
        terminal = None
        mean_rate = params.material.mean_rate_per_s(rate)
        if step.until_cutoff and step.kind == "charge":
            mean_now = observables.mean_theta(mesh, theta)
            horizon_s = jnp.minimum(horizon_s, HORIZON_MARGIN * (mean_now - params.theta_cut) / mean_rate)

            def terminal(y, drive=drive):
                g = observables.surface_range(mesh, y)[0] - params.theta_cut
                if params.kinetics.state_dependent:
                    v = rim_outflow(params, y[: mesh.n_rim], drive)[2]
                    g = jnp.minimum(g, jnp.where(jnp.isfinite(params.voltage_cut_V), params.voltage_cut_V - v, 1.0))
                return g
        elif step.until_cutoff and step.kind == "discharge":
            mean_now = observables.mean_theta(mesh, theta)
            horizon_s = jnp.minimum(horizon_s, HORIZON_MARGIN * (params.theta_upper - mean_now) / mean_rate)

            def terminal(y):
                return params.theta_upper - observables.surface_range(mesh, y)[1]

        def watch(y):
            return observables.theta_range(mesh, y)[1] - params.theta_core

        t1 = t + jnp.maximum(horizon_s, 0.0) / scale_s
        result = integrate(
            rhs, theta, t, t1, spectral_radius=rho, settings=numerics.integrator,
            saves=(Saves(ts_nd, lambda y, drive=drive: observe(y, drive)), Saves(snap_nd, lambda y: y)),
            terminal=terminal, watch=watch, differentiable=differentiable,
            schedule=None if schedule is None else schedule[k],
        )
        schedules.append(result.schedule)
        new_save = result.filled[0] & ~saved_filled
        block = result.saved[0]
        saved = block if saved is None else _select(new_save, block, saved)
        saved_filled = saved_filled | result.filled[0]
        new_snap = result.filled[1] & ~snaps_filled
        snaps = _select(new_snap, result.saved[1], snaps)
        snaps_filled = snaps_filled | result.filled[1]
        seen = ~vanish_found & result.watch.found
        vanish_t = jnp.where(seen, result.watch.t, vanish_t)
        vanish_y = jnp.where(seen, result.watch.y, vanish_y)
        vanish_found = vanish_found | seen
        theta, t = result.y, result.t
        step_end.append(t * scale_s)
        step_cutoff.append(result.terminated)
        complete = complete & result.complete
        n_steps, n_rejected = n_steps + result.n_accepted, n_rejected + result.n_rejected
        n_eval = n_eval + result.n_evaluations

    # Times after the end: the final state.
    final, final_v = observe(theta, drive)
    saved = _select(saved_filled, saved, jax.tree.map(lambda f: jnp.broadcast_to(f, (n_save,) + f.shape),
                                                      (final, final_v)))
    snaps = jnp.where(snaps_filled[:, None], snaps, theta[None])
    obs, voltage = saved
    step_end = jnp.stack(step_end)
    at = jnp.argmax(_masked(mesh, vanish_y, -jnp.inf))
    vanish_xy = (mesh.xy[at] - mesh.centroid) * radius_nm
    return Solution(
        t_s=jnp.asarray(save_times_s, dtype),
        reached=saved_filled,
        protocol_step=jnp.minimum(jnp.searchsorted(step_end, jnp.asarray(save_times_s, dtype), side="left"),
                                  len(protocol) - 1).astype(jnp.int32),
        passed_capacity_mAh_per_g=(mean0 - obs.mean_theta) * q_th,
        mean_theta=obs.mean_theta,
        surface_min_theta=obs.surface_min_theta,
        surface_max_theta=obs.surface_max_theta,
        theta_min=obs.theta_min,
        theta_max=obs.theta_max,
        core_fraction=obs.core_fraction,
        core_x_nm=obs.core_x * radius_nm,
        core_y_nm=obs.core_y * radius_nm,
        smooth_core_fraction=obs.smooth_core_fraction,
        smooth_core_x_nm=obs.smooth_core_x * radius_nm,
        smooth_core_y_nm=obs.smooth_core_y * radius_nm,
        voltage_V=voltage,
        line_cut=obs.line_cut,
        line_cut_position_nm=stencil.position * radius_nm,
        step_end_s=step_end,
        step_cutoff=jnp.stack(step_cutoff),
        snapshots=snaps,
        core_vanish_s=jnp.where(vanish_found, vanish_t * scale_s, jnp.nan),  # vanish_t is finite: safe where
        core_vanish_x_nm=jnp.where(vanish_found, vanish_xy[0], jnp.nan),
        core_vanish_y_nm=jnp.where(vanish_found, vanish_xy[1], jnp.nan),
        complete=complete,
        n_steps=n_steps,
        n_rejected=n_rejected,
        n_evaluations=n_eval,
        schedule=tuple(schedules),
    )

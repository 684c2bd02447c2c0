"""The differentiable delithiation solver: one particle, one protocol.

``simulate(params, protocol, numerics)`` integrates

    d theta / dt = div(D(theta) grad theta)   in a disk of radius R,
    -D d theta / dn = q(phi)                  on its surface (surface model A or B),

through a protocol of charge / rest / discharge steps and returns a :class:`Solution`. It is a pure function of the
pytree ``params``, so ``jax.jit``, ``jax.vmap``, ``jax.grad`` and ``jax.jacfwd`` apply directly (``protocol``,
``numerics`` and the snapshot times are static).

Scheme
------
* space: vertex-centred finite volumes on a polar grid (:mod:`fluxsim.core.polar.grid`) with Kirchhoff face fluxes
  (:mod:`~.operators`): exact Li balance, exact surface values, monotone for the degenerate diffusivity;
* time: variable-step BDF2 (L-stable, second order) solved by Newton's method to convergence with exact block
  solves and differentiated implicitly (:mod:`fluxsim.core.polar.stepper`);
* steps: a static schedule per protocol step, scaled by the step's horizon and graded geometrically at its start
  (:mod:`fluxsim.model.protocol`). No accept/reject decisions, so results are smooth in every input;
* events: the surface cut-off is located inside the step by linear interpolation of the surface extreme, and the
  state is interpolated to the event time, so the extracted capacity is a smooth function of the inputs.

Nondimensionalisation: lengths by R, time by ``R**2 / D_ref`` (``D_ref`` from the diffusivity law), fluxes by
``D_ref / R``. Outputs are in SI and unit-suffixed.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxsim.core.polar import metrics
from fluxsim.core.polar.grid import PolarGrid
from fluxsim.core.polar.stepper import Drive, NewtonSettings, StepInputs, bdf2_step
from fluxsim.core.solution import Solution
from fluxsim.model.constants import FARADAY_C_PER_MOL
from fluxsim.model.params import Params
from fluxsim.model.protocol import Charge, check_protocol, step_fractions
from fluxsim.model.surface import StateDependentKinetics
from fluxsim.precision import FLOAT64_OFF, float64_enabled

__all__ = ["Numerics", "Params", "Solution", "check_numerics", "simulate"]  # Params, Solution: defined below


@dataclasses.dataclass(frozen=True)
class Numerics:
    """Static discretisation settings (changing them recompiles).

    Attributes:
        nr: radial rings (default 32: 37.5 nm at R = 1.2 um).
        nphi: nodes per ring (default 128).
        n_steps: time steps per protocol step, unless the step sets its own (default 200).
        first_step_ratio: first time step / final time step of each protocol step (default 0.01): the steps grow
            geometrically from it, since the flux switches on or off abruptly.
        grading_width: fraction of the schedule over which the steps grow e-fold (default 0.025).
        save_every: time steps between saved outputs (default 1: every step); must divide n_steps.
        newton_tolerance: Newton stops when its update is below this (occupancy; default 1e-7), then polishes once
            with the last Jacobian, which takes the error to rounding level.
        newton_max_iterations: cap on Newton updates per step (default 25); ``Solution.newton_change`` reveals a
            step that hit it.
        checkpoint: reverse-mode memory policy (default True): recompute each saved block in the backward pass
            instead of storing its factorisations. False is about 1.6x faster for ``jax.grad`` but stores
            O(n_steps * nphi * nr**2) floats per simulation (~60 MB at 16 x 64, ~0.4 GB at 32 x 128, 200 steps).
        dtype: "float64" (default, validated) or "float32" (for GPUs; about 1e-5 relative accuracy, see README).
            In float32 the Newton tolerance is at least 50 units in the last place.
    """

    nr: int = 32
    nphi: int = 128
    n_steps: int = 200
    first_step_ratio: float = 0.01
    grading_width: float = 0.025
    save_every: int = 1
    newton_tolerance: float = 1e-7
    newton_max_iterations: int = 25
    checkpoint: bool = True
    dtype: str = "float64"

    @property
    def grid(self) -> PolarGrid:
        return PolarGrid(self.nr, self.nphi)


def _cell_voltage(params: Params, theta, drive: Drive):
    if not isinstance(params.kinetics, StateDependentKinetics):
        return jnp.full((), jnp.nan, theta.dtype)
    return params.kinetics.voltage(theta[-1], drive.weights, drive.current_density)


def _crossing(before, after, level):
    """Fraction of a step at which a linear interpolant from ``before`` to ``after`` reaches ``level``."""
    span = before - after
    safe = jnp.where(span != 0, span, 1.0)
    return jnp.clip(jnp.where(span != 0, (before - level) / safe, 0.0), 0.0, 1.0)


class _Carry(NamedTuple):
    theta: jnp.ndarray
    theta_prev: jnp.ndarray  # state one step back (BDF2 history)
    h_prev: jnp.ndarray  # size of the previous step (nondimensional; 0 at the start of a protocol step)
    t_s: jnp.ndarray
    done: jnp.ndarray  # the current protocol step has ended
    snapshots: jnp.ndarray
    snapshot_taken: jnp.ndarray
    vanish: jnp.ndarray  # (t, x, y) of the core's disappearance [s, R, R]
    vanish_found: jnp.ndarray
    newton_iterations: jnp.ndarray  # most Newton updates any step needed
    newton_change: jnp.ndarray  # largest final Newton update (occupancy): ~1e-15 when every step converged
    newton_total: jnp.ndarray  # Newton updates over all steps (cost diagnostic)


class _Context(NamedTuple):
    """Static grid plus the traced quantities shared by every protocol step."""

    grid: PolarGrid
    params: Params
    numerics: Numerics
    newton: NewtonSettings
    time_scale_s: jnp.ndarray  # R**2 / D_ref
    weights: jnp.ndarray  # (nphi,) surface transfer profile per node
    current_to_flux: jnp.ndarray
    snapshot_times: jnp.ndarray  # (n_snap,) [s]
    nodes_xy: tuple  # node coordinates / R, each (nr + 1, nphi)


def _save(ctx: _Context, theta, t_s, capacity, drive: Drive):
    """Observables of one state (one entry of every series)."""
    grid, params = ctx.grid, ctx.params
    radius_nm = params.radius_m * 1e9
    hard, smooth = metrics.cores(grid, theta, params.theta_core, params.core_smoothing)
    return dict(
        t_s=t_s,
        passed_capacity_mAh_per_g=capacity,
        mean_theta=metrics.mean(grid, theta),
        surface_min_theta=jnp.min(theta[-1]),
        surface_max_theta=jnp.max(theta[-1]),
        theta_min=jnp.min(theta),
        theta_max=jnp.max(theta),
        core_fraction=hard.fraction,
        core_x_nm=hard.x * radius_nm,
        core_y_nm=hard.y * radius_nm,
        smooth_core_fraction=smooth.fraction,
        smooth_core_x_nm=smooth.x * radius_nm,
        smooth_core_y_nm=smooth.y * radius_nm,
        voltage_V=_cell_voltage(params, theta, drive),
        line_cut=metrics.line_cut(grid, theta, params.blocking.arc_center_rad),
    )


def _cutoff(ctx: _Context, step, drive, theta, proposed):
    """Whether the step's cut-off is crossed between ``theta`` and ``proposed``, and at which fraction of the step."""
    params = ctx.params
    dtype = theta.dtype
    if not step.until_cutoff:
        return jnp.zeros((), bool), jnp.ones((), dtype)
    before, after, level = step.surface_cutoff(params, theta[-1], proposed[-1])
    hit, alpha = after <= level, _crossing(before, after, level)
    if step.voltage_cutoff and isinstance(params.kinetics, StateDependentKinetics):  # model B: also a voltage
        v0, v1 = _cell_voltage(params, theta, drive), _cell_voltage(params, proposed, drive)
        hit_v = v1 >= params.voltage_cut_V
        # Safe where: the default cut-off is +inf, and inf inside the interpolation would poison gradients.
        alpha_v = _crossing(-v0, -v1, -jnp.where(hit_v, params.voltage_cut_V, v1))
        alpha = jnp.where(hit & hit_v, jnp.minimum(alpha, alpha_v), jnp.where(hit_v, alpha_v, alpha))
        hit = hit | hit_v
    return hit, alpha


def _time_step(ctx: _Context, step, drive, horizon, t_start, c: _Carry, schedule):
    """One time step of a protocol step: BDF2, cut-off event, snapshots, core disappearance.

    ``schedule`` holds the step's fraction of the horizon and the cumulative fraction at its end; times are taken
    from the cumulative schedule so that a protocol step ends exactly at ``t_start + horizon``.
    """
    params = ctx.params
    fraction, cumulative = schedule
    h_s = horizon * fraction
    h = h_s / ctx.time_scale_s
    proposed, (iterations, change) = bdf2_step(
        ctx.grid, StepInputs(params, drive, c.theta, c.theta_prev, h, c.h_prev), ctx.newton
    )
    hit, alpha = _cutoff(ctx, step, drive, c.theta, proposed)
    alpha = jnp.where(hit, alpha, 1.0)
    new_theta = jnp.where(c.done, c.theta, c.theta + alpha * (proposed - c.theta))
    new_t = jnp.where(c.done, c.t_s, jnp.where(hit, c.t_s + alpha * h_s, t_start + horizon * cumulative))

    # Snapshots requested inside [t, t_new], linearly interpolated in time.
    elapsed = new_t - c.t_s
    times = ctx.snapshot_times
    frac = jnp.clip((times - c.t_s) / jnp.where(elapsed > 0, elapsed, 1.0), 0.0, 1.0)
    take = (times >= c.t_s) & (times <= new_t) & ~c.snapshot_taken & ~c.done
    take = take & ((elapsed > 0) | (times == c.t_s))
    interpolated = c.theta[None] + frac[:, None, None] * (new_theta - c.theta)[None]
    snapshots = jnp.where(take[:, None, None], interpolated, c.snapshots)

    # First time the Li-rich core disappears: the maximum occupancy falls to theta_core.
    m0, m1 = jnp.max(c.theta), jnp.max(new_theta)
    vanishes = ~c.vanish_found & (m0 > params.theta_core) & (m1 <= params.theta_core)
    at = jnp.argmax(c.theta)
    where = jnp.stack([c.t_s + elapsed * _crossing(m0, m1, params.theta_core),
                       ctx.nodes_xy[0].ravel()[at], ctx.nodes_xy[1].ravel()[at]])
    return _Carry(
        theta=new_theta,
        theta_prev=jnp.where(c.done, c.theta_prev, c.theta),
        h_prev=jnp.where(c.done, c.h_prev, h),
        t_s=new_t,
        done=c.done | hit,
        snapshots=snapshots,
        snapshot_taken=c.snapshot_taken | take,
        vanish=jnp.where(vanishes, where, c.vanish),
        vanish_found=c.vanish_found | vanishes,
        newton_iterations=jnp.maximum(c.newton_iterations, jnp.where(c.done, 0, iterations)),
        newton_change=jnp.maximum(c.newton_change, jnp.where(c.done, 0.0, change)),
        newton_total=c.newton_total + jnp.where(c.done, 0, iterations),
    )


def _horizon(ctx: _Context, step, theta, rate):
    """Duration [s] over which a protocol step's time steps are laid out (see :mod:`fluxsim.model.protocol`)."""
    params = ctx.params
    mean_rate = rate / (3600.0 * params.material.theoretical_capacity_mAh_per_g)  # s-1
    mean_now = metrics.mean(ctx.grid, theta)
    horizon = step.horizon_s(params, mean_now, mean_rate)
    return jnp.maximum(horizon, 0.0)


def _run_protocol_step(ctx: _Context, step, carry: _Carry, capacity_start, early_exit):
    """Integrate one protocol step; returns the carry and the saved series of its blocks."""
    params, numerics = ctx.params, ctx.numerics
    n_steps = step.n_steps or numerics.n_steps
    rate = params.rate_mA_per_g if step.rate_mA_per_g is None else step.rate_mA_per_g
    signed_rate = step.sign * rate  # mA g-1, > 0 delithiates
    current_density = signed_rate * params.material.density_kg_per_m3 * params.radius_m / 2
    drive = Drive(current_density, ctx.current_to_flux, ctx.weights, params.diffusivity.reference)
    horizon = _horizon(ctx, step, carry.theta, rate)
    t_start = carry.t_s
    fractions = step_fractions(n_steps, numerics.first_step_ratio, numerics.grading_width)
    cumulative = np.concatenate([np.cumsum(fractions)[:-1], [1.0]])
    dtype = carry.theta.dtype
    blocks = tuple(jnp.asarray(a, dtype).reshape(-1, numerics.save_every) for a in (fractions, cumulative))

    def block(c: _Carry, schedule):
        def one(c, s):
            return _time_step(ctx, step, drive, horizon, t_start, c, s), None

        c, _ = jax.lax.scan(one, c, schedule)
        capacity = capacity_start + signed_rate * (c.t_s - t_start) / 3600.0
        return c, _save(ctx, c.theta, c.t_s, capacity, drive)

    if numerics.checkpoint:
        block = jax.checkpoint(block)
    carry = carry._replace(done=jnp.zeros((), bool), h_prev=jnp.zeros_like(carry.h_prev))
    if early_exit:
        carry, saved = _scan_until_done(block, carry, blocks)
    else:
        carry, saved = jax.lax.scan(block, carry, blocks)
    capacity_end = capacity_start + signed_rate * (carry.t_s - t_start) / 3600.0
    return carry, saved, capacity_end


def _scan_until_done(block, carry, blocks):
    """Like ``lax.scan(block, carry, blocks)`` but stops once ``carry.done``; later entries repeat the last one."""
    n = blocks[0].shape[0]
    _, template = jax.eval_shape(block, carry, jax.tree.map(lambda b: b[0], blocks))
    buffer = jax.tree.map(lambda s: jnp.zeros((n,) + s.shape, s.dtype), template)

    def cond(state):
        i, c, _ = state
        return (i < n) & ~c.done

    def body(state):
        i, c, buf = state
        c, out = block(c, jax.tree.map(lambda b: b[i], blocks))
        return i + 1, c, jax.tree.map(lambda b, o: b.at[i].set(o), buf, out)

    i, carry, buffer = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), carry, buffer))
    last = jax.tree.map(lambda b: b[jnp.maximum(i - 1, 0)], buffer)
    filled = jnp.arange(n) < i
    buffer = jax.tree.map(lambda b, v: jnp.where(filled.reshape((n,) + (1,) * (b.ndim - 1)), b, v), buffer, last)
    return carry, buffer


def check_numerics(numerics: Numerics, protocol) -> None:
    """Raise a clear error for inconsistent numerics before any compute."""
    if numerics.dtype not in ("float64", "float32"):
        raise ValueError(f"numerics.dtype must be 'float64' or 'float32', got {numerics.dtype!r}")
    if numerics.dtype == "float64" and not float64_enabled():
        raise ValueError(FLOAT64_OFF)
    for i, step in enumerate(protocol):
        n_steps = step.n_steps or numerics.n_steps
        if n_steps % numerics.save_every:
            raise ValueError(
                f"protocol step {i}: n_steps ({n_steps}) must be a multiple of numerics.save_every "
                f"({numerics.save_every})"
            )


def simulate(
    params: Params,
    protocol=(Charge(),),
    numerics: Numerics = Numerics(),
    snapshot_times_s=(),
    early_exit: bool = False,
) -> Solution:
    """Simulate one particle through a protocol.

    Args:
        params: physical inputs (traced: sweepable and differentiable).
        protocol: sequence of :class:`~fluxsim.model.protocol.Charge`, :class:`~fluxsim.model.protocol.Rest` and
            :class:`~fluxsim.model.protocol.Discharge` steps (static).
        numerics: discretisation (static).
        snapshot_times_s: times [s] since the start at which to keep the whole field (static tuple).
        early_exit: stop integrating a protocol step once every simulation in the batch has passed its cut-off (a
            ``while_loop``: faster for sweeps, not reverse-differentiable). The default ``scan`` runs every step
            (frozen after the cut-off) and supports ``jax.grad``. Both give the same results.

    Returns:
        A :class:`Solution`.
    """
    protocol = check_protocol(protocol)
    check_numerics(numerics, protocol)
    grid = numerics.grid
    dtype = jnp.dtype(numerics.dtype)
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x,
                          params)
    d_ref = params.diffusivity.reference
    ctx = _Context(
        grid=grid,
        params=params,
        numerics=numerics,
        newton=NewtonSettings(max(numerics.newton_tolerance, 50 * float(jnp.finfo(dtype).eps)),
                              numerics.newton_max_iterations),
        time_scale_s=params.radius_m**2 / d_ref,
        weights=params.blocking.node_weights(*(jnp.asarray(a, dtype) for a in grid.boundary_arcs)),
        current_to_flux=params.radius_m / (FARADAY_C_PER_MOL * params.material.c_max_mol_per_m3 * d_ref),
        snapshot_times=jnp.asarray(np.asarray(snapshot_times_s, dtype=float).reshape(-1), dtype),
        nodes_xy=tuple(jnp.asarray(c, dtype) for c in grid.xy),
    )
    n_snap = ctx.snapshot_times.shape[0]
    theta = jnp.full((grid.nr + 1, grid.nphi), params.theta0, dtype)
    zero = jnp.zeros((), dtype)
    carry = _Carry(
        theta=theta,
        theta_prev=theta,
        h_prev=zero,
        t_s=zero,
        done=jnp.zeros((), bool),
        snapshots=jnp.full((n_snap,) + theta.shape, jnp.nan, dtype),
        snapshot_taken=jnp.zeros((n_snap,), bool),
        vanish=jnp.full((3,), jnp.nan, dtype),
        vanish_found=jnp.zeros((), bool),
        newton_iterations=jnp.zeros((), jnp.int32),
        newton_change=zero,
        newton_total=jnp.zeros((), jnp.int32),
    )
    at_rest = Drive(zero, ctx.current_to_flux, ctx.weights, d_ref)
    series = [jax.tree.map(lambda x: jnp.asarray(x)[None], _save(ctx, theta, zero, zero, at_rest))]
    step_index = [np.zeros(1, np.int32)]
    step_end, step_cutoff = [], []
    capacity = zero
    for p, step in enumerate(protocol):
        carry, saved, capacity = _run_protocol_step(ctx, step, carry, capacity, early_exit)
        series.append(saved)
        step_index.append(np.full(saved["t_s"].shape[0], p, np.int32))
        step_end.append(carry.t_s)
        step_cutoff.append(carry.done if step.until_cutoff else jnp.zeros((), bool))

    saved = jax.tree.map(lambda *xs: jnp.concatenate(xs), *series)
    radius_nm = params.radius_m * 1e9
    return Solution(
        protocol_step=jnp.asarray(np.concatenate(step_index)),
        step_end_s=jnp.stack(step_end),
        step_cutoff=jnp.stack(step_cutoff),
        snapshots=carry.snapshots,
        # NaN when the core never vanishes; the double where keeps NaN out of the radius gradient.
        core_vanish_s=carry.vanish[0],
        core_vanish_x_nm=jnp.where(carry.vanish_found, jnp.where(carry.vanish_found, carry.vanish[1], 0.0) * radius_nm,
                                   jnp.nan),
        core_vanish_y_nm=jnp.where(carry.vanish_found, jnp.where(carry.vanish_found, carry.vanish[2], 0.0) * radius_nm,
                                   jnp.nan),
        newton_iterations=carry.newton_iterations,
        newton_change=carry.newton_change,
        newton_total=carry.newton_total,
        **saved,
    )

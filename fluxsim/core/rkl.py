"""Error-controlled stabilised explicit time integration (RKL2) for stiff parabolic systems.

:func:`integrate` advances ``dy/dt = F(y)`` (for the solver core ``F = M_L^-1 f``: lumped mass times the
semi-discrete Kirchhoff-form right-hand side, :mod:`fluxsim.core.fv`) from ``t0`` to at most ``t1``:

* **scheme**: RKL2, the second-order Runge-Kutta-Legendre super-time-stepping method (Meyer, Balsara & Aslam,
  J. Comput. Phys. 257, 2014, eqs. 16-17). ``s`` stages of plain right-hand-side evaluations are stable for
  ``h rho <= (s**2 + s - 2) / 2`` where ``rho`` bounds the spectral radius of ``dF/dy`` (real negative spectrum,
  as for a diffusion operator with non-negative conductances). Each step takes the smallest stable ``s``, at most
  ``max_stages`` (which also caps the step). No linear solve: a stage is one batched gather over the mesh;
* **error estimate**: the RKC estimate (Sommeijer, Shampine & Verwer, J. Comput. Appl. Math. 88, 1998, eq. 2.7)
  ``est = (12 (y_n - y_n+1) + 6 h (F_n + F_n+1)) / 15``, the defect of the cubic Hermite interpolant through the
  step, of size ``O(h**3)`` for any second-order method. It costs nothing: ``F_n+1`` is the first stage of the next
  step and the slope of the dense output. (An embedded RKL1 solution would need its own s stages: RKL1 and RKL2 share
  no stage values.) The norm is the maximum over components of ``|est_i| / (atol + rtol max(|y_n,i|, |y_n+1,i|))``:
  the maximum, not an RMS, because the fast event of this model (the collapse of the Li-rich core) is local and an
  RMS over the mesh would dilute it;
* **controller**: a PI controller (Gustafsson 1991; Hairer & Wanner, Solving ODEs II, IV.2) on the local error
  exponent 1/3, ``h_new = h safety err**(-0.7/3) err_prev**(0.4/3)``, factors clipped to ``[0.2, 5]``, a rejected
  step retried with ``h safety err**(-1/3)``. Step sizes are the controller's choice and carry no derivative:
  gradients are those of the discrete solution on the accepted steps (the final step to ``t1`` and located events
  keep theirs), which converge to those of the adaptive runs as ``rtol`` falls (``tests/core/test_solve.py``).
  ``Result.schedule`` records the accepted steps and ``schedule=`` replays them: the outputs of the replayed run are
  the smooth function of the inputs those gradients differentiate;
* **dense output**: cubic Hermite interpolation from ``y_n, y_n+1, F_n, F_n+1`` (third order, C1 in time) gives the
  outputs on fixed user time grids (:class:`Saves`) independent of where the steps fall;
* **events**: a *terminal* event function ``g(y)`` (the step's cut-off) and a *watched* one (recorded, e.g. the core
  vanishing) are located where ``g`` of the Hermite interpolant crosses zero from above, by Illinois regula falsi
  to a tolerance of ~1e-12 of the step, then one Newton correction written so that its derivative is the implicit
  function theorem's (``d t*/dp = -(dg/dp) / (dg/dt)``);
* **loops and batches**: at most ``max_steps`` steps (static), so ``jit`` and ``vmap`` hold and every simulation
  in a batch takes its own steps and stage counts. ``differentiable=False`` (forward runs, sweeps) uses
  ``lax.while_loop`` for steps, stages and saves: under ``vmap`` the loop ends when the whole batch is done, and a
  step costs the batch's largest stage count. ``differentiable=True`` (``jax.grad``, reverse mode only) uses
  ``lax.scan`` over ``max_steps`` in chunks of ``STEP_CHUNK`` steps with every step checkpointed
  (``jax.checkpoint``, policy: keep the step's last two stages, :data:`fluxsim.core.rkl2.STAGES`): reverse-mode
  memory is the carry and two states per step, not the stages. The stages run in the same while loop as a forward
  run inside a ``jax.custom_vjp`` whose backward pass runs them backwards with the exact discrete adjoint
  (:mod:`fluxsim.core.rkl2`). A ``lax.cond`` skips the rest of a finished simulation's steps, each whole chunk after
  the end, and the event location outside event steps (under ``vmap`` a cond becomes a select and runs both
  sides). The saves are the interpolated states at the save times, written into a state buffer outside the
  checkpoints; ``Saves.fn`` runs once on that buffer after the loop, in checkpointed batches of ``SAVE_BATCH``
  states. A step passes at most ``saves_per_step`` save times (it is shortened to land on the last one
  otherwise). Finished simulations stop changing in both modes. ``jax.jvp`` / ``jax.jacfwd`` use the while loops
  (``differentiable=False``).

Why hand-written, not diffrax: diffrax 0.7.2 (with equinox 0.13.8, lineax, optimistix) installs with jax 0.10.2
and would give the PI controller, ``SaveAt(ts)``, events and ``RecursiveCheckpointAdjoint``; but it has no RKL/RKC
solver (one would be a custom ``AbstractSolver`` with its own stage loop anyway, and its stage count varies per
step, which diffrax's solver interface does not anticipate), and on a toy 400-node heat equation (Tsit5,
PIDController, SaveAt(ts), RecursiveCheckpointAdjoint) on this project's shared CPU it compiled in 7.3 s for a
vmapped forward run and 18.9 s for ``jax.grad``: the gradient compile alone nearly fills the issue's 20 s budget
before the model is in it. Four dependencies in the numerical core did not pay for that. This module and
:mod:`fluxsim.core.rkl2` are ~650 lines,
tested on problems with known solutions (``tests/core/test_rkl.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fluxsim.core.rkl2 import STAGES, SemiLinear, evaluate, max_stable_step, rkl2_step, stages_for

__all__ = ["Event", "RKLSettings", "Result", "Saves", "Schedule", "SemiLinear", "integrate", "max_stable_step",
           "rkl2_step", "stages_for"]


@dataclasses.dataclass(frozen=True)
class RKLSettings:
    """Static settings of :func:`integrate` (changing them recompiles).

    Attributes:
        rtol: relative tolerance of the local error estimate (default 3e-3).
        atol: absolute tolerance (default 3e-5; occupancy units in the solver core).
        max_steps: static cap on the number of step attempts, accepted or rejected (default 2000).
        max_stages: most RKL2 stages per step (default 256; >= 3); also caps the step at
            ``(max_stages**2 + max_stages - 2) / (2 rho)``.
        saves_per_step: most save times one step may pass in differentiable mode (default 4).
        safety: controller safety factor (default 0.9).
        fixed_step: take steps of exactly ``h0`` with no error control (for order studies; default False).
    """

    rtol: float = 3e-3
    atol: float = 3e-5
    max_steps: int = 2000
    max_stages: int = 256
    saves_per_step: int = 4
    safety: float = 0.9
    fixed_step: bool = False

    def __post_init__(self):
        if not (0 < self.rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {self.rtol}")
        if not self.atol > 0:
            raise ValueError(f"atol must be > 0, got {self.atol}")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps must be an integer >= 1, got {self.max_steps}")
        if not (isinstance(self.max_stages, int) and self.max_stages >= 3):
            raise ValueError(f"max_stages must be an integer >= 3, got {self.max_stages}")
        if not (isinstance(self.saves_per_step, int) and self.saves_per_step >= 1):
            raise ValueError(f"saves_per_step must be an integer >= 1, got {self.saves_per_step}")
        if not (0 < self.safety <= 1):
            raise ValueError(f"safety must be in (0, 1], got {self.safety}")


#: Steps per chunk of the differentiable loop (see :func:`integrate`).
STEP_CHUNK = 16
#: States per batch of ``Saves.fn`` after a differentiable loop (see :func:`integrate`).
SAVE_BATCH = 8


class Saves(NamedTuple):
    """One output grid: ``fn(y)`` at the sorted times ``ts`` (those inside ``[t0, t_end]`` are filled)."""

    ts: jax.Array
    fn: Callable[[jax.Array], Any]


class Event(NamedTuple):
    """A located zero crossing of an event function from above."""

    found: jax.Array  # bool
    t: jax.Array  # time of the crossing (t_end where not found)
    y: jax.Array  # interpolated state at the crossing


class Schedule(NamedTuple):
    """The accepted steps of a run, in order: what ``integrate(..., schedule=)`` replays.

    A run's discrete solution is a smooth function of its inputs only while its steps stay put: the controller's
    step sizes, the stage counts and the choice of which step runs to ``t1`` are decisions, and an adaptive run
    re-decides them when an input moves. Replaying a run's schedule keeps them, so the replayed outputs are the
    smooth function whose derivatives ``jax.grad`` and ``jax.jacfwd`` of the adaptive run give at that point (they
    treat the step sizes as constants too): what central differences can check.
    """

    h: jax.Array  # (max_steps,) step sizes taken (units of t; the step that ran to t1: its size at recording)
    stages: jax.Array  # (max_steps,) int32 stage counts
    final: jax.Array  # (max_steps,) bool: the step ran to t1 (its size is t1 - t, with that derivative)
    n: jax.Array  # () int32 accepted steps recorded (the rows after it are unused)


def _recorded(schedule: Schedule, row, taken, accept) -> Schedule:
    """``schedule`` with the attempt ``taken = (h, stages, final)`` written at ``row`` (the number of accepted steps
    before it; a rejected attempt's row is rewritten by the next one) and counted if ``accept``."""
    row = jnp.minimum(row, schedule.h.shape[0] - 1)
    h, stages, final = taken
    return Schedule(schedule.h.at[row].set(h), schedule.stages.at[row].set(stages),
                    schedule.final.at[row].set(final), schedule.n + accept.astype(jnp.int32))


def _empty_schedule(max_steps: int, dtype) -> Schedule:
    return Schedule(jnp.zeros((max_steps,), dtype), jnp.zeros((max_steps,), jnp.int32),
                    jnp.zeros((max_steps,), bool), jnp.zeros((), jnp.int32))


class Result(NamedTuple):
    """What :func:`integrate` returns (a pytree; everything vmaps)."""

    t: jax.Array  # where the integration ended: t1, the terminal event, or wherever max_steps left it
    y: jax.Array  # the state there
    terminated: jax.Array  # the terminal event ended it
    complete: jax.Array  # reached t1 or the terminal event (False: max_steps ran out)
    saved: tuple  # per Saves: pytree of fn outputs with a leading time axis (zeros where not filled)
    filled: tuple  # per Saves: (k,) bool, whether the entry was filled
    watch: Event  # the watched event's first crossing
    n_accepted: jax.Array
    n_rejected: jax.Array
    n_evaluations: jax.Array  # right-hand-side evaluations (stages, plus one per attempt for F_n+1)
    h: jax.Array  # the step the controller proposes next (to continue a later integration)
    schedule: Schedule  # the accepted steps, to replay


def hermite(y0, y1, hf0, hf1, theta):
    """Cubic Hermite interpolant at fraction ``theta`` of a step (``hf = h F`` at its ends)."""
    t2, t3 = theta * theta, theta * theta * theta
    return ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + theta) * hf0 + (3 * t2 - 2 * t3) * y1 + (t3 - t2) * hf1)


def error_norm(y0, y1, est, rtol, atol):
    """Max-norm of the error estimate scaled by ``atol + rtol max(|y0|, |y1|)``."""
    scale = atol + rtol * jnp.maximum(jnp.abs(y0), jnp.abs(y1))
    return jnp.max(jnp.abs(est) / scale)


def locate(g_of_theta, g_lo, g_hi, iterations: int = 24, active=None):
    """Zero of ``g_of_theta`` on ``[0, 1]`` with ``g(0) = g_lo > 0 >= g(1) = g_hi``.

    Illinois regula falsi (superlinear, bracketing) for ``iterations`` steps, then one Newton correction from the
    stop-gradient root: its value changes by ~the remaining residual and its derivative is the implicit function
    theorem's, ``-(dg/dp) / (dg/dtheta)``.

    ``active`` (a traced bool, forward mode only): iterate in a ``while_loop`` that does nothing where it is False
    (under ``vmap`` the loop runs only in steps where some simulation of the batch has a crossing; a ``cond``
    would become a select and run the iterations in every step). The result is then meaningless where inactive.
    None: a ``fori_loop`` (reverse-differentiable).
    """
    def body(_, c):
        a, b, ga, gb, side = c
        denom = ga - gb
        x = jnp.where(denom != 0, (a * (-gb) + b * ga) / jnp.where(denom != 0, denom, 1.0), 0.5 * (a + b))
        x = jnp.clip(x, a, b)
        gx = g_of_theta(x)
        upper = gx > 0  # root in [x, b]
        # Illinois: halve the stale end's value when the same end is kept twice in a row.
        gb_new = jnp.where(upper, jnp.where(side == 1, gb / 2, gb), gx)
        ga_new = jnp.where(upper, gx, jnp.where(side == -1, ga / 2, ga))
        return (jnp.where(upper, x, a), jnp.where(upper, b, x), ga_new, gb_new,
                jnp.where(upper, 1, -1).astype(jnp.int32))

    dtype = jnp.result_type(g_lo)
    init = (jnp.zeros((), dtype), jnp.ones((), dtype), g_lo, g_hi, jnp.zeros((), jnp.int32))
    init = jax.tree.map(jax.lax.stop_gradient, init)
    if active is None:
        a, b, ga, gb, _ = jax.lax.fori_loop(0, iterations, body, init)
    else:
        active = jax.lax.stop_gradient(active)
        _, (a, b, ga, gb, _) = jax.lax.while_loop(
            lambda c: active & (c[0] < iterations), lambda c: (c[0] + 1, body(c[0], c[1])),
            (jnp.zeros((), jnp.int32), init))
    root = jax.lax.stop_gradient(jnp.where(jnp.abs(ga) < jnp.abs(gb), a, b))
    value, slope = jax.jvp(g_of_theta, (root,), (jnp.ones_like(root),))
    safe = jnp.where(slope < 0, slope, -1.0)
    return jnp.clip(root - jnp.where(slope < 0, value / safe, 0.0), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------- the loop
class _Carry(NamedTuple):
    t: jax.Array
    y: jax.Array
    f: jax.Array
    h: jax.Array
    err_prev: jax.Array
    done: jax.Array
    terminated: jax.Array
    index: tuple  # per save grid: next time to fill
    buffers: tuple  # per save grid (forward mode only; () otherwise)
    watch: Event
    schedule: Schedule  # the accepted steps so far
    n_attempts: jax.Array
    n_accepted: jax.Array
    n_rejected: jax.Array
    n_evaluations: jax.Array


def _no_event(y):
    return jnp.ones((), y.dtype)


def _save_step(save: Saves, index, buffer, t, h, t_end, accept, path, differentiable: bool, per_step: int):
    """Fill the save times of one grid that fall in ``[t, t_end]`` from the step's interpolant ``path(theta)``.

    Forward mode writes ``save.fn`` of the due times into ``buffer`` (a while loop) and returns
    ``(next index, buffer)``. Differentiable mode returns ``(next index, states)``: the interpolated *states* at
    the ``per_step`` times from ``index`` on, due or not (cheap and branch-free; the loop writes them from row
    ``index`` of a state buffer, where a later step overwrites those that were not due, and applies ``save.fn``
    to the whole buffer once after the loop, outside the checkpointed steps).
    """
    ts = jnp.asarray(save.ts, t.dtype)
    n = ts.shape[0]
    if n == 0:  # an empty grid: nothing to fill
        y = path(jnp.zeros((), t.dtype))
        return index, (jnp.zeros((per_step,) + y.shape, y.dtype) if differentiable else buffer)

    def due(i):
        return accept & (i < n) & (ts[jnp.minimum(i, n - 1)] <= t_end)

    def theta_at(i):
        return jnp.clip((ts[jnp.minimum(i, n - 1)] - t) / h, 0.0, 1.0)

    if differentiable:
        idx = index + jnp.arange(per_step, dtype=jnp.int32)
        return index + jnp.sum(jax.vmap(due)(idx)).astype(jnp.int32), jax.vmap(path)(theta_at(idx))

    def body(state):
        i, buf = state
        return i + 1, jax.tree.map(lambda b, v: b.at[i].set(v), buf, save.fn(path(theta_at(i))))

    return jax.lax.while_loop(lambda state: due(state[0]), body, (index, buffer))


def integrate(
    rhs: Callable[[jax.Array], jax.Array],
    y0: jax.Array,
    t0,
    t1,
    *,
    spectral_radius,
    settings: RKLSettings = RKLSettings(),
    h0=None,
    saves: tuple = (),
    terminal: Callable | None = None,
    watch: Callable | None = None,
    differentiable: bool = False,
    schedule: Schedule | None = None,
) -> Result:
    """Integrate ``dy/dt = rhs(y)`` from ``t0`` towards ``t1`` (see the module docstring).

    Args:
        rhs: the right-hand side ``F(y)`` (autonomous; close over its parameters).
        y0: initial state (any shape; the error norm runs over all components).
        t0, t1: start and end time (traced scalars; ``t1 > t0``).
        spectral_radius: an upper bound of the spectral radius of ``dF/dy`` (scalar, traced; >= 0), or a function
            of the state returning one (evaluated at the start of each step; it must bound the step's stages).
        settings: static :class:`RKLSettings`.
        h0: first step (None: the step whose first-order change is a tenth of the tolerance).
        saves: output grids, :class:`Saves` (``ts`` sorted).
        terminal: event function ``g(y)``: the integration ends where it falls to 0 (None: no terminal event).
        watch: event function whose first fall to 0 is recorded in ``Result.watch`` (None: none).
        differentiable: reverse-differentiable loops (see the module docstring).
        schedule: None (default: error-controlled steps), or a :class:`Schedule` (``Result.schedule`` of a run
            with the same settings) to replay: its first ``schedule.n`` steps take the recorded sizes, stage
            counts and choice of the step that runs to ``t1``, and are accepted without an error test; steps
            after those (where a moved event lies beyond them) are controlled as usual. For small changes of the
            inputs around the recorded run, whose outputs are then smooth functions of them (central differences
            of derivatives). Forward-mode loops only (``differentiable=False``).

    Returns:
        A :class:`Result`.
    """
    st = settings
    if schedule is not None and differentiable:
        raise ValueError("integrate: schedule replays with the forward-mode loops (differentiable=False) only")
    dtype = y0.dtype
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)

    def rho_at(y):
        rho = spectral_radius(y) if callable(spectral_radius) else spectral_radius
        return jnp.maximum(jnp.asarray(rho, dtype), jnp.finfo(dtype).tiny)
    terminal_fn = terminal or _no_event
    watch_fn = watch or _no_event
    f0 = evaluate(rhs, y0, adjoint=differentiable)
    if h0 is None:
        speed = jnp.max(jnp.abs(f0) / (st.atol + st.rtol * jnp.abs(y0)))
        h0 = 0.1 / jnp.maximum(speed, jnp.finfo(dtype).tiny)
    h0 = jnp.minimum(jnp.asarray(h0, dtype), t1 - t0)
    k_save = st.saves_per_step

    index0 = tuple(jnp.searchsorted(jnp.asarray(s.ts, dtype), t0, side="left").astype(jnp.int32) for s in saves)
    templates = [jax.eval_shape(s.fn, y0) for s in saves]
    buffers0 = () if differentiable else tuple(
        jax.tree.map(lambda a, n=s.ts.shape[0]: jnp.zeros((n,) + a.shape, a.dtype), tpl)
        for s, tpl in zip(saves, templates))
    one = jnp.ones((), dtype)
    carry0 = _Carry(
        t=t0, y=y0, f=f0, h=h0, err_prev=one, done=t1 <= t0, terminated=jnp.zeros((), bool),
        index=index0, buffers=buffers0,
        watch=Event(jnp.zeros((), bool), t1, y0),
        schedule=_empty_schedule(0 if differentiable else st.max_steps, dtype),  # differentiable: kept outside
        n_attempts=jnp.zeros((), jnp.int32), n_accepted=jnp.zeros((), jnp.int32),
        n_rejected=jnp.zeros((), jnp.int32), n_evaluations=jnp.ones((), jnp.int32),
    )

    def find(g_of_theta, g_lo, g_hi, crossing):
        """Located crossing of a step (1 where there is none): a skipped loop in forward mode, a cond otherwise."""
        one = jnp.ones((), dtype)
        if differentiable:
            return jax.lax.cond(crossing, lambda: locate(g_of_theta, g_lo, g_hi), lambda: one)
        return jnp.where(crossing, locate(g_of_theta, g_lo, g_hi, active=crossing), one)

    def finished(c: _Carry):  # done, or out of step attempts (the scan's chunks may run past max_steps)
        return c.done | (c.n_attempts >= st.max_steps)

    def step(c: _Carry):
        rho = rho_at(c.y)
        # The step size is a choice of the controller, not a function of the inputs: derivatives are those of the
        # discrete solution on the accepted steps (the final step to t1 and located events keep theirs). Letting
        # them flow through the controller differentiates the error estimate's response instead, which made
        # d(capacity)/d(eta) -2.3 against +0.98 by central differences (spacing 1/8; 0.982 with this).
        h = jax.lax.stop_gradient(jnp.minimum(c.h, max_stable_step(rho, st.max_stages)))
        if differentiable:  # land on the last save time this step may pass
            for save, idx in zip(saves, c.index):
                if save.ts.shape[0] == 0:
                    continue
                ts = jnp.asarray(save.ts, dtype)
                last = idx + k_save - 1
                limit = jnp.where(last < ts.shape[0], ts[jnp.minimum(last, ts.shape[0] - 1)] - c.t, jnp.inf)
                h = jnp.where(limit > 0, jnp.minimum(h, limit), h)
        final = h >= t1 - c.t
        row = jnp.minimum(c.n_accepted, st.max_steps - 1)
        replaying = jnp.zeros((), bool) if schedule is None else c.n_accepted < schedule.n
        if schedule is not None:
            h = jnp.where(replaying, jax.lax.stop_gradient(schedule.h[row]), h)
            final = jnp.where(replaying, schedule.final[row], final)
        h = jnp.where(final, t1 - c.t, h)
        t_new = jnp.where(final, t1, c.t + h)
        # A finished simulation takes no stages (s = 1: the step returns y), and in differentiable mode (where the
        # scan runs all max_steps) a cond skips the rest of its step. The stages stay outside that cond: the
        # checkpoint's policy keeps the stages' results (rkl2.STAGES) only where it sees them, and would otherwise
        # run the stages again in the backward pass.
        idle = finished(c)
        n_stages = stages_for(h * rho, st.max_stages)
        if schedule is not None:
            n_stages = jnp.where(replaying, schedule.stages[row], n_stages)
        n_stages = jnp.where(idle, 1, n_stages)
        y_new = rkl2_step(rhs, c.y, c.f, h, n_stages, adjoint=differentiable)
        if not differentiable:
            return _after_stages(c, h, final, t_new, n_stages, y_new, replaying)[0]

        def skip():
            states = tuple(jnp.zeros((k_save,) + y0.shape, dtype) for _ in saves)
            return c, (states, (jnp.zeros((), dtype), jnp.ones((), jnp.int32), jnp.zeros((), bool)))

        return jax.lax.cond(idle, skip, lambda: _after_stages(c, h, final, t_new, n_stages, y_new, replaying))

    def _after_stages(c: _Carry, h, final, t_new, n_stages, y_new, replaying):
        f_new = evaluate(rhs, y_new, adjoint=differentiable)
        est = (12.0 * (c.y - y_new) + 6.0 * h * (c.f + f_new)) / 15.0
        err = jnp.maximum(error_norm(c.y, y_new, est, st.rtol, st.atol), 1e-10)
        accept = (err <= 1.0) | st.fixed_step | replaying
        accept = accept & ~c.done

        # Events on the Hermite interpolant of an accepted step.
        hf0, hf1 = h * c.f, h * f_new
        path = lambda theta: hermite(c.y, y_new, hf0, hf1, theta)  # noqa: E731
        g_lo, g_hi = terminal_fn(c.y), terminal_fn(y_new)
        hit = accept & (g_lo > 0) & (g_hi <= 0) & (terminal is not None)
        theta_hit = find(lambda th: terminal_fn(path(th)), g_lo, g_hi, hit)
        t_end = jnp.where(hit, c.t + theta_hit * h, t_new)
        y_end = jnp.where(hit, path(theta_hit), y_new)
        w_lo, w_hi = watch_fn(c.y), watch_fn(y_new)
        seen = accept & ~c.watch.found & (w_lo > 0) & (w_hi <= 0) & (watch is not None)
        theta_w = find(lambda th: watch_fn(path(th)), w_lo, w_hi, seen)
        seen = seen & (theta_w <= theta_hit)
        watch_ev = Event(
            found=c.watch.found | seen,
            t=jnp.where(seen, c.t + theta_w * h, c.watch.t),
            y=jnp.where(seen, path(theta_w), c.watch.y),
        )

        # Saves in [t, t_end].
        new_index, new_buffers, emitted = [], [], []
        for g, save in enumerate(saves):
            buffer = None if differentiable else c.buffers[g]
            i_new, out = _save_step(save, c.index[g], buffer, c.t, h, t_end, accept, path, differentiable, k_save)
            new_index.append(i_new)
            (emitted if differentiable else new_buffers).append(out)

        # Step size for the next attempt (PI controller; a rejected step only shrinks).
        if st.fixed_step:
            h_next = c.h
        else:
            grow = st.safety * err ** (-0.7 / 3.0) * c.err_prev ** (0.4 / 3.0)
            shrink = st.safety * err ** (-1.0 / 3.0)
            factor = jnp.where(err <= 1.0, jnp.clip(grow, 0.2, 5.0), jnp.clip(shrink, 0.2, 0.9))
            h_next = h * factor
        done = c.done | (accept & (hit | final))
        taken = (jax.lax.stop_gradient(h), n_stages, final)
        record = c.schedule if differentiable else _recorded(c.schedule, c.n_accepted, taken, accept)
        n_eval = c.n_evaluations + jnp.where(c.done, 0, n_stages)  # s - 1 stage evaluations + F(y_n+1)
        new = _Carry(
            t=jnp.where(accept, t_end, c.t),
            y=jnp.where(accept, y_end, c.y),
            f=jnp.where(accept, f_new, c.f),
            h=jnp.where(c.done, c.h, h_next),
            err_prev=jnp.where(accept, err, c.err_prev),
            done=done,
            terminated=c.terminated | hit,
            index=tuple(new_index),
            buffers=tuple(new_buffers),
            watch=watch_ev,
            schedule=record,
            n_attempts=c.n_attempts + jnp.where(c.done, 0, 1),
            n_accepted=c.n_accepted + accept.astype(jnp.int32),
            n_rejected=c.n_rejected + (~accept & ~c.done).astype(jnp.int32),
            n_evaluations=n_eval,
        )
        return new, (tuple(emitted), taken)

    if differentiable:
        checkpointed = jax.checkpoint(step, policy=jax.checkpoint_policies.save_only_these_names(STAGES))

        def one_step(state, _):
            # The state buffers stay out of the checkpoint (which keeps its inputs per step): writing rows is
            # linear, so reverse mode keeps only the write positions.
            c, buffers, schedule = state
            new, (states, taken) = checkpointed(c)
            buffers = tuple(jax.lax.dynamic_update_slice_in_dim(b, x, i, axis=0)
                            for b, x, i in zip(buffers, states, c.index))
            return (new, buffers, _recorded(schedule, c.n_accepted, taken, new.n_accepted > c.n_accepted)), None

        def chunk(state, _):
            # STEP_CHUNK steps, skipped as a whole once the simulation is done: a finished simulation then costs
            # one cond per chunk in both passes, not the fixed costs of a step's loops and conds per step.
            def run(state):
                return jax.lax.scan(one_step, state, None, length=STEP_CHUNK)[0]

            c = state[0]
            return jax.lax.cond(finished(c), lambda s: s, run, state), None

        state_buffers0 = tuple(jnp.zeros((s.ts.shape[0] + k_save,) + y0.shape, dtype) for s in saves)
        n_chunks = -(-st.max_steps // STEP_CHUNK)
        (carry, state_buffers, schedule_taken), _ = jax.lax.scan(
            chunk, (carry0, state_buffers0, _empty_schedule(st.max_steps, dtype)), None, length=n_chunks)
    else:
        carry = jax.lax.while_loop(lambda c: ~finished(c), step, carry0)
        schedule_taken = carry.schedule
    saved, filled = [], []
    for g, save in enumerate(saves):
        n = save.ts.shape[0]
        ar = jnp.arange(n)
        mask = (ar >= index0[g]) & (ar < carry.index[g])
        filled.append(mask)
        if differentiable:  # save.fn on the filled rows (on the final state elsewhere, then zeros as in forward mode)
            states = jnp.where(mask.reshape((n,) + (1,) * y0.ndim), state_buffers[g][:n], carry.y)
            # In batches of SAVE_BATCH states, each checkpointed: reverse mode keeps one batch's residuals at a
            # time (save.fn may be costly: the observables clip every triangle at nine levels).
            values = jax.lax.map(jax.checkpoint(save.fn), states, batch_size=max(1, min(SAVE_BATCH, n)))
            saved.append(jax.tree.map(
                lambda v, mask=mask: jnp.where(mask.reshape(mask.shape + (1,) * (v.ndim - 1)), v,
                                               jnp.zeros((), v.dtype)), values))
        else:
            saved.append(carry.buffers[g])

    return Result(
        t=carry.t, y=carry.y, terminated=carry.terminated, complete=carry.done,
        saved=tuple(saved), filled=tuple(filled), watch=carry.watch,
        n_accepted=carry.n_accepted, n_rejected=carry.n_rejected, n_evaluations=carry.n_evaluations, h=carry.h,
        schedule=schedule_taken,
    )

"""Time stepping: variable-step BDF2 with Newton's method and implicit differentiation.

One step solves the BDF2 equations (backward Euler on the first step of a protocol step)

    G(x) = V (x - a theta_n + b theta_{n-1}) - beta h (-L K(x) - B(x)) = 0

for the new nodal occupancy ``x`` (nondimensional time step ``h``, ratio ``omega = h / h_prev``,
``a = (1 + omega)**2 / (1 + 2 omega)``, ``b = omega**2 / (1 + 2 omega)``, ``beta = (1 + omega) / (1 + 2 omega)``).

Why fully implicit with Newton: the diffusivity is degenerate (1e6 contrast), and when the last of the Li-rich
core collapses the front speed diverges. Linearly implicit schemes (Rosenbrock, Picard) either overshoot or lose
accuracy there; Newton on the exact BDF2 equations does not. The Newton update is solved in Kirchhoff-increment
variables ``z = D dx``, where the Jacobian ``V / D + beta h L (+ dB/dtheta / D)`` is symmetric and strictly
diagonally dominant, exactly, by :mod:`~.blocksolve`. Every Newton update preserves the discrete Li balance
exactly (``L`` has zero column sums and model B's Jacobian keeps the total current).

Newton runs to convergence (``|dx| < tol``, plus one polishing update), so the step is a well-defined smooth
function of its inputs. Its derivative comes from the implicit function theorem (a ``custom_jvp``): one linear solve
with the last Newton Jacobian (at most ``tol`` away from the solution), so ``jax.grad`` and ``jax.jacfwd`` give the
derivative of the discrete solution to ~1e-7 relative, without an extra factorisation and without storing Newton
iterates.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxsim.core.polar.grid import PolarGrid
from fluxsim.core.polar.operators import factor_operator, net_inflow, solve_operator
from fluxsim.model.surface import StateDependentKinetics


class Drive(NamedTuple):
    """Everything the right-hand side of a protocol step needs besides the state, in solver units."""

    current_density: jnp.ndarray  # applied mean current density [A m-2], signed (> 0 delithiates)
    current_to_flux: jnp.ndarray  # R / (F c_max D_ref) [m2 A-1]
    weights: jnp.ndarray  # (nphi,) dual-arc integrals of the surface transfer profile
    d_ref: jnp.ndarray  # reference diffusivity [m2 s-1]


def surface_outflow(params, theta_surface, drive: Drive):
    """Nondimensional outflow of each surface node, its diagonal derivative, and the cell voltage."""
    return params.kinetics.outflow(theta_surface, drive.weights, drive.current_density, drive.current_to_flux)


def rhs(grid: PolarGrid, params, theta, drive: Drive):
    """Mass-weighted right-hand side ``-L K(theta) - B(theta)`` and the surface Jacobian diagonal ``dB_j/dtheta_j``."""
    potential = params.diffusivity.kirchhoff(theta) / drive.d_ref
    outflow, slope, _ = surface_outflow(params, theta[-1], drive)
    return net_inflow(grid, potential).at[-1].add(-outflow), slope


class StepInputs(NamedTuple):
    """Differentiable inputs of one step (a pytree)."""

    params: object
    drive: Drive
    theta: jnp.ndarray
    theta_prev: jnp.ndarray
    h: jnp.ndarray
    h_prev: jnp.ndarray


def _bdf2_coefficients(h, h_prev):
    omega = jnp.where(h_prev > 0, h / jnp.where(h_prev > 0, h_prev, 1.0), 0.0)
    a = (1 + omega) ** 2 / (1 + 2 * omega)
    b = omega**2 / (1 + 2 * omega)
    beta_h = h * (1 + omega) / (1 + 2 * omega)
    return omega, a, b, beta_h


def _residual(grid, inp: StepInputs, x):
    _, a, b, beta_h = _bdf2_coefficients(inp.h, inp.h_prev)
    volume = jnp.asarray(grid.volume, x.dtype)
    f, slope = rhs(grid, inp.params, x, inp.drive)
    return volume * (x - a * inp.theta + b * inp.theta_prev) - beta_h * f, slope


def _newton_operator(grid, inp: StepInputs, x, slope):
    """Factorised Newton Jacobian at ``x`` in Kirchhoff-increment variables; returns it and D(x)."""
    _, _, _, beta_h = _bdf2_coefficients(inp.h, inp.h_prev)
    d = inp.params.diffusivity(x) / inp.drive.d_ref
    volume = jnp.asarray(grid.volume, x.dtype)
    ones = (jnp.ones((grid.nr, grid.nphi), x.dtype),) * 2
    if isinstance(inp.params.kinetics, StateDependentKinetics):
        share = inp.drive.weights / jnp.sum(inp.drive.weights)
        return factor_operator(grid, ones, beta_h, slope / d[-1], share, volume / d), d
    return factor_operator(grid, ones, beta_h, diagonal=volume / d), d


class NewtonSettings(NamedTuple):
    tolerance: float  # on max |dx| (occupancy)
    max_iterations: int


def _newton(grid: PolarGrid, settings: NewtonSettings, inp: StepInputs):
    """Newton's method for one step; returns the solution, diagnostics and the last factorised Jacobian."""
    omega, _, _, _ = _bdf2_coefficients(inp.h, inp.h_prev)
    guess = jnp.clip(inp.theta + omega * (inp.theta - inp.theta_prev), 0.0, 1.0)

    def newton_update(x):
        g, slope = _residual(grid, inp, x)
        op, d = _newton_operator(grid, inp, x, slope)
        dx = solve_operator(op, g) / d
        return x - dx, jnp.max(jnp.abs(dx)), (op, d)

    def cond(state):
        it, _, change, _ = state
        return (it < settings.max_iterations) & (change > settings.tolerance)

    def body(state):
        it, x, _, _ = state
        x, change, jacobian = newton_update(x)
        return it + 1, x, change, jacobian

    # The loop state carries the last factorised Jacobian for the polish; it starts as zeros of the right shape
    # (the loop always runs at least once since the initial change is infinite), so the factorisation is traced once.
    placeholder = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(newton_update, guess)[2])
    init = (jnp.zeros((), jnp.int32), guess, jnp.full((), jnp.inf, guess.dtype), placeholder)
    iterations, x, _, (op, d) = jax.lax.while_loop(cond, body, init)
    # Polish with the last Jacobian (a chord step): after an update below the tolerance, Newton is in its quadratic
    # regime and this takes the error to about tolerance**2, i.e. rounding level, at the cost of one solve.
    g, _ = _residual(grid, inp, x)
    dx = solve_operator(op, g) / d
    return x - dx, (iterations, jnp.max(jnp.abs(dx))), (op, d)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _solve_step(grid: PolarGrid, settings: NewtonSettings, inp: StepInputs):
    x, info, _ = _newton(grid, settings, inp)
    return x, info


@_solve_step.defjvp
def _solve_step_jvp(grid, settings, primals, tangents):
    (inp,) = primals
    (inp_dot,) = tangents
    x, info, (op, d) = _newton(grid, settings, inp)
    # Implicit function theorem: J dx = -dG/d(inputs) . d(inputs), with G(x*, inputs) = 0. J is the Jacobian of the
    # last Newton iterate, within the Newton tolerance (1e-7) of x*: the derivative is exact to ~1e-7 relative and
    # costs no extra factorisation.
    _, g_dot = jax.jvp(lambda i: _residual(grid, i, x)[0], (inp,), (inp_dot,))
    x_dot = -solve_operator(op, g_dot) / d
    iterations, change = info
    return (x, info), (x_dot, (np.zeros(iterations.shape, jax.dtypes.float0), jnp.zeros_like(change)))


def bdf2_step(grid: PolarGrid, inp: StepInputs, settings: NewtonSettings):
    """One BDF2 step (backward Euler when ``inp.h_prev == 0``).

    Returns:
        ``(new theta, (Newton iterations, last update size))``.
    """
    return _solve_step(grid, settings, inp)

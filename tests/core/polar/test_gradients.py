"""Gradients: jax.grad (reverse) and jax.jacfwd (forward) of scalar outputs against central finite differences.

The solver's derivative is the exact derivative of the discrete solution: the time schedule is a smooth function of
the inputs (no accept/reject), the cut-off is interpolated inside its step, and each BDF2 step is differentiated
through the implicit function theorem at the converged Newton solution. So AD and central differences of the same
discrete map must agree to the finite-difference truncation and Newton-noise level (~1e-8 relative here).

Inputs: eta, blocked fraction, arc angle, radius, rate, D_hi, theta0 (model A); r_NMC (model B). Outputs: extracted
capacity, time to cut-off, the core offset along the arc axis at 600 s (hard and smooth; the signed component is
used because |d| is not differentiable where d = 0), core fractions (hard and smooth) and the surface minimum at
600 s, and d at core fraction 0.25. A tiny grid suffices: the property does not depend on resolution.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxsim import outputs
from fluxsim.api import make_params
from fluxsim.core.polar import solver as polar
from fluxsim.core.polar.solver import simulate
from fluxsim.model.protocol import Charge

NUMERICS = polar.Numerics(nr=8, nphi=32, n_steps=40)
T = 600.0
NAMES_A = ["eta", "blocked_fraction", "arc_center_rad", "radius_um", "rate_mA_per_g", "D_hi_1e-14", "theta0"]
# theta0 below 1: D is clipped at theta = 1, so central differences around exactly 1 would straddle a kink.
X_A = np.array([0.3, 0.25, 3.0, 1.2, 100.0, 1.0, 0.995])
OUTPUT_NAMES = ["capacity", "time_to_cutoff", "d_axis", "d_axis_smooth", "core", "core_smooth", "surface_min",
                "d_at_core_0.25"]


def _params_a(x, base):
    eta, f, angle, radius_um, rate, d_hi, theta0 = (x[i] for i in range(7))
    blocking = dataclasses.replace(base.blocking, eta=eta, blocked_fraction=f, arc_center_rad=angle)
    law = dataclasses.replace(base.diffusivity, D_hi_m2_per_s=d_hi * 1e-14)
    return dataclasses.replace(base, blocking=blocking, diffusivity=law, radius_m=radius_um * 1e-6,
                               rate_mA_per_g=rate, theta0=theta0)


def _outputs(s, angle):
    along = jnp.cos(angle), jnp.sin(angle)
    d_axis = s.core_x_nm * along[0] + s.core_y_nm * along[1]
    d_axis_smooth = s.smooth_core_x_nm * along[0] + s.smooth_core_y_nm * along[1]
    at = lambda series: outputs.at_times(s, series, T)  # noqa: E731
    return jnp.stack([
        outputs.capacity_at_cutoff(s), outputs.time_to_cutoff(s), at(d_axis), at(d_axis_smooth),
        at(s.core_fraction), at(s.smooth_core_fraction), at(s.surface_min_theta),
        outputs.offset_at_core_fraction(s, 0.25),
    ])


BASE_A = make_params(eta=0.3, blocked_fraction=0.25)


def f_a(x):
    p = _params_a(x, BASE_A)
    return _outputs(simulate(p, (Charge(),), NUMERICS), p.blocking.arc_center_rad)


def _central_differences(f, x, rel_step=1e-5):
    """Jacobian by central differences, all perturbed inputs in one vmapped call."""
    steps = rel_step * np.maximum(np.abs(x), 1.0)
    plus = x + np.diag(steps)
    minus = x - np.diag(steps)
    values = jax.jit(jax.vmap(f))(jnp.asarray(np.concatenate([plus, minus])))
    values = np.asarray(values)
    n = len(x)
    return ((values[:n] - values[n:]) / (2 * steps[:, None])).T  # (outputs, inputs)


def _assert_close(ad, fd, names_out, names_in, rtol=1e-5):
    """Entrywise relative agreement; an entry is compared to 1e-3 of its output's largest derivative at least, so
    exact zeros (e.g. d along the axis does not change when the arc rotates) are not divided by."""
    scale = np.maximum(np.abs(fd), 1e-3 * np.max(np.abs(fd), axis=1, keepdims=True))
    err = np.abs(ad - fd) / scale
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err.max() < rtol, f"{names_out[worst[0]]} / {names_in[worst[1]]}: AD {ad[worst]} FD {fd[worst]}"


@pytest.fixture(scope="module")
def fd_a():
    return _central_differences(f_a, X_A)


def test_reverse_mode_matches_finite_differences(fd_a):
    """jax.grad of each output (rows of jax.jacrev) for all seven model-A inputs, within 1e-5 relative."""
    jac = np.asarray(jax.jit(jax.jacrev(f_a))(jnp.asarray(X_A)))
    assert np.all(np.isfinite(jac))
    _assert_close(jac, fd_a, OUTPUT_NAMES, NAMES_A)


def test_forward_mode_matches_finite_differences(fd_a):
    """jax.jacfwd for all seven model-A inputs, within 1e-5 relative."""
    jac = np.asarray(jax.jit(jax.jacfwd(f_a))(jnp.asarray(X_A)))
    _assert_close(jac, fd_a, OUTPUT_NAMES, NAMES_A)


def test_model_b_film_resistance_gradient():
    """Model B: d/d r_NMC and d/d eta of capacity, d and core fraction, reverse and forward, within 1e-5."""
    base = make_params(surface_model="B", eta=0.3, blocked_fraction=0.25, r_NMC_ohm_m2=0.05)

    def f_b(x):
        blocking = dataclasses.replace(base.blocking, eta=x[0])
        kinetics = dataclasses.replace(base.kinetics, r_NMC_ohm_m2=x[1])
        p = dataclasses.replace(base, blocking=blocking, kinetics=kinetics)
        return _outputs(simulate(p, (Charge(),), NUMERICS), p.blocking.arc_center_rad)

    x = np.array([0.3, 0.05])
    fd = _central_differences(f_b, x, rel_step=1e-4)  # r_NMC ~ 0.05: an absolute step of 1e-5 is 2e-4 relative
    for transform in (jax.jacrev, jax.jacfwd):
        ad = np.asarray(jax.jit(transform(f_b))(jnp.asarray(x)))
        _assert_close(ad, fd, OUTPUT_NAMES, ["eta", "r_NMC"])
    assert np.all(np.abs(fd[:, 1]) > 0)


def test_gradients_finite_and_nonzero_at_eta_1_and_vanishing_fraction():
    """At eta = 1 (no blocking) and as the blocked fraction -> 0 the gradients are finite and non-zero: blocking a
    little changes the capacity and pushes the core towards the arc."""

    def capacity_and_offset(x):
        return f_a(x)[jnp.array([0, 2])]

    for eta, fraction in [(1.0, 0.25), (0.3, 1e-4), (0.3, 0.0)]:
        x = X_A.copy()
        x[0], x[1] = eta, fraction
        jac = np.asarray(jax.jit(jax.jacrev(capacity_and_offset))(jnp.asarray(x)))
        assert np.all(np.isfinite(jac)), (eta, fraction, jac)
        # The blocking inputs move both outputs: d/d eta at eta = 1, d/d f at f -> 0.
        active = 0 if eta == 1.0 else 1
        assert np.all(np.abs(jac[:, active]) > 0), (eta, fraction, jac)


def test_grad_of_vmap_equals_vmap_of_grad():
    """Batching commutes with differentiation: grad(sum(vmap(f))) == vmap(grad(f)) for the capacity."""

    def capacity(eta):
        x = jnp.asarray(X_A).at[0].set(eta)
        return f_a(x)[0]

    etas = jnp.array([0.2, 0.5, 0.9])
    grad_of_vmap = jax.jit(jax.grad(lambda e: jnp.sum(jax.vmap(capacity)(e))))(etas)
    vmap_of_grad = jax.jit(jax.vmap(jax.grad(capacity)))(etas)
    np.testing.assert_allclose(np.asarray(grad_of_vmap), np.asarray(vmap_of_grad), rtol=1e-12)

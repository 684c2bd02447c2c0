"""Gradients of observables of the right-hand side w.r.t. every traced input, against central differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shapes import OUTLINES

from fluxsim.core import fv, observables, rim
from fluxsim.core.mesh import mesh_outline
from fluxsim.model.diffusivity import PowerLaw
from fluxsim.model.params import Params
from fluxsim.model.surface import FilmResistance, make_blocking

#: (name, value) of every input, unpacked by ``_params``.
INPUTS = (("radius_m", 1.1e-6), ("eta", 0.3), ("blocked_fraction", 0.25), ("arc_center_rad", 2.6),
          ("D_hi_m2_per_s", 1e-14), ("theta_ref", 0.8), ("exponent", 3.0), ("rate_mA_per_g", 150.0))


def _params(x, model_b):
    radius, eta, fraction, centre, d_hi, theta_ref, exponent, _ = x
    kinetics = FilmResistance() if model_b else Params().kinetics
    return Params(radius_m=radius, blocking=make_blocking(eta=eta, blocked_fraction=fraction, arc_center_rad=centre),
                  diffusivity=PowerLaw(d_hi, theta_ref, exponent), kinetics=kinetics)


def _observable(mesh, x, model_b, integer_exponent=None):
    """A scalar mixing everything the integrator and the glue consume: the rhs in SI time, the voltage, the
    Gershgorin bound at the state, and the line cut along the arc axis."""
    params = _params(x, model_b)
    theta = 0.75 + 0.2 * jnp.tanh(1.5 * mesh.xy[:, 0] - mesh.xy[:, 1])
    drive = rim.make_drive(mesh, params, x[7])
    dtheta, voltage = fv.kirchhoff_rhs(mesh, params, theta, drive, integer_exponent)
    rate_si = dtheta / fv.time_scale_s(params)
    moment = jnp.sum(mesh.mass * mesh.xy[:, 1] * rate_si)  # how fast the Li moves sideways [s-1]
    cut = observables.line_cut(observables.line_cut_stencil(mesh, params.blocking.arc_center_rad), theta)
    out = 1e4 * moment + 1e-6 * fv.spectral_radius_bound(mesh, params, theta) + jnp.sum(cut * jnp.linspace(0, 1, 65))
    return out + (0.1 * voltage if model_b else 0.0)


@pytest.mark.parametrize("model_b", [False, True], ids=["A", "B"])
def test_gradient_matches_central_differences(model_b):
    mesh = mesh_outline(OUTLINES["ellipse2"], 0.08)
    x = jnp.array([v for _, v in INPUTS])
    f = jax.jit(lambda x: _observable(mesh, x, model_b))
    grad = np.asarray(jax.jit(jax.grad(lambda x: _observable(mesh, x, model_b)))(x))
    for i, (name, value) in enumerate(INPUTS):
        step = 1e-5 * value * jnp.eye(len(INPUTS))[i]
        fd = float((f(x + step) - f(x - step)) / (2e-5 * value))
        if name == "D_hi_m2_per_s" or name == "radius_m":  # tiny units: compare d/dlog
            grad_i, fd = grad[i] * value, fd * value
        else:
            grad_i = grad[i]
        assert grad_i == pytest.approx(fd, rel=2e-6, abs=1e-9 * max(1.0, abs(fd))), name


def test_integer_exponent_promise_keeps_every_gradient():
    """The multiplication fast path of the power (``integer_exponent=3``, the default exponent) has the gradient of
    the general path w.r.t. every input, the exponent included, and matches central differences of the general
    path (the fast path itself is NaN off the promised exponent)."""
    mesh = mesh_outline(OUTLINES["ellipse2"], 0.08)
    x = jnp.array([v for _, v in INPUTS])
    general = jax.jit(lambda x: _observable(mesh, x, False))
    fast = jax.jit(lambda x: _observable(mesh, x, False, 3))
    assert float(fast(x)) == pytest.approx(float(general(x)), rel=1e-14)  # measured 1.5e-16
    g_fast = np.asarray(jax.jit(jax.grad(lambda x: _observable(mesh, x, False, 3)))(x))
    g_general = np.asarray(jax.jit(jax.grad(lambda x: _observable(mesh, x, False)))(x))
    np.testing.assert_allclose(g_fast, g_general, rtol=1e-14)  # measured <= 4e-16
    i = [name for name, _ in INPUTS].index("exponent")
    step = 1e-5 * x[i] * jnp.eye(len(INPUTS))[i]
    fd = float((general(x + step) - general(x - step)) / (2 * step[i]))
    assert g_fast[i] == pytest.approx(fd, rel=1e-8)  # measured 1.1e-10 (the differences' truncation)
    forward = float(jax.jit(jax.jacfwd(lambda e: _observable(mesh, x.at[i].set(e), False, 3)))(x[i]))
    assert forward == pytest.approx(fd, rel=1e-8)
    assert np.isnan(float(fast(x + step)))  # a broken promise is NaN, never a silently wrong value

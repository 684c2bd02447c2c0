"""The hand-written reverse mode of one RKL2 step (fluxsim.core.rkl2) against JAX's own differentiation of the same
recurrence written out with a static stage count (an independent derivation of the same derivative), and its
reconstruction of the stages by running the recurrence backwards, at the stability limit where that is hardest."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxsim  # noqa: F401
from fluxsim.api import make_params, replace
from fluxsim.core import rkl2
from fluxsim.core.fv import kirchhoff_system, spectral_radius_estimate
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import Disk
from fluxsim.core.rim import make_drive, rim_weights

MESH = mesh_outline(Disk(), 0.1)
BASE = make_params(eta=0.3, blocked_fraction=0.25)
Y0 = jnp.asarray(0.9 - 0.2 * np.asarray(MESH.xy[:, 0]) ** 2 + 0.05 * np.asarray(MESH.xy[:, 1]))
RHO = float(spectral_radius_estimate(MESH, BASE))


def _system(x, integer_exponent=None):
    """The solver's right-hand side with eta and the rate traced."""
    p = replace(BASE, eta=x[0], rate_mA_per_g=x[1])
    return kirchhoff_system(MESH, p, make_drive(MESH, p, x[1], rim_weights(MESH, p.blocking)), integer_exponent)


def _reference_step(rhs, y, f0, h, s: int):
    """The RKL2 recurrence with a static stage count, differentiated by JAX (fori_loop with static bounds)."""
    w1 = rkl2._first_weight(jnp.asarray(s), y.dtype)

    def stage(j, c):
        a, b = c
        return rkl2._stage(rhs, j, w1, y, f0, h, a, b), a

    return jax.lax.fori_loop(2, s + 1, stage, (y + (w1 / 3.0) * h * f0, y))[0]


def _loss(step, generic: bool):
    def loss(y, x, h):
        system = _system(x)
        rhs = (lambda v: system(v)) if generic else system  # a plain callable takes the generic adjoint
        out = step(rhs, y, system(y), h)
        return jnp.sum(MESH.mass * out**2) + jnp.sum(jnp.sin(3.0 * out[: MESH.n_rim]))

    return loss


@pytest.mark.parametrize("generic", [False, True], ids=["semilinear", "generic"])
@pytest.mark.parametrize("s", [2, 3, 16, 64])
def test_adjoint_equals_autodiff_of_the_recurrence(s, generic):
    """Cotangents of the state, of eta and the rate (through the right-hand side) and of the step size, at 0.999 of
    the stability limit of s stages (the stiffest case for the backward reconstruction). Measured: <= 1e-12."""
    x, h = jnp.asarray([0.3, 150.0]), 0.999 * float(rkl2.max_stable_step(RHO, s))
    ours = jax.jit(jax.value_and_grad(_loss(
        lambda rhs, y, f0, h: rkl2.rkl2_step(rhs, y, f0, h, jnp.asarray(s), adjoint=True), generic),
        argnums=(0, 1, 2)))(Y0, x, h)
    reference = jax.jit(jax.value_and_grad(_loss(
        lambda rhs, y, f0, h: _reference_step(rhs, y, f0, h, s), generic), argnums=(0, 1, 2)))(Y0, x, h)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-13)
    for mine, theirs in zip(ours[1], reference[1]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9 * float(jnp.max(jnp.abs(theirs))))


def test_backward_reconstruction_of_the_stages_stays_accurate_at_many_stages():
    """256 stages at the stability limit: the backward recurrence recovers Y_0 from Y_s and Y_s-1 to 1e-10
    (measured 1e-13: rounding grows at most polynomially in s)."""
    s = 256
    system = _system(jnp.asarray([0.3, 150.0]))
    h = 0.999 * float(rkl2.max_stable_step(RHO, s))
    f0 = system(Y0)
    y_s, y_prev = jax.jit(lambda y: rkl2._forward(system, y, f0, h, jnp.asarray(s)))(Y0)
    w1 = rkl2._first_weight(jnp.asarray(s), Y0.dtype)

    @jax.jit
    def backwards(y_j, y_j1):
        def body(j, c):
            y_j, y_j1 = c
            mu, nu, mu_t, gamma_t = rkl2._coefficients(s + 2 - j, w1)
            y_j2 = (y_j - mu * y_j1 - (1 - mu - nu) * Y0 - mu_t * h * system(y_j1) - gamma_t * h * f0) / nu
            return y_j1, y_j2

        return jax.lax.fori_loop(2, s + 1, body, (y_j, y_j1))

    y_1, y_0 = backwards(y_s, y_prev)
    assert float(jnp.max(jnp.abs(y_0 - Y0))) < 1e-10
    assert float(jnp.max(jnp.abs(y_1 - (Y0 + (w1 / 3.0) * h * f0)))) < 1e-10


def test_no_stage_is_the_identity_with_its_cotangent():
    """s = 1 (a finished simulation's step): Y_s = y, cotangent passes to y only."""
    system = _system(jnp.asarray([0.3, 150.0]))
    f0 = system(Y0)
    out, vjp = jax.vjp(lambda y, f, h: rkl2.rkl2_step(system, y, f, h, jnp.asarray(1), adjoint=True), Y0, f0, 1e-3)
    np.testing.assert_array_equal(out, Y0)
    bar_y, bar_f, bar_h = vjp(jnp.ones_like(Y0))
    np.testing.assert_array_equal(bar_y, jnp.ones_like(Y0))
    assert float(jnp.max(jnp.abs(bar_f))) == 0.0 and float(bar_h) == 0.0


def test_adjoint_under_vmap_with_own_stage_counts():
    """A batch whose members take 3, 10 and 40 stages: vmap of the gradient equals the single gradients."""
    stages = jnp.asarray([3, 10, 40])
    hs = jnp.asarray([0.99 * float(rkl2.max_stable_step(RHO, int(s))) for s in stages])

    def loss(eta, h, s):
        system = _system(jnp.stack([eta, jnp.asarray(150.0)]))
        out = rkl2.rkl2_step(system, Y0, system(Y0), h, s, adjoint=True)
        return jnp.sum(MESH.mass * out**2)

    grad = jax.jit(jax.grad(loss))
    batched = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(0.3, hs, stages)
    single = np.asarray([float(grad(0.3, h, s)) for h, s in zip(hs, stages)])
    np.testing.assert_allclose(batched, single, rtol=1e-11)


def test_evaluate_reverse_mode_equals_autodiff():
    """The right-hand side's own reverse mode (one operator application, no transposed gathers) against JAX's."""
    def loss(y, x, adjoint):
        out = rkl2.evaluate(_system(x), y, adjoint=adjoint)
        return jnp.sum(MESH.mass * out**2) + jnp.sum(jnp.sin(out[: MESH.n_rim]))

    x = jnp.asarray([0.3, 150.0])
    ours = jax.grad(loss, argnums=(0, 1))(Y0, x, True)
    reference = jax.grad(loss, argnums=(0, 1))(Y0, x, False)
    for mine, theirs in zip(ours, reference):
        np.testing.assert_allclose(mine, theirs, rtol=1e-11, atol=1e-11 * float(jnp.max(jnp.abs(theirs))))

"""The RKL2 integrator on a problem with a known solution: the semi-discrete 1D heat equation.

Vertex-centred finite volumes on [0, 1] with insulated ends (half cells at the ends): ``cos(pi x)`` is an exact
eigenvector of the discrete operator with eigenvalue ``-lam = -2 (1 - cos(pi dx)) / dx**2``, so
``y(t) = 1 + a exp(-k lam t) cos(pi x)`` solves the semi-discrete system exactly and every error below is the time
integrator's alone.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import linregress

import fluxsim  # noqa: F401
from fluxsim.core import rkl

N = 41
DX = 1.0 / (N - 1)
X = np.linspace(0.0, 1.0, N)
LAM = 2.0 * (1.0 - np.cos(np.pi * DX)) / DX**2
RHO = 4.0 / DX**2  # Gershgorin bound of the operator (k = 1)
MASS = np.full(N, DX)
MASS[[0, -1]] = DX / 2
T_END = 0.1


def heat_rhs(k):
    def rhs(y):
        flux = k * (y[1:] - y[:-1]) / DX
        return jnp.zeros_like(y).at[:-1].add(flux).at[1:].add(-flux) / MASS

    return rhs


def exact(t, k=1.0, a=1.0):
    return 1.0 + a * np.exp(-k * LAM * np.asarray(t))[..., None] * np.cos(np.pi * X)


Y0 = jnp.asarray(exact(0.0))


def run(k=1.0, y0=Y0, *, rtol=1e-5, differentiable=False, h0=None, fixed_step=False, saves=(), terminal=None,
        watch=None, t1=T_END, max_steps=2000, schedule=None):
    settings = rkl.RKLSettings(rtol=rtol, atol=rtol * 1e-2, max_steps=max_steps, fixed_step=fixed_step)
    return rkl.integrate(heat_rhs(k), y0, 0.0, t1, spectral_radius=k * RHO, settings=settings, h0=h0, saves=saves,
                         terminal=terminal, watch=watch, differentiable=differentiable, schedule=schedule)


def test_stage_count_is_the_smallest_stable_one():
    for h_rho in (0.5, 2.0, 2.0001, 50.0, 1234.5):
        s = int(rkl.stages_for(jnp.asarray(h_rho), 1000))
        assert (s * s + s - 2) / 2 >= h_rho
        assert s == 2 or ((s - 1) ** 2 + (s - 1) - 2) / 2 < h_rho


def test_rkl2_is_stable_at_its_stage_limit():
    """A step at the stability limit of its stage count damps the stiffest mode (|amplification| <= 1)."""
    stiff = np.cos(np.pi * np.arange(N))  # the highest discrete mode, eigenvalue close to -RHO
    y = jnp.asarray(stiff)
    f = heat_rhs(1.0)
    for s in (3, 10, 40):
        h = rkl.max_stable_step(RHO, s)
        out = rkl.rkl2_step(f, y, f(y), h, jnp.asarray(s))
        assert float(jnp.max(jnp.abs(out))) <= 1.0 + 1e-12


def test_observed_temporal_order_is_two():
    """Fixed steps h = T / n: error at T falls with slope 2 in log-log (stage counts follow h)."""
    ns = np.array([8, 16, 32, 64])
    errors = [float(jnp.max(jnp.abs(run(h0=T_END / n, fixed_step=True).y - exact(T_END)))) for n in ns]
    slope = linregress(np.log(1.0 / ns), np.log(errors)).slope
    assert abs(slope - 2.0) < 0.15, (slope, errors)


def test_error_falls_with_rtol_and_dense_output_matches():
    ts = jnp.linspace(0.0, T_END, 11)
    errors, dense = [], []
    for rtol in (1e-3, 1e-4, 1e-5, 1e-6):
        r = run(rtol=rtol, saves=(rkl.Saves(ts, lambda y: y),))
        assert bool(r.complete) and bool(jnp.all(r.filled[0]))
        errors.append(float(jnp.max(jnp.abs(r.y - exact(T_END)))))
        dense.append(float(jnp.max(jnp.abs(r.saved[0] - exact(ts)))))
        assert dense[-1] < 30 * rtol  # Hermite output as accurate as the steps (measured ~3 rtol)
    slope = linregress(np.log([1e-3, 1e-4, 1e-5, 1e-6]), np.log(errors)).slope
    assert 0.5 < slope < 1.1, (slope, errors)  # tolerance proportionality, exponent 2/3 for error per step
    assert all(b < a for a, b in zip(errors, errors[1:]))


def test_terminal_event_is_located_inside_the_step():
    """y_0(t) = 1 + exp(-lam t) reaches 1.5 at t = ln 2 / lam; the integration stops there."""
    t_exact = np.log(2.0) / LAM
    misses = []
    for rtol in (1e-4, 1e-6):
        r = run(rtol=rtol, terminal=lambda y: y[0] - 1.5)
        assert bool(r.terminated)
        misses.append(abs(float(r.t) - t_exact))
        assert abs(float(r.y[0]) - 1.5) < 1e-11  # the state is the interpolant at the located root
    assert misses[1] < misses[0] and misses[1] < 2e-6 * t_exact / 0.07  # measured 4.6e-7 s at rtol 1e-6 (t = 0.07)


def test_watched_event_is_recorded_without_stopping():
    r = run(rtol=1e-6, watch=lambda y: y[0] - 1.5)
    assert bool(r.watch.found) and not bool(r.terminated) and float(r.t) == T_END
    assert abs(float(r.watch.t) - np.log(2.0) / LAM) < 2e-6


def test_modes_agree_and_vmap_takes_own_steps():
    """While-loop and checkpointed-scan modes give the same numbers; a batch equals separate runs."""
    ks = jnp.asarray([0.3, 1.0, 3.0])
    ts = jnp.linspace(0.0, T_END, 5)
    save = (rkl.Saves(ts, lambda y: y[-1]),)
    batched = jax.jit(jax.vmap(lambda k: run(k, saves=save, max_steps=400)))(ks)
    steps = np.asarray(batched.n_accepted)
    assert len(set(steps.tolist())) == 3  # each simulation took its own number of steps
    for i, k in enumerate(ks):
        single = run(k, saves=save, max_steps=400)
        scanned = run(k, saves=save, max_steps=400, differentiable=True)
        for other in (single, scanned):  # equal to rounding (XLA fuses the loops differently: ~2e-12 measured)
            np.testing.assert_allclose(batched.y[i], other.y, rtol=0, atol=1e-10)
            np.testing.assert_allclose(batched.saved[0][i], other.saved[0], rtol=0, atol=1e-10)
        assert int(single.n_accepted) == steps[i] == int(scanned.n_accepted)


def test_gradients_match_central_differences():
    """d(output)/dk by jax.grad (scan mode) and jax.jacfwd (while mode) against central differences.

    The output mixes a located event time, the state there and dense output before it.
    """
    ts = jnp.asarray([0.02, 0.05])

    def output(k, differentiable):
        r = run(k, rtol=1e-6, differentiable=differentiable, terminal=lambda y: y[0] - 1.5, max_steps=150,
                saves=(rkl.Saves(ts, lambda y: y[0]),))
        return r.t + r.y[3] + jnp.sum(r.saved[0])

    k0, eps = 1.0, 1e-5
    grad = float(jax.jit(jax.grad(lambda k: output(k, True)))(k0))
    fwd = float(jax.jit(jax.jacfwd(lambda k: output(k, False)))(k0))
    fd = (float(output(k0 + eps, False)) - float(output(k0 - eps, False))) / (2 * eps)
    assert abs(grad - fd) < 1e-5 * abs(fd), (grad, fd)
    assert abs(fwd - fd) < 1e-5 * abs(fd), (fwd, fd)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="rtol"):
        rkl.RKLSettings(rtol=0.0)
    with pytest.raises(ValueError, match="max_stages"):
        rkl.RKLSettings(max_stages=2)


def test_a_replayed_schedule_is_the_same_run_and_smooth_in_the_inputs():
    """Result.schedule replayed gives the same numbers; nearby inputs keep its steps (no rejection, same count)."""
    ts = jnp.linspace(0.0, T_END, 5)
    save = (rkl.Saves(ts, lambda y: y[-1]),)
    first = run(1.0, saves=save, rtol=1e-3)
    n = int(first.n_accepted)
    assert int(first.schedule.n) == n and bool(first.schedule.final[n - 1]) and not np.any(first.schedule.final[:n - 1])
    again = run(1.0, saves=save, rtol=1e-3, schedule=first.schedule)
    np.testing.assert_array_equal(again.saved[0], first.saved[0])
    moved = run(1.1, saves=save, rtol=1e-3, schedule=first.schedule)
    assert int(moved.n_accepted) == int(first.n_accepted) and int(moved.n_rejected) == 0
    np.testing.assert_array_equal(moved.schedule.h, first.schedule.h)
    with pytest.raises(ValueError, match="schedule"):
        run(1.0, differentiable=True, schedule=first.schedule)

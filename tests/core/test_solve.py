"""simulate() of the solver core v2 on the disk: balance, symmetry, events, batching, gradients, references.

Most tests run on a coarse disk mesh (spacing 0.1 R: ~420 nodes) where a simulation takes well under a second; the
reference comparisons use the default spacing and are the acceptance points of issue 11.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxsim  # noqa: F401
from fluxsim.api import make_params, replace
from fluxsim.core import solve
from fluxsim.core.mesh import mesh_outline, stack_meshes
from fluxsim.core.outline import Disk, Ellipse
from fluxsim.core.rkl import RKLSettings
from fluxsim.model.protocol import Charge, Rest

COARSE = 0.1
TIMES = np.arange(0.0, 1801.0, 60.0)


@pytest.fixture(scope="module")
def coarse():
    return mesh_outline(Disk(), COARSE)


@functools.lru_cache
def _compiled(protocol, times, options):
    return jax.jit(lambda p, m: solve.simulate(p, m, protocol, save_times_s=np.asarray(times), **dict(options)))


def run(params, mesh, protocol=(Charge(),), times=TIMES, **kw):
    """A jitted simulate, compiled once per static configuration (parameters and meshes are traced)."""
    return _compiled(tuple(protocol), tuple(np.asarray(times).tolist()), tuple(sorted(kw.items())))(params, mesh)


def test_li_balance_is_exact_and_cutoff_located(coarse):
    params = make_params(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=400.0)
    times = np.arange(0.0, 3601.0, 120.0)
    s = run(params, coarse, times=times)
    reached = np.asarray(s.reached)
    assert bool(s.complete) and bool(s.step_cutoff[0]) and 5 < reached.sum() < len(times)
    rate = params.material.mean_rate_per_s(400.0)
    t = np.asarray(s.t_s)[reached]
    assert np.max(np.abs(np.asarray(s.mean_theta)[reached] - (1.0 - rate * t))) < 1e-10
    capacity = np.asarray(s.passed_capacity_mAh_per_g)[reached]
    assert np.max(np.abs(capacity - 400.0 * t / 3600.0)) < 1e-8
    # After the cut-off the final state is repeated; at the final state the surface minimum is at theta_cut.
    assert float(s.surface_min_theta[-1]) == pytest.approx(0.2, abs=1e-9)
    assert float(s.passed_capacity_mAh_per_g[-1]) == pytest.approx(400.0 * float(s.step_end_s[0]) / 3600, rel=1e-10)


def test_symmetry_at_eta_one_and_arc_rotation(coarse):
    """eta = 1: no offset beyond the mesh's own asymmetry; rotating the blocked arc rotates the offset."""
    s = run(make_params(), coarse, times=TIMES[:16])
    core = (np.asarray(s.core_fraction) > 0.01) & (TIMES[:16] > 0)
    d_sym = np.hypot(np.asarray(s.core_x_nm), np.asarray(s.core_y_nm))[core]
    left = run(make_params(eta=0.3, blocked_fraction=0.25), coarse, times=TIMES[:16])
    up = run(make_params(eta=0.3, blocked_fraction=0.25, arc_center_rad=math.pi / 2), coarse, times=TIMES[:16])
    d_left = np.asarray(left.core_x_nm)[core]
    assert np.all(d_left < -25.0)  # towards the blocked arc on the left (measured -31 nm at 60 s)
    assert np.max(d_sym) < 0.05 * np.max(np.abs(d_left))  # measured: 1.3 nm against ~300 nm
    np.testing.assert_allclose(np.asarray(up.core_y_nm)[core], -d_left, atol=0.05 * np.max(np.abs(d_left)))


def test_charge_rest_protocol_and_snapshots(coarse):
    params = make_params(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=70.0)
    protocol = (Charge(max_duration_s=1200.0), Rest(duration_s=600.0))
    s = run(params, coarse, protocol, snapshot_times_s=(600.0, 1500.0))
    np.testing.assert_allclose(np.asarray(s.step_end_s), [1200.0, 1800.0], rtol=1e-12)
    assert not bool(s.step_cutoff[0]) and bool(np.all(s.reached))
    assert np.asarray(s.protocol_step).tolist() == [0] * 21 + [1] * 10
    spread = np.asarray(s.theta_max - s.theta_min)
    assert spread[30] < 0.5 * spread[20]  # relaxation during the rest
    capacity = np.asarray(s.passed_capacity_mAh_per_g)
    assert np.ptp(capacity[20:]) < 1e-10  # no net current at rest
    mean_at_snapshot = float(jnp.sum(coarse.mass * s.snapshots[0]) / coarse.area)
    assert mean_at_snapshot == pytest.approx(float(s.mean_theta[10]), abs=1e-12)


def test_batch_takes_own_steps_and_equals_single_runs(coarse):
    rates = (50.0, 150.0, 400.0)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[make_params(rate_mA_per_g=r) for r in rates])
    batch = jax.jit(jax.vmap(lambda p: solve.simulate(p, coarse, save_times_s=TIMES)))(stacked)
    assert len(set(np.asarray(batch.n_steps).tolist())) == 3
    for i, r in enumerate(rates):
        single = run(make_params(rate_mA_per_g=r), coarse)
        np.testing.assert_allclose(batch.core_fraction[i], single.core_fraction, atol=1e-10)
        assert float(batch.step_end_s[i, 0]) == pytest.approx(float(single.step_end_s[0]), rel=1e-9)  # 3e-11


def test_meshes_of_different_outlines_batch_without_recompiling():
    meshes = stack_meshes([Disk(), Ellipse(1.6)], COARSE)
    params = make_params(eta=0.3, blocked_fraction=0.25)
    traces = []

    def one(m):
        traces.append(1)
        return solve.simulate(params, m, save_times_s=TIMES[:6])

    f = jax.jit(jax.vmap(one))
    batch = f(meshes)
    f(jax.tree.map(lambda x: x[::-1], meshes))
    assert len(traces) == 1
    single = jax.jit(one)(jax.tree.map(lambda x: x[1], meshes))
    np.testing.assert_allclose(batch.core_x_nm[1], single.core_x_nm, atol=1e-8)
    assert abs(float(batch.core_x_nm[1, 5]) - float(batch.core_x_nm[0, 5])) > 1.0  # the shapes differ


def test_bad_times_are_rejected(coarse):
    with pytest.raises(ValueError, match="save_times_s"):
        solve.simulate(make_params(), coarse, save_times_s=[60.0, 30.0])
    with pytest.raises(ValueError, match="dtype"):
        solve.Numerics(dtype="float16")


def test_integer_exponent_promise_gives_the_same_solution(coarse):
    """``Numerics(integer_exponent=3)`` (the default exponent) takes the same steps to the same outputs; a promise
    that a concrete exponent breaks, or one without a power law, is refused before any compute."""
    params = make_params(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=400.0)
    general = run(params, coarse)
    fast = run(params, coarse, numerics=solve.Numerics(integer_exponent=3))
    assert int(fast.n_evaluations) == int(general.n_evaluations)
    for name in ("passed_capacity_mAh_per_g", "core_x_nm", "core_fraction", "line_cut", "core_vanish_s"):
        np.testing.assert_allclose(getattr(fast, name), getattr(general, name), rtol=1e-12, atol=2e-11,
                                   err_msg=name)  # measured: 4e-12 in core_x_nm, 1e-12 in the vanish time
    with pytest.raises(ValueError, match="integer_exponent"):
        solve.simulate(make_params(exponent=2.5), coarse, numerics=solve.Numerics(integer_exponent=3))
    with pytest.raises(ValueError, match="integer_exponent"):
        solve.simulate(make_params(diffusivity="constant"), coarse, numerics=solve.Numerics(integer_exponent=3))
    for bad in (0, 3.0, True):
        with pytest.raises(ValueError, match="integer_exponent"):
            solve.Numerics(integer_exponent=bad)


def _outputs(s, vanish=True):
    """Every kind of output: the capacity at the located cut-off, series by dense output (d, smooth core, line cut)
    and (``vanish``) the watched core-vanish time."""
    parts = [s.passed_capacity_mAh_per_g[-1], s.core_x_nm[5] * 1e-2, s.smooth_core_fraction[4], s.line_cut[3, 10]]
    return jnp.stack(parts + [s.core_vanish_s * 1e-2] if vanish else parts)


GRAD_NUMERICS = solve.Numerics(integrator=RKLSettings(max_steps=300, max_stages=64))
GRAD_TIMES = np.arange(0.0, 601.0, 60.0)
CASE_C = make_params(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=150.0)


def _richardson(f, x0, i, rel=5e-4):
    """Central difference with one Richardson extrapolation: O(eps**4) truncation with a step large enough that
    the forward run's rounding noise (~1e-9 relative: adaptive steps, up to 64 stages) stays below ~2e-6. The
    discrete solution is piecewise smooth in the inputs (stage and step counts are integers): with rel 1e-3 the
    2e-3 steps of the radius crossed a change of the step sequence (96 -> 97 steps) and the extrapolation was
    4e-5 off while the plain central difference at 1e-3 matched the AD derivative to 4e-6."""
    eps = rel * float(x0[i])
    e = jnp.zeros(x0.shape).at[i].set(eps)

    def cd(k):
        return (np.asarray(f(x0 + k * e)) - np.asarray(f(x0 - k * e))) / (2 * k * eps)

    return (4 * cd(1) - cd(2)) / 3


def _jacobians(coarse, inputs, numerics=GRAD_NUMERICS, reverse=True):
    """(jacrev in scan mode or None, jacfwd in while mode, Richardson central differences) of :func:`_outputs` with
    respect to the named inputs of case (c) at 150 mA/g."""
    x0 = jnp.asarray([{"rate_mA_per_g": 150.0, "radius_m": 1.2, "eta": 0.3}[k] for k in inputs])

    def f(x, differentiable):
        values = {k: x[i] * (1e-6 if k == "radius_m" else 1.0) for i, k in enumerate(inputs)}
        s = solve.simulate(replace(CASE_C, **values), coarse, numerics=numerics, save_times_s=GRAD_TIMES,
                           differentiable=differentiable)
        return _outputs(s), s.complete

    assert bool(jax.jit(lambda x: f(x, False)[1])(x0))
    rev = np.asarray(jax.jit(jax.jacrev(lambda x: f(x, True)[0]))(x0)) if reverse else None
    fwd = np.asarray(jax.jit(jax.jacfwd(lambda x: f(x, False)[0]))(x0))
    value = jax.jit(lambda x: f(x, False)[0])
    fd = np.stack([_richardson(value, x0, i) for i in range(len(inputs))], axis=1)
    return rev, fwd, fd


def _relative(a, b):
    """Largest |a - b| / max|b| per output (row)."""
    return np.max(np.abs(a - b), axis=1) / np.max(np.abs(b), axis=1)


INPUTS = ("rate_mA_per_g", "eta", "radius_m")


@pytest.mark.slow
def test_reverse_and_forward_mode_agree(coarse):
    """jax.jacrev (checkpointed scan, hand-written stage adjoint) equals jax.jacfwd (while loops) for every output
    (capacity at the located cut-off, d, smooth core fraction and line cut by dense output, the watched core-vanish
    time) and input: both differentiate the same discrete solution. Measured: <= 3.9e-12 relative (the line cut)."""
    rev, fwd, _ = _jacobians(coarse, INPUTS)
    assert np.all(_relative(rev, fwd) < 2e-11), _relative(rev, fwd)


@pytest.mark.slow
def test_gradients_converge_to_central_differences_as_the_tolerance_falls(coarse):
    """Derivatives are those of the discrete solution on the accepted steps (step sizes are the controller's
    choice and carry none), central differences those of the adaptive runs, whose steps move with the inputs: the
    two agree to the discretisation error, which falls with rtol. Measured, largest relative difference per output
    (over rate, eta, radius): 2.3e-2 at rtol 3e-3 (the core-vanish time), 2.2e-3 at 1e-4 (the line cut), 2.6e-4 at
    1e-6 (the line cut); the capacity at the cut-off 4e-9 throughout."""
    errors = []
    for rtol in (3e-3, 1e-4, 1e-6):
        numerics = solve.Numerics(integrator=RKLSettings(rtol=rtol, atol=rtol * 1e-2, max_steps=2000, max_stages=64))
        _, fwd, fd = _jacobians(coarse, INPUTS, numerics, reverse=False)
        errors.append(_relative(fwd, fd))
    worst = [float(np.max(e)) for e in errors]
    assert worst[0] > worst[1] > worst[2] and worst[2] < 1e-3, errors
    assert np.all(np.asarray(errors)[:, 0] < 2e-8), errors  # the capacity at cut-off: exact balance, located event


#: Every scalar input a model-A study sweeps or a fit fits, at case (c) (value, scale of the unit used).
REPLAY_INPUTS = {"rate_mA_per_g": (150.0, 1.0), "eta": (0.3, 1.0), "radius_m": (1.2, 1e-6),
                 "blocked_fraction": (0.25, 1.0), "arc_center_rad": (2.0, 1.0), "D_hi_m2_per_s": (1.0, 1e-15),
                 "theta_cut": (0.2, 1.0), "theta_core": (0.97, 1.0)}


def _replay_jacobians(base, mesh, inputs, outputs):
    """(jacfwd of the adaptive run, Richardson central differences of the run replaying its schedule) at ``base``
    with respect to ``inputs`` ({name: (value, unit)})."""
    names = tuple(inputs)
    x0 = jnp.asarray([inputs[k][0] for k in names])

    def sim(x, schedule=None):
        values = {k: x[i] * inputs[k][1] for i, k in enumerate(names)}
        return solve.simulate(replace(base, **values), mesh, numerics=GRAD_NUMERICS, save_times_s=GRAD_TIMES,
                              schedule=schedule)

    adaptive = jax.jit(sim)(x0)
    assert bool(adaptive.complete)
    schedule = adaptive.schedule
    jac = np.asarray(jax.jit(jax.jacfwd(lambda x: outputs(sim(x))))(x0))
    replayed = jax.jit(lambda x: outputs(sim(x, schedule)))
    np.testing.assert_array_equal(replayed(x0), outputs(adaptive))  # the replay is the same run
    # rel 3e-5: the replayed outputs are smooth between kinks where a node's occupancy crosses theta_core (the
    # clipping's pieces change); with 1e-4 the theta_core differences of d straddled one (3e-5 off).
    fd = np.stack([_richardson(replayed, x0, i, rel=3e-5) for i in range(len(names))], axis=1)
    assert np.all(np.isfinite(jac)) and np.all(np.any(jac != 0, axis=0)) and np.all(np.any(jac != 0, axis=1))
    return jac, fd


def test_gradients_match_central_differences_of_the_replayed_steps_to_1e_5(coarse):
    """jax.jacfwd of the adaptive run (whose step sizes, stage counts and final step are decisions, constants to
    the derivative) against central differences of the run that replays its steps (``Solution.schedule``): every
    output (capacity at the located cut-off, d, smooth core fraction and line cut by dense output, the watched
    core-vanish time) with respect to every model-A input. jax.jacrev equals jax.jacfwd
    (:func:`test_reverse_and_forward_mode_agree`), and the time to cut-off is added. Measured: <= 4.9e-7 relative
    over the 8 inputs (the line cut); central differences of adaptive runs instead see the steps move (2.3e-2 at
    default tolerances, :func:`test_gradients_converge_to_central_differences_as_the_tolerance_falls`)."""
    jac, fd = _replay_jacobians(CASE_C, coarse, REPLAY_INPUTS,
                                lambda s: jnp.concatenate([_outputs(s), s.step_end_s[:1] * 1e-2]))
    assert np.all(_relative(jac, fd) < 1e-5), _relative(jac, fd)


def test_model_b_gradients_match_central_differences_of_the_replayed_steps_to_1e_5(coarse):
    """The same for model B (film resistance, a voltage cut-off) with respect to its kinetic inputs: the voltage,
    d and the time to the voltage cut-off (the capacity passed by a time is the applied current's integral, with no
    derivative in these). Measured: <= 2.3e-6 relative (the cut-off time)."""
    base = make_params(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=150.0, surface_model="B",
                       voltage_cut_V=4.3)
    inputs = {"r_NMC_ohm_m2": (0.05, 1.0), "U0_V": (3.9, 1.0), "k_V": (0.3, 1.0), "eta": (0.3, 1.0)}

    def outputs(s):
        return jnp.stack([s.voltage_V[4], s.voltage_V[8], s.core_x_nm[5] * 1e-2, s.step_end_s[0] * 1e-2])

    jac, fd = _replay_jacobians(base, coarse, inputs, outputs)
    assert np.all(_relative(jac, fd) < 1e-5), _relative(jac, fd)


def _vmapped_gradients(coarse, vanish):
    def f(rate):
        p = replace(CASE_C, rate_mA_per_g=rate)
        return jnp.sum(_outputs(solve.simulate(p, coarse, numerics=GRAD_NUMERICS, save_times_s=GRAD_TIMES,
                                               differentiable=True), vanish))

    rates = jnp.asarray([150.0, 300.0])
    single = np.asarray([float(jax.jit(jax.grad(f))(r)) for r in rates])
    return (np.asarray(jax.jit(jax.grad(lambda r: jnp.sum(jax.vmap(f)(r))))(rates)),
            np.asarray(jax.jit(jax.vmap(jax.grad(f)))(rates)), single)


@pytest.mark.slow
def test_grad_of_vmap_is_vmap_of_grad(coarse):
    a, b, single = _vmapped_gradients(coarse, vanish=False)
    np.testing.assert_allclose(a, b, rtol=1e-8)  # measured ~1e-10: batched and single kernels round differently
    np.testing.assert_allclose(b, single, rtol=1e-8)


@pytest.mark.slow
def test_grad_of_vmap_of_core_vanish_time(coarse):
    """grad-of-vmap equals vmap-of-grad and single runs for the core-vanish time too (was a strict xfail at ~1 %
    with the Gershgorin stage count; passes with the Lanczos one)."""
    a, b, single = _vmapped_gradients(coarse, vanish=True)
    np.testing.assert_allclose(a, single, rtol=1e-6)
    np.testing.assert_allclose(b, single, rtol=1e-6)


def test_cutoff_time_and_capacity_gradients_follow_the_solution_not_the_step_controller():
    """d(capacity at cut-off)/d(eta) and d(time to cut-off)/d(eta) of the adaptive run to its located cut-off, in
    both loop modes, against central differences of the forward runs (spacing 1/8, default tolerances).

    Regression: with derivatives flowing through the PI controller's step sizes, reverse and forward mode gave
    -2.3 and -6.1 mAh/g against +0.98 by differences. Measured with step sizes as controller choices: reverse
    0.98166, forward 0.98182, differences 0.98149 (relative 1.7e-4 and 3.3e-4); the same for the time.
    """
    from fluxsim.core import outputs

    base = make_params(blocked_fraction=0.25)
    numerics = solve.Numerics(spacing=1 / 8)
    mesh = mesh_outline(Disk(), numerics.spacing)
    times = tuple(float(t) for t in range(0, 10_001, 250))

    def both(eta, differentiable):
        s = solve.simulate(replace(base, eta=eta), mesh, (Charge(),), numerics, times,
                           differentiable=differentiable)
        return jnp.stack([outputs.capacity_at_cutoff(s), outputs.time_to_cutoff(s)])

    forward = jax.jit(lambda e: both(e, False))
    h = 1e-3
    differences = np.asarray((forward(0.3 + h) - forward(0.3 - h)) / (2 * h))
    reverse = np.asarray(jax.jacrev(lambda e: both(e, True))(0.3))
    tangent = np.asarray(jax.jit(jax.jacfwd(lambda e: both(e, False)))(0.3))
    print("differences", differences, "reverse", reverse, "forward", tangent)
    assert differences[0] > 0 and differences[1] > 0  # less blocking: more capacity, later cut-off
    np.testing.assert_allclose(reverse, differences, rtol=1e-3)
    np.testing.assert_allclose(tangent, differences, rtol=1e-3)


def test_reverse_mode_with_the_mesh_as_a_jit_argument(coarse):
    """jax.grad of a differentiable run whose mesh is traced (an argument of jit, as in batched studies and fits):
    the mesh's integer and boolean arrays (neighbour indices, masks) are tracers then, which the hand-written
    adjoint must take as explicit inputs. Regression: a leaked-tracer error at lowering."""
    def capacity(eta, mesh):
        s = solve.simulate(replace(CASE_C, eta=eta), mesh, numerics=GRAD_NUMERICS, save_times_s=GRAD_TIMES,
                           differentiable=True)
        return s.passed_capacity_mAh_per_g[-1] + s.core_x_nm[5] * 1e-2

    traced = float(jax.jit(jax.grad(capacity))(0.3, coarse))
    closed = float(jax.jit(jax.grad(lambda eta: capacity(eta, coarse)))(0.3))
    assert np.isfinite(traced) and traced != 0
    np.testing.assert_allclose(traced, closed, rtol=1e-12)

"""Unit tests of :mod:`fluxsim.model.surface`: the blocked-surface weights and the two surface kinetics models.

Reference weights are computed independently by an exact piecewise integration: between consecutive breakpoints (arc
ends and profile nodes, unwrapped into the dual arc) the transfer profile g is linear, so the integral over each
piece is its length times g at its midpoint, exactly. Tolerances are float64 rounding: angles are O(2 pi), so the
antiderivative differences in fluxsim carry absolute errors of a few eps * 2 pi * max|g| per evaluation.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxsim  # noqa: F401  (float64)
from fluxsim.core.polar.grid import PolarGrid
from fluxsim.model.constants import FARADAY_C_PER_MOL, GAS_CONSTANT_J_PER_MOL_K
from fluxsim.model.surface import FilmResistance, FluxRatio, make_blocking

EPS = np.finfo(float).eps
TWO_PI = 2 * math.pi
NPHIS = [8, 12, 37, 128]
# Absolute rounding of one antiderivative difference at angles up to ~4 pi with profile values up to 2: the
# antiderivative is a sum of O(n) terms of size <= 2 pi * 2; we allow 64 eps * 4 pi * 2 per node.
ATOL = 64 * EPS * 4 * math.pi * 2


def _arcs_to_rows(arcs):
    return np.array([[c, f, e] for c, f, e in arcs], float).reshape(-1, 3)


def exact_weights(nphi, arcs, profile=None):
    """Integral of g over each dual arc [phi_j - dphi/2, phi_j + dphi/2], by exact piecewise integration.

    arcs: list of (centre, fraction, eta); profile: samples p_i at 2 pi i / n (periodic, linear), or None.
    """
    dphi = TWO_PI / nphi
    breaks = []
    for c, f, _ in arcs:
        breaks += [c - math.pi * f, c + math.pi * f]
    n = 0 if profile is None else len(profile)
    if n:
        breaks += list(TWO_PI * np.arange(n) / n)
    breaks = np.array(breaks) if breaks else np.zeros(0)

    def g(phi):
        value = 1.0
        if n:
            grid = TWO_PI * np.arange(n + 1) / n
            value = np.interp(np.mod(phi, TWO_PI), grid, np.append(profile, profile[0]))
        factor = 1.0
        for c, f, e in arcs:
            dist = abs(np.mod(phi - c + math.pi, TWO_PI) - math.pi)
            if f >= 1 or dist < math.pi * f:
                factor -= 1.0 - e
        return value * factor

    out = np.empty(nphi)
    for j in range(nphi):
        a, b = (j - 0.5) * dphi, (j + 0.5) * dphi
        cuts = [a, b]
        for x in breaks:  # all periodic copies inside (a, b)
            k0 = math.ceil((a - x) / TWO_PI)
            for k in range(k0, k0 + 2):
                y = x + k * TWO_PI
                if a < y < b:
                    cuts.append(y)
        cuts = np.sort(cuts)
        out[j] = sum((hi - lo) * g((lo + hi) / 2) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo)
    return out


@functools.partial(jax.jit, static_argnums=0)
def _weights(nphi, blocking):
    grid = PolarGrid(2, nphi)
    start, end = grid.boundary_arcs
    return blocking.node_weights(jnp.asarray(start), jnp.asarray(end))


def weights(nphi, eta=1.0, fraction=0.0, centre=math.pi, extra=None, profile=None):
    """Node weights on an nphi grid. Extra arcs are padded to two rows with empty arcs (fraction 0: no effect) and
    scalars passed as Python floats, so few distinct compilations serve all tests."""
    rows = np.zeros((2, 3)) if extra is None else np.asarray(extra, float).reshape(-1, 3)
    rows = np.concatenate([rows, np.zeros((2 - len(rows), 3))]) if len(rows) < 2 else rows
    blocking = make_blocking(float(eta), float(fraction), float(centre), rows, profile)
    return np.asarray(_weights(nphi, blocking))


fractions = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))
centres = st.floats(-3 * math.pi, 5 * math.pi)  # any real angle: the arc position is taken modulo 2 pi
etas = st.floats(0.0, 1.0)


@settings(max_examples=30, deadline=None)
@given(nphi=st.sampled_from(NPHIS), centre=centres, fraction=fractions, eta=etas)
def test_weights_sum_to_blocked_perimeter(nphi, centre, fraction, eta):
    """Sum of the node weights = integral of g over the circle = 2 pi (1 - f + f eta), exactly (to rounding), for any
    arc position, including arcs whose ends cut through dual arcs, f = 0 and f = 1."""
    w = weights(nphi, eta, fraction, centre)
    assert abs(w.sum() - TWO_PI * (1 - fraction + fraction * eta)) <= nphi * ATOL
    # Every node weight is between eta * dphi and dphi (g lies between eta and 1).
    dphi = TWO_PI / nphi
    assert np.all(w >= eta * dphi - ATOL) and np.all(w <= dphi + ATOL)


def _non_overlapping_arcs(rng, n_arcs, max_total):
    """Random disjoint arcs (centre, fraction, eta) with total fraction <= max_total, in random order round the
    circle starting at a random angle (so some straddle phi = 0)."""
    parts = rng.dirichlet(np.ones(2 * n_arcs)) * TWO_PI
    lengths, gaps = parts[::2] * max_total, parts[1::2] + parts[::2] * (1 - max_total)
    start = rng.uniform(0, TWO_PI)
    arcs = []
    for length, gap in zip(lengths, gaps):
        arcs.append((start + length / 2, length / TWO_PI, rng.uniform(0, 1)))
        start += length + gap
    return arcs


@settings(max_examples=30, deadline=None)
@given(nphi=st.sampled_from([8, 37]), seed=st.integers(0, 2**32 - 1), with_profile=st.booleans())
def test_weights_equal_exact_integral_per_node(nphi, seed, with_profile):
    """Each node weight is the exact integral of g over its dual arc, for three disjoint arcs (primary + two extra
    arcs with their own eta, some straddling phi = 0) times an optional sampled eta_profile (7 samples: its nodes
    do not align with the grid), piecewise linear and periodic."""
    rng = np.random.default_rng(seed)
    arcs = _non_overlapping_arcs(rng, 3, max_total=rng.uniform(0.0, 1.0))
    profile = rng.uniform(0.2, 2.0, 7) if with_profile else None
    (c, f, e), extra = arcs[0], _arcs_to_rows(arcs[1:])
    w = weights(nphi, e, f, c, extra, profile)
    np.testing.assert_allclose(w, exact_weights(nphi, arcs, profile), rtol=0, atol=ATOL)


def test_weights_match_brute_force_quadrature():
    """Node weights equal a brute-force midpoint quadrature of g with N = 20000 points per dual arc. g is piecewise
    constant here, so the quadrature is exact except in the one sub-interval around each arc end, where it errs by
    at most (dphi / N) * |jump| (jump = 1 - eta <= 1): tolerance (dphi / N) for each of the 4 arc ends."""
    nphi, n = 12, 20000
    arcs = [(2.9, 0.23, 0.3), (0.1, 0.15, 0.7)]  # the second straddles phi = 0
    w = weights(nphi, 0.3, 0.23, 2.9, _arcs_to_rows(arcs[1:]))
    dphi = TWO_PI / nphi
    u = (np.arange(n) + 0.5) / n
    for j in range(nphi):
        phi = (j - 0.5 + u) * dphi
        g = np.ones(n)
        for c, f, e in arcs:
            dist = np.abs(np.mod(phi - c + math.pi, TWO_PI) - math.pi)
            g -= (1 - e) * (dist < math.pi * f)
        brute = g.mean() * dphi
        assert abs(w[j] - brute) <= 4 * dphi / n + ATOL, j


def test_wrap_around_phi_zero():
    """An arc across phi = 0 (centre 0, -0.1, 2 pi - 0.1, 4 pi - 0.1) gives the same weights for every equivalent
    centre, splits its blocking between node 0 and the last nodes, and matches the exact integral."""
    nphi = 16
    arc = (-0.1, 0.1, 0.25)
    w = weights(nphi, arc[2], arc[1], arc[0])
    for shift in (TWO_PI, 2 * TWO_PI, -TWO_PI):
        np.testing.assert_allclose(weights(nphi, arc[2], arc[1], arc[0] + shift), w, rtol=0, atol=ATOL)
    np.testing.assert_allclose(w, exact_weights(nphi, [arc]), rtol=0, atol=ATOL)
    dphi = TWO_PI / nphi
    # The arc [-0.414, 0.214] meets the dual arcs of nodes 15 ([-0.589, -0.196]), 0 and 1 ([0.196, 0.589]) only.
    assert w[15] < dphi and w[0] < dphi and w[1] < dphi
    assert np.all(np.abs(w[2:15] - dphi) <= ATOL)
    assert abs(w[0] - 0.25 * dphi) <= ATOL  # node 0's dual arc lies wholly inside


@pytest.mark.parametrize("k", [1, 3, -5])
def test_rotation_by_grid_angle_permutes_weights(k):
    """Rotating every arc (and a profile sampled on the grid's own angles) by k dphi rolls the weights by k."""
    nphi = 12
    dphi = TWO_PI / nphi
    arcs = [(2.0, 0.3, 0.2), (5.5, 0.1, 0.6)]
    profile = np.random.default_rng(0).uniform(0.5, 1.5, nphi)
    w0 = weights(nphi, arcs[0][2], arcs[0][1], arcs[0][0], _arcs_to_rows(arcs[1:]), profile)
    rotated = [(c + k * dphi, f, e) for c, f, e in arcs]
    w1 = weights(nphi, rotated[0][2], rotated[0][1], rotated[0][0], _arcs_to_rows(rotated[1:]), np.roll(profile, k))
    np.testing.assert_allclose(w1, np.roll(w0, k), rtol=0, atol=ATOL)


def test_profile_alone_is_integrated_exactly():
    """With no arcs, a sampled profile's weights are the exact integrals of its periodic piecewise-linear
    interpolant (trapezoid over the profile nodes inside the dual arc is exact for piecewise-linear functions); a
    constant profile c gives c dphi; the weights sum to the integral of the periodic interpolant over the circle,
    2 pi mean(p) (the trapezoid rule on the profile's own nodes)."""
    nphi = 37
    profile = np.random.default_rng(1).uniform(0.1, 2.0, 7)
    w = weights(nphi, profile=profile)
    np.testing.assert_allclose(w, exact_weights(nphi, [], profile), rtol=0, atol=ATOL)
    assert abs(w.sum() - TWO_PI * profile.mean()) <= nphi * ATOL
    np.testing.assert_allclose(weights(nphi, profile=np.full(7, 0.6)), 0.6 * TWO_PI / nphi, rtol=0, atol=ATOL)


# ---- model A: FluxRatio -------------------------------------------------------------------------------------------
_outflow_a = jax.jit(lambda model, theta, w, i, c: model.outflow(theta, w, i, c))


@pytest.mark.parametrize("normalisation", ["total_current", "open_surface"])
def test_flux_ratio_totals(normalisation):
    """Model A: the outflow is proportional to the weights; "total_current" passes flux_scale * 2 pi in total for
    every eta and f (the applied current is conserved), "open_surface" passes flux_scale * sum(weights) (the blocked
    arc loses current); no state dependence (zero slope) and no voltage (NaN)."""
    w = weights(16, 0.3, 0.25, 2.0)
    theta = np.random.default_rng(3).uniform(0.2, 1.0, 16)
    current, to_flux = 0.287, 3.1
    out, slope, v = (np.asarray(a) for a in _outflow_a(FluxRatio(normalisation), theta, w, current, to_flux))
    total = current * to_flux * (TWO_PI if normalisation == "total_current" else w.sum())
    assert abs(out.sum() - total) <= 16 * ATOL * current * to_flux
    np.testing.assert_allclose(out / w, out[0] / w[0], rtol=16 * EPS)
    assert np.all(slope == 0) and np.isnan(v)
    assert not FluxRatio.state_dependent


def test_flux_ratio_rejects_unknown_normalisation():
    """An unknown normalisation is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="total_current"):
        FluxRatio("per_area").outflow(jnp.ones(8), jnp.ones(8), 1.0, 1.0)


# ---- model B: FilmResistance ---------------------------------------------------------------------------------------
MODEL_B = FilmResistance(r_NMC_ohm_m2=0.05)
_outflow_b = jax.jit(lambda model, theta, w, i, c: model.outflow(theta, w, i, c))


def _surface_state(seed, nphi=16):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.999, nphi), weights(nphi, 0.3, 0.25, 2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("current", [0.287, -1.3, 0.0])
def test_film_resistance_galvanostatic_constraint(seed, current):
    """Model B: for arbitrary surface occupancies the outflow sums to current * 2 pi * current_to_flux (the integral
    of i over the perimeter equals ibar 2 pi R), so Li leaves at exactly the applied rate; at rest (current 0) Li is
    redistributed through the film with zero net flow but nonzero local flows when theta varies."""
    theta, w = _surface_state(seed)
    to_flux = 3.1
    out, _, v = (np.asarray(a) for a in _outflow_b(MODEL_B, theta, w, current, to_flux))
    u = np.asarray(MODEL_B.ocp(theta))
    conductance = w / 0.05 * to_flux
    # Each term conductance * (V - U) is a difference of potentials of size <= 5 V, so it carries an absolute rounding
    # of a few eps * 5 V * conductance; the sum adds n of them.
    rounding = 16 * EPS * 5.0 * conductance.sum()
    assert abs(out.sum() - current * TWO_PI * to_flux) <= rounding + 16 * EPS * abs(current) * TWO_PI * to_flux
    # The local current density is (V - U) / r on open surface, eta times that on the blocked arc.
    np.testing.assert_allclose(out, conductance * (v - u), rtol=0, atol=16 * EPS * 5.0 * conductance.max())
    if current == 0.0:
        # V is a weighted mean of U, so some node is at least half the OCP spread away from it.
        assert np.max(np.abs(out / conductance)) >= (u.max() - u.min()) / 2 * (1 - 1e-12) > 0.05


def test_film_resistance_uniform_rest_is_zero():
    """At rest with a uniform surface occupancy V = U everywhere, so nothing flows."""
    _, w = _surface_state(0)
    out, _, v = (np.asarray(a) for a in _outflow_b(MODEL_B, np.full(16, 0.6), w, 0.0, 3.1))
    assert abs(v - float(MODEL_B.ocp(0.6))) <= 16 * EPS * 4
    assert np.all(np.abs(out) <= 64 * EPS * 4 * np.abs(w / 0.05 * 3.1).max())


def test_ocp_formula_and_slope():
    """U(theta) = U0 - (R T / F) ln(theta / (1 - theta)) - k (theta - 0.5) (docs/model.md section 3), and ocp_slope is
    its derivative: equal to jax.grad(ocp) to rounding (the log's derivative 1/(theta(1 - theta)) is exact)."""
    theta = np.linspace(0.01, 0.99, 99)
    thermal = GAS_CONSTANT_J_PER_MOL_K * 298.0 / FARADAY_C_PER_MOL
    expected = 3.9 - thermal * np.log(theta / (1 - theta)) - 0.3 * (theta - 0.5)
    np.testing.assert_allclose(np.asarray(jax.jit(MODEL_B.ocp)(theta)), expected, rtol=16 * EPS)
    grad = np.asarray(jax.jit(jax.vmap(jax.grad(MODEL_B.ocp)))(jnp.asarray(theta)))
    slope = np.asarray(jax.jit(MODEL_B.ocp_slope)(theta))
    np.testing.assert_allclose(slope, grad, rtol=64 * EPS)
    assert np.all(slope < 0)
    assert float(MODEL_B.ocp(0.5)) == pytest.approx(3.9, abs=16 * EPS)


@pytest.mark.parametrize("current", [0.287, 0.0])
def test_film_resistance_jacobian(current):
    """local_slope is the diagonal derivative of the outflow with V held fixed (-conductance * U'), and the full
    Jacobian (V follows the constraint) is diag(e) - omega e^T with omega = w / sum(w), the rank-one structure that
    operators.factor_operator takes as surface_slope / surface_share. Both to rounding of products of O(1) terms."""
    theta, w = _surface_state(4)
    to_flux = 3.1
    _, slope, v = (np.asarray(a) for a in _outflow_b(MODEL_B, theta, w, current, to_flux))

    def fixed_v(th):
        return w / MODEL_B.r_NMC_ohm_m2 * to_flux * (v - MODEL_B.ocp(th))

    jac_fixed = np.asarray(jax.jit(jax.jacfwd(fixed_v))(jnp.asarray(theta)))
    scale = np.abs(slope).max()
    np.testing.assert_allclose(np.diag(jac_fixed), slope, rtol=0, atol=64 * EPS * scale)
    assert np.all(jac_fixed[~np.eye(16, dtype=bool)] == 0)
    assert np.all(slope > 0)  # U' < 0: delithiating a node raises its own outflow
    full = np.asarray(jax.jit(jax.jacfwd(lambda th: MODEL_B.outflow(th, w, current, to_flux)[0]))(jnp.asarray(theta)))
    omega = w / w.sum()
    np.testing.assert_allclose(full, np.diag(slope) - np.outer(omega, slope), rtol=0, atol=64 * 16 * EPS * scale)
    # Columns sum to zero: perturbing any node's occupancy leaves the total current unchanged.
    assert np.all(np.abs(full.sum(axis=0)) <= 64 * 16 * EPS * scale)

"""Unit tests of :mod:`fluxsim.core.polar.metrics`: the Li-rich core (hard and smooth), the mean and the line cut.

Rounding model: the core moments are sums over ``ntri`` triangles of terms bounded by the triangle's area (times
|x| <= 1), so their absolute rounding is below ``c ntri eps pi`` (we take c = 64); a centroid divides a moment by the
core area, so its rounding is that bound over the core area.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fluxsim  # noqa: F401  (float64)
from fluxsim.core import clipping
from fluxsim.core.polar import metrics
from fluxsim.core.polar.grid import PolarGrid

EPS = np.finfo(float).eps
GRID = PolarGrid(8, 32)
SMALL = PolarGrid(5, 12)

_core = jax.jit(metrics.core, static_argnums=0)
_mean = jax.jit(metrics.mean, static_argnums=0)
_cut = jax.jit(metrics.line_cut, static_argnums=0)


def core_of(grid, theta, threshold):
    """Hard core as (fraction, x, y) floats; consistent argument types so each grid compiles once."""
    return tuple(float(v) for v in _core(grid, jnp.asarray(theta, jnp.float64), float(threshold)))


def moment_tol(grid):
    return 64 * len(grid.triangles) * EPS * math.pi


# ---- an independent reference: half-plane clip of the inscribed polygon -------------------------------------------
def clip_polygon(px, py, a, b, c):
    """Sutherland-Hodgman: the part of the polygon (CCW vertices) where a x + b y + c > 0."""
    out = []
    n = len(px)
    for k in range(n):
        x0, y0, x1, y1 = px[k], py[k], px[(k + 1) % n], py[(k + 1) % n]
        f0, f1 = a * x0 + b * y0 + c, a * x1 + b * y1 + c
        if f0 > 0:
            out.append((x0, y0))
        if (f0 > 0) != (f1 > 0):
            t = f0 / (f0 - f1)
            out.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
    return out


def polygon_area_centroid(points):
    """Shoelace area and centroid of a simple polygon (CCW)."""
    if len(points) < 3:
        return 0.0, math.nan, math.nan
    x, y = np.array(points).T
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2
    if area <= 0:
        return 0.0, math.nan, math.nan
    cx = np.sum((x + np.roll(x, -1)) * cross) / (6 * area)
    cy = np.sum((y + np.roll(y, -1)) * cross) / (6 * area)
    return area, cx, cy


def linear_field(grid, a, b, c):
    x, y = grid.xy
    return a * x + b * y + c


@settings(max_examples=30, deadline=None)
@given(
    small=st.booleans(),
    angle=st.floats(0, 2 * math.pi),
    slope=st.floats(0.05, 20.0),
    offset=st.floats(-1.2, 1.2),
    threshold=st.floats(-1.0, 1.0),
)
def test_linear_field_core_is_exact_half_plane_clip(small, angle, slope, offset, threshold):
    """For theta = a x + b y + c the P1 interpolant is exact (quad centres are corner means), so the core
    {theta > threshold} is the inscribed polygon clipped by a half-plane: its area fraction (of polygon_area) and
    centroid equal the Sutherland-Hodgman clip, computed independently here."""
    grid = SMALL if small else GRID
    a, b = slope * math.cos(angle), slope * math.sin(angle)
    c = slope * offset + threshold  # the line a x + b y = threshold - c lies at signed distance -offset
    theta = linear_field(grid, a, b, c)
    fraction, cx, cy = core_of(grid, theta, threshold)
    px, py = grid.xy[0][-1], grid.xy[1][-1]
    area, ex, ey = polygon_area_centroid(clip_polygon(px, py, a, b, c - threshold))
    tol = moment_tol(grid)
    assert abs(fraction * grid.polygon_area - area) <= tol
    if area > 1e-6:
        assert abs(cx - ex) <= tol / area and abs(cy - ey) <= tol / area
    elif area == 0.0:
        assert fraction == 0.0 and cx == 0.0 and cy == 0.0  # no core: centroid reported as 0 (gradient-safe)


def test_uniform_fields():
    """A uniform field above the threshold is all core (fraction 1, centroid at the particle centre); at or below
    it there is no core (fraction 0; the centroid is then reported as 0, since NaN would poison gradients): the core
    is the strict superlevel set."""
    for value, expected in [(0.99, 1.0), (0.97, 0.0), (0.5, 0.0)]:
        fraction, cx, cy = core_of(GRID, np.full((9, 32), value), 0.97)
        assert abs(fraction - expected) <= moment_tol(GRID) / GRID.polygon_area
        if expected:
            assert abs(cx) <= moment_tol(GRID) and abs(cy) <= moment_tol(GRID)
        else:
            assert cx == 0.0 and cy == 0.0
    assert math.hypot(*core_of(GRID, np.full((9, 32), 0.99), 0.97)[1:]) <= 2 * moment_tol(GRID)


@settings(max_examples=30, deadline=None)
@given(rings=st.lists(st.floats(0.0, 1.0), min_size=9, max_size=9), threshold=st.floats(0.05, 0.95))
def test_radially_symmetric_field_has_centred_core(rings, threshold):
    """theta = f(r) (any ring values): the triangulation is invariant under rotation by dphi, so the core centroid is
    the centre to rounding (moment rounding / core area)."""
    theta = np.repeat(np.array(rings)[:, None], 32, axis=1)
    fraction, cx, cy = core_of(GRID, theta, threshold)
    area = fraction * GRID.polygon_area
    assume(area > 1e-9)
    assert math.hypot(cx, cy) <= 2 * moment_tol(GRID) / area


def _random_field(seed, grid=GRID):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.9, 1.0, (grid.nr + 1, grid.nphi))
    theta[0] = theta[0, 0]
    return theta


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), threshold=st.floats(0.91, 0.99), about_mid_ray=st.booleans())
def test_mirror_symmetric_field_has_centroid_on_the_axis(seed, threshold, about_mid_ray):
    """A field mirror-symmetric about the x axis (theta[:, j] = theta[:, -j]) has y-centroid 0 to rounding; also about
    the ray phi = dphi/2 between two grid rays (theta[:, j] = theta[:, 1 - j]), since each quad is split into four
    triangles symmetric about its own mid ray (a single diagonal would bias the centroid sideways)."""
    theta = _random_field(seed)
    j = np.arange(GRID.nphi)
    mirror = (1 - j) % GRID.nphi if about_mid_ray else (-j) % GRID.nphi
    theta = (theta + theta[:, mirror]) / 2
    fraction, cx, cy = core_of(GRID, theta, threshold)
    area = fraction * GRID.polygon_area
    assume(area > 1e-9)
    axis = GRID.dphi / 2 if about_mid_ray else 0.0
    perpendicular = -cx * math.sin(axis) + cy * math.cos(axis)
    assert abs(perpendicular) <= 2 * moment_tol(GRID) / area


def _support_area(grid, flat_index):
    """Total area of the triangles touching a node (incl. those through the quad centres it contributes to)."""
    tri = grid.triangles
    n_nodes = (grid.nr + 1) * grid.nphi
    centres = n_nodes + np.nonzero(np.any(grid.quads == flat_index, axis=1))[0]
    touching = np.any(np.isin(tri, np.concatenate([[flat_index], centres])), axis=1)
    x, y = (c[tri[touching]] for c in grid.triangle_points)
    return np.sum(0.5 * ((x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])))


def test_core_continuous_when_a_node_crosses_the_threshold():
    """Pushing one node's value through the threshold changes area and centroid by O(delta), not by a grid cell:
    the P1 core area is C1, with d(area)/d(node value) <= (support area) / gap (gap: the smallest distance from
    the threshold of the other values of the node's triangles, so the level line moves by at most h delta / gap
    within a support of size h). The centroid moves by <= 2 d(area) / area (|x| <= 1)."""
    theta = _random_field(7)
    node = (4, 5)
    threshold = 0.95
    flat = node[0] * GRID.nphi + node[1]
    values = np.concatenate([theta.ravel(), theta.ravel()[GRID.quads].mean(axis=1)])
    tri = GRID.triangles
    nodes_around = np.unique(tri[np.any(np.isin(tri, [flat]), axis=1)])
    others = values[nodes_around[(nodes_around != flat) & (nodes_around < theta.size)]]
    gap = np.min(np.abs(others - threshold))
    assert gap > 1e-3  # the seed gives a well-separated neighbourhood
    support = _support_area(GRID, flat)
    for delta in (1e-6, 1e-9):
        results = []
        for sign in (-1, 1):
            t = theta.copy()
            t[node] = threshold + sign * delta
            results.append(np.array(core_of(GRID, t, threshold)))
        (f0, x0, y0), (f1, x1, y1) = results
        d_area = abs(f1 - f0) * GRID.polygon_area
        # quad-centre values change by delta / 4 too: factor 2 on the support bound.
        bound = 2 * 2 * delta * support / gap + moment_tol(GRID)
        assert d_area <= bound, (delta, d_area, bound)
        area = f0 * GRID.polygon_area
        assert math.hypot(x1 - x0, y1 - y0) <= 2 * bound / area
    assert math.hypot(x1 - x0, y1 - y0) < 1e-6 * GRID.dr  # delta = 1e-9: far below a grid spacing


def test_front_sweep_moves_centroid_smoothly():
    """A straight front theta = x - s swept across the grid (91 positions, crossing every ring of nodes) moves the
    core centroid monotonically and by O(ds) per step, never by a grid spacing: the 'no jump' property of
    docs/model.md section 6 along a path. For the core {x > s} of area A(s) and chord length L(s) <= 2,
    d(cx)/ds = L (cx - s) / A, so |d(cx)/ds| <= 4 / A, with A at the step's right end (A decreases with s)."""
    x, _ = GRID.xy
    shifts = np.linspace(-0.9, 0.9, 91)
    ds = shifts[1] - shifts[0]
    results = np.array([core_of(GRID, x - s, 0.0) for s in shifts])
    fractions, cx = results[:, 0], results[:, 1]
    assert np.all(np.diff(fractions) < 0)
    assert np.all(np.diff(cx) > 0)  # the core {x > s} and its centroid move right as s grows
    speed = np.diff(cx) / ds
    assert np.all(speed <= 4 / (fractions[1:] * GRID.polygon_area))


# ---- smooth core ---------------------------------------------------------------------------------------------------
# Forward mode through smooth_core: one compilation serves for values (zero tangents) and for directional derivatives
# w.r.t. field, threshold and width (reverse mode through the eight unrolled clipping passes costs ~3x more compile
# time for the same information).
_smooth_jvp = jax.jit(
    lambda args, tangents: jax.jvp(lambda *a: tuple(metrics.smooth_core(GRID, *a)), args, tangents)
)
_hard_fraction_grad = jax.jit(jax.grad(lambda th, c: metrics.core(GRID, th, c).fraction, argnums=(0, 1)))


def _jvp_args(*values):
    """Strongly typed float64 arrays, so every call hits the same compiled _smooth_jvp."""
    return tuple(jnp.asarray(v, jnp.float64) for v in values)


def smooth_values(theta, threshold, width):
    """(fraction, x, y) of smooth_core."""
    args = _jvp_args(theta, threshold, width)
    primal, _ = _smooth_jvp(args, tuple(jnp.zeros_like(a) for a in args))
    return np.array([float(v) for v in primal])


def _field_with_gap(seed):
    """A random field and a threshold in the middle of the largest gap between its interpolation-point values."""
    theta = _random_field(seed)
    values = np.sort(np.concatenate([theta.ravel(), theta.ravel()[GRID.quads].mean(axis=1)]))
    inner = values[(values > 0.93) & (values < 0.97)]
    k = np.argmax(np.diff(inner))
    return theta, (inner[k] + inner[k + 1]) / 2, np.diff(inner)[k] / 2


def test_smooth_core_limit_and_derivatives():
    """Smooth core (one test, as both halves share one expensive compilation):

    * smooth_core averages the hard core over thresholds c + w logit(u) by symmetric Gauss-Legendre quadrature in u.
      While all those thresholds stay between two consecutive nodal values, every triangle's clipped area is
      quadratic and its moments cubic in the threshold, and the odd moments of logit(u) vanish, so
      smooth - hard = C w^2 exactly: the observed order is 2 to rounding (we allow 0.05). For thresholds crossing
      node values the difference still decreases monotonically as w -> 0.
    * fraction + centroid distance have finite directional derivatives w.r.t. the field, the threshold and the
      width, matching central finite differences (steps 1e-7 in occupancy, 1e-9 in width: the metric's curvature
      scale is the width 0.005, so truncation ~ (step / 0.005)^2 < 1e-9 and rounding ~ eps / step < 1e-6 relative,
      both below the 1e-5 tolerance);
    * the hard fraction (C1 in the nodal values) has finite reverse-mode gradients, non-negative in every nodal
      value, and raising the threshold shrinks the core."""
    theta, threshold, half_gap = _field_with_gap(3)
    max_logit = np.max(np.abs(clipping._LOGIT))
    widths = half_gap / max_logit * np.array([0.5, 0.25, 0.125])
    hard = np.array(core_of(GRID, theta, threshold))
    diffs = np.array([smooth_values(theta, threshold, w) - hard for w in widths])
    for q in range(3):  # fraction, x, y
        orders = np.log2(np.abs(diffs[:-1, q] / diffs[1:, q]))
        assert np.all(np.abs(orders - 2) < 0.05), (q, diffs[:, q], orders)
    theta = _random_field(4)
    hard = np.array(core_of(GRID, theta, 0.95))
    errors = [np.abs(smooth_values(theta, 0.95, w) - hard).max() for w in (1e-2, 1e-3, 1e-4, 1e-5)]
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:])) and errors[-1] < 1e-4, errors

    theta = _random_field(5)
    rng = np.random.default_rng(6)
    direction = rng.normal(size=theta.shape)
    direction[0] = direction[0, 0]
    args = _jvp_args(theta, 0.95, 0.005)

    def summary(t, c, w):
        f, x, y = smooth_values(t, c, w)
        return f + math.hypot(x, y)

    cases = [  # (tangent, step)
        ((direction, 0.0, 0.0), 1e-7),
        ((np.zeros_like(theta), 1.0, 0.0), 1e-7),
        ((np.zeros_like(theta), 0.0, 1.0), 1e-9),
    ]
    for tangent, step in cases:
        (f, x, y), (df, dx, dy) = _smooth_jvp(args, _jvp_args(*tangent))
        derivative = float(df) + (float(x) * float(dx) + float(y) * float(dy)) / math.hypot(float(x), float(y))
        assert np.isfinite(derivative)
        plus = summary(theta + step * tangent[0], 0.95 + step * tangent[1], 0.005 + step * tangent[2])
        minus = summary(theta - step * tangent[0], 0.95 - step * tangent[1], 0.005 - step * tangent[2])
        fd = (plus - minus) / (2 * step)
        assert abs(derivative - fd) <= 1e-5 * max(abs(fd), 1.0), (tangent[1:], derivative, fd)
    hard_theta, hard_c = _hard_fraction_grad(jnp.asarray(theta), 0.95)
    assert np.all(np.isfinite(np.asarray(hard_theta))) and np.isfinite(float(hard_c))
    assert float(hard_c) < 0
    assert np.all(np.asarray(hard_theta) >= 0)  # raising any nodal value can only grow the core


# ---- mean ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [SMALL, GRID], ids=str)
def test_mean_integrates_exactly(grid):
    """mean = sum(V theta) / pi, the discrete Li content: exact for constants; the nonradial Fourier modes
    r^k cos(m phi + a) (0 < m < nphi) integrate to exactly zero (sums of roots of unity); for r^2 it equals the closed
    form of the control-volume sum, 2 dr^4 (nr (nr - 1) / 2)^2 + (dr - dr^2 / 4)."""
    x, y = grid.xy
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    tol = 64 * grid.volume.size * EPS
    assert abs(float(_mean(grid, jnp.full(x.shape, 0.37))) - 0.37) <= tol
    modes = 0.37 + 0.2 * x - 0.3 * y + 0.1 * r**2 * np.cos(3 * phi + 0.2) + 0.05 * r**3 * np.sin(5 * phi)
    assert abs(float(_mean(grid, jnp.asarray(modes))) - 0.37) <= tol
    dr = grid.dr
    closed = 2 * dr**4 * (grid.nr * (grid.nr - 1) / 2) ** 2 + (dr - dr**2 / 4)
    assert abs(float(_mean(grid, jnp.asarray(r**2))) - closed) <= tol
    theta = _random_field(8, grid)
    assert abs(float(_mean(grid, jnp.asarray(theta))) - np.sum(grid.volume * theta) / math.pi) <= tol


# ---- line cut ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 3, 8, 31])
def test_line_cut_on_grid_ray_returns_node_values(k):
    """At a grid-aligned angle k dphi the cut is the node values: rays k + nphi/2 (reversed, s < 0), the centre, ray k
    (s > 0); the positive side points towards the angle: for theta = x cos(a) + y sin(a) the cut is s itself."""
    theta = _random_field(9)
    cut = np.asarray(_cut(GRID, jnp.asarray(theta), k * GRID.dphi))
    opposite = (k + GRID.nphi // 2) % GRID.nphi
    expected = np.concatenate([theta[1:, opposite][::-1], theta[:1, 0], theta[1:, k]])
    np.testing.assert_allclose(cut, expected, rtol=0, atol=4 * EPS)
    a = k * GRID.dphi
    s = np.arange(-GRID.nr, GRID.nr + 1) / GRID.nr
    cut = np.asarray(_cut(GRID, jnp.asarray(linear_field(GRID, math.cos(a), math.sin(a), 0.0)), a))
    np.testing.assert_allclose(cut, s, rtol=0, atol=16 * EPS)


@pytest.mark.parametrize("angle", [0.3, math.pi - 0.05, 4.0, -1.0, 7.5])
def test_line_cut_between_rays_interpolates_linearly_in_angle(angle):
    """Between grid rays each ring is interpolated linearly in angle (any real angle, taken modulo 2 pi); the centre
    sample is the centre value; for a linear field the cut is then s times the chord factor <= 1."""
    theta = _random_field(10)
    cut = np.asarray(_cut(GRID, jnp.asarray(theta), angle))
    assert cut.shape == (2 * GRID.nr + 1,)

    def ray(a):
        u = (a % (2 * math.pi)) / GRID.dphi
        j0 = int(math.floor(u)) % GRID.nphi
        w = u - math.floor(u)
        return (1 - w) * theta[1:, j0] + w * theta[1:, (j0 + 1) % GRID.nphi]

    expected = np.concatenate([ray(angle + math.pi)[::-1], theta[:1, 0], ray(angle)])
    np.testing.assert_allclose(cut, expected, rtol=0, atol=64 * EPS)
    lin = np.asarray(_cut(GRID, jnp.asarray(linear_field(GRID, math.cos(angle), math.sin(angle), 0.0)), angle))
    s = np.arange(-GRID.nr, GRID.nr + 1) / GRID.nr
    # Linear interpolation between rays at +-dphi/2 of the axis under-reads r by at most 1 - cos(dphi / 2).
    assert np.all(np.abs(lin - s) <= np.abs(s) * (1 - math.cos(GRID.dphi / 2)) + 16 * EPS)
    assert np.all(np.sign(lin[GRID.nr + 1 :]) > 0)

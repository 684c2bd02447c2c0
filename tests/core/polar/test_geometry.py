"""Unit tests of :class:`fluxsim.core.polar.grid.PolarGrid`: control volumes, conductances, dual arcs, triangulation.

Everything here is plain numpy, so the tolerances are float64 rounding: a sum of ``n`` terms of size ``|a|`` carries an
error of at most about ``n * eps * |a|``; we allow a few ``eps`` times the sum of magnitudes.
"""

import math

import numpy as np
import pytest

import fluxsim  # noqa: F401  (enables float64, as everywhere else)
from fluxsim.core.polar.grid import PolarGrid

EPS = np.finfo(float).eps
GRIDS = [(2, 8), (5, 12), (8, 32), (16, 64), (13, 37)]


@pytest.mark.parametrize(("nr", "nphi"), GRIDS)
def test_volumes_tile_the_unit_disk(nr, nphi):
    """The control volumes sum to pi (the area of the unit disk) up to summation rounding."""
    v = PolarGrid(nr, nphi).volume
    assert v.shape == (nr + 1, nphi)
    assert np.all(v > 0)
    # Summing (nr + 1) * nphi positive terms: rounding <= n * eps * sum.
    assert abs(v.sum() - math.pi) <= v.size * EPS * math.pi


@pytest.mark.parametrize(("nr", "nphi"), GRIDS)
def test_volumes_are_annular_sector_areas(nr, nphi):
    """Each node owns the annular sector [r_i - dr/2, r_i + dr/2] x [phi_j -+ dphi/2] (clipped to r <= 1), and the
    centre the disk of radius dr/2, split evenly over the nphi copies of row 0."""
    g = PolarGrid(nr, nphi)
    dr, dphi = 1.0 / nr, 2 * math.pi / nphi
    expected = np.empty((nr + 1, nphi))
    expected[0] = math.pi * (dr / 2) ** 2 / nphi
    for i in range(1, nr + 1):
        r_lo, r_hi = (i - 0.5) * dr, min((i + 0.5) * dr, 1.0)
        expected[i] = dphi / 2 * (r_hi**2 - r_lo**2)
    np.testing.assert_allclose(g.volume, expected, rtol=8 * EPS, atol=0)
    assert g.centre_volume == pytest.approx(math.pi * (dr / 2) ** 2, rel=4 * EPS)
    assert abs(g.volume[0].sum() - g.centre_volume) <= 4 * nphi * EPS * g.centre_volume


@pytest.mark.parametrize(("nr", "nphi"), GRIDS)
def test_coordinates(nr, nphi):
    """Nodes sit at r_i = i / nr, phi_j = 2 pi j / nphi (counter-clockwise from +x); row 0 is the centre."""
    g = PolarGrid(nr, nphi)
    np.testing.assert_allclose(g.r, np.arange(nr + 1) / nr, rtol=0, atol=EPS)
    assert g.r[0] == 0.0 and g.r[-1] == 1.0
    np.testing.assert_allclose(g.phi, 2 * np.pi * np.arange(nphi) / nphi, rtol=0, atol=8 * EPS)
    x, y = g.xy
    assert np.all(x[0] == 0) and np.all(y[0] == 0)
    np.testing.assert_allclose(np.hypot(x, y), np.repeat(g.r[:, None], nphi, axis=1), rtol=0, atol=4 * EPS)
    # Ray 1 is counter-clockwise from ray 0 (positive y at small positive angle).
    assert y[-1, 1] > 0 and x[-1, 0] == 1.0


@pytest.mark.parametrize(("nr", "nphi"), GRIDS)
def test_radial_conductances(nr, nphi):
    """w_radial[k] = (face length) / (node distance): the face at r = (k + 1/2) dr spans dphi, nodes are dr apart."""
    g = PolarGrid(nr, nphi)
    dr, dphi = 1.0 / nr, 2 * math.pi / nphi
    face_length = (np.arange(nr) + 0.5) * dr * dphi
    np.testing.assert_allclose(g.w_radial, face_length / dr, rtol=4 * EPS, atol=0)


@pytest.mark.parametrize(("nr", "nphi"), GRIDS)
def test_azimuthal_conductances(nr, nphi):
    """w_azimuthal[i-1] = integral over the face [r_lo, r_hi] of dr / (r dphi), checked by Gauss quadrature (the
    integrand 1/r is smooth on the face, so 20-point Gauss-Legendre is exact to rounding)."""
    g = PolarGrid(nr, nphi)
    dr, dphi = 1.0 / nr, 2 * math.pi / nphi
    xs, ws = np.polynomial.legendre.leggauss(20)
    expected = []
    for i in range(1, nr + 1):
        lo, hi = (i - 0.5) * dr, min((i + 0.5) * dr, 1.0)
        r = (lo + hi) / 2 + (hi - lo) / 2 * xs
        expected.append(np.sum(ws / r) * (hi - lo) / 2 / dphi)
    # ln(3) at ring 1 has the largest 20-point error: (1/3)**40-ish, far below rounding.
    np.testing.assert_allclose(g.w_azimuthal, expected, rtol=16 * EPS, atol=0)
    # The surface ring's face is half-length, so its conductance is below the interior-ring limit dr / (r dphi).
    assert g.w_azimuthal[-1] < dr / dphi


@pytest.mark.parametrize(("nr", "nphi"), GRIDS)
def test_boundary_dual_arcs_tile_the_circle(nr, nphi):
    """Each surface node's dual arc is [phi_j - dphi/2, phi_j + dphi/2]; consecutive arcs share their ends and
    together cover exactly one turn."""
    g = PolarGrid(nr, nphi)
    start, end = g.boundary_arcs
    assert start.shape == end.shape == (nphi,)
    # Differences of angles up to 2 pi: rounding is a few eps * 2 pi in absolute terms.
    np.testing.assert_allclose(end - start, g.dphi, rtol=0, atol=8 * EPS * 2 * math.pi)
    np.testing.assert_allclose(start[1:], end[:-1], rtol=0, atol=16 * EPS)
    np.testing.assert_allclose((start + end) / 2, g.phi, rtol=0, atol=16 * EPS)
    assert abs((end[-1] - start[0]) - 2 * math.pi) <= 16 * EPS
    assert abs(np.sum(end - start) - 2 * math.pi) <= 4 * nphi * EPS


def _triangle_areas(g):
    x, y = (c[g.triangles] for c in g.triangle_points)
    return 0.5 * ((x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0]))


@pytest.mark.parametrize(("nr", "nphi"), GRIDS)
def test_triangles_positive_and_tile_inscribed_polygon(nr, nphi):
    """All P1 triangles are counter-clockwise (positive area) and their areas sum to polygon_area = nphi/2 sin(dphi),
    the area of the polygon inscribed in the unit circle through the surface nodes."""
    g = PolarGrid(nr, nphi)
    n_nodes = (nr + 1) * nphi
    tri = g.triangles
    assert tri.shape == (nphi + 4 * (nr - 1) * nphi, 3)
    assert tri.min() >= 0 and tri.max() == n_nodes + (nr - 1) * nphi - 1
    area = _triangle_areas(g)
    assert np.all(area > 0)
    # Shoelace area of the surface polygon, computed independently of the triangulation.
    x, y = g.xy[0][-1], g.xy[1][-1]
    shoelace = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    assert g.polygon_area == pytest.approx(0.5 * nphi * math.sin(2 * math.pi / nphi), rel=4 * EPS)
    assert shoelace == pytest.approx(g.polygon_area, rel=4 * nphi * EPS)
    assert abs(area.sum() - g.polygon_area) <= 4 * area.size * EPS * g.polygon_area
    assert g.polygon_area < math.pi


@pytest.mark.parametrize(("nr", "nphi"), [(5, 12), (8, 32)])
def test_triangulation_structure(nr, nphi):
    """Each quadrilateral is split into four triangles around its centre (the mean of its corners), which together
    have the quadrilateral's area; the centre enters only through flat index 0 (its nphi copies share one value)."""
    g = PolarGrid(nr, nphi)
    n_nodes = (nr + 1) * nphi
    px, py = g.triangle_points
    q = g.quads
    assert q.shape == ((nr - 1) * nphi, 4)
    np.testing.assert_allclose(px[n_nodes:], px[q].mean(axis=1), rtol=0, atol=4 * EPS)
    np.testing.assert_allclose(py[n_nodes:], py[q].mean(axis=1), rtol=0, atol=4 * EPS)
    area = _triangle_areas(g)[nphi:].reshape(4, -1).sum(axis=0)  # four splits of each quad, in quad order
    qx, qy = px[q], py[q]
    quad_area = 0.5 * np.sum(qx * np.roll(qy, -1, axis=1) - np.roll(qx, -1, axis=1) * qy, axis=1)
    np.testing.assert_allclose(area, quad_area, rtol=16 * EPS)
    # Only flat index 0 of row 0 is used for the centre (the repeated copies are never triangle vertices).
    used = np.unique(g.triangles)
    assert 0 in used and not np.any((used >= 1) & (used < nphi))


@pytest.mark.parametrize(
    ("nr", "nphi"),
    [(1, 8), (0, 8), (-3, 8), (2.0, 8), (8, 7), (8, 0), (8, 16.0), (None, 8), (8, "32")],
)
def test_invalid_sizes_raise(nr, nphi):
    """nr must be an int >= 2 and nphi an int >= 8; anything else is a ValueError naming the offending argument."""
    with pytest.raises(ValueError, match="nr" if not (isinstance(nr, int) and nr >= 2) else "nphi"):
        PolarGrid(nr, nphi)


def test_grid_is_hashable_value_object():
    """Grids compare and hash by (nr, nphi), so they can be static jit arguments."""
    assert PolarGrid(5, 12) == PolarGrid(5, 12)
    assert hash(PolarGrid(5, 12)) == hash(PolarGrid(5, 12))
    assert PolarGrid(5, 12) != PolarGrid(5, 16)
    assert PolarGrid(5, 12) != (5, 12)


def test_numpy_integer_sizes_are_accepted():
    """Sizes that are integers of any integer type (e.g. numpy's) are valid and give the same grid."""
    grid = PolarGrid(np.int64(8), np.int64(32))
    assert grid == PolarGrid(8, 32)
    assert grid.volume.shape == (9, 32)

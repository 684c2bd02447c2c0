"""Observables of one occupancy field: what operando optical microscopy measures (physics.md section 6).

All functions take a nodal field ``theta`` in the ``(nr + 1, nphi)`` layout of :class:`fluxsim.geometry.PolarGrid`
and are pure, jit- and vmap-friendly, and differentiable. Lengths are nondimensional (fractions of R).

The Li-rich core is the region where the *piecewise-linear (P1) interpolant* of the nodal field exceeds
``theta_core``. Its area and centroid are computed exactly, triangle by triangle, by clipping each triangle at the
level set. So the centroid offset moves continuously as the front crosses a node instead of jumping by a grid
spacing. The hard area is a C1 function of the nodal values.

The smooth variant replaces the indicator ``1[theta > c]`` by the logistic weight ``sigmoid((theta - c) / width)``.
Its integral equals the average of the hard core over thresholds ``c + width * logit(u)``, ``u ~ U(0, 1)``. That
average is evaluated with Gauss-Legendre quadrature in ``u``, so it converges to the hard metric as ``width -> 0``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from fluxsim.geometry import PolarGrid


class CoreGeometry(NamedTuple):
    """Area fraction and centroid (in units of R, relative to the particle centroid; 0 when there is no core)."""

    fraction: jnp.ndarray
    x: jnp.ndarray
    y: jnp.ndarray

    @property
    def distance(self):
        return jnp.hypot(self.x, self.y)


def _triangle_data(grid: PolarGrid):
    tri = grid.triangles
    x, y = (c[tri] for c in grid.triangle_points)
    area = 0.5 * ((x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0]))
    assert np.all(area > 0), "triangles must be counter-clockwise"
    return tri, x, y, area


def _sorted_vertices(values, x, y):
    """Sort each triangle's three vertices by value with a compare-and-swap network (cheaper than a generic sort)."""
    v = [values[:, k] for k in range(3)]
    px = [x[:, k] for k in range(3)]
    py = [y[:, k] for k in range(3)]
    for i, j in ((0, 1), (1, 2), (0, 1)):
        swap = v[i] > v[j]
        for arr in (v, px, py):
            arr[i], arr[j] = jnp.where(swap, arr[j], arr[i]), jnp.where(swap, arr[i], arr[j])
    return v, px, py


def _core_moments(grid: PolarGrid, theta, thresholds):
    """Area and first moments of ``{P1(theta) > c}`` for each threshold ``c`` in ``thresholds`` (1-D)."""
    tri, x, y, area = _triangle_data(grid)
    dtype = theta.dtype
    x, y, area = (jnp.asarray(a, dtype) for a in (x, y, area))
    flat = theta.ravel()
    values = jnp.concatenate([flat, jnp.mean(flat[grid.quads], axis=1)])[tri]
    return clip_moments(values, x, y, area, thresholds)


def clip_moments(values, x, y, area, thresholds):
    """Area and first moments of ``{P1 > c}`` on any triangles, for each threshold ``c`` in ``thresholds`` (1-D).

    Args:
        values, x, y: vertex values and coordinates of each triangle, ``(t, 3)``.
        area: triangle areas ``(t,)`` (> 0 for counter-clockwise triangles; 0 for inert padding triangles).
        thresholds: ``(k,)`` levels.

    Returns:
        ``(area (k,), moment_x (k,), moment_y (k,))`` of the super-level sets, summed over the triangles.

    The vertex order of a triangle does not depend on the threshold, so the values are sorted once.
    """
    dtype = values.dtype
    v, px, py = _sorted_vertices(values, x, y)

    def inverse(d):  # 1 / d, or 0 where the two vertex values are equal (that corner never appears)
        ok = d > 0
        return jnp.where(ok, 1.0 / jnp.where(ok, d, 1.0), 0.0)

    # Per triangle, independent of the threshold: inverse value gaps, corner-scaled areas, edge vectors.
    i20, i21, i10 = inverse(v[2] - v[0]), inverse(v[2] - v[1]), inverse(v[1] - v[0])
    top_scale, bottom_scale = area * i20 * i21, area * i10 * i20
    full_x, full_y = area * (px[0] + px[1] + px[2]) / 3, area * (py[0] + py[1] + py[2]) / 3
    col = [a[:, None] for a in (v[0], v[1], v[2], i20, i21, i10, top_scale, bottom_scale, area, full_x, full_y)]
    v0, v1, v2, i20, i21, i10, top_scale, bottom_scale, area, full_x, full_y = col
    p = [(a[:, None], b[:, None]) for a, b in zip(px, py)]
    e20, e21 = [(p[0][k] - p[2][k]) / 3 for k in (0, 1)], [(p[1][k] - p[2][k]) / 3 for k in (0, 1)]
    e01, e02 = [(p[1][k] - p[0][k]) / 3 for k in (0, 1)], [(p[2][k] - p[0][k]) / 3 for k in (0, 1)]

    c = jnp.asarray(thresholds, dtype)[None, :]  # (1, k): triangles along axis 0, thresholds along axis 1
    above, below = v2 - c, c - v0
    # One vertex above (v2): the corner triangle at v2, with edge fractions t0, t1 towards v0, v1.
    t0, t1 = above * i20, above * i21
    one_area = top_scale * above * above
    one_x = one_area * (p[2][0] + t0 * e20[0] + t1 * e21[0])
    one_y = one_area * (p[2][1] + t0 * e20[1] + t1 * e21[1])
    # Two vertices above: the triangle minus the corner triangle at v0 (below), edge fractions s1, s2.
    s1, s2 = below * i10, below * i20
    cut_area = bottom_scale * below * below
    cut_x = cut_area * (p[0][0] + s1 * e01[0] + s2 * e02[0])
    cut_y = cut_area * (p[0][1] + s1 * e01[1] + s2 * e02[1])

    all_above, two_above, one_above = v0 > c, v1 > c, v2 > c
    none = jnp.zeros((), dtype)

    def pick(full, cut, one):
        return jnp.where(all_above, full, jnp.where(two_above, full - cut, jnp.where(one_above, one, none)))

    return (jnp.sum(pick(area, cut_area, one_area), axis=0), jnp.sum(pick(full_x, cut_x, one_x), axis=0),
            jnp.sum(pick(full_y, cut_y, one_y), axis=0))


def _centroid(grid, area, mx, my):
    return centroid_of(area, mx, my, grid.polygon_area)


def centroid_of(area, mx, my, total_area):
    """:class:`CoreGeometry` from a core's area and first moments and the particle's area.

    Without a core the centroid is reported as 0 (not NaN): NaN in a series poisons reverse-mode gradients of
    everything computed from it (0 * NaN = NaN). Presence is ``fraction > 0``; fluxsim.outputs turns absent offsets
    into NaN behind gradient-safe guards.
    """
    present = area > 0
    safe = jnp.where(present, area, 1.0)
    x, y = jnp.where(present, mx / safe, 0.0), jnp.where(present, my / safe, 0.0)
    return CoreGeometry(area / total_area, x, y)


def core(grid: PolarGrid, theta, threshold) -> CoreGeometry:
    """Hard Li-rich core: area fraction and centroid of ``{theta > threshold}`` on the P1 interpolant.

    The particle centroid is the origin (the inscribed polygon is symmetric), so the centroid *is* the offset ``d``
    (in units of R); 0 when there is no core (``fraction == 0``).
    """
    area, mx, my = (m[0] for m in _core_moments(grid, theta, jnp.reshape(threshold, (1,))))
    return _centroid(grid, area, mx, my)


_SMOOTH_POINTS = 8
_U, _W = np.polynomial.legendre.leggauss(_SMOOTH_POINTS)
_U, _W = (_U + 1) / 2, _W / 2
_LOGIT = np.log(_U / (1 - _U))


def cores(grid: PolarGrid, theta, threshold, width) -> tuple[CoreGeometry, CoreGeometry]:
    """The hard core and the smooth core (see :func:`smooth_core`) from one pass over the triangles."""
    return cores_from_moments(lambda levels: _core_moments(grid, theta, levels), theta.dtype, threshold, width,
                              grid.polygon_area)


def cores_from_moments(moments, dtype, threshold, width, total_area) -> tuple[CoreGeometry, CoreGeometry]:
    """Hard and smooth core from ``moments(levels) -> (area, mx, my)`` (each ``(k,)``), e.g. :func:`clip_moments`."""
    thresholds = jnp.concatenate([jnp.reshape(threshold, (1,)), threshold + width * jnp.asarray(_LOGIT, dtype)])
    area, mx, my = moments(thresholds.astype(dtype))
    hard = centroid_of(area[0], mx[0], my[0], total_area)
    smooth = centroid_of(*(jnp.sum(jnp.asarray(_W, dtype) * m[1:]) for m in (area, mx, my)), total_area)
    return hard, smooth


def smooth_core(grid: PolarGrid, theta, threshold, width) -> CoreGeometry:
    """Smooth Li-rich core: weight ``sigmoid((theta - threshold) / width)`` instead of the hard indicator.

    Computed as the logistic average of the hard core over thresholds (8-point Gauss-Legendre in the quantile), so
    it tends to :func:`core` as ``width -> 0``.
    """
    return cores(grid, theta, threshold, width)[1]


def mean(grid: PolarGrid, theta):
    """Area-weighted mean occupancy (exact discrete Li content / pi)."""
    return jnp.sum(jnp.asarray(grid.volume, theta.dtype) * theta) / jnp.pi


def line_cut(grid: PolarGrid, theta, axis_angle):
    """Occupancy along the diameter through the centre at ``axis_angle`` [rad], ``(2 nr + 1,)``.

    Sample ``k`` lies at signed position ``s = (k - nr) / nr`` (units of R), positive towards ``axis_angle`` (the
    blocked-arc centre). Values are interpolated linearly in angle along each ring.
    """
    nphi = grid.nphi

    def ray(angle):
        u = jnp.mod(angle, 2 * jnp.pi) / grid.dphi
        j0 = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, nphi - 1)
        w = u - j0
        return (1 - w) * theta[1:, j0] + w * theta[1:, (j0 + 1) % nphi]

    forward = ray(axis_angle)
    backward = ray(axis_angle + jnp.pi)
    return jnp.concatenate([backward[::-1], theta[0, :1], forward])

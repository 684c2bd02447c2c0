"""Observables of one occupancy field: what operando optical microscopy measures (docs/model.md section 6).

All functions take a nodal field ``theta`` in the ``(nr + 1, nphi)`` layout of :class:`~.grid.PolarGrid`
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

import jax.numpy as jnp
import numpy as np

from fluxsim.core.clipping import CoreGeometry, centroid_of, clip_moments, cores_from_moments
from fluxsim.core.polar.grid import PolarGrid


def _triangle_data(grid: PolarGrid):
    tri = grid.triangles
    x, y = (c[tri] for c in grid.triangle_points)
    area = 0.5 * ((x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0]))
    assert np.all(area > 0), "triangles must be counter-clockwise"
    return tri, x, y, area


def _core_moments(grid: PolarGrid, theta, thresholds):
    """Area and first moments of ``{P1(theta) > c}`` for each threshold ``c`` in ``thresholds`` (1-D)."""
    tri, x, y, area = _triangle_data(grid)
    dtype = theta.dtype
    x, y, area = (jnp.asarray(a, dtype) for a in (x, y, area))
    flat = theta.ravel()
    values = jnp.concatenate([flat, jnp.mean(flat[grid.quads], axis=1)])[tri]
    return clip_moments(values, x, y, area, thresholds)


def _centroid(grid, area, mx, my):
    return centroid_of(area, mx, my, grid.polygon_area)


def core(grid: PolarGrid, theta, threshold) -> CoreGeometry:
    """Hard Li-rich core: area fraction and centroid of ``{theta > threshold}`` on the P1 interpolant.

    The particle centroid is the origin (the inscribed polygon is symmetric), so the centroid *is* the offset ``d``
    (in units of R); 0 when there is no core (``fraction == 0``).
    """
    area, mx, my = (m[0] for m in _core_moments(grid, theta, jnp.reshape(threshold, (1,))))
    return _centroid(grid, area, mx, my)


def cores(grid: PolarGrid, theta, threshold, width) -> tuple[CoreGeometry, CoreGeometry]:
    """The hard core and the smooth core (see :func:`smooth_core`) from one pass over the triangles."""
    return cores_from_moments(lambda levels: _core_moments(grid, theta, levels), theta.dtype, threshold, width,
                              grid.polygon_area)


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

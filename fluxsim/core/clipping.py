"""Exact clipping of a P1 (piecewise-linear) field on triangles at a level set: the Li-rich core's area and centroid.

Shared by both solvers (the polar grid's triangulation, :mod:`fluxsim.core.polar.metrics`, and the mesh core's
triangles, :mod:`fluxsim.core.observables`). Each triangle is clipped at the level ``c`` exactly, so the area and
first moments of ``{P1(theta) > c}`` are C1 in the nodal values and the centroid moves continuously as a front
crosses a node (docs/model.md section 6). The smooth variant is the logistic average of the hard core over
thresholds ``c + width * logit(u)``, evaluated with Gauss-Legendre quadrature in ``u``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class CoreGeometry(NamedTuple):
    """Area fraction and centroid (in units of R, relative to the particle centroid; 0 when there is no core)."""

    fraction: jnp.ndarray
    x: jnp.ndarray
    y: jnp.ndarray

    @property
    def distance(self):
        return jnp.hypot(self.x, self.y)


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


def clip_moments(values: Float[Array, "t 3"], x: Float[Array, "t 3"], y: Float[Array, "t 3"], area: Float[Array, " t"],
                 thresholds: Float[Array, " k"]) -> tuple[Float[Array, " k"], Float[Array, " k"], Float[Array, " k"]]:
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


def centroid_of(area, mx, my, total_area):
    """:class:`CoreGeometry` from a core's area and first moments and the particle's area.

    Without a core the centroid is reported as 0 (not NaN): NaN in a series poisons reverse-mode gradients of
    everything computed from it (0 * NaN = NaN). Presence is ``fraction > 0``; core.outputs turns absent offsets
    into NaN behind gradient-safe guards.
    """
    present = area > 0
    safe = jnp.where(present, area, 1.0)
    x, y = jnp.where(present, mx / safe, 0.0), jnp.where(present, my / safe, 0.0)
    return CoreGeometry(area / total_area, x, y)


_SMOOTH_POINTS = 8
_U, _W = np.polynomial.legendre.leggauss(_SMOOTH_POINTS)
_U, _W = (_U + 1) / 2, _W / 2
_LOGIT = np.log(_U / (1 - _U))


def cores_from_moments(moments, dtype, threshold, width, total_area) -> tuple[CoreGeometry, CoreGeometry]:
    """Hard and smooth core from ``moments(levels) -> (area, mx, my)`` (each ``(k,)``), e.g. :func:`clip_moments`."""
    thresholds = jnp.concatenate([jnp.reshape(threshold, (1,)), threshold + width * jnp.asarray(_LOGIT, dtype)])
    area, mx, my = moments(thresholds.astype(dtype))
    hard = centroid_of(area[0], mx[0], my[0], total_area)
    smooth = centroid_of(*(jnp.sum(jnp.asarray(_W, dtype) * m[1:]) for m in (area, mx, my)), total_area)
    return hard, smooth

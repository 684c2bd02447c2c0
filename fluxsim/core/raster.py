"""Node fields of a triangle mesh on a regular pixel grid: exact point location and P1 weights (host-side numpy).

:func:`grid_stencil` finds, for every pixel centre of a uniform grid, the triangle containing it and its three
barycentric weights, once per mesh and grid; :func:`apply_stencil` then interpolates any number of node fields with
one gather (NaN outside the particle). Point location is exact and vectorised: every triangle tests the pixel
centres inside its bounding box (a quality mesh has a bounded number of them per pixel), and a pixel on a shared
edge takes the triangle in which it lies deepest. Used by :meth:`fluxsim.api.Result.field_on_grid` and the image
rendering of :mod:`fluxsim.imaging.images`; only numpy (no matplotlib), so the API layer may use it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Barycentric tolerance of the inside test (pixel centres on the rim count as inside).
_INSIDE_TOL = 1e-12


class GridStencil(NamedTuple):
    """P1 interpolation of node fields at the pixel centres of a grid ``(ny, nx)``."""

    nodes: np.ndarray  # (ny, nx, 3) node indices of the containing triangle (0 outside)
    weights: np.ndarray  # (ny, nx, 3) barycentric weights (0 outside)
    inside: np.ndarray  # (ny, nx) bool: the pixel centre lies in the particle


def triangles_on_host(mesh) -> np.ndarray:
    """The real triangles of an unbatched mesh, ``(t, 3)`` node indices into the mesh's (padded) node arrays; bucket
    padding (zero-area triangles) dropped."""
    return np.asarray(mesh.triangles)[np.asarray(mesh.triangle_area) > 0]


def grid_stencil(xy: np.ndarray, triangles: np.ndarray, x: np.ndarray, y: np.ndarray) -> GridStencil:
    """Containing triangle and barycentric weights of every point of the grid ``x`` (columns) by ``y`` (rows).

    Args:
        xy: node coordinates ``(n, 2)``.
        triangles: ``(t, 3)`` node indices of the real triangles (no padding).
        x, y: evenly spaced, increasing pixel-centre coordinates ``(nx,)``, ``(ny,)`` (units of ``xy``).
    """
    xy, triangles = np.asarray(xy, float), np.asarray(triangles, np.int64)
    x, y = np.asarray(x, float), np.asarray(y, float)
    nx, ny = len(x), len(y)
    dx = (x[-1] - x[0]) / (nx - 1) if nx > 1 else 1.0
    dy = (y[-1] - y[0]) / (ny - 1) if ny > 1 else 1.0
    p = xy[triangles]  # (t, 3, 2)
    lo, hi = p.min(axis=1), p.max(axis=1)
    i0 = np.clip(np.ceil((lo[:, 0] - x[0]) / dx - 1e-9), 0, nx).astype(np.int64)
    i1 = np.clip(np.floor((hi[:, 0] - x[0]) / dx + 1e-9), -1, nx - 1).astype(np.int64)
    j0 = np.clip(np.ceil((lo[:, 1] - y[0]) / dy - 1e-9), 0, ny).astype(np.int64)
    j1 = np.clip(np.floor((hi[:, 1] - y[0]) / dy + 1e-9), -1, ny - 1).astype(np.int64)
    ni, nj = np.maximum(i1 - i0 + 1, 0), np.maximum(j1 - j0 + 1, 0)
    counts = ni * nj
    tri = np.repeat(np.arange(len(triangles)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    col, row = i0[tri] + k % ni[tri], j0[tri] + k // ni[tri]
    px, py = x[col], y[row]
    a, b, c = p[tri, 0], p[tri, 1], p[tri, 2]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    def cross(u, v, qx, qy):  # twice the signed area of (u, v, q)
        return (v[:, 0] - u[:, 0]) * (qy - u[:, 1]) - (v[:, 1] - u[:, 1]) * (qx - u[:, 0])

    bary = np.stack([cross(b, c, px, py), cross(c, a, px, py), cross(a, b, px, py)], axis=1) / area2[:, None]
    score = bary.min(axis=1)
    keep = score >= -_INSIDE_TOL
    pixel, score, tri, bary = (row * nx + col)[keep], score[keep], tri[keep], bary[keep]
    order = np.lexsort((-score, pixel))  # per pixel, the deepest triangle first
    first = order[np.r_[True, pixel[order][1:] != pixel[order][:-1]]] if len(order) else order
    nodes = np.zeros((ny * nx, 3), np.int64)
    weights = np.zeros((ny * nx, 3))
    inside = np.zeros(ny * nx, bool)
    nodes[pixel[first]] = triangles[tri[first]]
    weights[pixel[first]] = np.clip(bary[first], 0.0, 1.0) / np.clip(bary[first], 0.0, 1.0).sum(axis=1)[:, None]
    inside[pixel[first]] = True
    return GridStencil(nodes.reshape(ny, nx, 3), weights.reshape(ny, nx, 3), inside.reshape(ny, nx))


def apply_stencil(stencil: GridStencil, field: np.ndarray) -> np.ndarray:
    """Node fields ``(..., n)`` at the grid points ``(..., ny, nx)`` (P1; NaN outside the particle)."""
    field = np.asarray(field, float)
    values = np.sum(stencil.weights * field[..., stencil.nodes], axis=-1)
    return np.where(stencil.inside, values, np.nan)

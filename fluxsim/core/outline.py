"""Particle outlines: the *shape* of the particle's cross-section (host-side numpy, never traced).

An outline only knows its shape. Every outline is normalised to **unit equivalent radius**: the sampled closed
polygon that the mesher receives has area exactly ``pi`` and its area centroid at the origin. The physical size is
the traced scalar ``Params.radius_m``, read as the equivalent radius ``sqrt(A / pi)`` of the particle, so the radius
stays differentiable and sweepable on any outline (on a disk it is the radius).

Outlines (all frozen, hashable dataclasses, so meshes can be cached per outline):

* :class:`Disk` (the default);
* :class:`Ellipse` ``(aspect, orientation_rad)``: semi-axes ``sqrt(aspect)`` and ``1 / sqrt(aspect)`` before
  normalisation, the long axis at ``orientation_rad`` counter-clockwise from +x;
* :class:`Polygon` ``(vertices)``: a simple polygon (any orientation, any scale: it is normalised); its corners are
  kept as mesh nodes and its edges subdivided evenly;
* :class:`Curve` ``(points)``: a smooth closed curve given by dense samples (no corners kept: it is resampled
  evenly by arclength); :func:`outline_from_mask` returns one.

From physical dimensions: :func:`ellipse_from_semi_axes`, :func:`polygon_from_vertices` and
:func:`outline_from_mask` return ``(outline, radius_m)``, the shape and the equivalent radius to pass as
``Params.radius_m``.

Interface used by :mod:`fluxsim.core.mesh`: ``outline.boundary(spacing) -> (m, 2)`` counter-clockwise vertices of
the normalised polygon, consecutive vertices at most about ``spacing`` apart (lengths in units of the equivalent
radius).

Mask outlines (:func:`outline_from_mask`): the boundary between particle and background pixels is traced exactly
(pixel edges, 4-connected particle), its corners cut at the edge midpoints (marching squares at level 1/2 on a
binary image), then smoothed by ``smoothing_passes`` Taubin passes (lambda = 0.5, mu = -0.53, which removes the
pixel staircase without shrinking the shape) and resampled evenly by arclength. Holes are ignored (the particle is
taken as simply connected). The equivalent radius returned is ``sqrt(N pixel_size**2 / pi)`` with ``N`` the
particle's pixel count (as :mod:`fluxsim.images` measures it).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: Allowed node spacings (units of the equivalent radius).
SPACING_RANGE = (0.004, 0.25)
#: Most points a traced mask contour keeps (resampled evenly by arclength beyond this).
_MASK_CURVE_POINTS = 2048
#: Allowed ellipse aspect ratios (long / short semi-axis).
ASPECT_RANGE = (1.0, 20.0)


def check_spacing(spacing) -> float:
    """Validate a node spacing (units of the equivalent radius) and return it as a float."""
    lo, hi = SPACING_RANGE
    if not isinstance(spacing, int | float | np.floating | np.integer) or not lo <= float(spacing) <= hi:
        raise ValueError(f"spacing must be a number in [{lo}, {hi}] (units of the equivalent radius), got {spacing!r}")
    return float(spacing)


def polygon_area_centroid(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Signed area (> 0 counter-clockwise) and area centroid of a closed polygon ``(m, 2)`` (shoelace)."""
    x, y = points[:, 0], points[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = 0.5 * cross.sum()
    cx = ((x + xn) * cross).sum() / (6 * area)
    cy = ((y + yn) * cross).sum() / (6 * area)
    return float(area), np.array([cx, cy])


def normalise(points: np.ndarray) -> np.ndarray:
    """Orient a closed polygon counter-clockwise, put its area centroid at 0 and scale it to area ``pi``."""
    points = np.asarray(points, dtype=float)
    area, centroid = polygon_area_centroid(points)
    if area < 0:
        points = points[::-1]
        area = -area
    return (points - centroid) * math.sqrt(math.pi / area)


def _perimeter(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.roll(points, -1, axis=0) - points, axis=1).sum())


def _resample_closed(points: np.ndarray, spacing: float) -> np.ndarray:
    """Evenly spaced samples (by arclength) of the closed polyline through ``points``, at most ``spacing`` apart."""
    closed = np.vstack([points, points[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    n = max(8, math.ceil(s[-1] / spacing))
    si = np.arange(n) * s[-1] / n
    return np.stack([np.interp(si, s, closed[:, 0]), np.interp(si, s, closed[:, 1])], axis=1)


def _segments_cross(points: np.ndarray) -> bool:
    """Whether any two non-adjacent edges of the closed polygon intersect (O(m^2) work, in blocks of edges)."""
    a, b = points, np.roll(points, -1, axis=0)
    m = len(points)

    def orient(p, q, r):
        u, w = q - p, r - p
        return np.sign(u[..., 0] * w[..., 1] - u[..., 1] * w[..., 0])

    j = np.arange(m)
    for start in range(0, m, 256):
        i = np.arange(start, min(start + 256, m))[:, None]
        pair = (j[None, :] >= i + 2) & ~((i == 0) & (j[None, :] == m - 1))  # skip the edge itself and neighbours
        ai, bi, aj, bj = a[i], b[i], a[None, :], b[None, :]
        o1, o2 = orient(ai, bi, aj), orient(ai, bi, bj)
        o3, o4 = orient(aj, bj, ai), orient(aj, bj, bi)
        if np.any(pair & (o1 * o2 < 0) & (o3 * o4 < 0)):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Disk:
    """The circular particle (today's geometry): vertices evenly on the circle, scaled to enclosed area ``pi``.

    The vertex count is a multiple of 12 (one vertex on +x), so the boundary shares the six-fold and mirror
    symmetries of the mesh's hexagonal seed lattice.
    """

    def boundary(self, spacing: float) -> np.ndarray:
        spacing = check_spacing(spacing)
        n = 12 * max(1, math.ceil(2 * math.pi / spacing / 12))
        phi = 2 * math.pi * np.arange(n) / n
        return normalise(np.stack([np.cos(phi), np.sin(phi)], axis=1))


@dataclasses.dataclass(frozen=True)
class Ellipse:
    """An elliptic particle.

    Attributes:
        aspect: long / short semi-axis [-], in [1, 20] (default 2).
        orientation_rad: angle of the long axis, counter-clockwise from +x [rad] (default 0).
    """

    aspect: float = 2.0
    orientation_rad: float = 0.0

    def __post_init__(self):
        lo, hi = ASPECT_RANGE
        if not lo <= float(self.aspect) <= hi:
            raise ValueError(f"Ellipse aspect must be in [{lo}, {hi}], got {self.aspect!r}")
        if not math.isfinite(float(self.orientation_rad)):
            raise ValueError(f"Ellipse orientation_rad must be finite, got {self.orientation_rad!r}")

    def boundary(self, spacing: float) -> np.ndarray:
        spacing = check_spacing(spacing)
        a, b = math.sqrt(self.aspect), 1.0 / math.sqrt(self.aspect)
        t = np.linspace(0.0, 2 * math.pi, 8192, endpoint=False)
        dense = np.stack([a * np.cos(t), b * np.sin(t)], axis=1)
        c, s = math.cos(self.orientation_rad), math.sin(self.orientation_rad)
        dense = dense @ np.array([[c, s], [-s, c]])
        return normalise(_resample_closed(dense, spacing))


@dataclasses.dataclass(frozen=True)
class Polygon:
    """A simple polygon; its corners stay mesh nodes, its edges are subdivided evenly at about the spacing.

    Attributes:
        vertices: ``(m, 2)`` corner coordinates, m >= 3, any orientation and scale (stored as a tuple of pairs).
    """

    vertices: tuple

    def __post_init__(self):
        v = np.asarray(self.vertices, dtype=float)
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not np.all(np.isfinite(v)):
            raise ValueError(f"Polygon vertices must be a finite (m, 2) array with m >= 3, got shape {v.shape}")
        if np.any(np.linalg.norm(v - np.roll(v, -1, axis=0), axis=1) == 0):
            raise ValueError("Polygon vertices must not repeat consecutively (zero-length edge)")
        if _segments_cross(v):
            raise ValueError("Polygon edges cross: the vertices must trace a simple (non-self-intersecting) outline")
        area = 0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])
        scale = np.max(np.abs(v - v.mean(axis=0)))
        if abs(area) <= 1e-9 * scale**2:
            raise ValueError("Polygon has zero area")
        object.__setattr__(self, "vertices", tuple(map(tuple, v.tolist())))

    def boundary(self, spacing: float) -> np.ndarray:
        spacing = check_spacing(spacing)
        corners = normalise(np.asarray(self.vertices))
        pieces = []
        for p, q in zip(corners, np.roll(corners, -1, axis=0)):
            k = max(1, math.ceil(np.linalg.norm(q - p) / spacing - 1e-9))
            u = np.arange(k)[:, None] / k
            pieces.append(p + u * (q - p))
        return normalise(np.concatenate(pieces))


@dataclasses.dataclass(frozen=True)
class Curve:
    """A smooth closed curve through dense samples, resampled evenly by arclength (corners are not kept).

    Attributes:
        points: ``(m, 2)`` samples along the curve, m >= 8, any orientation and scale (stored as a tuple of pairs).
    """

    points: tuple

    def __post_init__(self):
        p = np.asarray(self.points, dtype=float)
        if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 8 or not np.all(np.isfinite(p)):
            raise ValueError(f"Curve points must be a finite (m, 2) array with m >= 8, got shape {p.shape}")
        if _segments_cross(p):
            raise ValueError("Curve crosses itself: the points must trace a simple closed outline")
        object.__setattr__(self, "points", tuple(map(tuple, p.tolist())))

    def boundary(self, spacing: float) -> np.ndarray:
        spacing = check_spacing(spacing)
        dense = normalise(np.asarray(self.points))
        return normalise(_resample_closed(dense, spacing))


def ellipse_from_semi_axes(a_m: float, b_m: float, orientation_rad: float = 0.0) -> tuple[Ellipse, float]:
    """An ellipse of physical semi-axes ``a_m``, ``b_m`` [m] (> 0) with the ``a`` axis at ``orientation_rad``.

    Returns:
        ``(ellipse, radius_m)``: the normalised :class:`Ellipse` and its equivalent radius ``sqrt(a b)`` [m].
    """
    for name, value in (("a_m", a_m), ("b_m", b_m)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite semi-axis > 0 [m], got {value!r}")
    if b_m > a_m:
        a_m, b_m, orientation_rad = b_m, a_m, orientation_rad + math.pi / 2
    return Ellipse(a_m / b_m, orientation_rad), math.sqrt(a_m * b_m)


def polygon_from_vertices(vertices_m) -> tuple[Polygon, float]:
    """A polygon of physical vertices ``(m, 2)`` [m].

    Returns:
        ``(polygon, radius_m)``: the normalised :class:`Polygon` and its equivalent radius ``sqrt(A / pi)`` [m].
    """
    polygon = Polygon(vertices_m)
    v = np.asarray(polygon.vertices)
    area = abs(0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))
    return polygon, math.sqrt(area / math.pi)


def _pixel_boundary_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Closed loops of pixel edges between particle and background, particle on the left (outer loops CCW).

    Pixel ``(row, col)`` covers ``[col, col + 1] x [-row - 1, -row]`` (x right, y up). At a vertex shared by two
    diagonal particle pixels the walk turns left, so the particle is 4-connected.
    """
    padded = np.pad(mask, 1)
    edges = []  # directed edges (start, end) in (x, y) lattice coordinates, particle on the left
    rows, cols = np.nonzero(padded)
    for r, c in zip(rows.tolist(), cols.tolist()):
        x0, y1 = c - 1, -(r - 1)  # top-left corner of the unpadded pixel
        x1, y0 = x0 + 1, y1 - 1
        if not padded[r + 1, c]:  # background below: bottom edge runs +x
            edges.append(((x0, y0), (x1, y0)))
        if not padded[r, c + 1]:  # right: runs +y
            edges.append(((x1, y0), (x1, y1)))
        if not padded[r - 1, c]:  # above: runs -x
            edges.append(((x1, y1), (x0, y1)))
        if not padded[r, c - 1]:  # left: runs -y
            edges.append(((x0, y1), (x0, y0)))
    outgoing: dict = {}
    for e in edges:
        outgoing.setdefault(e[0], []).append(e)
    used = set()
    loops = []
    for e in edges:
        if e in used:
            continue
        loop = []
        cur = e
        while cur not in used:
            used.add(cur)
            loop.append(cur[0])
            options = [o for o in outgoing[cur[1]] if o not in used]
            if not options:
                break
            if len(options) > 1:  # turn left (particle 4-connected)
                dx, dy = cur[1][0] - cur[0][0], cur[1][1] - cur[0][1]
                options.sort(key=lambda o: -(dx * (o[1][1] - o[0][1]) - dy * (o[1][0] - o[0][0])))
            cur = options[0]
        loops.append(np.asarray(loop, dtype=float))
    return loops


def outline_from_mask(mask, pixel_size_m: float, smoothing_passes: int = 10) -> tuple[Curve, float]:
    """The outline of a segmented particle (a binary microscopy mask) and its equivalent radius.

    Args:
        mask: 2-D boolean array, True on the particle (rows down, columns right; x = column, y up). One particle:
            the largest 4-connected region is used, and any other region must be below 5 % of its area (noise).
        pixel_size_m: pixel edge length [m], > 0.
        smoothing_passes: Taubin smoothing passes over the traced contour (>= 0; default 10, which removes the
            pixel staircase; 0 keeps the marching-squares polygon).

    Returns:
        ``(curve, radius_m)``: the normalised :class:`Curve` and the equivalent radius ``sqrt(N / pi)`` pixels [m]
        (``N`` the pixel count of the region, holes filled), to pass as ``Params.radius_m``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"mask must be a 2-D boolean array, got dtype {mask.dtype} and shape {mask.shape}")
    if not (isinstance(pixel_size_m, int | float) and math.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise ValueError(f"pixel_size_m must be a finite number > 0 [m], got {pixel_size_m!r}")
    if not (isinstance(smoothing_passes, int) and smoothing_passes >= 0):
        raise ValueError(f"smoothing_passes must be an integer >= 0, got {smoothing_passes!r}")
    if mask.sum() < 12:
        raise ValueError(f"mask must contain at least 12 particle pixels, got {int(mask.sum())}")
    loops = _pixel_boundary_loops(mask)
    areas = np.array([polygon_area_centroid(loop)[0] for loop in loops])
    outer = np.flatnonzero(areas > 0)
    order = outer[np.argsort(-areas[outer])]
    if len(order) > 1 and areas[order[1]] > 0.05 * areas[order[0]]:
        raise ValueError(
            f"mask holds {len(order)} separate particles (pixel areas {sorted(areas[outer].tolist(), reverse=True)}); "
            "pass a mask with one particle"
        )
    loop = loops[order[0]]
    n_pixels = areas[order[0]]  # the outer loop's area: the region's pixel count, holes filled
    points = 0.5 * (loop + np.roll(loop, -1, axis=0))  # corner cutting = marching squares at level 1/2
    for _ in range(smoothing_passes):
        for weight in (0.5, -0.53):
            points = points + weight * (0.5 * (np.roll(points, 1, axis=0) + np.roll(points, -1, axis=0)) - points)
    if len(points) > _MASK_CURVE_POINTS:  # plenty for any mesh spacing allowed; keeps Curve checks cheap
        points = _resample_closed(points, _perimeter(points) / _MASK_CURVE_POINTS)
    radius_m = math.sqrt(n_pixels / math.pi) * pixel_size_m
    return Curve(points), radius_m

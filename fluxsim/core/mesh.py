"""Quality triangulation of an outline and the vertex-centred finite-volume mesh as a pytree of arrays.

``mesh_outline(outline, spacing=DEFAULT_SPACING, buckets=None) -> TriMesh`` runs once per outline on the host:

1. the outline's normalised boundary polygon (area ``pi``, area centroid at 0; :mod:`fluxsim.core.outline`) is
   sampled at ``spacing`` (units of the equivalent radius ``R_eq``);
2. interior seed points are laid on a hexagonal lattice of pitch ``spacing`` (dropped within ``0.6 spacing`` of the
   boundary), so the interior is almost equilateral and every node has degree ~6, then relaxed by 10 iterations of
   repulsive springs (rest length ``1.2 spacing``, Persson & Strang's distmesh; the boundary nodes stay fixed), so
   the boundary layer is as regular as the lattice: the largest eigenvalue of ``M^-1 A``, which sets the stage count
   of an explicit integrator, drops from 18.5 to 9.4 / spacing**2 on the default disk (8 for a perfect
   equilateral lattice);
3. Shewchuk's Triangle (the ``triangle`` package) makes the constrained Delaunay triangulation of boundary + seeds
   and refines it with switches ``pq30D``: minimum angle 30 degrees, and *conforming* Delaunay (``D``), i.e. every
   triangle is Delaunay and every circumcentre lies inside the domain (boundary segments are split until none is
   encroached).

Why Triangle and not gmsh: it is a small wheel with no system libraries, deterministic, with a guaranteed minimum
angle and a conforming-Delaunay mode that is exactly the property the finite volumes need (below); gmsh would bring a
large binary and a second geometry language for 2-D polygons that Triangle handles directly.

Finite volumes (P1 with lumped mass). With hat functions ``phi_i`` the stiffness matrix is
``A_ij = -w_ij``, ``w_ij = (cot alpha_ij + cot beta_ij) / 2`` (the angles opposite edge ij; one term on a boundary
edge) and the lumped mass ``m_i`` = one third of the area of the triangles around node i. ``-sum_j w_ij (u_j - u_i)``
is then the vertex-centred finite-volume flux balance on the Voronoi dual with the two-point flux ``w_ij =``
(dual face length / edge length). **Non-negative conductances**: ``cot alpha + cot beta >= 0`` iff
``alpha + beta <= pi``, which is the Delaunay (empty circumcircle) condition of an interior edge, and a boundary
edge has ``cot alpha >= 0`` iff its opposite angle is <= 90 degrees, which holds when its diametral circle is empty
(not encroached). Triangle's conforming Delaunay mode guarantees both, so every ``w_ij >= 0`` up to rounding; the
builder checks it (``w_ij >= -1e-10 max w``, then clips the rounding to 0) and raises otherwise. Non-negative
conductances give a discrete maximum principle (the Kirchhoff flux is monotone) and a symmetric positive
semi-definite Laplacian with a cheap Gershgorin bound of its spectrum (``laplacian_bound``).

Layout of :class:`TriMesh` (all fields are arrays, pytree leaves, no static metadata, so meshes of different outlines
padded to the same sizes have the same tree structure, batch with ``jax.vmap`` and do not recompile):

* nodes ``0 .. n_rim - 1`` are the rim slots: the rim nodes counter-clockwise, starting at the one nearest the
  +x ray from the centroid, then inert padded rim slots; nodes ``n_rim ..`` are interior nodes (sorted by y, then
  x, for locality), then inert padded nodes. A rim field is therefore the slice ``theta[:n_rim]``;
* padded nodes: mass 0 (``inv_mass`` 0, ``node_mask`` False), coordinates of node 0, an ELL row pointing at itself
  with conductance 0, so the operator leaves them unchanged; padded triangles are ``(0, 0, 0)`` with area 0;
  padded rim slots sit on rim node 0 with a zero-length share.

Sizes are rounded up to buckets (:func:`bucket_size`: eight per octave, so at most 12.5 % padding)
for nodes, rim slots and triangles, and to 8 / 12 / 16 for the ELL width; :func:`stack_meshes` pads several meshes
to common sizes and stacks them along a leading axis for ``vmap``.

Node counts of the disk per spacing (real nodes / bucket; ``tests/core/test_core_mesh.py``): 0.08: 595 / 640,
0.06: 1,039 / 1,152, 0.04: 2,329 / 2,560, 1/32 (default): 3,775 / 3,840, 0.025: 5,899 / 6,144, 0.02: 9,163 /
9,216, 0.015: 16,261 / 16,384, 0.01: 36,457 / 36,864. Meshing takes ~0.5 s at the default spacing (cached per outline
and spacing), ~10 s at 0.01.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxsim._pytree import pytree_dataclass
from fluxsim.core.outline import Disk, check_spacing

#: Default node spacing in units of the equivalent radius: 1/32, the radial spacing of today's 32 x 128 polar grid
#: (37.5 nm at R = 1.2 um); 3,775 nodes on the disk (bucket 3,840) against the polar grid's 4,097. On case (c) at
#: 100 mA/g (eta 0.3, f 1/4) its d(10 min) is 0.5 nm and its core fraction 0.0025 above the values at spacing 0.02
#: (polar default: 1.6 nm and 0.004 from its converged values; docs/convergence.md).
DEFAULT_SPACING = 0.03125
#: The default outline.
DISK = Disk()
#: Triangle switches: planar straight-line graph, minimum angle 30 degrees, conforming Delaunay, quiet.
TRIANGLE_SWITCHES = "pq30DQ"
#: Seeds closer than this to the boundary (in spacings) are dropped.
_SEED_CLEARANCE = 0.6
#: Spring relaxation of the seeds: iterations, rest length (spacings), step, and the clearance below which a
#: seed pushed towards the boundary is dropped (spacings).
_RELAX_ITERATIONS, _RELAX_LENGTH, _RELAX_STEP, _RELAX_CLEARANCE = 10, 1.2, 0.2, 0.3
#: ELL widths offered (the maximum node degree is rounded up to one of these).
_DEGREE_BUCKETS = (8, 12, 16, 24, 32)


def bucket_size(n: int, minimum: int = 16) -> int:
    """Smallest size ``>= n`` (and ``>= minimum``) of the form ``2**k * (8, 9, ..., 15) / 8``: eight buckets per
    octave, so padding wastes at most 12.5 % (6 % on average)."""
    n = max(int(n), minimum)
    k = max(0, math.floor(math.log2(n)) - 3)
    while True:
        for f in range(8, 16):
            size = f * 2**k
            if size >= n:
                return size
        k += 1


class MeshSizes(NamedTuple):
    """Static array sizes of a :class:`TriMesh` (buckets)."""

    n_nodes: int
    n_rim: int
    n_triangles: int
    max_degree: int


@pytree_dataclass
class TriMesh:
    """A triangulated outline, nondimensional (lengths in units of the equivalent radius ``R_eq``).

    Attributes (``n`` nodes, ``r`` rim slots, ``t`` triangles, ``k`` ELL width; see the module docstring):
        xy: node coordinates ``(n, 2)``.
        mass: lumped P1 masses ``(n,)`` (0 on padding); they sum to ``area``.
        inv_mass: ``1 / mass`` ``(n,)`` (0 on padding).
        node_mask: ``(n,)`` bool, True on real nodes.
        neighbours: ELL table of neighbour indices ``(n, k)`` int32 (padding entries: the node itself).
        conductance: ``w_ij >= 0`` per ELL entry ``(n, k)`` (padding: 0); symmetric.
        triangles: ``(t, 3)`` int32 counter-clockwise node indices (padding: ``(0, 0, 0)``).
        triangle_area: ``(t,)`` (padding: 0).
        rim_s_lo, rim_s_hi: arclength interval of each rim node's share (its dual arc) ``(r,)``, measured
            counter-clockwise from rim node 0 (padding: ``perimeter``, ``perimeter``).
        rim_s: arclength of each rim node ``(r,)`` (padding: ``perimeter``).
        rim_edge: length of the rim edge from slot i to slot i + 1 (cyclically) ``(r,)`` (0 on padding).
        area: discrete area (sum of triangle areas; ``pi`` to rounding) ``()``.
        perimeter: discrete perimeter ``()``.
        centroid: area centroid ``(2,)`` (0 to rounding).
        laplacian_bound: ``max_i s_i (s_i sum_j w_ij + sum_j w_ij s_j)``, ``s = m^-1/2`` ``()``: the Gershgorin
            bound of the spectral radius of ``M^-1 A`` through the similar symmetric ``M^-1/2 A M^-1/2`` (12.4 /
            spacing**2 on the default disk mesh, against 9.4 for the true value and 15.5 for the plain row sums
            ``2 sum_j w_ij / m_i``); :func:`fluxsim.core.fv.spectral_radius_bound` multiplies it by the largest D.
    """

    xy: jax.Array
    mass: jax.Array
    inv_mass: jax.Array
    node_mask: jax.Array
    neighbours: jax.Array
    conductance: jax.Array
    triangles: jax.Array
    triangle_area: jax.Array
    rim_s_lo: jax.Array
    rim_s_hi: jax.Array
    rim_s: jax.Array
    rim_edge: jax.Array
    area: jax.Array
    perimeter: jax.Array
    centroid: jax.Array
    laplacian_bound: jax.Array

    @property
    def sizes(self) -> MeshSizes:
        """The static bucket sizes (from the array shapes; valid under jit and for an unbatched mesh)."""
        return MeshSizes(self.xy.shape[-2], self.rim_s.shape[-1], self.triangles.shape[-2],
                         self.neighbours.shape[-1])

    @property
    def n_rim(self) -> int:
        return self.rim_s.shape[-1]

    def astype(self, dtype) -> TriMesh:
        """The mesh with its floating-point arrays cast to ``dtype`` (e.g. float32 for GPUs; indices unchanged)."""
        return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, self)

    @property
    def rim_share(self):
        """Dual arc length of each rim slot ``(r,)`` (sums to ``perimeter``)."""
        return self.rim_s_hi - self.rim_s_lo


# ---- host-side construction ------------------------------------------------------------------------------------
def _point_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Crossing-number test, ``(N,)`` bool (chunked so memory stays small)."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    inside = np.zeros(len(points), bool)
    for start in range(0, len(points), 2048):
        p = points[start:start + 2048, None, :]
        straddles = (a[None, :, 1] > p[..., 1]) != (b[None, :, 1] > p[..., 1])
        dy = np.where(b[:, 1] != a[:, 1], b[:, 1] - a[:, 1], 1.0)
        x_cross = a[None, :, 0] + (p[..., 1] - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / dy[None]
        inside[start:start + 2048] = np.sum(straddles & (p[..., 0] < x_cross), axis=1) % 2 == 1
    return inside


def _distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    a, d = polygon, np.roll(polygon, -1, axis=0) - polygon
    dd = np.maximum((d * d).sum(axis=1), 1e-300)
    out = np.empty(len(points))
    for start in range(0, len(points), 1024):
        p = points[start:start + 1024, None, :]
        t = np.clip(((p - a[None]) * d[None]).sum(-1) / dd[None], 0.0, 1.0)
        out[start:start + 1024] = np.linalg.norm(p - (a[None] + t[..., None] * d[None]), axis=-1).min(axis=1)
    return out


def _hex_seeds(boundary: np.ndarray, spacing: float) -> np.ndarray:
    """Hexagonal lattice of pitch ``spacing`` with a node at the centroid (the origin), so outlines with mirror or
    six-fold symmetry about the centroid get a mesh with the same symmetry (d = 0 at eta = 1 to rounding)."""
    reach = np.abs(boundary).max()
    dy = spacing * math.sqrt(3) / 2
    j = np.arange(-math.ceil(reach / dy), math.ceil(reach / dy) + 1)
    i = np.arange(-math.ceil(reach / spacing) - 1, math.ceil(reach / spacing) + 2)
    jj, ii = np.meshgrid(j, i, indexing="ij")
    seeds = np.stack([(ii + 0.5 * (jj % 2)) * spacing, jj * dy], axis=-1).reshape(-1, 2)
    seeds = seeds[_point_in_polygon(seeds, boundary)]
    return seeds[_distance_to_polygon(seeds, boundary) > _SEED_CLEARANCE * spacing]


def _cotangent_conductances(v: np.ndarray, tri: np.ndarray):
    """Edges ``(e, 2)`` (i < j) and their conductances ``(cot alpha + cot beta) / 2`` ``(e,)``."""
    p = v[tri]
    keys, weights = [], []
    for k in range(3):
        a, b, c = p[:, k], p[:, (k + 1) % 3], p[:, (k + 2) % 3]
        u, w = b - a, c - a
        cross = u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0]
        cot = (u * w).sum(axis=1) / cross  # the angle at a, opposite edge (b, c)
        i, j = tri[:, (k + 1) % 3], tri[:, (k + 2) % 3]
        keys.append(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1))
        weights.append(cot / 2)
    keys, weights = np.concatenate(keys), np.concatenate(weights)
    edges, inverse = np.unique(keys, axis=0, return_inverse=True)
    return edges, np.bincount(inverse.ravel(), weights=weights, minlength=len(edges))


def _rim_loop(segments: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boundary node indices counter-clockwise, starting at the node nearest the +x ray from the centroid."""
    nxt = {}
    for a, b in segments:
        nxt.setdefault(int(a), []).append(int(b))
        nxt.setdefault(int(b), []).append(int(a))
    start = int(segments[0, 0])
    loop, prev = [start], None
    while True:
        options = [o for o in nxt[loop[-1]] if o != prev]
        prev = loop[-1]
        if options[0] == start:
            break
        loop.append(options[0])
    loop = np.asarray(loop)
    x, y = v[loop, 0], v[loop, 1]
    if 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:
        loop = loop[::-1]
    phi = np.mod(np.arctan2(v[loop, 1], v[loop, 0]), 2 * np.pi)
    return np.roll(loop, -int(np.argmin(np.minimum(phi, 2 * np.pi - phi))))


def _relax(boundary: np.ndarray, seeds: np.ndarray, spacing: float, segments: np.ndarray, triangle) -> np.ndarray:
    """Spring relaxation of the seeds (Persson & Strang's distmesh): the boundary layer becomes as regular as the
    lattice, which halves the largest eigenvalue of ``M^-1 A`` (the explicit integrator's stiffness)."""
    m = len(boundary)
    v = np.vstack([boundary, seeds])
    origin, clearance = seeds, _distance_to_polygon(seeds, boundary)  # seeds are inside
    for _ in range(_RELAX_ITERATIONS):
        tri = triangle.triangulate(dict(vertices=v, segments=segments), "pQ")["triangles"]
        edges = np.unique(np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1), axis=0)
        d = v[edges[:, 1]] - v[edges[:, 0]]
        length = np.linalg.norm(d, axis=1)
        push = np.maximum(_RELAX_LENGTH * spacing - length, 0.0) / length  # springs only repel
        force = np.zeros_like(v)
        np.add.at(force, edges[:, 0], -push[:, None] * d)
        np.add.at(force, edges[:, 1], push[:, None] * d)
        moved = v[m:] + _RELAX_STEP * force[m:]
        # Only seeds that may have come within a spacing of the boundary need the (costly) exact test.
        check = clearance - np.linalg.norm(moved - origin, axis=1) < spacing
        keep = np.ones(len(moved), bool)
        near = moved[check]
        ok = _point_in_polygon(near, boundary)
        ok[ok] = _distance_to_polygon(near[ok], boundary) > _RELAX_CLEARANCE * spacing
        keep[check] = ok
        v = np.vstack([boundary, moved[keep]])
        origin, clearance = origin[keep], clearance[keep]
    return v


def _triangulate(boundary: np.ndarray, spacing: float):
    import triangle  # host-only dependency, imported where used so `import fluxsim` stays light

    m = len(boundary)
    segments = np.stack([np.arange(m), (np.arange(m) + 1) % m], axis=1)
    points = _relax(boundary, _hex_seeds(boundary, spacing), spacing, segments, triangle)
    out = triangle.triangulate(dict(vertices=points, segments=segments), TRIANGLE_SWITCHES)
    return out["vertices"], out["triangles"].astype(np.int64), out["segments"].astype(np.int64)


@dataclasses.dataclass(frozen=True)
class _HostMesh:
    """Unpadded numpy mesh in the rim-first node order."""

    xy: np.ndarray
    triangles: np.ndarray
    n_rim: int
    edges: np.ndarray
    conductance: np.ndarray

    @functools.cached_property
    def triangle_area(self):
        p = self.xy[self.triangles]
        return 0.5 * ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                      - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))

    @functools.cached_property
    def mass(self):
        return np.bincount(self.triangles.ravel(), weights=np.repeat(self.triangle_area / 3, 3),
                           minlength=len(self.xy))

    @functools.cached_property
    def degree(self):
        return np.bincount(self.edges.ravel(), minlength=len(self.xy))

    @property
    def sizes(self) -> MeshSizes:
        degree = next(d for d in _DEGREE_BUCKETS if d >= self.degree.max())
        return MeshSizes(len(self.xy), self.n_rim, len(self.triangles), degree)


def _host_mesh(outline, spacing: float) -> _HostMesh:
    boundary = outline.boundary(spacing)
    if not _point_in_polygon(np.zeros((1, 2)), boundary)[0]:
        raise ValueError("the outline's area centroid lies outside the particle; blocked arcs, d and the line cut are "
                         "measured from it, so such outlines are not supported")
    v, tri, seg = _triangulate(boundary, spacing)
    rim = _rim_loop(seg, v)
    interior = np.setdiff1d(np.arange(len(v)), rim)
    interior = interior[np.lexsort((v[interior, 0], v[interior, 1]))]
    order = np.concatenate([rim, interior])
    new_index = np.empty(len(v), np.int64)
    new_index[order] = np.arange(len(v))
    v, tri = v[order], new_index[tri]
    edges, w = _cotangent_conductances(v, tri)
    if np.any(w < -1e-10 * w.max()):
        raise RuntimeError(f"mesher produced a negative conductance ({w.min():.3e}); the triangulation is not "
                           "conforming Delaunay")
    return _HostMesh(v, tri, len(rim), edges, np.maximum(w, 0.0))


def _pad(host: _HostMesh, sizes: MeshSizes) -> TriMesh:
    n_rim, n_real = host.n_rim, len(host.xy)
    n, r, t, k = sizes
    needed = host.sizes._replace(n_nodes=n_real - n_rim + r)  # interior nodes follow the padded rim slots
    for name, have, want in zip(MeshSizes._fields, needed, sizes):
        if want < have:
            raise ValueError(f"bucket size {name} = {want} is below the mesh's {have}")
    # Node map: real rim 0..n_rim-1 -> same; real interior -> shifted by the padded rim slots.
    node_map = np.concatenate([np.arange(n_rim), r + np.arange(n_real - n_rim)])
    xy = np.repeat(host.xy[:1], n, axis=0)
    xy[node_map] = host.xy
    mass = np.zeros(n)
    mass[node_map] = host.mass
    mask = np.zeros(n, bool)
    mask[node_map] = True
    inv_mass = np.where(mask, 1.0 / np.where(mask, mass, 1.0), 0.0)

    neighbours = np.repeat(np.arange(n)[:, None], k, axis=1)
    conductance = np.zeros((n, k))
    i, j = node_map[host.edges[:, 0]], node_map[host.edges[:, 1]]
    rows = np.concatenate([i, j])
    cols = np.concatenate([j, i])
    w = np.concatenate([host.conductance, host.conductance])
    order = np.lexsort((cols, rows))
    rows, cols, w = rows[order], cols[order], w[order]
    slot = np.arange(len(rows)) - np.searchsorted(rows, rows)
    neighbours[rows, slot] = cols
    conductance[rows, slot] = w

    triangles = np.zeros((t, 3), np.int64)
    triangles[:len(host.triangles)] = node_map[host.triangles]
    area = np.zeros(t)
    area[:len(host.triangles)] = host.triangle_area

    edge = np.linalg.norm(np.roll(host.xy[:n_rim], -1, axis=0) - host.xy[:n_rim], axis=1)
    perimeter = edge.sum()
    s = np.concatenate([[0.0], np.cumsum(edge)[:-1]])
    rim_s = np.full(r, perimeter)
    rim_s[:n_rim] = s
    rim_lo, rim_hi = np.full(r, perimeter), np.full(r, perimeter)
    rim_lo[:n_rim] = s - np.roll(edge, 1) / 2
    rim_hi[:n_rim] = s + edge / 2
    rim_edge = np.zeros(r)
    rim_edge[:n_rim] = edge

    p = host.xy[host.triangles].mean(axis=1)
    total = host.triangle_area.sum()
    centroid = (host.triangle_area[:, None] * p).sum(axis=0) / total
    scale = np.sqrt(inv_mass)  # Gershgorin rows of the symmetric M^-1/2 A M^-1/2 (similar to M^-1 A)
    bound = np.max(scale * (conductance.sum(axis=1) * scale + (conductance * scale[neighbours]).sum(axis=1)))
    as_f = functools.partial(jnp.asarray, dtype=jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    return TriMesh(
        xy=as_f(xy), mass=as_f(mass), inv_mass=as_f(inv_mass), node_mask=jnp.asarray(mask),
        neighbours=jnp.asarray(neighbours, jnp.int32), conductance=as_f(conductance),
        triangles=jnp.asarray(triangles, jnp.int32), triangle_area=as_f(area),
        rim_s_lo=as_f(rim_lo), rim_s_hi=as_f(rim_hi), rim_s=as_f(rim_s), rim_edge=as_f(rim_edge),
        area=as_f(total), perimeter=as_f(perimeter), centroid=as_f(centroid), laplacian_bound=as_f(bound),
    )


def default_sizes(sizes: MeshSizes) -> MeshSizes:
    """The buckets of a mesh with the given actual sizes (the node bucket also holds the padded rim slots)."""
    n_rim = bucket_size(sizes.n_rim)
    return MeshSizes(bucket_size(sizes.n_nodes - sizes.n_rim + n_rim), n_rim, bucket_size(sizes.n_triangles),
                     sizes.max_degree)


@functools.lru_cache(maxsize=64)
def _cached_host_mesh(outline, spacing: float) -> _HostMesh:
    return _host_mesh(outline, spacing)


def mesh_outline(outline=DISK, spacing: float = DEFAULT_SPACING, buckets: MeshSizes | None = None) -> TriMesh:
    """Triangulate an outline and build its :class:`TriMesh` (host-side; cached per outline and spacing).

    Args:
        outline: a :mod:`fluxsim.core.outline` shape (default :class:`~fluxsim.core.outline.Disk`).
        spacing: target node spacing in units of the equivalent radius, in [0.004, 0.25] (default 1/32).
        buckets: array sizes to pad to (each >= the mesh's own); default: the next bucket of each
            (:func:`bucket_size`; the ELL width rounded up to 8, 12, 16, ...).

    Returns:
        The padded :class:`TriMesh` (float64 arrays when x64 is enabled).
    """
    host = _cached_host_mesh(outline, check_spacing(spacing))
    return _pad(host, default_sizes(host.sizes) if buckets is None else MeshSizes(*buckets))


def mesh_sizes(outline=DISK, spacing: float = DEFAULT_SPACING) -> MeshSizes:
    """The actual (unpadded) sizes of an outline's mesh."""
    return _cached_host_mesh(outline, check_spacing(spacing)).sizes


def stack_meshes(outlines, spacing: float = DEFAULT_SPACING) -> TriMesh:
    """Meshes of several outlines padded to common bucket sizes and stacked along a new leading axis (for vmap)."""
    hosts = [_cached_host_mesh(o, check_spacing(spacing)) for o in outlines]
    n_rim = bucket_size(max(h.n_rim for h in hosts))
    n_nodes = bucket_size(max(len(h.xy) - h.n_rim for h in hosts) + n_rim)
    largest = MeshSizes(*np.max([h.sizes for h in hosts], axis=0).tolist())
    common = MeshSizes(n_nodes, n_rim, bucket_size(largest.n_triangles), largest.max_degree)
    meshes = [_pad(h, common) for h in hosts]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *meshes)

"""Independent P1 finite-element reference for delithiation of a particle with any simple closed outline.

Model (``docs/model.md``; surface model A, total-current normalisation, non-disk outlines)
------------------------------------------------------------------------------------------
Li site occupancy ``theta(x, t)`` on a domain ``Omega`` with area ``A``, perimeter ``P`` and rim arclength ``s``::

    d theta / dt = div( D(theta) grad theta )                in Omega
    -D d theta / dn = q(s) = qbar * g(s) / <g>                on the rim,  <g> = (1/P) int g ds
    qbar = (A / P) * d(theta_mean)/dt,   d(theta_mean)/dt = I / (3600 Q_th)

with ``g = eta_j`` on blocked arc ``j`` and ``g = 1`` elsewhere.  Arc ``j = (phi_c, f, eta)`` covers the rim interval
of arclength ``f P`` centred on the rim point hit by the ray from the area centroid at polar angle ``phi_c``
(counter-clockwise from +x; the first crossing of the rim).  ``A`` and ``P`` are those of the discrete (polygonal)
rim, so the mean occupancy falls at exactly ``I / (3600 Q_th)``.  Charge stops when theta anywhere on the rim reaches
``theta_cut``.  Diffusivity: the power law ``D = D_hi min(1, ((1 - theta)/(1 - theta_ref))^m) + D_floor`` or a
constant ``D`` (the check against the Bessel series).

Outlines
--------
Shapes are normalised to unit equivalent radius (area pi) with the area centroid at the origin and scaled by the
equivalent radius ``R_eq = sqrt(A / pi)`` (``radius_m``): ``Ellipse(aspect, orientation_rad)`` (semi-axes
``sqrt(aspect)`` and ``1/sqrt(aspect)``, the major axis at ``orientation_rad`` from +x; aspect 1 is the disk) and
``Polygon(vertices)`` (any simple polygon; rescaled and re-centred).  ``IRREGULAR_POLYGON`` is the non-convex test
particle of the reference data.

Mesh (independent of fluxsim's mesher, which uses Shewchuk's Triangle)
----------------------------------------------------------------------
Rim nodes at equal spacing ``<= h`` along the outline (for the ellipse: equal arclength on the exact curve; for a
polygon: every vertex plus equal subdivisions of each side), plus the nodes of an equilateral (hexagonal) lattice of
spacing ``h`` centred at the origin that lie inside and farther than ``0.51 h_rim`` from the rim (``h_rim`` the
longest rim edge), triangulated by ``scipy.spatial.Delaunay``; triangles whose centroid lies outside the rim
polygon are removed.  No node lies in the closed diametral disk of a rim edge, so every rim edge is a Gabriel edge:
it is an edge of the Delaunay triangulation (the rim is recovered exactly: checked) and the angle opposite it is
below 90 degrees.  Interior edges are Delaunay edges (opposite angles sum to at most pi).  Together every P1
cotangent conductance is non-negative, i.e. the stiffness matrix is an M-matrix: checked at construction, so the
lumped-mass scheme has a discrete maximum principle.  The lattice meshes of successive levels are not nested.

Discretisation
--------------
Continuous P1 elements (scikit-fem ``ElementTriP1``) in Kirchhoff form ``M_L dtheta/dt = -S K(theta) - b`` with the
stiffness ``S``, the row-sum lumped mass ``M_L``, the nodal Kirchhoff transform ``K(theta) = int_1^theta D`` (closed
form) and the rim load ``b_i = int q phi_i ds``, integrated exactly along every straight rim edge (the edge is split
where an arc ends inside it; the hat functions are integrated in closed form), then scaled so that
``sum b = qbar P``.  Because the columns of ``S`` sum to zero, ``sum M_L dtheta/dt = -qbar P = -A I / (3600 Q_th)``
exactly.

Time: ``scipy.integrate.solve_ivp`` with the variable-order BDF method (orders 1-5), the analytic sparse Jacobian
``-M_L^-1 S diag(D(theta))`` and error control ``rtol``/``atol`` (defaults 1e-7 / 1e-9: the time error they leave is
measured by ``run_fem_outline.py`` against a 10x tighter run, see the data file's metadata).  Every Newton update of
BDF keeps the linear invariant ``sum M_L theta`` exactly (``1^T S = 0``), so the Li balance is exact to round-off.
Outputs come at the requested times by BDF's dense output; the cut-off (rim minimum = ``theta_cut``, terminal) and
the core vanishing (nodal maximum = ``theta_core``, after which the P1 core area is zero) are located as events
inside their step.

Observables (on the P1 interpolant)
-----------------------------------
mean theta (``M_L . theta / A``, equal to the integral of the interpolant), rim minimum (nodal), the core
``{theta > theta_core}`` by exact clipping of every triangle with the linear level line (its area and centroid,
``fem2d._superlevel_moments``), ``d`` = distance from the area centroid of the mesh to the core's centroid and its
direction, and the line cut through the area centroid along ``phi_c`` of the first arc (position positive towards
the arc; the interpolant is evaluated by point location in the Delaunay triangulation).

The core as specified (the superlevel set of the P1 interpolant of theta) converges only at first order in h, and
from above: theta_core = 0.97 sits in the cusp of the degenerate front (1 - theta ~ distance^(1/3) behind it), so
the interpolated level line lies a fraction of a cell outside the front wherever the front passes.  Since K is
monotone, ``{theta > theta_core} = {K(theta) > K(theta_core)}`` in the continuum, and the P1 interpolant of the much
smoother K (``K - K(1) ~ distance^(4/3)``) places the level line far more accurately; its core fraction and d are
also returned (``*_kirchhoff``).  The two bracket the limit (from above and from below).

Independence: this module does not import fluxsim; only the model and the parameter values are shared.
"""

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
from scipy.integrate import solve_ivp
from scipy.spatial import Delaunay
from skfem import Basis, ElementTriP1, MeshTri
from skfem.models.poisson import laplace, mass

from reference.fem2d import Q_TH_MAH_G, _diffusivity, _kirchhoff, _superlevel_moments

#: Interior lattice nodes must lie farther than this times the longest rim edge from the rim (Gabriel rim edges).
_RIM_CLEARANCE = 0.51

#: The non-convex test particle (unit-free vertices (polar angle deg, radius), counter-clockwise; rescaled to area pi,
#: centroid at 0): ten vertices with interior angles 83-224 degrees, four of them reflex (the dents at 40, 148, 262
#: and 335 degrees), star-shaped from its area centroid.
IRREGULAR_POLYGON = np.array(
    [
        [r * np.cos(np.deg2rad(a)), r * np.sin(np.deg2rad(a))]
        for a, r in [
            (0.0, 1.2),
            (40.0, 0.9),
            (75.0, 1.3),
            (112.0, 1.05),
            (148.0, 0.62),
            (185.0, 1.15),
            (220.0, 1.22),
            (262.0, 0.7),
            (300.0, 1.2),
            (335.0, 0.92),
        ]
    ]
)


def _polygon_area_centroid(v):
    """Signed area and area centroid of a closed polygon with vertices ``v`` (n, 2)."""
    x, y = v[:, 0], v[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = 0.5 * cross.sum()
    centroid = np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6.0 * area)
    return area, centroid


@dataclasses.dataclass(frozen=True)
class Ellipse:
    """Ellipse of unit equivalent radius: semi-axes ``sqrt(aspect)`` (at ``orientation_rad`` from +x), ``1/sqrt(aspect)``."""

    aspect: float = 1.0
    orientation_rad: float = 0.0

    def rim_points(self, spacing):
        """Counter-clockwise points on the curve at equal arclength ``<= spacing`` (unit-radius units), from the
        end of the major axis."""
        if self.aspect < 1.0:
            raise ValueError(f"aspect must be >= 1, got {self.aspect}")
        a, b = np.sqrt(self.aspect), 1.0 / np.sqrt(self.aspect)
        t = np.linspace(0.0, 2.0 * np.pi, 20001)
        speed = np.hypot(a * np.sin(t), b * np.cos(t))
        s = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(t))])
        n = int(np.ceil(s[-1] / spacing))
        # invert the tabulated arclength s(t) (trapezoid rule on 20001 samples): interpolate, then polish with two
        # Newton steps; the nodes lie exactly on the curve, equally spaced in arclength to ~1e-8 relative
        target = s[-1] * np.arange(n) / n
        tk = np.interp(target, s, t)
        for _ in range(2):
            sk = np.interp(tk, t, s)
            tk -= (sk - target) / np.hypot(a * np.sin(tk), b * np.cos(tk))
        c, si = np.cos(self.orientation_rad), np.sin(self.orientation_rad)
        x, y = a * np.cos(tk), b * np.sin(tk)
        return np.column_stack((c * x - si * y, si * x + c * y))


@dataclasses.dataclass(frozen=True)
class Polygon:
    """Simple polygon (vertices (n, 2), either orientation), rescaled to area pi with its area centroid at 0."""

    vertices: np.ndarray

    def normalised_vertices(self):
        v = np.asarray(self.vertices, float)
        area, centroid = _polygon_area_centroid(v)
        if area < 0:
            v, area = v[::-1], -area
        return (v - centroid) * np.sqrt(np.pi / area)

    def rim_points(self, spacing):
        """Counter-clockwise rim points: every vertex plus equal subdivisions of each side (length <= spacing)."""
        v = self.normalised_vertices()
        pieces = []
        for a, b in zip(v, np.roll(v, -1, axis=0)):
            k = int(np.ceil(np.hypot(*(b - a)) / spacing))
            pieces.append(a + np.arange(k)[:, None] / k * (b - a))
        return np.vstack(pieces)


def _segment_distance(points, a, b):
    """Distance (n,) from each point to the nearest of the segments a[k] -> b[k]."""
    best = np.full(len(points), np.inf)
    ab = b - a
    for k0 in range(0, len(a), 256):  # chunks bound the (n, 256) temporaries
        sl = slice(k0, k0 + 256)
        rel = points[:, None, :] - a[None, sl]
        u = np.clip(np.einsum("nkd,kd->nk", rel, ab[sl]) / np.einsum("kd,kd->k", ab[sl], ab[sl]), 0.0, 1.0)
        dist = np.hypot(*np.moveaxis(rel - u[..., None] * ab[None, sl], -1, 0))
        best = np.minimum(best, dist.min(axis=1))
    return best


def _inside(points, rim):
    """Even-odd point-in-polygon test of ``points`` (n, 2) against the closed polygon ``rim`` (m, 2)."""
    x, y = points[:, 0:1], points[:, 1:2]
    xa, ya = rim[None, :, 0], rim[None, :, 1]
    xb, yb = np.roll(xa, -1, axis=1), np.roll(ya, -1, axis=1)
    crosses = (ya > y) != (yb > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = xa + (y - ya) * (xb - xa) / (yb - ya)
    return (np.count_nonzero(crosses & (x < x_cross), axis=1) % 2) == 1


@dataclasses.dataclass
class OutlineMesh:
    """A P1 mesh of an outline (SI units) with its assembled matrices and geometry."""

    p: np.ndarray  # (2, n) node coordinates, m; rim nodes first, counter-clockwise
    t: np.ndarray  # (3, n_tri) counter-clockwise triangles
    n_rim: int  # rim nodes are 0 .. n_rim - 1, rim edge k joins nodes k and k + 1 (mod n_rim)
    stiffness: sp.csc_matrix  # P1 stiffness (dimensionless)
    lumped: np.ndarray  # (n,) row-sum lumped mass, m^2
    area: float  # m^2 (the rim polygon's area)
    perimeter: float  # m
    centroid: np.ndarray  # (2,) area centroid, m
    delaunay: Delaunay  # for point location, in units of ``unit_m`` (triangles outside the rim are not in ``t``)
    unit_m: float  # the length unit of ``delaunay`` (the outline's equivalent radius), m
    info: dict


def build_mesh(outline, radius_m=1.2e-6, spacing_m=40e-9) -> OutlineMesh:
    """Mesh ``outline`` (``Ellipse`` or ``Polygon``) scaled to equivalent radius ``radius_m`` at node spacing
    ``spacing_m``; see the module docstring.  Raises ``RuntimeError`` if the rim is not recovered or a conductance
    is negative."""
    if not spacing_m > 0 or not radius_m > 0:
        raise ValueError(f"radius_m and spacing_m must be > 0, got {radius_m}, {spacing_m}")
    h = spacing_m / radius_m  # work in unit-radius coordinates, scale at the end
    rim = outline.rim_points(h)
    rim_b = np.roll(rim, -1, axis=0)
    h_rim = np.hypot(*(rim_b - rim).T).max()
    extent = np.abs(rim).max() + h
    rows = np.arange(-np.ceil(extent / (h * np.sqrt(0.75))), np.ceil(extent / (h * np.sqrt(0.75))) + 1)
    cols = np.arange(-np.ceil(extent / h) - 1, np.ceil(extent / h) + 2)
    jj, ii = np.meshgrid(rows, cols, indexing="ij")
    lattice = np.column_stack(((ii + 0.5 * (jj % 2)).ravel() * h, (jj * np.sqrt(0.75)).ravel() * h))
    lattice = lattice[_inside(lattice, rim)]
    lattice = lattice[_segment_distance(lattice, rim, rim_b) > _RIM_CLEARANCE * h_rim]
    points = np.vstack((rim, lattice))
    delaunay = Delaunay(points)
    tri = delaunay.simplices
    e1, e2 = points[tri[:, 1]] - points[tri[:, 0]], points[tri[:, 2]] - points[tri[:, 0]]
    twice_area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    # outside triangles go, and so do the flat ones Qhull returns on collinear rim nodes of the convex hull
    keep = _inside(points[tri].mean(axis=1), rim) & (np.abs(twice_area) > 1e-9 * h**2)
    tri = np.where((twice_area < 0)[:, None], tri[:, [0, 2, 1]], tri)[keep]

    p = points.T * radius_m
    mesh = MeshTri(np.ascontiguousarray(p), np.ascontiguousarray(tri.T))
    n_rim = len(rim)
    boundary = np.sort(mesh.facets[:, mesh.boundary_facets()], axis=0)
    expected = np.sort(np.array([np.arange(n_rim), (np.arange(n_rim) + 1) % n_rim]), axis=0)
    if boundary.shape != expected.shape or set(map(tuple, boundary.T)) != set(map(tuple, expected.T)):
        raise RuntimeError("the triangulation does not recover the rim polygon")
    basis = Basis(mesh, ElementTriP1())
    stiffness = laplace.assemble(basis).tocsc()
    stiffness.sum_duplicates()
    off = (stiffness - sp.diags(stiffness.diagonal())).tocoo()
    if off.data.max() > 1e-12 * np.abs(stiffness.diagonal()).max():
        raise RuntimeError("negative P1 conductance: the stiffness matrix is not an M-matrix")
    lumped = np.asarray(mass.assemble(basis).sum(axis=1)).ravel()
    rim_m = rim * radius_m
    area, centroid = _polygon_area_centroid(rim_m)
    perimeter = np.hypot(*(np.roll(rim_m, -1, axis=0) - rim_m).T).sum()
    if abs(lumped.sum() / area - 1.0) > 1e-12:
        raise RuntimeError("the triangles do not tile the rim polygon")
    angles = _triangle_angles_deg(p, mesh.t)
    info = {
        "spacing_nm": spacing_m * 1e9,
        "n_nodes": p.shape[1],
        "n_rim": n_rim,
        "n_triangles": mesh.t.shape[1],
        "min_angle_deg": float(angles.min()),
        "max_angle_deg": float(angles.max()),
        "area_rel_err": float(area / (np.pi * radius_m**2) - 1.0),
    }
    return OutlineMesh(mesh.p, mesh.t, n_rim, stiffness, lumped, area, perimeter, centroid, delaunay, radius_m, info)


def _triangle_angles_deg(p, t):
    x = p[:, t]  # (2, 3, T)
    angles = []
    for k in range(3):
        u, w = x[:, (k + 1) % 3] - x[:, k], x[:, (k + 2) % 3] - x[:, k]
        cos = (u * w).sum(axis=0) / (np.hypot(*u) * np.hypot(*w))
        angles.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return np.array(angles)


def rim_arclength(mesh):
    """Arclength ``s`` (n_rim,) of every rim node from node 0 and the rim edge lengths (m)."""
    rim = mesh.p[:, : mesh.n_rim].T
    lengths = np.hypot(*(np.roll(rim, -1, axis=0) - rim).T)
    return np.concatenate([[0.0], np.cumsum(lengths)[:-1]]), lengths


def ray_hit(mesh, phi_rad):
    """Rim arclength (m) of the first crossing of the ray from the area centroid at angle ``phi_rad``."""
    rim = mesh.p[:, : mesh.n_rim].T - mesh.centroid
    edge = np.roll(rim, -1, axis=0) - rim
    u = np.array([np.cos(phi_rad), np.sin(phi_rad)])
    denom = u[0] * edge[:, 1] - u[1] * edge[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = (rim[:, 0] * edge[:, 1] - rim[:, 1] * edge[:, 0]) / denom  # distance along the ray
        w = (rim[:, 0] * u[1] - rim[:, 1] * u[0]) / denom  # position along the edge, 0..1
    ok = (lam > 0) & (w >= 0) & (w < 1)
    k = np.flatnonzero(ok)[np.argmin(lam[ok])]
    s, lengths = rim_arclength(mesh)
    return s[k] + w[k] * lengths[k]


def rim_load_weights(mesh, arcs):
    """``G_i = int g phi_i ds`` (m) over the rim for ``g = 1`` except ``g = eta`` on each arc ``(phi_c, f, eta)``.

    Exact: on each rim edge, the part covered by an arc (arcs wrap around the rim start) is found by interval
    overlap and the hat functions are integrated in closed form over it.
    """
    s, lengths = rim_arclength(mesh)
    n = mesh.n_rim
    nxt = (np.arange(n) + 1) % n
    weights = np.zeros(mesh.p.shape[1])
    np.add.at(weights, np.arange(n), 0.5 * lengths)
    np.add.at(weights, nxt, 0.5 * lengths)
    covered = np.zeros(n)
    for phi_c, fraction, eta in arcs:
        if fraction <= 0.0:
            continue
        centre = ray_hit(mesh, phi_c)
        half = 0.5 * fraction * mesh.perimeter
        for shift in (-mesh.perimeter, 0.0, mesh.perimeter):  # the periodic copies of the interval
            lo = np.clip((centre - half + shift - s) / lengths, 0.0, 1.0)
            hi = np.clip((centre + half + shift - s) / lengths, 0.0, 1.0)
            int_u = 0.5 * (hi**2 - lo**2)  # int u du over the covered part of the edge
            covered += (hi - lo) * lengths
            np.add.at(weights, np.arange(n), (eta - 1.0) * lengths * ((hi - lo) - int_u))
            np.add.at(weights, nxt, (eta - 1.0) * lengths * int_u)
    if np.any(covered > lengths * (1 + 1e-12)):
        raise ValueError("blocked arcs overlap")
    return weights


def superlevel_centroid(mesh, theta, level):
    """Area (m^2) and centroid (m) of ``{theta_h > level}`` (centroid NaN when empty)."""
    area, moment = _superlevel_moments(mesh.p, mesh.t, theta, level)
    return area, (moment / area if area > 0 else np.full(2, np.nan))


def line_cut(mesh, theta, phi_rad, positions_m):
    """P1 interpolant of ``theta`` at ``centroid + x (cos phi, sin phi)`` for ``x`` in ``positions_m`` (NaN
    outside the particle)."""
    x = np.asarray(positions_m, float)
    pts = mesh.centroid[None] + x[:, None] * np.array([np.cos(phi_rad), np.sin(phi_rad)])[None]
    pts_unit = pts / mesh.unit_m
    simplex = mesh.delaunay.find_simplex(pts_unit)
    inside = (simplex >= 0) & _inside(pts, mesh.p[:, : mesh.n_rim].T)
    transform = mesh.delaunay.transform[simplex]
    bary2 = np.einsum("nij,nj->ni", transform[:, :2], pts_unit - transform[:, 2])
    bary = np.column_stack((bary2, 1.0 - bary2.sum(axis=1)))
    values = (theta[mesh.delaunay.simplices[simplex]] * bary).sum(axis=1)
    return np.where(inside, values, np.nan)


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """``D = D_hi min(1, ((1 - theta)/(1 - theta_ref))^m) + D_floor`` (m^2/s)."""

    D_hi: float = 1e-14
    theta_ref: float = 0.8
    m: float = 3.0
    D_floor: float = 1e-20

    def D(self, theta):
        return _diffusivity(theta, self.D_hi, self.theta_ref, self.m, self.D_floor)

    def K(self, theta):
        return _kirchhoff(theta, self.D_hi, self.theta_ref, self.m, self.D_floor)


@dataclasses.dataclass(frozen=True)
class ConstantLaw:
    """Constant ``D`` (m^2/s)."""

    D_m2_per_s: float = 1e-14

    def D(self, theta):
        return np.full_like(theta, self.D_m2_per_s)

    def K(self, theta):
        return self.D_m2_per_s * (theta - 1.0)


def solve_outline(
    outline,
    *,
    radius_m=1.2e-6,
    spacing_m=40e-9,
    rate_mA_per_g=100.0,
    arcs=((np.pi, 0.25, 0.3),),
    law=PowerLaw(),
    theta0=1.0,
    theta_cut=0.2,
    theta_core=0.97,
    t_out_s=None,
    t_end_s=None,
    line_cut_times_s=(),
    line_cut_positions_m=(),
    rtol=1e-7,
    atol=1e-9,
    mesh=None,
    keep_theta=False,
) -> dict:
    """Galvanostatic charge (model A, total current conserved) on ``outline``; P1 FEM + scipy BDF.

    Parameters: ``outline`` an ``Ellipse`` or ``Polygon``; ``radius_m`` its equivalent radius (m); ``spacing_m``
    the mesh spacing (m); ``rate_mA_per_g`` the specific current (mA/g, > 0 delithiates); ``arcs`` blocked arcs
    ``(centre angle rad, perimeter fraction, eta)``; ``law`` ``PowerLaw`` or ``ConstantLaw``; ``theta0`` uniform
    initial occupancy; ``theta_cut`` rim cut-off; ``theta_core`` core threshold; ``t_out_s`` output times (s;
    those after the end are dropped; default every 30 s to 20 min); ``t_end_s`` optional end time (s) before the cut-off; ``line_cut_times_s``
    (subset of ``t_out_s``) and ``line_cut_positions_m`` (positions along ``phi_c`` of the first arc, from the
    centroid, positive towards the arc); ``rtol``, ``atol`` BDF error control; ``mesh`` a prebuilt ``OutlineMesh``;
    ``keep_theta`` also return the nodal fields (``theta``, (n_nodes, n_times)).

    Returns a dict: ``t_s``, ``mean_theta``, ``surface_min_theta``, ``core_fraction``, ``d_nm``, ``d_x_nm``,
    ``d_y_nm`` (core centroid minus area centroid, NaN without core), ``core_fraction_kirchhoff`` and
    ``d_kirchhoff_nm`` (the same for the level set of the P1 interpolant of ``K(theta)`` at ``K(theta_core)``: the
    same set in the limit h -> 0, see "Observables"), ``line_cut`` (len(line_cut_times_s),
    n_positions); scalars ``t_cut_s`` (NaN if not reached), ``capacity_mAh_per_g`` (``I t / 3600`` at the cut-off
    or the end), ``core_vanish_s`` (NaN if the core survives); ``mesh`` and ``info``.
    """
    wall0 = time.perf_counter()
    for phi_c, fraction, eta in arcs:
        if not (0.0 <= fraction <= 1.0 and eta >= 0.0 and np.isfinite(phi_c)):
            raise ValueError(f"arc (phi_c, f, eta) = {(phi_c, fraction, eta)}: need finite phi_c, f in [0, 1], eta >= 0")
    if not rate_mA_per_g > 0:
        raise ValueError(f"rate_mA_per_g must be > 0, got {rate_mA_per_g}")
    if mesh is None:
        mesh = build_mesh(outline, radius_m, spacing_m)
    rate_theta_per_s = rate_mA_per_g / (3600.0 * Q_TH_MAH_G)
    qbar = mesh.area / mesh.perimeter * rate_theta_per_s
    weights = rim_load_weights(mesh, arcs)
    load = weights * (qbar * mesh.perimeter / weights.sum())  # b_i, m^2/s; sum = qbar P
    stiffness, lumped = mesh.stiffness, mesh.lumped
    inv_mass = 1.0 / lumped
    rim = np.arange(mesh.n_rim)

    def fun(_t, theta):
        return -(stiffness @ law.K(theta) + load) * inv_mass

    def jac(_t, theta):
        return (sp.diags(-inv_mass) @ stiffness @ sp.diags(law.D(theta))).tocsc()

    def cut_event(_t, theta):
        return theta[rim].min() - theta_cut

    cut_event.terminal, cut_event.direction = True, -1.0

    def vanish_event(_t, theta):
        return theta.max() - theta_core

    vanish_event.terminal, vanish_event.direction = False, -1.0

    if theta0 <= theta_cut:
        raise ValueError(f"theta0 must lie above theta_cut, got {theta0} <= {theta_cut}")
    # the cut-off comes before the mean occupancy reaches theta_cut
    t_max = (theta0 - theta_cut) / rate_theta_per_s * 1.001 + 1.0 if t_end_s is None else float(t_end_s)
    t_out = np.arange(0.0, 1201.0, 30.0) if t_out_s is None else np.asarray(t_out_s, float)
    t_out = t_out[t_out <= t_max]
    sol = solve_ivp(
        fun,
        (0.0, t_max),
        np.full(mesh.p.shape[1], float(theta0)),
        method="BDF",
        t_eval=t_out,
        events=(cut_event, vanish_event),
        jac=jac,
        rtol=rtol,
        atol=atol,
        first_step=1e-4,
    )
    if sol.status < 0:
        raise RuntimeError(f"BDF failed: {sol.message}")
    t_cut = float(sol.t_events[0][0]) if sol.t_events[0].size else np.nan
    vanish = sol.t_events[1]
    records, cuts = [], []
    for k, t_now in enumerate(sol.t):
        theta = sol.y[:, k]
        core_area, core_centroid = superlevel_centroid(mesh, theta, theta_core)
        offset = (core_centroid - mesh.centroid) * 1e9
        k_area, k_centroid = superlevel_centroid(mesh, law.K(theta), float(law.K(np.asarray(theta_core))))
        k_offset = (k_centroid - mesh.centroid) * 1e9
        records.append(
            (t_now, lumped @ theta / mesh.area, theta[rim].min(), core_area / mesh.area, *offset,
             k_area / mesh.area, *k_offset)
        )
        if np.any(np.isclose(t_now, line_cut_times_s)):
            cuts.append(line_cut(mesh, theta, arcs[0][0], line_cut_positions_m))
    cols = np.array(records, float).reshape(-1, 9).T
    t_final = t_cut if np.isfinite(t_cut) else t_max
    return {
        "t_s": cols[0],
        "mean_theta": cols[1],
        "surface_min_theta": cols[2],
        "core_fraction": cols[3],
        "d_x_nm": cols[4],
        "d_y_nm": cols[5],
        "d_nm": np.hypot(cols[4], cols[5]),
        "core_fraction_kirchhoff": cols[6],
        "d_kirchhoff_nm": np.hypot(cols[7], cols[8]),
        "line_cut": np.array(cuts).reshape(len(cuts), len(line_cut_positions_m)),
        "t_cut_s": t_cut,
        "capacity_mAh_per_g": float(rate_mA_per_g * t_final / 3600.0),
        "core_vanish_s": float(vanish[0]) if vanish.size else np.nan,
        "mesh": mesh,
        "theta": sol.y if keep_theta else None,
        "info": {
            **mesh.info,
            "rtol": rtol,
            "atol": atol,
            "nfev": int(sol.nfev),
            "njev": int(sol.njev),
            "nlu": int(sol.nlu),
            "wall_s": time.perf_counter() - wall0,
        },
    }

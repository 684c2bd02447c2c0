"""Independent 2D finite-element reference solver for delithiation of a disk particle.

Model (``docs/model.md`` sections 1, 2, 4, 5, 6; surface model A)
------------------------------------------------------------------------
Li site occupancy ``theta(x, t)`` on a disk of radius ``R``::

    d theta / dt = div( D(theta) grad theta )                   in the disk
    -D d theta / dn = q(phi) = qbar * g(phi) / gbar              on the rim
    D(theta) = D_hi * min(1, ((1 - theta) / (1 - theta_ref))**m) + D_floor

with ``g = eta`` on a blocked arc of angular width ``2 pi f`` centred at ``arc_center_rad`` and
``g = 1`` elsewhere, ``gbar = 1 - f + f * eta`` (total current conserved), and
``qbar = I rho R / (2 F c_max)``.  Charge stops when ``theta`` anywhere on the rim reaches
``theta_cut``.

Discretisation
--------------
* **Mesh** -- an unstructured Delaunay triangulation (``scipy.spatial.Delaunay``) of a centre node
  plus ``N = round(2**refine)`` concentric rings of nodes; ring ``k`` has radius ``k R / N`` and
  ``6 k`` equally spaced nodes, so the triangles are nearly equilateral (angles 44-89 degrees)
  with edge length ``h ~ R / N`` and every rim node lies exactly on the circle.  The mesh is
  symmetric about the x axis (up to ties between equivalent Delaunay diagonals), so the offset
  ``d_y`` of a blocked arc centred on that axis vanishes to round-off.  No angle exceeds 90
  degrees, so the P1 stiffness matrix is an M-matrix; this is checked at construction.  The
  inscribed polygon's area is ``pi R^2 (1 - 1.8e-4, 4.5e-5, 1.1e-5)`` for refine 5, 6, 7.
  ``skfem``'s ``MeshTri.init_circle`` is not used: its right-angled triangles are aligned with
  the x and y axes (a Cartesian bias shared with a finite-volume grid) and its element sizes
  vary by a factor ~1.8.
* **Space** -- continuous P1 Lagrange elements (scikit-fem ``ElementTriP1``) in the Kirchhoff
  form: with ``K(theta) = int_1^theta D(s) ds`` (closed form, below), ``div(D grad theta) =
  laplacian K(theta)`` and the semi-discrete system is ``M_L dtheta/dt + A K(theta) = -b``,
  where ``A`` is the P1 stiffness matrix, ``K(theta)`` is applied node by node (Kirchhoff
  interpolation), ``M_L`` is the row-sum lumped mass matrix and ``b_i = int_rim q phi_i ds``.
  Lumped mass plus an M-matrix ``A`` gives a discrete maximum principle (``theta <= 1``) and no
  oscillations at the degenerate core front.
* **Boundary load** -- ``g(phi)`` is integrated exactly along each straight rim edge: the edge is
  split where the rays at the arc ends cross it, and the P1 hat functions are integrated in
  closed form on each piece.  ``g`` is evaluated at the polar angle of each rim point, so the
  blocked arc covers the fraction ``f`` of rim *angles*.  The load is scaled so that the total
  outflow divided by the polygon area is exactly ``2 qbar / R``; the mean occupancy (weighted
  with ``M_L``, normalised by the polygon area) therefore falls at exactly ``I / (3600 Q_th)``
  to round-off (every update of the nonlinear iteration restores the Li balance).
* **Time** -- backward Euler (first order, but monotone: with lumped mass it keeps the discrete
  maximum principle, which BDF2 would not).  Each step is solved by a quasi-Newton iteration on
  ``theta`` with the Jacobian ``M_L / dt + A diag(D(theta))`` (a column-diagonally-dominant
  M-matrix) factorised by SuperLU.  The factorisation is reused across iterations and steps
  and refreshed when the iteration contracts slowly, the nearly frozen core is left out of it
  (see ``factorize``), and the iteration starts from a linear extrapolation of the last two
  steps; it stops when the largest update is below ``_NEWTON_TOL``.  The residual is always
  exact, so these shortcuts change the cost, not the converged solution.  The step grows
  geometrically (factor ``_DT_GROWTH``) from ``dt_min_s`` to ``dt_max_s``.  Once
  ``theta <= theta_ref`` everywhere, ``D`` is constant, the problem is linear and its
  quasi-steady state (a fixed profile falling linearly in time) is reproduced exactly by
  backward Euler, so the cap is raised to ``dt_max_linear_s``.  A step whose iteration fails
  is repeated with a quarter of the step.  Steps are shortened to land exactly on the
  requested output times and on ``t_end_s``.  The cut-off time is found by linear
  interpolation of the rim minimum of theta inside the step that crosses ``theta_cut``.
* **Observables** -- exact on the P1 interpolant: the rim minimum is a nodal minimum; the core
  ``{theta > theta_core}`` is obtained by clipping every triangle with the linear level set,
  giving its exact area and centroid.  Area fractions are normalised by the polygon area and
  the offset ``d`` is measured from the polygon's centroid.

Accuracy
--------
From ``run_fem2d_convergence.py`` (Fig. 4 cases at 100 mA/g; refine 5/6/7 = h 37.5/18.75/9.4 nm):

* capacity at cut-off: all refine levels and steps agree to 3e-4 mAh/g (2e-6 relative);
* d at 600 s: refine 5 and 6 lie within 2.5 nm of refine 7 (mesh-to-mesh scatter, not
  monotone); ``dt_max_s`` 2 s instead of 1 s changes it by 0.25 nm;
* core area fraction: converges from above, roughly first order in h, because the
  ``theta_core = 0.97`` level sits in the steep cusp of the degenerate front; refine 5 and 6
  exceed refine 7 by up to 0.010 and 0.003.  For eta = 1 refine 7 matches an independent 1D
  radial solution to 0.001 (0.557 / 0.268 / 0.070 at 5 / 10 / 15 min).

``refine=5, dt_max_s=1`` (about 10 s per run to cut-off) is the recommended test setting.

Independence from fluxsim
-------------------------
fluxsim's solver is a finite-volume scheme.  This module shares no code with it and was written
without reading it: the mesh is unstructured and triangular, the unknowns are nodal (P1) values,
the diffusion operator is the Galerkin stiffness matrix (no face means of D), the boundary flux
is integrated exactly along the polygonal rim, and the core area and centroid are computed by
clipping triangles.  Only the physical model and the parameter values (``docs/model.md``) are
common.
"""

import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from scipy.spatial import Delaunay
from skfem import Basis, ElementTriP1, MeshTri
from skfem.models.poisson import laplace, mass

RHO_KG_M3 = 4780.0  # NMC density, kg/m^3 (docs/model.md section 5)
MOLAR_MASS_KG_MOL = 97.46e-3  # LiNi0.88Mn0.05Co0.07O2, kg/mol
FARADAY_C_MOL = 96485.33  # C/mol
C_MAX_MOL_M3 = RHO_KG_M3 / MOLAR_MASS_KG_MOL  # 49,045 mol/m^3
Q_TH_MAH_G = FARADAY_C_MOL / (3.6 * MOLAR_MASS_KG_MOL * 1e3)  # 275.0 mAh/g

_DT_GROWTH = 1.2  # largest ratio of consecutive time steps
_NEWTON_TOL = 1e-9  # iteration stops when max |delta theta| < this
_NEWTON_MAXIT = 40
_JACOBIAN_REFRESH = 0.4  # refactorise the Jacobian when |delta| contracts by less than this
_WEAK_COUPLING = 1e-2  # Jacobian columns with D_j A_jj dt < this * M_jj are left out


def mean_flux_m_s(rate_mA_per_g, radius_m):
    """Mean outward flux ``qbar = I rho R / (2 F c_max)`` in m/s (occupancy * m / s).

    ``rate_mA_per_g`` is the specific current in mA/g (= A/kg), ``radius_m`` the disk radius in m.
    """
    current_density_A_m2 = rate_mA_per_g * RHO_KG_M3 * radius_m / 2.0
    return current_density_A_m2 / (FARADAY_C_MOL * C_MAX_MOL_M3)


def _diffusivity(theta, D_hi, theta_ref, m, D_floor):
    """D(theta) in m^2/s; the power-law part is clipped to [0, 1] so D = D_floor for theta >= 1."""
    w = np.clip((1.0 - theta) / (1.0 - theta_ref), 0.0, 1.0)
    return D_hi * w**m + D_floor


def _kirchhoff(theta, D_hi, theta_ref, m, D_floor):
    """Kirchhoff transform K(theta) = int_1^theta D(s) ds in m^2/s (closed form, C^1 in theta)."""
    a = 1.0 - theta_ref
    w = np.clip((1.0 - theta) / a, 0.0, 1.0)
    return D_floor * (theta - 1.0) - D_hi * a / (m + 1.0) * w ** (m + 1.0) - D_hi * np.maximum(theta_ref - theta, 0.0)


def build_disk_mesh(radius_m, refine):
    """Delaunay triangulation of concentric node rings on a disk (coordinates in m).

    ``N = round(2**refine)`` rings; ring ``k`` has ``6 k`` nodes on the circle of radius
    ``k R / N``, so all rim nodes lie exactly on the circle and the nominal edge length is
    ``h = R / N``.  Returns a scikit-fem ``MeshTri``.
    """
    n_rings = round(2.0**refine)
    if n_rings < 2:
        raise ValueError("refine must give at least 2 rings")
    points = [np.zeros((1, 2))]
    for k in range(1, n_rings + 1):
        angles = 2.0 * np.pi * np.arange(6 * k) / (6 * k)
        r = radius_m * k / n_rings
        points.append(np.column_stack((r * np.cos(angles), r * np.sin(angles))))
    p = np.vstack(points)
    tri = Delaunay(p)
    t = tri.simplices
    e1, e2 = p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]]
    twice_area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    t = np.where((twice_area < 0)[:, None], t[:, [0, 2, 1]], t)  # counter-clockwise
    return MeshTri(p.T.copy(), t.T.copy())


def _rim_weights(p, edges, arc_center_rad, half_width_rad, eta):
    """Exact rim integrals ``G_i = int_rim g(phi) phi_i ds`` for the P1 hat functions (in m).

    ``edges`` (2, E) are the rim edges.  Every edge is cut where the rays at the arc ends cross
    it; on each piece ``g`` is constant (``eta`` if the piece's midpoint angle is within
    ``half_width_rad`` of ``arc_center_rad``, else 1) and the hat functions, linear in the edge
    parameter ``s``, are integrated in closed form.
    """
    pa, pb = p[:, edges[0]], p[:, edges[1]]
    length = np.hypot(*(pb - pa))
    cuts = [np.zeros(edges.shape[1]), np.ones(edges.shape[1])]
    for end in (arc_center_rad - half_width_rad, arc_center_rad + half_width_rad):
        u = np.array([np.cos(end), np.sin(end)])
        along = u[0] * (pb - pa)[1] - u[1] * (pb - pa)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = -(u[0] * pa[1] - u[1] * pa[0]) / along
        point = pa + s * (pb - pa)
        valid = (s > 0.0) & (s < 1.0) & (u @ point > 0.0)
        cuts.append(np.where(valid, s, 1.0))
    cuts = np.sort(np.array(cuts), axis=0)
    s0, s1 = cuts[:-1], cuts[1:]
    mid = pa[:, None, :] + 0.5 * (s0 + s1)[None] * (pb - pa)[:, None, :]
    offset = np.angle(np.exp(1j * (np.arctan2(mid[1], mid[0]) - arc_center_rad)))
    g = np.where(np.abs(offset) <= half_width_rad, eta, 1.0)
    int_s = 0.5 * (s1**2 - s0**2)  # int s ds over each piece
    weight_b = length * np.sum(g * int_s, axis=0)
    weight_a = length * np.sum(g * ((s1 - s0) - int_s), axis=0)
    weights = np.zeros(p.shape[1])
    np.add.at(weights, edges[0], weight_a)
    np.add.at(weights, edges[1], weight_b)
    return weights


def _superlevel_moments(p, t, theta, level):
    """Area (m^2) and first moments (m^3) of ``{theta_h > level}`` for the P1 interpolant.

    Each triangle is clipped exactly by the straight level line: with one vertex above the
    level the region is a corner triangle at that vertex; with two above, it is the whole
    triangle minus the corner triangle at the vertex below.
    """
    x = p[:, t]  # (2, 3, T)
    v = theta[t]  # (3, T)
    e1, e2 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]
    area = 0.5 * np.abs(e1[0] * e2[1] - e1[1] * e2[0])
    above = v > level
    n_above = above.sum(axis=0)
    full = n_above == 3
    total_area = area[full].sum()
    total_moment = (area[full] * x[:, :, full].mean(axis=1)).sum(axis=1)
    for count in (1, 2):
        sel = n_above == count
        if not np.any(sel):
            continue
        # corner vertex: the single vertex above (count 1) or the single vertex below (count 2)
        corner = np.argmax(above[:, sel] if count == 1 else ~above[:, sel], axis=0)
        cols = np.arange(3)
        idx = np.stack([(corner + j) % 3 for j in cols])  # corner first, others in cyclic order
        xs, vs = x[:, :, sel], v[:, sel]
        take = np.arange(idx.shape[1])
        xc, xo1, xo2 = (xs[:, idx[j], take] for j in cols)
        vc, vo1, vo2 = (vs[idx[j], take] for j in cols)
        s1 = (vc - level) / (vc - vo1)
        s2 = (vc - level) / (vc - vo2)
        corner_area = s1 * s2 * area[sel]
        corner_centroid = (3.0 * xc + s1 * (xo1 - xc) + s2 * (xo2 - xc)) / 3.0
        if count == 1:
            total_area += corner_area.sum()
            total_moment += (corner_area * corner_centroid).sum(axis=1)
        else:
            tri_centroid = xs.mean(axis=1)
            total_area += (area[sel] - corner_area).sum()
            total_moment += (area[sel] * tri_centroid - corner_area * corner_centroid).sum(axis=1)
    return total_area, total_moment


def solve_fem2d(
    *,
    radius_m=1.2e-6,
    rate_mA_per_g=100.0,
    eta=0.3,
    blocked_fraction=0.25,
    arc_center_rad=np.pi,
    theta0=1.0,
    theta_cut=0.2,
    theta_core=0.97,
    D_hi=1e-14,
    theta_ref=0.8,
    m=3.0,
    D_floor=1e-20,
    t_end_s=None,
    t_out_s=None,
    refine=5,
    dt_max_s=1.0,
    dt_min_s=1e-3,
    dt_max_linear_s=100.0,
) -> dict:
    """Galvanostatic charge of a disk particle (surface model A); P1 FEM reference.

    Parameters
    ----------
    radius_m : disk radius R (m).
    rate_mA_per_g : specific current I (mA/g = A/kg); positive = delithiation.
    eta : flux ratio j_RSL / j_NMC on the blocked arc (-).
    blocked_fraction : fraction f of the rim angle covered by the blocked arc (-).
    arc_center_rad : polar angle of the blocked arc's centre (rad, counter-clockwise from +x).
    theta0 : uniform initial occupancy (-).
    theta_cut : the run stops when the rim minimum of theta reaches this value (-).
    theta_core : threshold of the Li-rich core ``theta > theta_core`` (-).
    D_hi, theta_ref, m, D_floor : diffusivity law of docs/model.md section 4 (m^2/s, -, -, m^2/s).
    t_end_s : if given, stop at this time (s) unless the cut-off comes first.
    t_out_s : times (s) at which observables are reported; steps land exactly on them.  Times
        after the end of the run are dropped.  ``None``: report after every accepted step
        (the last one ends just past the cut-off).
    refine : mesh level; ``N = round(2**refine)`` node rings, nominal edge length ``R / N``
        (refine 5: 37.5 nm, 6: 18.75 nm, 7: 9.4 nm for R = 1.2 um).
    dt_max_s, dt_min_s : largest and first time step (s); steps grow by at most a factor 1.2
        per step.  ``dt_max_s`` controls the time error of the core front (module docstring).
    dt_max_linear_s : largest time step (s) once ``theta <= theta_ref`` everywhere (constant D).

    Returns
    -------
    dict with arrays over the reported times
        ``t_s`` (s), ``mean_theta``, ``surface_min_theta``, ``core_fraction`` (core area /
        polygon area), ``d_nm``, ``d_x_nm``, ``d_y_nm`` (core centroid minus disk centroid, nm;
        NaN without a core);
    scalars ``t_cut_s`` (NaN if the cut-off was not reached) and ``capacity_mAh_per_g``
    (``I t / 3600`` with t = ``t_cut_s``, or the final time if the cut-off was not reached);
    ``theta_end`` (nodal occupancy at the last accepted step) and ``nodes_m`` (2, n_nodes),
    ``triangles`` (3, n_tri) of the mesh; ``info`` (dict: ``h_nm`` = R / N, ``n_nodes``,
    ``n_triangles``, ``n_steps`` (accepted), ``n_newton_iterations``, ``n_factorisations``,
    ``n_rejected``, ``dt_largest_s``, ``polygon_area_rel_err`` (polygon area / (pi R^2) - 1),
    ``perimeter_rel_err`` (polygon perimeter / (2 pi R) - 1), ``wall_s``).
    """
    wall0 = time.perf_counter()
    mesh = build_disk_mesh(radius_m, refine)
    p, t = mesh.p, mesh.t
    basis = Basis(mesh, ElementTriP1())
    stiffness = laplace.assemble(basis).tocsc()
    stiffness.sum_duplicates()
    off_diag = stiffness - sp.diags(stiffness.diagonal())
    if off_diag.max() > 1e-12 * np.abs(stiffness.diagonal()).max():
        raise RuntimeError("stiffness matrix is not an M-matrix (non-Delaunay mesh)")
    lumped = np.asarray(mass.assemble(basis).sum(axis=1)).ravel()
    area = lumped.sum()
    centroid = _superlevel_moments(p, t, np.ones(p.shape[1]), 0.0)[1] / area  # whole polygon
    rim_edges = mesh.facets[:, mesh.boundary_facets()]
    rim_nodes = np.unique(rim_edges)
    perimeter = np.hypot(*(p[:, rim_edges[1]] - p[:, rim_edges[0]])).sum()

    weights = _rim_weights(p, rim_edges, arc_center_rad, np.pi * blocked_fraction, eta)
    qbar = mean_flux_m_s(rate_mA_per_g, radius_m)
    load = weights * (2.0 * qbar * area / radius_m) / weights.sum()  # b_i, m^2/s

    law = (D_hi, theta_ref, m, D_floor)
    # J = M_L/dt + A diag(D) is assembled directly in CSC form (what SuperLU factorises):
    # entry k of A's CSC arrays sits in column col_of_entry[k] and row stiffness.indices[k].
    col_of_entry = np.repeat(np.arange(p.shape[1]), np.diff(stiffness.indptr))
    diag_pos = np.flatnonzero(stiffness.indices == col_of_entry)
    stiffness_diag = stiffness.data[diag_pos]

    def factorize(theta, dt):
        """SuperLU factors of the quasi-Newton Jacobian M_L/dt + A diag(D(theta)).

        The Jacobian is a column-diagonally-dominant M-matrix, so no pivoting is needed.
        Columns whose diffusive coupling ``D_j A_jj`` is below ``_WEAK_COUPLING`` times the
        storage term ``M_jj / dt`` (the nearly frozen core, D ~ D_floor) are left out of
        ``A diag(D)``: their fill in the factors would otherwise decay into subnormal numbers,
        which slows the factorisation several-fold.  Column sums are unchanged (zero for the
        diffusion part), so the Li balance of every update stays exact.
        """
        d = _diffusivity(theta, *law)
        d[d * stiffness_diag * dt < _WEAK_COUPLING * lumped] = 0.0
        data = stiffness.data * d[col_of_entry]
        data[diag_pos] += lumped / dt
        jac = sp.csc_matrix((data, stiffness.indices, stiffness.indptr), shape=stiffness.shape)
        return splu(jac, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})

    jacobian = {"lu": None, "dt": None}  # factorised Jacobian, reused while it works

    def backward_euler_step(theta_old, dt, guess):
        """Solve M_L (theta - theta_old)/dt + A K(theta) + b = 0 for theta.

        Quasi-Newton iteration: the factorised Jacobian is kept across iterations and steps
        (same ``dt``) and refreshed at the current iterate whenever the update contracts by
        less than ``_JACOBIAN_REFRESH`` per iteration.  ``guess`` is the starting iterate.
        Every update restores the exact Li balance, because the columns of ``A diag(D)`` sum
        to zero.  Returns ``(theta or None on failure, iterations, factorisations)``.
        """
        theta = guess.copy()
        if jacobian["dt"] != dt:
            jacobian["lu"] = None
        n_factor, previous = 0, np.inf
        for it in range(1, _NEWTON_MAXIT + 1):
            if jacobian["lu"] is None:
                jacobian.update(lu=factorize(theta, dt), dt=dt)
                n_factor += 1
            residual = lumped * (theta - theta_old) / dt + stiffness @ _kirchhoff(theta, *law) + load
            delta = jacobian["lu"].solve(-residual)
            size = np.abs(delta).max()
            if not np.isfinite(size):
                break
            theta += delta
            if size < _NEWTON_TOL:
                return theta, it, n_factor
            if size > _JACOBIAN_REFRESH * previous:
                jacobian["lu"] = None
            previous = size
        jacobian["lu"] = None
        return None, it, n_factor

    def observe(theta, t_now):
        """One output record: t, mean theta, rim minimum, core fraction, d_x, d_y (nm)."""
        core_area, core_moment = _superlevel_moments(p, t, theta, theta_core)
        offset = core_moment / core_area - centroid if core_area > 0 else np.full(2, np.nan)
        return (t_now, np.dot(lumped, theta) / area, theta[rim_nodes].min(), core_area / area, *(offset * 1e9))

    t_out = np.sort(np.atleast_1d(np.asarray([] if t_out_s is None else t_out_s, float)))
    t_stop = np.inf if t_end_s is None else float(t_end_s)
    theta = np.full(p.shape[1], float(theta0))
    rim_min_old = theta[rim_nodes].min()
    if rim_min_old <= theta_cut:
        raise ValueError("theta0 must lie above theta_cut")
    records = [observe(theta, 0.0) for _ in range(np.count_nonzero(t_out <= 0.0))]
    out_index = len(records)
    t_now, dt, dt_largest = 0.0, float(dt_min_s), 0.0
    theta_previous, previous_step = theta, 1.0
    n_steps = n_iterations = n_factorisations = n_rejected = 0
    t_cut = np.nan
    while t_now < t_stop and np.isnan(t_cut):
        target = min(t_stop, t_out[out_index]) if out_index < len(t_out) else t_stop
        landing = target - t_now <= dt
        step = target - t_now if landing else dt
        guess = theta + (step / previous_step) * (theta - theta_previous)
        theta_new, its, factors = backward_euler_step(theta, step, guess)
        n_iterations += its
        n_factorisations += factors
        if theta_new is None:
            n_rejected += 1
            dt = 0.25 * step
            if dt < 1e-6 * dt_min_s:
                raise RuntimeError(f"time step collapsed at t = {t_now:.6g} s")
            continue
        n_steps += 1
        dt_largest = max(dt_largest, step)
        cap = dt_max_linear_s if theta_new.max() <= theta_ref else dt_max_s
        dt = max(dt, min(cap, _DT_GROWTH * step)) if landing else min(cap, _DT_GROWTH * step)
        rim_min = theta_new[rim_nodes].min()
        if rim_min <= theta_cut:
            t_cut = t_now + step * (rim_min_old - theta_cut) / (rim_min_old - rim_min)
        theta_previous, previous_step = theta, step
        theta, rim_min_old = theta_new, rim_min
        t_now = target if landing else t_now + step
        if t_out_s is None:
            records.append(observe(theta, t_now))
        while np.isnan(t_cut) and out_index < len(t_out) and t_out[out_index] <= t_now:
            records.append(observe(theta, t_now))
            out_index += 1

    columns = np.array(records, dtype=float).reshape(-1, 6).T
    t_final = t_cut if np.isfinite(t_cut) else t_now
    d_x, d_y = columns[4], columns[5]
    return {
        "t_s": columns[0],
        "mean_theta": columns[1],
        "surface_min_theta": columns[2],
        "core_fraction": columns[3],
        "d_nm": np.hypot(d_x, d_y),
        "d_x_nm": d_x,
        "d_y_nm": d_y,
        "t_cut_s": float(t_cut),
        "capacity_mAh_per_g": float(rate_mA_per_g * t_final / 3600.0),
        "theta_end": theta,
        "nodes_m": p,
        "triangles": t,
        "info": {
            "h_nm": radius_m / round(2.0**refine) * 1e9,
            "n_nodes": p.shape[1],
            "n_triangles": t.shape[1],
            "n_steps": n_steps,
            "n_newton_iterations": n_iterations,
            "n_factorisations": n_factorisations,
            "n_rejected": n_rejected,
            "dt_largest_s": dt_largest,
            "polygon_area_rel_err": area / (np.pi * radius_m**2) - 1.0,
            "perimeter_rel_err": perimeter / (2.0 * np.pi * radius_m) - 1.0,
            "wall_s": time.perf_counter() - wall0,
        },
    }

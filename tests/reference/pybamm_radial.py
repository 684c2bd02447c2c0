"""PyBaMM version of the 1D radial (eta = 1) disk delithiation reference.

Same physics as :mod:`radial1d` (see there), built as a custom ``pybamm.BaseModel``:

* one variable ``theta`` on a 1D domain "disk" with a ``SpatialVariable`` x = r/R in
  [0, 1], ``coord_sys="cylindrical polar"`` (PyBaMM's finite volume then uses the
  (r_{i+1}^2 - r_i^2)/2 control volumes and r-weighted face fluxes);
* d theta/dt = div( D(theta) grad theta ) / R^2  (x is scaled by R, time in seconds);
* D(theta) = D_hi * minimum(maximum((1-theta)/(1-theta_ref), 0), 1)**m + D_floor with
  ``pybamm.minimum``/``pybamm.maximum``.  With PyBaMM's default
  ``pybamm.settings.min_max_mode == "exact"`` these are the exact (non-smooth) casadi
  fmin/fmax; set ``smooth_k`` to use ``pybamm.smooth_min``/``smooth_max`` with that
  k instead (sqrt((a-b)^2 + 1/k^2) regularisation; k ~ 1e3 shifts D by < 1e-3 relative).
  The ``maximum(.., 0)`` clip stops theta > 1 (integrator overshoot) from giving D < 0;
* **face diffusivity:** PyBaMM maps a node quantity multiplied by a ``pybamm.Gradient``
  to the faces with the *harmonic* mean.  For this degenerate D (1e-20 .. 1e-14) the
  harmonic mean pins the front (checked: surface theta at 300 s is 0.844 instead of
  0.915).  The flux is therefore written as D(theta) * (grad(theta) / R^2): the right
  operand is then a Division, not a Gradient, and PyBaMM uses the arithmetic mean (its
  ``process_binary_operators`` only picks "harmonic" when the operand *is* a Gradient);
* Neumann BCs: 0 at x = 0; at x = 1 d theta/dx = -qbar R / D_b where D_b is
  ``BoundaryValue(D(theta), "right")`` -- the same linear extrapolation of nodal D that
  PyBaMM uses for the exterior face, so the boundary flux is exactly qbar and Li is
  conserved (mean theta falls at 2 qbar / R);
* surface theta = ``BoundaryValue(theta, "right")`` with extrapolation that does *not*
  use the BC ("use bcs": False; linear by default): with D_floor = 1e-20 the BC
  gradient is ~1e4 at t = 0 and would give a meaningless surface value;
* termination: ``pybamm.Event`` on surface theta - theta_cut (IDAKLU root finding).

Rate, radius, theta0 and theta_cut are ``pybamm.InputParameter``s, so one discretised
model is reused for any number of runs (``solve_pybamm_radial_batch``).  pybamm is
imported lazily: this module imports without it.
"""

from __future__ import annotations

import math
import time

import numpy as np

try:  # package import (tests.reference.pybamm_radial)
    from .radial1d import C_MAX, FARADAY, Q_TH, RHO, area_fraction_above  # noqa: F401
except ImportError:  # pragma: no cover - script use
    from radial1d import C_MAX, FARADAY, Q_TH, RHO, area_fraction_above  # noqa: F401

_MODEL_CACHE: dict = {}

INPUT_NAMES = ("I [mA/g]", "R [m]", "theta0", "theta_cut")


def _build(n_cells, law, D_hi, theta_ref, m, D_floor, D_const, mesh, smooth_k, extrap_order):
    """Build and discretise the model once per set of structural parameters."""
    key = (int(n_cells), law, D_hi, theta_ref, m, D_floor, D_const, mesh, smooth_k, extrap_order)
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    import pybamm

    t0 = time.perf_counter()
    theta = pybamm.Variable("theta", domain="disk")
    x = pybamm.SpatialVariable("x", domain="disk", coord_sys="cylindrical polar")
    I = pybamm.InputParameter("I [mA/g]")
    R = pybamm.InputParameter("R [m]")
    theta0 = pybamm.InputParameter("theta0")
    theta_cut = pybamm.InputParameter("theta_cut")

    if smooth_k is None:
        vmin, vmax = pybamm.minimum, pybamm.maximum
    else:
        k = float(smooth_k)

        def vmin(a, b):
            return pybamm.smooth_min(a, b, k)

        def vmax(a, b):
            return pybamm.smooth_max(a, b, k)

    if law == "power":

        def D(th):
            s = vmin(vmax((1.0 - th) / (1.0 - theta_ref), 0.0), 1.0)
            return D_hi * s**m + D_floor

    elif law == "constant":
        if D_const is None:
            raise ValueError("law='constant' needs D_const")

        def D(th):
            return pybamm.Scalar(float(D_const)) + 0.0 * th

    else:
        raise ValueError(f"unknown law {law!r}")

    qbar = I * RHO * R / (2.0 * FARADAY * C_MAX)  # m/s
    # NB: D(theta) * (grad / R^2) -> arithmetic face mean (see module docstring)
    flux = -D(theta) * (pybamm.grad(theta) / R**2)
    model = pybamm.BaseModel(name="radial disk delithiation")
    model.rhs = {theta: -pybamm.div(flux)}
    D_b = pybamm.BoundaryValue(D(theta), "right")
    model.boundary_conditions = {
        theta: {
            "left": (pybamm.Scalar(0.0), "Neumann"),
            "right": (-qbar * R / D_b, "Neumann"),
        }
    }
    model.initial_conditions = {theta: theta0}
    surf = pybamm.BoundaryValue(theta, "right")
    model.variables = {
        "theta": theta,
        "surface theta": surf,
        "mean theta": pybamm.Integral(theta, x) / np.pi,  # cylindrical integral has 2 pi x dx
    }
    model.events = [pybamm.Event("surface theta cut-off", surf - theta_cut)]

    geometry = {"disk": {x: {"min": pybamm.Scalar(0.0), "max": pybamm.Scalar(1.0)}}}
    if mesh == "uniform":
        submesh = pybamm.Uniform1DSubMesh
    elif mesh == "exponential":  # clustered toward the surface
        submesh = pybamm.MeshGenerator(pybamm.Exponential1DSubMesh, submesh_params={"side": "right", "stretch": 1.1})
    else:
        raise ValueError(f"unknown mesh {mesh!r}")
    pmesh = pybamm.Mesh(geometry, {"disk": submesh}, {x: int(n_cells)})
    fv = pybamm.FiniteVolume(
        {"extrapolation": {"order": {"value": extrap_order, "gradient": "quadratic"}, "use bcs": False}}
    )
    disc = pybamm.Discretisation(pmesh, {"disk": fv})
    disc.process_model(model)
    nodes = np.asarray(pmesh["disk"].nodes, dtype=float)
    built = {"model": model, "nodes": nodes, "build_s": time.perf_counter() - t0, "solvers": {}}
    _MODEL_CACHE[key] = built
    return built


def _get_solver(built, rtol, atol, num_threads):
    import pybamm

    key = (rtol, atol, num_threads)
    if key not in built["solvers"]:
        opts = {}
        if num_threads and num_threads > 1:
            opts = {"num_threads": int(num_threads), "num_solvers": int(num_threads)}
        built["solvers"][key] = pybamm.IDAKLUSolver(rtol=rtol, atol=atol, options=opts)
    return built["solvers"][key]


def _default_t_end(rate, theta0, theta_cut):
    mean_rate = rate / (3600.0 * Q_TH)
    return 1.02 * max(theta0 - theta_cut, 0.0) / mean_rate + 1.0


def _postprocess(sol, nodes, t_out, rate, theta_core, t_end):
    """Turn a pybamm.Solution into the radial1d-style dict."""
    t_sol = np.asarray(sol.t, dtype=float)
    th_all = np.asarray(sol["theta"].entries, dtype=float)  # (n_cells, n_t)
    surf_all = np.asarray(sol["surface theta"].entries, dtype=float).ravel()
    mean_all = np.asarray(sol["mean theta"].entries, dtype=float).ravel()
    t_last = float(t_sol[-1])
    term = str(getattr(sol, "termination", ""))
    t_cut = t_last if "event" in term else math.nan
    if t_out is None:
        t_out = np.linspace(0.0, t_last, 201)
    t_out = np.atleast_1d(np.asarray(t_out, dtype=float))
    n = t_out.size
    surf = np.full(n, np.nan)
    mean = np.full(n, np.nan)
    core = np.full(n, np.nan)
    need_interp = []
    idx = np.empty(n, dtype=int)
    for k, tk in enumerate(t_out):
        if tk < 0 or tk > t_last * (1 + 1e-12):
            idx[k] = -1
            continue
        j = int(np.argmin(np.abs(t_sol - tk)))
        if abs(t_sol[j] - tk) <= 1e-9 * max(1.0, tk):
            idx[k] = j
        else:
            idx[k] = -2
            need_interp.append(k)
    if need_interp:  # times not stored: use pybamm's interpolant
        tk = t_out[need_interp]
        th_i = np.asarray(sol["theta"](t=tk), dtype=float).reshape(len(nodes), -1)
        s_i = np.asarray(sol["surface theta"](t=tk), dtype=float).ravel()
        m_i = np.asarray(sol["mean theta"](t=tk), dtype=float).ravel()
    r_nodes = np.concatenate([[0.0], nodes, [1.0]])
    for k in range(n):
        if idx[k] == -1:
            continue
        if idx[k] >= 0:
            th, s, mu = th_all[:, idx[k]], surf_all[idx[k]], mean_all[idx[k]]
        else:
            p = need_interp.index(k)
            th, s, mu = th_i[:, p], s_i[p], m_i[p]
        surf[k] = s
        mean[k] = mu
        core[k] = area_fraction_above(r_nodes, np.concatenate([[th[0]], th, [s]]), theta_core, 1.0)
    return {
        "t_s": t_out,
        "surface_theta": surf,
        "mean_theta": mean,
        "core_fraction": core,
        "t_cut_s": t_cut,
        "capacity_mAh_per_g": rate * t_cut / 3600.0,
        "capacity_end_mAh_per_g": rate * t_last / 3600.0,
        "termination": term,
    }


def _structural(kw):
    return dict(
        n_cells=kw["n_cells"],
        law=kw["law"],
        D_hi=kw["D_hi"],
        theta_ref=kw["theta_ref"],
        m=kw["m"],
        D_floor=kw["D_floor"],
        D_const=kw["D_const"],
        mesh=kw["mesh"],
        smooth_k=kw["smooth_k"],
        extrap_order=kw["extrap_order"],
    )


def solve_pybamm_radial(
    *,
    radius_m=1.2e-6,
    rate_mA_per_g=100.0,
    theta0=1.0,
    theta_cut=0.2,
    theta_core=0.97,
    D_hi=1e-14,
    theta_ref=0.8,
    m=3.0,
    D_floor=1e-20,
    t_out_s=None,
    t_end_s=None,
    n_cells=400,
    rtol=1e-8,
    atol=1e-10,
    law="power",
    D_const=None,
    mesh="uniform",
    smooth_k=None,
    extrap_order="linear",
) -> dict:
    """PyBaMM (IDAKLU) solution of the radial problem; same outputs as solve_radial1d.

    Extra keys: setup_s (model build + discretisation, 0 when cached), wall_s (the
    solve call alone), termination.  t_out_s given -> passed as IDAKLU ``t_interp``.
    """
    kw = dict(locals())
    built = _build(**_structural(kw))
    setup_s = built.pop("build_s", 0.0)
    solver = _get_solver(built, rtol, atol, None)
    if t_end_s is None:
        t_end_s = _default_t_end(rate_mA_per_g, theta0, theta_cut)
    inputs = {"I [mA/g]": float(rate_mA_per_g), "R [m]": float(radius_m), "theta0": float(theta0), "theta_cut": float(theta_cut)}
    t_interp = None if t_out_s is None else np.unique(np.clip(np.atleast_1d(np.asarray(t_out_s, float)), 0.0, t_end_s))
    w0 = time.perf_counter()
    sol = solver.solve(built["model"], [0.0, float(t_end_s)], inputs=inputs, t_interp=t_interp)
    wall = time.perf_counter() - w0
    out = _postprocess(sol, built["nodes"], t_out_s, rate_mA_per_g, theta_core, t_end_s)
    out.update(
        qbar_m_per_s=rate_mA_per_g * RHO * radius_m / (2.0 * FARADAY * C_MAX),
        n_cells=int(n_cells),
        wall_s=wall,
        setup_s=setup_s,
    )
    return out


def solve_pybamm_radial_batch(
    rates_mA_per_g,
    *,
    radius_m=1.2e-6,
    theta0=1.0,
    theta_cut=0.2,
    theta_core=0.97,
    D_hi=1e-14,
    theta_ref=0.8,
    m=3.0,
    D_floor=1e-20,
    t_out_s=None,
    t_end_s=None,
    n_cells=400,
    rtol=1e-8,
    atol=1e-10,
    law="power",
    D_const=None,
    mesh="uniform",
    smooth_k=None,
    extrap_order="linear",
    num_threads=1,
) -> list:
    """Solve one compiled model for many rates in a single ``solver.solve(inputs=[...])``.

    Returns a list of result dicts (as solve_pybamm_radial), one per rate.  Each also
    carries batch_wall_s (the one solve call for all inputs), per_sim_s
    (= batch_wall_s / len(rates)) and setup_s.  t_end_s defaults to the bound for the
    slowest rate (each run stops at its own cut-off event).  num_threads > 1 uses
    IDAKLU's OpenMP parallel solvers (options num_threads = num_solvers).
    """
    kw = dict(locals())
    rates = [float(r) for r in np.atleast_1d(rates_mA_per_g)]
    built = _build(**_structural(kw))
    setup_s = built.pop("build_s", 0.0)
    solver = _get_solver(built, rtol, atol, num_threads)
    if t_end_s is None:
        t_end_s = max(_default_t_end(r, theta0, theta_cut) for r in rates)
    inputs = [
        {"I [mA/g]": r, "R [m]": float(radius_m), "theta0": float(theta0), "theta_cut": float(theta_cut)} for r in rates
    ]
    t_interp = None if t_out_s is None else np.unique(np.clip(np.atleast_1d(np.asarray(t_out_s, float)), 0.0, t_end_s))
    w0 = time.perf_counter()
    sols = solver.solve(built["model"], [0.0, float(t_end_s)], inputs=inputs, t_interp=t_interp)
    wall = time.perf_counter() - w0
    if not isinstance(sols, list):
        sols = [sols]
    outs = []
    for r, sol in zip(rates, sols):
        o = _postprocess(sol, built["nodes"], t_out_s, r, theta_core, t_end_s)
        o.update(
            qbar_m_per_s=r * RHO * radius_m / (2.0 * FARADAY * C_MAX),
            n_cells=int(n_cells),
            batch_wall_s=wall,
            per_sim_s=wall / len(rates),
            setup_s=setup_s,
        )
        outs.append(o)
    return outs


__all__ = ["solve_pybamm_radial", "solve_pybamm_radial_batch", "INPUT_NAMES"]

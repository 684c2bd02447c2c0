"""Independent 1D radial (cylindrical) reference solver for the eta = 1 disk problem.

With no blocked surface the 2D disk problem of fluxsim is radially symmetric:

    d theta/dt = (1/r) d/dr ( r D(theta) d theta/dr ),   0 < r < R
    d theta/dr = 0 at r = 0,   -D(theta) d theta/dr = qbar at r = R,   theta(r, 0) = theta0

This module is deliberately written without reference to fluxsim's own numerics.  The
discretisation is a *cell-centred* finite volume method of lines (unknowns are cell
averages, not vertex values), on a grid mildly graded toward the surface, with

* face diffusivity = arithmetic mean of D at the two neighbouring cell centres
  (no Kirchhoff transform);
* the prescribed flux R*qbar entering the outermost cell directly, so Li is conserved
  to round-off (mean theta falls exactly at 2 qbar / R);
* the surface value theta(R) recovered from the half-cell flux condition
      0.5 (D(theta_s) + D(theta_{N-1})) (theta_{N-1} - theta_s) / h_half = qbar,
  a monotone scalar equation solved by Brent's method;
* time integration with scipy.integrate.solve_ivp (BDF by default) with an analytic
  tridiagonal sparse Jacobian, and a terminal event at theta(R) = theta_cut.

Units: SI (m, s), specific current in mA/g (== A/kg).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

# Physical constants (docs/model.md section 5)
FARADAY = 96485.33  # C/mol
RHO = 4780.0  # kg/m^3
MOLAR_MASS = 97.46e-3  # kg/mol
C_MAX = RHO / MOLAR_MASS  # mol/m^3 (= 49,045)
Q_TH = FARADAY / (3.6 * MOLAR_MASS * 1e3)  # mAh/g (= 275.0)


def surface_flux(rate_mA_per_g: float, radius_m: float) -> float:
    """Outward occupancy flux qbar (m/s) for a specific current I (mA/g = A/kg)."""
    return rate_mA_per_g * RHO * radius_m / (2.0 * FARADAY * C_MAX)


def make_diffusivity(law="power", *, D_hi=1e-14, theta_ref=0.8, m=3.0, D_floor=1e-20, D_const=None, scalar=False):
    """Return (D, dD/dtheta) as vectorised numpy functions (scalar=True: return a plain
    float function D(theta) only, for the scalar surface solve).

    power:    D = D_hi * min(1, ((1-theta)/(1-theta_ref))**m) + D_floor, with 1-theta
              clipped at 0 (theta may overshoot 1 by ~rtol in the time integrator; an
              unclipped odd power would make D negative there).
    constant: D = D_const.
    """
    if law == "constant":
        if D_const is None:
            raise ValueError("law='constant' needs D_const")
        Dc = float(D_const)
        if scalar:
            return lambda th: Dc

        def D(th):
            return np.full_like(np.asarray(th, dtype=float), Dc)

        def dD(th):
            return np.zeros_like(np.asarray(th, dtype=float))

        return D, dD
    if law != "power":
        raise ValueError(f"unknown law {law!r}")
    w = 1.0 - theta_ref
    if scalar:

        def Ds(th):
            x = min(max((1.0 - th) / w, 0.0), 1.0)
            return D_hi * x**m + D_floor

        return Ds

    def D(th):
        x = np.clip((1.0 - np.asarray(th, dtype=float)) / w, 0.0, 1.0)
        return D_hi * x**m + D_floor

    def dD(th):
        x = (1.0 - np.asarray(th, dtype=float)) / w
        inside = (x > 0.0) & (x < 1.0)
        xc = np.clip(x, 0.0, 1.0)
        return np.where(inside, -D_hi * m * xc ** (m - 1.0) / w, 0.0)

    return D, dD


def graded_faces(n_cells: int, radius_m: float, grading: float = 2.0) -> np.ndarray:
    """Cell faces 0 = r_0 < ... < r_N = R; spacing at the centre is `grading` times the
    spacing at the surface (quadratic map r = R (a s + (1-a)(1-(1-s)^2)), a = 2/(1+g))."""
    g = float(grading)
    if g < 1.0:
        raise ValueError("grading must be >= 1")
    a = 2.0 / (1.0 + g)
    s = np.linspace(0.0, 1.0, n_cells + 1)
    r = radius_m * (a * s + (1.0 - a) * (1.0 - (1.0 - s) ** 2))
    r[0], r[-1] = 0.0, radius_m
    return r


def area_fraction_above(r_nodes, th_nodes, level, radius_m):
    """Area fraction of the disk where the piecewise-linear radial profile exceeds `level`.

    Works for non-monotone profiles; for a monotone (shrinking core) profile it equals
    (r_core / R)^2 with r_core from linear interpolation.
    """
    r0, r1 = r_nodes[:-1], r_nodes[1:]
    t0, t1 = th_nodes[:-1] - level, th_nodes[1:] - level
    # sub-interval [ra, rb] of each segment where the linear interpolant is > 0
    dt = t1 - t0
    with np.errstate(divide="ignore", invalid="ignore"):
        rx = np.where(dt != 0.0, r0 - t0 * (r1 - r0) / dt, r0)
    ra = np.where(t0 > 0, r0, np.where(t1 > 0, rx, r1))
    rb = np.where(t1 > 0, r1, np.where(t0 > 0, rx, r0))
    ra = np.clip(ra, r0, r1)
    rb = np.clip(rb, r0, r1)
    area = np.sum(np.maximum(rb**2 - ra**2, 0.0))
    return float(area / radius_m**2)


class _RadialFV:
    """Cell-centred FV semi-discretisation (see module docstring)."""

    def __init__(self, n_cells, radius_m, qbar, D, dD, grading, D_scalar):
        self.N = n_cells
        self.D_scalar = D_scalar
        self.R = radius_m
        self.qbar = qbar
        self.D, self.dD = D, dD
        rf = graded_faces(n_cells, radius_m, grading)
        self.rf = rf
        self.vol = 0.5 * (rf[1:] ** 2 - rf[:-1] ** 2)  # "area / 2 pi"
        self.rc = 0.5 * (rf[1:] + rf[:-1])  # cell centres (midpoints)
        self.g = rf[1:-1] / (self.rc[1:] - self.rc[:-1])  # internal-face geometric factor
        self.h_half = radius_m - self.rc[-1]
        self.total_vol = 0.5 * radius_m**2
        n = n_cells
        # tridiagonal sparsity / Jacobian index structure
        self._rows = np.concatenate([np.arange(n), np.arange(1, n), np.arange(n - 1)])
        self._cols = np.concatenate([np.arange(n), np.arange(n - 1), np.arange(1, n)])

    def face_flux(self, th):
        """F_j = r_j D_face (dtheta/dr)_j at the N+1 faces (F_0 = 0, F_N = -R qbar)."""
        Dc = self.D(th)
        Df = 0.5 * (Dc[1:] + Dc[:-1])
        F = np.empty(self.N + 1)
        F[0] = 0.0
        F[1:-1] = self.g * Df * (th[1:] - th[:-1])
        F[-1] = -self.R * self.qbar
        return F

    def rhs(self, t, th):
        F = self.face_flux(th)
        return (F[1:] - F[:-1]) / self.vol

    def jac(self, t, th):
        Dc = self.D(th)
        dDc = self.dD(th)
        Df = 0.5 * (Dc[1:] + Dc[:-1])
        diff = th[1:] - th[:-1]
        # F_j (internal face j between cells j-1 and j), j = 1..N-1
        dF_dright = self.g * (Df + 0.5 * dDc[1:] * diff)  # d F_j / d th_j
        dF_dleft = self.g * (-Df + 0.5 * dDc[:-1] * diff)  # d F_j / d th_{j-1}
        n = self.N
        diag = np.zeros(n)
        # cell i: (F_{i+1} - F_i)/vol_i ; F_{i+1} involves th_i as "left", F_i involves th_i as "right"
        diag[:-1] += dF_dleft
        diag[1:] -= dF_dright
        lower = -dF_dleft / self.vol[1:]  # d rhs_i / d th_{i-1}, i = 1..N-1
        upper = dF_dright / self.vol[:-1]  # d rhs_i / d th_{i+1}, i = 0..N-2
        diag = diag / self.vol
        data = np.concatenate([diag, lower, upper])
        return sp.csc_matrix((data, (self._rows, self._cols)), shape=(n, n))

    def sparsity(self):
        n = self.N
        return sp.csc_matrix((np.ones(3 * n - 2), (self._rows, self._cols)), shape=(n, n))

    def surface(self, th):
        """theta(R) from the half-cell flux condition (exact: prescribed flux)."""
        tc = float(th[-1])
        target = self.qbar * self.h_half
        Ds = self.D_scalar
        Dtc = Ds(tc)
        if target == 0.0:
            return tc

        def f(ts):
            return 0.5 * (Ds(ts) + Dtc) * (tc - ts) - target

        if self.qbar > 0:
            lo = tc - 1.0
            while f(lo) < 0.0:
                lo -= 10.0 * (tc - lo)
            return brentq(f, lo, tc, xtol=1e-15, rtol=1e-14)
        hi = tc + 1.0
        while f(hi) > 0.0:
            hi += 10.0 * (hi - tc)
        return brentq(f, tc, hi, xtol=1e-15, rtol=1e-14)

    def mean(self, th):
        return float(np.dot(self.vol, th) / self.total_vol)

    def profile_nodes(self, th):
        r = np.concatenate([[0.0], self.rc, [self.R]])
        v = np.concatenate([[th[0]], th, [self.surface(th)]])
        return r, v


def solve_radial1d(
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
    n_cells=800,
    rtol=1e-8,
    atol=1e-10,
    law="power",
    D_const=None,
    grading=2.0,
    method="BDF",
    return_profiles=False,
) -> dict:
    """Galvanostatic delithiation of a disk (eta = 1), 1D radial reference.

    Returns a dict with numpy arrays (at t_out_s; NaN after cut-off):
      t_s, surface_theta, mean_theta, core_fraction
    and scalars
      t_cut_s (NaN if the cut-off is not reached before t_end_s),
      capacity_mAh_per_g (= I t_cut / 3600; NaN if not reached),
      capacity_end_mAh_per_g (passed capacity at the last integrated time),
      qbar_m_per_s, n_cells, wall_s, nfev, njev, status.
    If return_profiles, also r_m (cell centres) and theta_profiles (len(t_out) x n_cells).

    t_out_s: output times (default: 201 points from 0 to the cut-off, evaluated from the
    dense output after the run).  t_end_s: integration limit (default: time for the
    mean to fall to theta_cut, which bounds the surface cut-off from above, +2 %).
    """
    import time

    wall0 = time.perf_counter()
    qbar = surface_flux(rate_mA_per_g, radius_m)
    D, dD = make_diffusivity(law, D_hi=D_hi, theta_ref=theta_ref, m=m, D_floor=D_floor, D_const=D_const)
    Ds = make_diffusivity(law, D_hi=D_hi, theta_ref=theta_ref, m=m, D_floor=D_floor, D_const=D_const, scalar=True)
    fv = _RadialFV(int(n_cells), radius_m, qbar, D, dD, grading, Ds)
    mean_rate = 2.0 * qbar / radius_m  # d(mean theta)/dt, = I / (3600 Q_th)
    if t_end_s is None:
        if mean_rate > 0:
            t_end_s = 1.02 * max(theta0 - theta_cut, 0.0) / mean_rate + 1.0
        else:
            raise ValueError("t_end_s is required for zero or negative current")
    t_end_s = float(t_end_s)

    def ev(t, y):
        return fv.surface(y) - theta_cut

    ev.terminal = True
    ev.direction = -1.0 if qbar > 0 else 1.0

    y0 = np.full(fv.N, float(theta0))
    sol = solve_ivp(
        fv.rhs,
        (0.0, t_end_s),
        y0,
        method=method,
        jac=fv.jac,
        rtol=rtol,
        atol=atol,
        events=ev if qbar != 0 else None,
        dense_output=True,
    )
    if sol.status < 0:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    t_last = float(sol.t[-1])
    if qbar != 0 and len(sol.t_events[0]) > 0:
        t_cut = float(sol.t_events[0][0])
    else:
        t_cut = math.nan

    if t_out_s is None:
        t_out = np.linspace(0.0, t_last, 201)
    else:
        t_out = np.atleast_1d(np.asarray(t_out_s, dtype=float))
    n_out = t_out.size
    surf = np.full(n_out, np.nan)
    mean = np.full(n_out, np.nan)
    core = np.full(n_out, np.nan)
    profiles = np.full((n_out, fv.N), np.nan) if return_profiles else None
    for k, tk in enumerate(t_out):
        if tk < 0 or tk > t_last * (1 + 1e-12):
            continue
        th = sol.sol(min(tk, t_last)) if tk > 0 else y0
        r_nodes, v_nodes = fv.profile_nodes(th)
        surf[k] = v_nodes[-1]
        mean[k] = fv.mean(th)
        core[k] = area_fraction_above(r_nodes, v_nodes, theta_core, radius_m)
        if return_profiles:
            profiles[k] = th
    out = {
        "t_s": t_out,
        "surface_theta": surf,
        "mean_theta": mean,
        "core_fraction": core,
        "t_cut_s": t_cut,
        "capacity_mAh_per_g": rate_mA_per_g * t_cut / 3600.0,
        "capacity_end_mAh_per_g": rate_mA_per_g * t_last / 3600.0,
        "qbar_m_per_s": qbar,
        "n_cells": fv.N,
        "nfev": sol.nfev,
        "njev": sol.njev,
        "status": sol.status,
        "wall_s": time.perf_counter() - wall0,
    }
    if return_profiles:
        out["r_m"] = fv.rc.copy()
        out["theta_profiles"] = profiles
    return out


__all__ = [
    "solve_radial1d",
    "surface_flux",
    "make_diffusivity",
    "graded_faces",
    "area_fraction_above",
    "C_MAX",
    "Q_TH",
    "FARADAY",
    "RHO",
    "MOLAR_MASS",
]

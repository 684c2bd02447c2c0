"""Cross-checks of the 1D radial references (run from the repository root):

    python -m tests.reference.check_radial [--n-cells 800] [--quick] [--no-pybamm]

(a) radial1d with law="constant" against the analytic Bessel series for a disk with
    uniform outward flux (formula verified numerically first: t = 0, BC, mean, PDE);
(b) default power law at 50/100/200/400 mA/g at n_cells and 2*n_cells: capacity at
    cut-off, surface theta at 300/600/1200 s, core fraction at 300/600/900/1200 s;
(c) the same with PyBaMM (if importable; e.g. run with /work/pybamm-venv/bin/python).

Exits 1 if a tolerance check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy.optimize import brentq
from scipy.special import j0, jn_zeros

if __package__ in (None, ""):
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    from tests.reference.radial1d import Q_TH, solve_radial1d, surface_flux
else:
    from .radial1d import Q_TH, solve_radial1d, surface_flux

FAILS: list[str] = []


def check(name, ok, detail=""):
    print(f"  [{'PASS' if ok else 'FAIL'}] {name} {detail}")
    if not ok:
        FAILS.append(name)


# --------------------------------------------------------------------------- (a)
_ZEROS = jn_zeros(1, 4000)  # positive zeros of J1
_J0Z = j0(_ZEROS)


def bessel_theta(rh, th, *, theta0, qh, n_terms=4000):
    """Analytic disk solution, constant D, uniform outward flux.

    theta = theta0 - 2 qh th - qh (rh^2/2 - 1/4)
            + sum_n 2 qh J0(a_n rh) exp(-a_n^2 th) / (a_n^2 J0(a_n)),   J1(a_n) = 0,
    rh = r/R, th = D t / R^2, qh = qbar R / D.
    """
    rh = np.atleast_1d(np.asarray(rh, dtype=float))
    a = _ZEROS[:n_terms]
    coef = 2.0 * qh * np.exp(-(a**2) * th) / (a**2 * _J0Z[:n_terms])
    series = j0(np.outer(rh, a)) @ coef
    return theta0 - 2.0 * qh * th - qh * (rh**2 / 2.0 - 0.25) + series


def verify_bessel_formula():
    print("(a0) verifying the Bessel-series formula numerically (theta0 = 1, qh = 0.7)")
    qh, th0 = 0.7, 1.0
    r = np.linspace(0.0, 1.0, 201)
    # t = 0: the series must cancel the polynomial (Fourier-Bessel expansion of r^2/2 - 1/4)
    err0 = np.max(np.abs(bessel_theta(r, 0.0, theta0=th0, qh=qh) - th0))
    check("t=0 gives theta0", err0 < 1e-4, f"max|theta - theta0| = {err0:.2e} (4000 terms, series ~ 1/a^2)")
    for th in (1e-3, 0.05, 0.3):
        # BC: d theta / d rh at rh = 1 = -qh   (derivative of the series: -a J1(a) = 0 at zeros)
        h = 1e-5
        g = (bessel_theta(1.0, th, theta0=th0, qh=qh) - bessel_theta(1.0 - h, th, theta0=th0, qh=qh))[0] / h
        g2 = (bessel_theta(1.0 - h, th, theta0=th0, qh=qh) - bessel_theta(1.0 - 2 * h, th, theta0=th0, qh=qh))[0] / h
        grad = 2 * g - g2  # second-order one-sided
        check(f"BC th={th}", abs(grad + qh) < 2e-3 * qh, f"dtheta/drh(1) = {grad:.6f} (want {-qh})")
        # mean over the disk: 2 int_0^1 rh theta drh = theta0 - 2 qh th
        rr = np.linspace(0.0, 1.0, 20001)
        v = bessel_theta(rr, th, theta0=th0, qh=qh)
        mean = np.trapezoid(2 * rr * v, rr)
        check(
            f"mean th={th}", abs(mean - (th0 - 2 * qh * th)) < 1e-6, f"mean = {mean:.8f} (want {th0 - 2 * qh * th:.8f})"
        )
        # PDE: theta_t = theta_rr + theta_r / r at interior points
        ri = np.array([0.2, 0.5, 0.8])
        dt = 1e-6 * max(th, 1e-3)
        tt = (bessel_theta(ri, th + dt, theta0=th0, qh=qh) - bessel_theta(ri, th - dt, theta0=th0, qh=qh)) / (2 * dt)
        dr = 1e-4
        vp, v0, vm = (bessel_theta(ri + s, th, theta0=th0, qh=qh) for s in (dr, 0.0, -dr))
        lap = (vp - 2 * v0 + vm) / dr**2 + (vp - vm) / (2 * dr) / ri
        res = np.max(np.abs(tt - lap))
        check(f"PDE th={th}", res < 1e-3 * max(1.0, np.max(np.abs(tt))), f"max|theta_t - lap| = {res:.2e}")


def bessel_cut_time(*, theta0, qh, theta_cut, tscale):
    f = lambda th: bessel_theta(1.0, th, theta0=theta0, qh=qh)[0] - theta_cut  # noqa: E731
    th_hi = 1e-6
    while f(th_hi) > 0:
        th_hi *= 2
    return brentq(f, th_hi / 2 if th_hi > 1e-6 else 0.0, th_hi, xtol=1e-14) * tscale


def check_constant_D(n_cells, solver=solve_radial1d, label="radial1d", extra=None):
    R = 1.2e-6
    rate = 100.0
    extra = extra or {}
    print(f"(a) {label} law='constant' vs Bessel series (R = 1.2 um, 100 mA/g, theta0 = 1, n_cells = {n_cells})")
    print(f"    {'D_const':>8} {'qh':>7} {'t':>7} {'surf ref':>10} {'surf err':>9} {'mean err':>9} {'prof maxerr':>11}")
    for D in (1e-16, 1e-17):
        qbar = surface_flux(rate, R)
        qh = qbar * R / D
        tscale = R**2 / D
        t_cut_ref = bessel_cut_time(theta0=1.0, qh=qh, theta_cut=0.2, tscale=tscale)
        t_out = np.array([0.1, 0.3, 0.6, 0.9]) * t_cut_ref
        kw = dict(radius_m=R, rate_mA_per_g=rate, law="constant", D_const=D, n_cells=n_cells, t_out_s=t_out)
        if solver is solve_radial1d:
            kw["return_profiles"] = True
        w0 = time.perf_counter()
        res = solver(**kw, **extra)
        wall = time.perf_counter() - w0
        worst = 0.0
        for k, t in enumerate(t_out):
            th = t / tscale
            s_ref = bessel_theta(1.0, th, theta0=1.0, qh=qh)[0]
            m_ref = 1.0 - 2.0 * qh * th
            es = res["surface_theta"][k] - s_ref
            em = res["mean_theta"][k] - m_ref
            if "theta_profiles" in res:
                prof_ref = bessel_theta(res["r_m"] / R, th, theta0=1.0, qh=qh)
                ep = np.max(np.abs(res["theta_profiles"][k] - prof_ref))
            else:
                ep = float("nan")
            worst = max(worst, abs(es))
            print(f"    {D:8.0e} {qh:7.3f} {t:7.1f} {s_ref:10.6f} {es:9.1e} {em:9.1e} {ep:11.1e}")
        et = res["t_cut_s"] - t_cut_ref
        print(
            f"    t_cut: numeric {res['t_cut_s']:.3f} s, Bessel {t_cut_ref:.3f} s, diff {et:.2e} s; wall {wall:.2f} s"
        )
        check(f"{label} constant D={D:g} surface", worst < 2e-4, f"max |surface err| = {worst:.1e}")
        check(f"{label} constant D={D:g} t_cut", abs(et) < 2e-4 * t_cut_ref, f"rel {et / t_cut_ref:.1e}")


# --------------------------------------------------------------------------- (b)
RATES = (50.0, 100.0, 200.0, 400.0)
T_SURF = (300.0, 600.0, 1200.0)
T_CORE = (300.0, 600.0, 900.0, 1200.0)
T_ALL = np.array(sorted(set(T_SURF) | set(T_CORE)))


def _pick(res, times, key):
    return [res[key][int(np.argmin(np.abs(res["t_s"] - t)))] for t in times]


def fmt(v, w=9, p=5):
    return f"{v:{w}.{p}f}" if np.isfinite(v) else f"{'-':>{w}}"


def print_table(title, results):
    print(title)
    print(
        f"    {'rate':>5} {'n':>5} {'t_cut[s]':>10} {'cap[mAh/g]':>10} "
        + " ".join(f"{'surf' + str(int(t)):>9}" for t in T_SURF)
        + " "
        + " ".join(f"{'core' + str(int(t)):>9}" for t in T_CORE)
        + f" {'wall[s]':>8}"
    )
    for (rate, n), r in results.items():
        s = _pick(r, T_SURF, "surface_theta")
        c = _pick(r, T_CORE, "core_fraction")
        print(
            f"    {rate:5.0f} {n:5d} {r['t_cut_s']:10.3f} {r['capacity_mAh_per_g']:10.5f} "
            + " ".join(fmt(v) for v in s)
            + " "
            + " ".join(fmt(v) for v in c)
            + f" {r.get('wall_s', float('nan')):8.2f}"
        )


def run_power(n_cells, rates):
    results = {}
    for rate in rates:
        for n in (n_cells, 2 * n_cells):
            results[(rate, n)] = solve_radial1d(rate_mA_per_g=rate, n_cells=n, t_out_s=T_ALL)
    print_table(f"(b) radial1d, power law, n_cells = {n_cells} and {2 * n_cells}", results)
    print("    convergence (n vs 2n): max |d surface|, max |d core|, |d capacity| [mAh/g]")
    for rate in rates:
        a, b = results[(rate, n_cells)], results[(rate, 2 * n_cells)]
        ds = np.nanmax(np.abs(a["surface_theta"] - b["surface_theta"]))
        dc = np.nanmax(np.abs(a["core_fraction"] - b["core_fraction"]))
        dq = abs(a["capacity_mAh_per_g"] - b["capacity_mAh_per_g"])
        print(f"    {rate:5.0f}  {ds:.1e}  {dc:.1e}  {dq:.1e}")
        check(f"converged surface {rate:g}", ds < 1e-4)
        check(f"converged capacity {rate:g}", dq < 1e-4 * Q_TH)
        check(f"converged core {rate:g}", dc < 5e-4)
    # Li balance
    r = results[(100.0, 2 * n_cells)]
    slope = np.polyfit(r["t_s"], r["mean_theta"], 1)[0]
    check(
        "Li balance (100 mA/g)",
        abs(-slope - 100 / (3600 * Q_TH)) < 1e-9,
        f"d mean/dt = {slope:.6e} (want {-100 / (3600 * Q_TH):.6e})",
    )
    # docs/model.md section 7, behaviour 2
    c = _pick(r, T_CORE, "core_fraction")
    targets = (0.56, 0.27, 0.07, 0.0)
    print(
        "    behaviour 2 (100 mA/g) core fraction at 5/10/15/20 min: "
        + " / ".join(f"{v:.4f}" for v in c)
        + "  (docs/model.md: 0.56 / 0.27 / 0.07 / 0)"
    )
    check("behaviour 2", all(abs(v - t) <= max(0.1 * t, 0.01) for v, t in zip(c, targets)))
    return results


# --------------------------------------------------------------------------- (c)
def run_pybamm(ref, n_cells, rates, pb_cells):
    try:
        import pybamm
    except ImportError as exc:
        print(f"(c) PyBaMM not importable ({exc}); skipped. Run with /work/pybamm-venv/bin/python.")
        return
    if __package__ in (None, ""):
        from tests.reference.pybamm_radial import solve_pybamm_radial, solve_pybamm_radial_batch
    else:
        from .pybamm_radial import solve_pybamm_radial, solve_pybamm_radial_batch
    print(f"(c) PyBaMM {pybamm.__version__}, IDAKLU, uniform mesh, rtol 1e-8 / atol 1e-10")
    check_constant_D(pb_cells[-1], solver=solve_pybamm_radial, label="pybamm")
    results = {}
    for rate in rates:
        for n in pb_cells:
            results[(rate, n)] = solve_pybamm_radial(rate_mA_per_g=rate, n_cells=n, t_out_s=T_ALL)
    print_table("    pybamm single solves (wall = solve call; first call per n includes solver setup)", results)
    print(
        f"    difference pybamm - radial1d(n={2 * n_cells}): surface (max over t), core (max over t), capacity [mAh/g], t_cut [s]"
    )
    for (rate, n), r in results.items():
        b = ref[(rate, 2 * n_cells)]
        ds = np.nanmax(np.abs(r["surface_theta"] - b["surface_theta"]))
        dc = np.nanmax(np.abs(r["core_fraction"] - b["core_fraction"]))
        dq = r["capacity_mAh_per_g"] - b["capacity_mAh_per_g"]
        dt = r["t_cut_s"] - b["t_cut_s"]
        print(f"    {rate:5.0f} n={n:4d}  {ds:.1e}  {dc:.1e}  {dq:+.1e}  {dt:+.2e}")
        if n == pb_cells[-1]:
            check(f"pybamm vs radial1d surface {rate:g}", ds < 2e-4)
            check(f"pybamm vs radial1d capacity {rate:g}", abs(dq) < 2e-4 * Q_TH)
    # timings: single (warm) vs batched with input parameters
    n = pb_cells[0]
    warm = []
    for rate in rates:
        w0 = time.perf_counter()
        solve_pybamm_radial(rate_mA_per_g=rate, n_cells=n, t_out_s=T_ALL)
        warm.append(time.perf_counter() - w0)
    print(
        f"    timing, n_cells = {n}: single warm solves {', '.join(f'{w:.2f}' for w in warm)} s  (mean {np.mean(warm):.2f} s/sim)"
    )
    for nt in (1, 2):
        solve_pybamm_radial_batch(list(rates), n_cells=n, t_out_s=T_ALL, num_threads=nt)  # warm-up (solver setup)
        outs = solve_pybamm_radial_batch(list(rates), n_cells=n, t_out_s=T_ALL, num_threads=nt)
        print(
            f"    batch of {len(rates)} (inputs=[...], num_threads={nt}): {outs[0]['batch_wall_s']:.2f} s total, {outs[0]['per_sim_s']:.2f} s/sim"
        )
        for rate, o in zip(rates, outs):
            s = results[(rate, n)]
            same = np.allclose(o["surface_theta"], s["surface_theta"], atol=1e-9, equal_nan=True)
            check(f"batch == single ({rate:g}, threads {nt})", same and abs(o["t_cut_s"] - s["t_cut_s"]) < 1e-6)
    big = [50.0 + 350.0 * k / 15 for k in range(16)]
    solve_pybamm_radial_batch(big, n_cells=n, t_out_s=T_ALL, num_threads=2)
    outs = solve_pybamm_radial_batch(big, n_cells=n, t_out_s=T_ALL, num_threads=2)
    print(
        f"    batch of 16 rates 50..400 mA/g (num_threads=2): {outs[0]['batch_wall_s']:.2f} s total, {outs[0]['per_sim_s']:.2f} s/sim"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cells", type=int, default=800)
    ap.add_argument("--quick", action="store_true", help="n_cells 200, rates 100 and 400 only")
    ap.add_argument("--no-pybamm", action="store_true")
    args = ap.parse_args(argv)
    n_cells = 200 if args.quick else args.n_cells
    rates = (100.0, 400.0) if args.quick else RATES
    pb_cells = (200,) if args.quick else (400, 800)
    t0 = time.perf_counter()
    verify_bessel_formula()
    check_constant_D(n_cells)
    ref = run_power(n_cells, rates)
    if not args.no_pybamm:
        run_pybamm(ref, n_cells, rates, pb_cells)
    print(
        f"total wall {time.perf_counter() - t0:.1f} s; {len(FAILS)} check(s) failed" + (f": {FAILS}" if FAILS else "")
    )
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

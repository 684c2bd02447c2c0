"""Fit benchmark (issue 4): wall time of a 4-rate, 20-points-per-rate fit on CPU (target: under 60 s).

Synthetic data from the forward model (eta = 0.5, a quarter of the perimeter blocked at 0 rad, rates 50/100/200/400
mA/g, 20 measurements per rate over 1-20 mAh/g, 10 nm noise per offset component), fitted at the fit's default
numerics (16 rings x 64 nodes, 64 steps) with the default settings (Levenberg-Marquardt, 6 candidates, 2 starts,
9-point chi2 profile along eta). Prints the compile time (ahead-of-time compilations, from fluxsim.fit.COMPILE_LOG)
and the run time separately, then fits a second dataset of the same shape (another noise seed) to show the time
without compilation, and the recovered values with their standard errors.

    python benchmarks/bench_fit.py [--params eta,arc_center_rad] [--method lm|lbfgs|adam] [--json PATH]
    python benchmarks/bench_fit.py --accuracy     # also: d(t) of the fit numerics against Numerics() defaults
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

from fluxsim import fit as F
from fluxsim.api import make_params
from fluxsim.core.polar.solver import Numerics
from fluxsim.precision import enable_float64

enable_float64()  # the solver's validated float64 (fluxsim.precision)

RATES = (50.0, 100.0, 200.0, 400.0)
CAPACITIES = np.linspace(1.0, 20.0, 20)
TRUTH = {"eta": 0.5, "arc_center_rad": 0.0}
BLOCKED = 0.25


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="eta", help="comma-separated fitted inputs (default eta)")
    parser.add_argument("--method", default="lm", choices=F.METHODS)
    parser.add_argument("--accuracy", action="store_true",
                        help="also compare d(t) at the fit numerics with the solver defaults (slow: compiles them)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.params.split(",")]
    times = [CAPACITIES * 3600.0 / r for r in RATES]
    params = make_params(blocked_fraction=BLOCKED, **TRUTH)
    start_values = {"eta": 0.3, "arc_center_rad": 0.5}

    t0 = time.perf_counter()
    data = F.simulate_observations(params, RATES, times, noise_nm=10.0, seed=0)
    synth_s = time.perf_counter() - t0
    fits = []
    for seed in (0, 1):
        if seed:
            data = F.simulate_observations(params, RATES, times, noise_nm=10.0, seed=seed)
        t0 = time.perf_counter()
        result = F.fit(data, names, blocked_fraction=BLOCKED, method=args.method,
                       start={n: start_values[n] for n in names},
                       **{k: v for k, v in TRUTH.items() if k not in names})
        wall = time.perf_counter() - t0
        fits.append(dict(seed=seed, wall_s=wall, compile_s=result.timings["compile_s"],
                         run_s=result.timings["run_s"], values=result.values,
                         standard_errors=result.standard_errors, chi2=result.chi2, dof=result.dof,
                         iterations=[s["iterations"] for s in result.starts], warnings=result.warnings))
        print(f"fit {seed}: wall {wall:.1f} s = compile {result.timings['compile_s']:.1f} s + run "
              f"{result.timings['run_s']:.1f} s; " + ", ".join(
                  f"{n} = {result.values[n]:.4f} +- {result.standard_errors[n]:.4f} (truth {TRUTH[n]})"
                  for n in names) + f"; chi2/dof = {result.chi2:.1f}/{result.dof}", flush=True)

    figures = dict(
        backend=jax.default_backend(), cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
        numerics=str(F.DEFAULT_NUMERICS), method=args.method, params=names, rates_mA_per_g=list(RATES),
        points_per_rate=len(CAPACITIES), synthetic_data_s=synth_s, fits=fits,
        compile_log=[(name, round(s, 2)) for name, _, s in F.COMPILE_LOG],
    )
    print(f"first fit (with compilation): {fits[0]['wall_s']:.1f} s (target < 60 s): "
          f"{'PASS' if fits[0]['wall_s'] < 60 else 'FAIL'}")

    if args.accuracy:
        fine = Numerics()
        clean = {}
        for label, numerics in (("fit", F.DEFAULT_NUMERICS), ("reference", fine)):
            obs = F.simulate_observations(params, RATES, times, numerics=numerics, noise_nm=0.0)
            clean[label] = np.concatenate([s.d_nm for s in obs.series])
        err = np.abs(clean["fit"] - clean["reference"])
        figures["accuracy_nm"] = dict(mean=float(err.mean()), max=float(err.max()), reference=str(fine))
        print(f"d(t) at the fit numerics vs {fine}: mean {err.mean():.2f} nm, worst {err.max():.2f} nm")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2, default=str)
    return figures


if __name__ == "__main__":
    main()

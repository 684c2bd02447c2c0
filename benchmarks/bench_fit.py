"""Fit benchmark (issue 12): time of a 4-rate x 20-point fit at the default numerics, and its discretisation bias.

Data: d(t) with direction of an elongated particle (ellipse, aspect 1.8, long axis at 0.3 rad; eta = 0.5, a quarter
of the perimeter blocked at pi; 50/100/200/400 mA/g, 20 points per rate over 1-20 mAh/g, 10 nm noise per offset
component), simulated with the mesh core at a fine resolution (spacing R_eq / 64, rtol 1e-4: the "truth", not the
fit's own numerics). Fitted (eta, Levenberg-Marquardt, default settings, profile-likelihood intervals included)

* at each numerics of ``--spacings`` (default: the fit's default, :data:`fluxsim.fit.DEFAULT_NUMERICS`), and
* at twice the resolution (half the spacing, rtol / 3),

the bias is ``|eta(default) - eta(twice)| / SE`` (target < 0.5). Timings: the first fit (compile + run) and a second
data set of the same shape (no compilation), with the model runs of the first fit (with the forward-mode Jacobian,
and forward-only where chi2 alone is needed).

Measured (2-core CPU shared with other jobs, load 6-9): R_eq / 32, rtol 1e-3: eta = 0.4993 +- 0.0039, twice the
resolution 0.4984, bias 0.23 SE; first fit 116 s (66 s of it compiling the two programs), second data set 45 s, 4
model runs with the Jacobian and 19 forward-only; before the forward-only runs (every point with the Jacobian), in
an overlapping run, 125 s / 119 s with the same values. Target: 60 s for a fit once compiled (docs/fit.md).

    python benchmarks/bench_fit.py                       # the default numerics
    python benchmarks/bench_fit.py --spacings 0.0625 0.03125 --rtol 3e-3   # candidates
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import numpy as np

from fluxsim import fit as F
from fluxsim.api import make_params
from fluxsim.core.outline import Ellipse
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics
from fluxsim.precision import enable_float64

enable_float64()

RATES = (50.0, 100.0, 200.0, 400.0)
CAPACITIES = np.linspace(1.0, 20.0, 20)
OUTLINE = Ellipse(1.8, 0.3)
INPUTS = {"blocked_fraction": 0.25, "arc_center_rad": np.pi}
TRUTH_NUMERICS = Numerics(spacing=1 / 64, integrator=RKLSettings(rtol=1e-4, atol=1e-6), line_cut_samples=3)


def twice(numerics: Numerics) -> Numerics:
    """Twice the resolution: half the spacing, a third of the tolerances."""
    integ = numerics.integrator
    return dataclasses.replace(numerics, spacing=numerics.spacing / 2,
                               integrator=dataclasses.replace(integ, rtol=integ.rtol / 3, atol=integ.atol / 3))


def timed_fit(data, numerics, **options):
    t0 = time.perf_counter()
    options.setdefault("start", {"eta": 0.3})
    result = F.fit(data, ["eta"], numerics=numerics, outline=OUTLINE, **INPUTS, **options)
    return result, time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacings", type=float, nargs="*", default=None, help="candidate spacings [R_eq]")
    parser.add_argument("--rtol", type=float, default=None, help="rtol of the candidates (default: the fit's)")
    parser.add_argument("--eta", type=float, default=0.5)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    times = [CAPACITIES * 3600.0 / r for r in RATES]
    params = make_params(eta=args.eta, **INPUTS)
    t0 = time.perf_counter()
    datasets = [F.simulate_observations(params, RATES, times, numerics=TRUTH_NUMERICS, outline=OUTLINE,
                                        noise_nm=10.0, seed=seed) for seed in (0, 1)]
    print(f"data: {time.perf_counter() - t0:.1f} s at spacing 1/64 (truth), {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}", flush=True)
    base = F.DEFAULT_NUMERICS
    candidates = [base] if not args.spacings else [
        dataclasses.replace(base, spacing=s, integrator=dataclasses.replace(
            base.integrator, rtol=args.rtol or base.integrator.rtol, atol=(args.rtol or base.integrator.rtol) / 100))
        for s in args.spacings]
    rows = []
    for numerics in candidates:
        first, first_s = timed_fit(datasets[0], numerics)
        second, second_s = timed_fit(datasets[1], numerics)
        # the reference fit: from the default fit's optimum, no multi-start, profile or intervals (it only has to
        # find the same optimum at twice the resolution)
        fine, fine_s = timed_fit(datasets[0], twice(numerics), start={"eta": first.values["eta"]}, n_candidates=1,
                                 profile=None, intervals=False)
        se = first.standard_errors["eta"]
        bias = abs(first.values["eta"] - fine.values["eta"]) / se
        row = {"spacing": numerics.spacing, "rtol": numerics.integrator.rtol, "eta": first.values["eta"],
               "se": se, "eta_twice_resolution": fine.values["eta"], "bias_in_se": bias,
               "eta_truth": args.eta, "error_vs_truth_in_se": abs(first.values["eta"] - args.eta) / se,
               "first_fit_s": first_s, "first_compile_s": first.timings["compile_s"], "second_fit_s": second_s,
               "twice_resolution_fit_s": fine_s, "profile_95": first.intervals["eta"]["profile_95"],
               "evaluations": {k: first.timings[f"{k}_evaluations"] for k in ("jacobian", "forward")}}
        rows.append(row)
        print(f"spacing 1/{1 / numerics.spacing:.0f}, rtol {numerics.integrator.rtol:g}: eta = {row['eta']:.4f} "
              f"+- {se:.4f}; twice the resolution {row['eta_twice_resolution']:.4f}: bias {bias:.2f} SE "
              f"(truth {args.eta}: {row['error_vs_truth_in_se']:.2f} SE)", flush=True)
        print(f"  fit time: first {first_s:.1f} s (compile {row['first_compile_s']:.1f} s), second data set "
              f"{second_s:.1f} s, at twice the resolution {fine_s:.1f} s; profile 95 % {row['profile_95']}; model runs "
              f"{row['evaluations']['jacobian']} with the Jacobian, {row['evaluations']['forward']} forward only",
              flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()

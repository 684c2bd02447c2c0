"""Single-simulation benchmark: compile time, run time after compilation, and accuracy at the default resolution.

Fig. 4 case (c) (eta = 0.3, quarter blocked, 100 mA/g) run to cut-off with the default numerics. The error is
measured against an independent P1 finite-element solution (tests/reference/fem2d.py, refine 6 = 18.75 nm,
dt <= 1 s), itself within ~1.5 nm in d and 1e-6 in capacity of its refine-7 solution.

    python benchmarks/bench_solver.py [--repeats 5] [--no-reference]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import jax
import numpy as np

import fluxsim
from fluxsim import outputs
from fluxsim.api import make_params
from fluxsim.core.polar.solver import Numerics, simulate
from fluxsim.model.protocol import Charge
from fluxsim.precision import enable_float64

enable_float64()  # the solver's validated float64 (fluxsim.precision)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="skip the finite-element reference (~1 min)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    numerics = Numerics()
    params = make_params(eta=0.3, blocked_fraction=0.25)
    start = time.perf_counter()
    compiled = jax.jit(lambda p: simulate(p, (Charge(),), numerics)).lower(params).compile()
    compile_s = time.perf_counter() - start
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        solution = jax.block_until_ready(compiled(params))
        runs.append(time.perf_counter() - start)
    capacity = float(outputs.capacity_at_cutoff(solution))
    t_out = np.arange(60.0, 1081.0, 60.0)
    d = np.asarray(outputs.at_times(solution, outputs.offset_nm(solution), t_out))
    figures = dict(
        backend=jax.default_backend(),
        devices=[str(dev) for dev in jax.devices()],
        numerics=dict(nr=numerics.nr, nphi=numerics.nphi, n_steps=numerics.n_steps),
        compile_s=compile_s,
        run_s_median=statistics.median(runs),
        run_s_min=min(runs),
        run_s_max=max(runs),
        newton_updates_per_step=int(solution.newton_total) / numerics.n_steps,
        capacity_mAh_per_g=capacity,
        d_600s_nm=float(np.interp(600.0, t_out, d)),
    )
    if not args.no_reference:
        sys.path.insert(0, str(ROOT / "tests"))
        from reference.fem2d import solve_fem2d

        fem = solve_fem2d(eta=0.3, blocked_fraction=0.25, refine=6, dt_max_s=1.0, t_out_s=t_out)
        fem_cut = solve_fem2d(eta=0.3, blocked_fraction=0.25, refine=6, dt_max_s=2.0)
        both = np.isfinite(d) & np.isfinite(fem["d_nm"])
        figures.update(
            capacity_error_relative=abs(capacity - fem_cut["capacity_mAh_per_g"]) / fem_cut["capacity_mAh_per_g"],
            d_error_max_nm=float(np.max(np.abs(d - fem["d_nm"])[both])),
        )
    print(f"fluxsim {fluxsim.__version__} on {figures['backend']} ({', '.join(figures['devices'])})")
    print(f"case (c) to cut-off, {numerics.nr} rings x {numerics.nphi} nodes, {numerics.n_steps} steps")
    print(f"  compile:          {compile_s:6.1f} s")
    print(f"  run (median of {args.repeats}): {figures['run_s_median']:6.2f} s  "
          f"(min {figures['run_s_min']:.2f}, max {figures['run_s_max']:.2f})")
    print(f"  Newton updates per step: {figures['newton_updates_per_step']:.2f}")
    print(f"  capacity at cut-off: {capacity:.4f} mAh/g, d(600 s) = {figures['d_600s_nm']:.2f} nm")
    if "d_error_max_nm" in figures:
        print(f"  error vs P1 FEM (refine 6): capacity {figures['capacity_error_relative']:.1e} relative, "
              f"d(t) max {figures['d_error_max_nm']:.2f} nm over 60-1080 s")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

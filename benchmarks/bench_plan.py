"""Validation and planning of a 1000 x 1000 grid (1e6 points): wall time and peak memory (issue 9).

    .venv/bin/python benchmarks/bench_plan.py                  # 1000 x 1000, tiny numerics
    .venv/bin/python benchmarks/bench_plan.py --n 300 --numerics default
    .venv/bin/python benchmarks/bench_plan.py --measure        # also compile a batch of 4: estimate vs XLA

What ``fluxsim`` does before it compiles anything: compose the config (hydra), validate it (``config.load``: every
axis value and the pairwise corners through ``make_params``, :func:`fluxsim.app.config.representative_points`), take
the devices and plan the job (``study.plan.plan``: memory and time estimates). Targets: under 10 s and under
1 GB peak resident memory (the process, JAX included). ``--measure`` compiles the batch program of 4 points and
prints XLA's memory analysis beside the estimate :func:`fluxsim.study.plan.point_bytes_estimate`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from fluxsim.precision import enable_float64

enable_float64()  # the solver's validated float64 (fluxsim.precision)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="values per axis (grid eta x rate: n x n points)")
    parser.add_argument("--numerics", default="tiny")
    parser.add_argument("--measure", action="store_true", help="also compile a batch of 4 and compare memory")
    args = parser.parse_args()

    from app_support import compose_cfg

    from fluxsim.app import cli, config
    from fluxsim.study import batch as batch_mod
    from fluxsim.study import plan as plan_mod

    overrides = [
        f"numerics={args.numerics}", "sweep=single", "sweep.chunk_size=64", "surface.blocked_fraction=0.25",
        f"+sweep.grid.eta={{start:0.05,stop:1.0,num:{args.n}}}",
        f"+sweep.grid.rate_mA_per_g={{start:50,stop:400,num:{args.n},log:true}}",
    ]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu_start = time.perf_counter(), time.process_time()
    cfg = compose_cfg(overrides)
    composed = time.perf_counter()
    prepared = cli.prepare(cfg)
    done, cpu = time.perf_counter(), time.process_time() - cpu_start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    job = prepared.job
    n_checked = len(config.representative_points(job.sweep))
    print(f"grid {args.n} x {args.n} = {job.sweep.size:,} points, numerics={args.numerics}")
    print(f"  compose {composed - start:.2f} s; validate + plan {done - composed:.2f} s "
          f"({n_checked} points through make_params); total {done - start:.2f} s wall, {cpu:.2f} s CPU "
          "(target < 10 s)")
    print(f"  peak memory: {rss:.0f} MB resident (before: {rss_before:.0f} MB with JAX and hydra imported; "
          "target < 1 GB)")
    print(f"  {prepared.plan.describe()}")
    if args.measure:
        runner = batch_mod.compile_at(job, prepared.devs)(4)
        measured = plan_mod.footprint_bytes(runner) / 4
        estimate = plan_mod.point_bytes_estimate(job)
        print(f"  memory per simulation: estimate {estimate / 1e6:.3g} MB, XLA {measured / 1e6:.3g} MB "
              f"(ratio {estimate / measured:.2f})")


if __name__ == "__main__":
    main()

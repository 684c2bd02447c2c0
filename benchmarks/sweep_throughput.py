"""Simulations per second of the vmapped sweep against chunk (batch) size; runs unchanged on CPU or GPU.

    .venv/bin/python benchmarks/sweep_throughput.py                       # numerics=tiny, chunks 1 2 4 8 16
    .venv/bin/python benchmarks/sweep_throughput.py --numerics fast --chunks 1 4 8 --points 16

For each chunk size: the compile time (``--cache`` uses the persistent XLA cache; off by default so the numbers
are cold compiles), the steady-state wall time of ``--points`` simulations (eta and blocked fraction spread over
the Fig. 4 range, charge to cut-off at 100 mA/g, no snapshots), simulations per second and seconds per
simulation. Nothing is written to disk (``--json FILE`` writes the figures).

No recompilation across chunks: every XLA backend compilation is counted (``jax.monitoring``) while the chunks of
each chunk size run; the count must be 0 (the runner is compiled ahead of time, before the first chunk).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from app_support import CACHE_DIR, compose_cfg  # noqa: E402
from jax._src.dispatch import BACKEND_COMPILE_EVENT  # noqa: E402

from fluxsim.app import config  # noqa: E402
from fluxsim.precision import enable_float64
from fluxsim.study import batch as batch_mod
from fluxsim.study import plan as plan_mod

enable_float64()  # the solver's validated float64 (fluxsim.precision)

COMPILES: list[float] = []


def _count_compiles(event: str, duration: float, **_) -> None:
    if event == BACKEND_COMPILE_EVENT:
        COMPILES.append(duration)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numerics", default="tiny", help="a conf/numerics option (default: tiny)")
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--points", type=int, default=16, help="simulations per chunk size (default 16)")
    parser.add_argument("--cache", action="store_true", help="use the persistent compilation cache")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    jax.monitoring.register_event_duration_secs_listener(_count_compiles)
    if args.cache:
        jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    etas = np.linspace(0.3, 1.0, args.points)
    fractions = np.linspace(0.0, 0.5, args.points)
    points = "[" + ",".join(f"{{eta:{e:.6g},blocked_fraction:{f:.6g}}}" for e, f in zip(etas, fractions)) + "]"
    devs = jax.local_devices()
    print(f"backend {jax.default_backend()}, {len(devs)} device(s); numerics={args.numerics}; {args.points} points")
    print(f"{'chunk':>6} {'batch':>6} {'compile_s':>10} {'run_s':>8} {'sims/s':>8} {'s/sim':>8} {'recompiles':>10}")
    rows = []
    for chunk in args.chunks:
        cfg = compose_cfg([f"numerics={args.numerics}", f"sweep.points={points}", f"sweep.chunk_size={chunk}",
                           "output.snapshot_times_s=[]", "output.line_cut=false"])
        job = config.load(cfg)
        size = plan_mod.batch_size(chunk, len(devs))
        seen = len(COMPILES)
        runner = batch_mod.compile_at(job, devs)(size)
        todo = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)
        before = len(COMPILES)
        if not args.cache and before == seen:  # the listener must see the runner's own compilation
            raise RuntimeError("the compile listener saw no compilation: the recompile count would be meaningless")
        start = time.perf_counter()
        batch_mod.run_blocks(runner, job.params, todo, lambda block, out: None, meshes=batch_mod.meshes_of(job))
        run_s = time.perf_counter() - start
        recompiles = len(COMPILES) - before
        rate = args.points / run_s
        print(f"{chunk:>6} {size:>6} {runner.compile_s:>10.1f} {run_s:>8.2f} {rate:>8.3g} {1 / rate:>8.3g} "
              f"{recompiles:>10d}", flush=True)
        rows.append(dict(chunk=chunk, batch=size, chunks=len(todo), compile_s=runner.compile_s, run_s=run_s,
                         sims_per_s=rate, recompiles=recompiles))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(backend=jax.default_backend(), devices=[str(d) for d in devs],
                                                   numerics=args.numerics, points=args.points, rows=rows), indent=2))


if __name__ == "__main__":
    main()

"""Peak memory of a whole sweep (config -> store) does not grow with its number of points.

    .venv/bin/python benchmarks/sweep_memory.py                 # 1,000 and 10,000 points, numerics=tiny
    .venv/bin/python benchmarks/sweep_memory.py --points 200 2000 --numerics fast

Each study runs in a fresh process (``fluxsim.app.cli.run_job``: validation of every point, store created full-size,
chunks of 64 streamed to it, no figures) and reports its peak resident memory (``ru_maxrss``), wall time and
simulations per second. The grid is eta x rate over the Fig. 5b ranges, with series on a 60 s grid, the line cut and
no snapshots. Each block builds its own points' ``Params`` (issue 9), so nothing per point is kept but a few bytes of
bookkeeping (``done`` flags).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from fluxsim.precision import enable_float64

enable_float64()  # the solver's validated float64 (fluxsim.precision)

TESTS = str(Path(__file__).resolve().parent.parent / "tests")

CHILD = """
import resource, sys, time
sys.path.insert(0, {tests!r})
from app_support import CACHE_DIR, load_job
from fluxsim.app.cli import run_job
start = time.perf_counter()
job = load_job({overrides!r})
run_job(job, {out!r})
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"RESULT {{job.sweep.size}} {{rss:.0f}} {{time.perf_counter() - start:.1f}}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--numerics", default="tiny")
    parser.add_argument("--chunk", type=int, default=64)
    args = parser.parse_args()
    print(f"{'points':>8} {'peak_rss_MB':>12} {'wall_s':>8} {'sims/s':>8}")
    for n in args.points:
        n_eta = max(1, int(math.sqrt(n)))
        n_rate = math.ceil(n / n_eta)
        with tempfile.TemporaryDirectory() as tmp:
            overrides = [
                f"numerics={args.numerics}", "sweep=single", f"sweep.chunk_size={args.chunk}",
                f"+sweep.grid.eta={{start:0.2,stop:1.0,num:{n_eta}}}",
                f"+sweep.grid.rate_mA_per_g={{start:50,stop:400,num:{n_rate},log:true}}",
                "output.snapshot_times_s=[]", "output.plots=false", "runtime.progress=false",
                f"output.store={tmp}/s.zarr",
            ]
            code = CHILD.format(tests=TESTS, overrides=overrides, out=tmp)
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
            if proc.returncode or not line:
                raise SystemExit(proc.stderr[-3000:])
            size, rss, wall = line[0].split()[1:]
            print(f"{int(size):>8} {float(rss):>12.0f} {float(wall):>8.1f} {int(size) / float(wall):>8.3g}",
                  flush=True)


if __name__ == "__main__":
    main()

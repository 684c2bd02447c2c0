"""eta = 1 against PyBaMM: per-simulation time of a batch of charges to cut-off, both batched.

The uniform-flux particle (eta = 1) charged to the surface cut-off at ``--rates`` (default 16 rates from 50 to
400 mA/g) with the default power-law D(theta):

* PyBaMM: the 1D cylindrical particle of tests/reference/pybamm_radial.py (the same D(theta) and flux; finite volume
  on ``n_cells`` uniform cells), rate an ``InputParameter`` so one discretised, casadi-compiled model serves every
  rate; IDAKLU solves the whole batch in one ``solve(inputs=[...])`` call with ``t_interp`` output points (not dense
  stop times), rtol 1e-8. Set up once (not timed), then the batch solve is timed.
* fluxsim: the 2D solver, ``jit(vmap(simulate))`` over the same rates, compiled once (not timed), then timed.

Both report the median per-simulation time over ``--repeats`` batch runs and the extracted capacity; the capacity
of each is compared with PyBaMM's finest. PyBaMM is not a dependency of fluxsim: it runs in a separate Python given
by ``--pybamm-python`` (default: /work/pybamm-venv/bin/python if it exists), and the benchmark says so and skips
that half when there is none.

    python benchmarks/bench_pybamm.py [--pybamm-python PATH] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import numpy as np

from fluxsim import outputs
from fluxsim.api import make_params, replace
from fluxsim.core.polar.solver import Numerics, simulate
from fluxsim.model.protocol import Charge
from fluxsim.precision import enable_float64

enable_float64()  # the solver's validated float64 (fluxsim.precision)

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_PYBAMM_PYTHON = "/work/pybamm-venv/bin/python"

CHILD = """
import json, statistics, sys, time
sys.path.insert(0, {tests!r})
from reference.pybamm_radial import solve_pybamm_radial_batch
rates, repeats = {rates!r}, {repeats!r}
rows = []
for n_cells in {cells!r}:
    start = time.perf_counter()
    solve_pybamm_radial_batch(rates[:1], n_cells=n_cells, t_out_s=[300.0])  # build, discretise, compile
    setup = time.perf_counter() - start
    walls = []
    for _ in range(repeats):
        out = solve_pybamm_radial_batch(rates, n_cells=n_cells, t_out_s=[60.0 * k for k in range(1, 41)])
        walls.append(out[0]["batch_wall_s"])
    rows.append(dict(n_cells=n_cells, setup_s=setup, per_sim_s=statistics.median(walls) / len(rates),
                     capacity=[o["capacity_mAh_per_g"] for o in out]))
print("JSON" + json.dumps(rows))
"""


def pybamm_rows(python: str, rates, cells, repeats):
    code = CHILD.format(tests=str(ROOT / "tests"), rates=[float(r) for r in rates], cells=[int(c) for c in cells],
                        repeats=repeats)
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"PyBaMM run failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("JSON"))
    return json.loads(line[4:])


def fluxsim_row(rates, nr, nphi, n_steps, repeats):
    numerics = Numerics(nr=nr, nphi=nphi, n_steps=n_steps)
    base = make_params(eta=1.0, blocked_fraction=0.0)
    stacked = jax.tree.map(lambda *x: np.stack(x), *[replace(base, rate_mA_per_g=float(r)) for r in rates])
    start = time.perf_counter()
    run = jax.jit(jax.vmap(lambda p: outputs.capacity_at_cutoff(simulate(p, (Charge(),), numerics, early_exit=True))))
    compiled = run.lower(stacked).compile()
    setup = time.perf_counter() - start
    jax.block_until_ready(compiled(stacked))
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        capacity = jax.block_until_ready(compiled(stacked))
        walls.append(time.perf_counter() - start)
    return dict(resolution=f"{nr} x {nphi}, {n_steps} steps", setup_s=setup,
                per_sim_s=statistics.median(walls) / len(rates), capacity=np.asarray(capacity).tolist())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pybamm-python", default=DEFAULT_PYBAMM_PYTHON if os.path.exists(DEFAULT_PYBAMM_PYTHON)
                        else None)
    parser.add_argument("--rates", type=float, nargs="+", default=list(np.geomspace(50.0, 400.0, 16)))
    parser.add_argument("--cells", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    rows = [dict(method="fluxsim 2D", **fluxsim_row(args.rates, nr, nphi, n, args.repeats))
            for nr, nphi, n in ((16, 64, 200), (32, 128, 200))]
    if args.pybamm_python:
        rows += [dict(method="PyBaMM 1D", resolution=f"{r.pop('n_cells')} cells", **r)
                 for r in pybamm_rows(args.pybamm_python, args.rates, args.cells, args.repeats)]
        reference = np.asarray(rows[-1]["capacity"])
    else:
        print("PyBaMM: no --pybamm-python given and none found; only fluxsim is timed")
        reference = np.asarray(rows[-1]["capacity"])
    print(f"eta = 1, {len(args.rates)} rates {min(args.rates):g}-{max(args.rates):g} mA/g, batched, "
          f"median of {args.repeats}; capacity difference against {rows[-1]['method']} {rows[-1]['resolution']}")
    print(f"{'method':11s} {'resolution':24s} {'setup [s]':>9s} {'s / sim':>9s} {'max |dQ| / Q':>12s}")
    for row in rows:
        row["capacity_difference"] = float(np.max(np.abs(np.asarray(row["capacity"]) - reference) / reference))
        print(f"{row['method']:11s} {row['resolution']:24s} {row['setup_s']:9.1f} {row['per_sim_s']:9.4f} "
              f"{row['capacity_difference']:12.1e}")
    if args.pybamm_python:
        fine = rows[1]["per_sim_s"]
        print(f"per-simulation time, fluxsim 2D (32 x 128) / PyBaMM 1D ({rows[-1]['resolution']}): "
              f"{fine / rows[-1]['per_sim_s']:.2f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(rates=args.rates, rows=rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The whole benchmark suite in one command: every benchmark in a fresh process, a summary table, one JSON file.

    make bench                                   # = python benchmarks/run_all.py (about 40 min on 2 CPU cores)
    python benchmarks/run_all.py --quick         # coarser settings, about 10 min
    python benchmarks/run_all.py --only gradient roofline --json figures.json

Sections (issue 6; each script can also be run alone, see its docstring):

==============  =============================  ==========================================================
section         script                         what it measures
==============  =============================  ==========================================================
solver          bench_solver.py                compile time, run time and error of the default resolution
accuracy_cost   bench_accuracy_cost.py         error vs wall time, fluxsim resolutions vs scikit-fem FEM
pybamm          bench_pybamm.py                eta = 1: per-simulation time vs PyBaMM's 1D particle
throughput      sweep_throughput.py            simulations/s vs chunk size; recompiles across chunks
gradient        bench_gradient.py              value-and-gradient (7 inputs) time / forward time
roofline        bench_roofline.py              XLA cost analysis -> CPU and H100 roofline vs measured
fit             bench_fit.py                   a 4-rate, 20-points-per-rate eta fit: compile and run time
==============  =============================  ==========================================================

Runs unchanged on a GPU (the scripts use the default JAX backend; the FEM and PyBaMM halves stay on the CPU).
Figures are quoted as medians of repeated runs and as ratios measured in the same run; the machine is noisy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent

#: section -> (script, arguments, arguments in --quick mode)
SECTIONS = {
    "solver": ("bench_solver.py", [], ["--repeats", "3", "--no-reference"]),
    "accuracy_cost": ("bench_accuracy_cost.py", [], ["--quick"]),
    "pybamm": ("bench_pybamm.py", ["--repeats", "2"], ["--repeats", "1", "--rates", "50", "100", "200", "400"]),
    "throughput": ("sweep_throughput.py", ["--numerics", "default", "--chunks", "1", "2", "4", "8", "--points", "8"],
                   ["--numerics", "tiny", "--chunks", "1", "4", "16", "--points", "16"]),
    "gradient": ("bench_gradient.py", [], ["--nr", "16", "--nphi", "64", "--repeats", "2"]),
    "roofline": ("bench_roofline.py", ["--nr", "24", "--nphi", "96"], ["--nr", "16", "--nphi", "64"]),
    "fit": ("bench_fit.py", [], []),
}


def run_section(name: str, quick: bool, folder: pathlib.Path) -> dict:
    script, full, fast = SECTIONS[name]
    out = folder / f"{name}.json"
    command = [sys.executable, str(HERE / script), *(fast if quick else full), "--json", str(out)]
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.exists():
        return {"error": f"exit code {proc.returncode}", "wall_s": wall}
    return {**json.loads(out.read_text()), "wall_s": wall}


def headline(results: dict) -> list[tuple[str, str, str]]:
    """(figure, value, target) rows from whatever sections ran."""
    rows = []
    if "solver" in results and "compile_s" in results["solver"]:
        s = results["solver"]
        rows.append(("first compilation, one simulation (default numerics)", f"{s['compile_s']:.1f} s", "< 20 s"))
        rows.append(("one simulation after compilation (case c to cut-off)", f"{s['run_s_median']:.2f} s", ""))
        if "d_error_max_nm" in s:
            rows.append(("default-resolution error vs FEM: capacity, max d(t)",
                         f"{s['capacity_error_relative']:.1e}, {s['d_error_max_nm']:.2f} nm", "0.5 %, 10 nm"))
    if "accuracy_cost" in results and "ratios" in results["accuracy_cost"]:
        for fem, _, ratio in results["accuracy_cost"]["ratios"]:
            rows.append((f"throughput vs scikit-fem at equal d accuracy (FEM {fem.split(' (')[0]})", f"x{ratio:.2f}",
                         ">= x300"))
    if "pybamm" in results and "rows" in results["pybamm"]:
        by = {(r["method"], r["resolution"]): r for r in results["pybamm"]["rows"]}
        for (method, res), r in by.items():
            rows.append((f"eta = 1, {method} {res}: s per simulation (batched)", f"{r['per_sim_s']:.3f} s",
                         f"capacity diff {r['capacity_difference']:.1e}"))
    if "throughput" in results and "rows" in results["throughput"]:
        t = results["throughput"]
        best = max(t["rows"], key=lambda r: r["sims_per_s"])
        rows.append((f"sweep throughput ({t['numerics']} numerics, {t['backend']}), best chunk {best['chunk']}",
                     f"{best['sims_per_s']:.3g} sim/s", ""))
        rows.append(("recompilations across chunks", str(sum(r["recompiles"] for r in t["rows"])), "0"))
    if "gradient" in results and "rows" in results["gradient"]:
        g = results["gradient"]
        res = g["resolution"]
        for label in ("value_and_grad, checkpoint", "value_and_grad, no checkpoint", "jacfwd (7 tangents)"):
            r = g["rows"][label]
            rows.append((f"{label} / forward ({res['nr']} x {res['nphi']})", f"{r['ratio_to_forward']:.2f}",
                         "<= 3" if "checkpoint" in label else ""))
    if "roofline" in results and "h100" in results["roofline"]:
        r = results["roofline"]
        n = r["numerics"]
        rows.append((f"H100 roofline, 12,800-point study ({n['nr']} x {n['nphi']}, float64 / float32)",
                     f"{r['h100']['study_12800_s_float64']:.0f} s / {r['h100']['study_12800_s_float32']:.0f} s",
                     "<= 30 s"))
        rows.append(("CPU: measured throughput as a fraction of its roofline",
                     f"{100 * r['cpu']['fraction_of_roofline']:.0f} %", ">= 25 %"))
    if "fit" in results and "fits" in results["fit"]:
        first, second = results["fit"]["fits"][:2]
        rows.append(("eta fit, 4 rates x 20 points: first fit (compile + run) / same-shape refit",
                     f"{first['wall_s']:.0f} s / {second['wall_s']:.0f} s", "< 60 s"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--json", default=str(HERE / "results.json"), help="default: benchmarks/results.json")
    args = parser.parse_args(argv)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            results[name] = run_section(name, args.quick, pathlib.Path(tmp))
    import jax  # after the sections: only for the report header

    meta = dict(date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), quick=args.quick,
                python=platform.python_version(), jax=jax.__version__, backend=jax.default_backend(),
                machine=platform.machine(), processor=platform.processor())
    rows = headline(results)
    width = max((len(r[0]) for r in rows), default=10)
    print(f"\nfluxsim benchmarks ({meta['date']}, {meta['backend']}, jax {meta['jax']}"
          f"{', quick' if args.quick else ''})")
    for figure, value, target in rows:
        print(f"  {figure:{width}s}  {value:>16s}  {target}")
    failed = [k for k, v in results.items() if "error" in v]
    if failed:
        print(f"  sections that failed: {failed}")
    pathlib.Path(args.json).write_text(json.dumps(dict(meta=meta, headline=rows, sections=results), indent=2))
    print(f"figures written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Mesh and time-step convergence study of the P1 reference solver (``fem2d.solve_fem2d``).

Runs one case of docs/model.md section 5 (default: Fig. 4 case (c), eta = 0.3, f = 0.25,
100 mA/g) to the cut-off at every combination of mesh level and largest time step, reporting
the capacity at cut-off, d at 600 s and the core area fraction at 300/600/900/1200 s, plus the
wall time of each run.  Differences are taken against the finest mesh with the smallest step.

Usage (from the repository root; the default study takes about 15 min on one core, almost all
of it at refine 7)::

    python -m tests.reference.run_fem2d_convergence                   # case (c), levels 5 6 7
    python -m tests.reference.run_fem2d_convergence --case a --levels 4 5 6 --dts 2 1
"""

import argparse

import numpy as np

from tests.reference.fem2d import solve_fem2d

CASES = {  # docs/model.md section 5, Fig. 4: (eta, blocked fraction f)
    "a": (1.0, 0.0),
    "b": (0.7, 0.25),
    "c": (0.3, 0.25),
    "d": (0.3, 0.5),
}
T_OUT_S = np.array([300.0, 600.0, 900.0, 1200.0])


def _value_at(result, key, time_s):
    """Observable ``key`` at an output time (NaN if the run ended before it)."""
    hit = np.flatnonzero(np.isclose(result["t_s"], time_s))
    return result[key][hit[0]] if hit.size else np.nan


def run_study(case, levels, dts, rate_mA_per_g):
    """Run every (level, dt_max) pair; returns a list of row dicts in run order."""
    eta, fraction = CASES[case]
    rows = []
    for level in levels:
        for dt in dts:
            result = solve_fem2d(
                eta=eta,
                blocked_fraction=fraction,
                rate_mA_per_g=rate_mA_per_g,
                refine=level,
                dt_max_s=dt,
                t_out_s=T_OUT_S,
            )
            info = result["info"]
            rows.append(
                {
                    "level": level,
                    "h_nm": info["h_nm"],
                    "n_nodes": info["n_nodes"],
                    "dt_s": dt,
                    "capacity": result["capacity_mAh_per_g"],
                    "d600": _value_at(result, "d_nm", 600.0),
                    "core": [_value_at(result, "core_fraction", t) for t in T_OUT_S],
                    "steps": info["n_steps"],
                    "factorisations": info["n_factorisations"],
                    "wall_s": info["wall_s"],
                }
            )
            print(_format_row(rows[-1]), flush=True)
    return rows


def _format_row(row):
    core = " ".join(f"{c:7.4f}" for c in row["core"])
    return (
        f"{row['level']:>5g} {row['h_nm']:7.2f} {row['n_nodes']:>7} {row['dt_s']:>5g}"
        f" {row['capacity']:10.4f} {row['d600']:8.2f}  {core}"
        f" {row['steps']:>6} {row['factorisations']:>5} {row['wall_s']:8.1f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="c")
    parser.add_argument("--levels", type=float, nargs="+", default=[5, 6, 7])
    parser.add_argument("--dts", type=float, nargs="+", default=[2.0, 1.0], help="largest time steps dt_max_s (s)")
    parser.add_argument("--rate", type=float, default=100.0, help="specific current (mA/g)")
    args = parser.parse_args()

    eta, fraction = CASES[args.case]
    print(f"case ({args.case}): eta = {eta}, f = {fraction}, {args.rate:g} mA/g, to cut-off")
    header = (
        f"{'level':>5} {'h_nm':>7} {'nodes':>7} {'dt_s':>5} {'cap_mAh/g':>10}"
        f" {'d600_nm':>8}  {'core300':>7} {'core600':>7} {'core900':>7} {'core1200':>7}"
        f" {'steps':>6} {'LUs':>5} {'wall_s':>8}"
    )
    print(header)
    rows = run_study(args.case, args.levels, args.dts, args.rate)

    finest = min(rows, key=lambda r: (r["h_nm"], r["dt_s"]))
    print(f"\ndifferences from the finest run (level {finest['level']:g}, dt {finest['dt_s']:g} s):")
    print(f"{'level':>5} {'dt_s':>5} {'cap_rel_%':>10} {'d600_nm':>8}  {'core (300/600/900/1200 s)'}")
    for row in rows:
        rel = 100.0 * (row["capacity"] / finest["capacity"] - 1.0)
        core = " ".join(f"{a - b:+8.4f}" for a, b in zip(row["core"], finest["core"], strict=True))
        print(f"{row['level']:>5g} {row['dt_s']:>5g} {rel:+10.4f} {row['d600'] - finest['d600']:+8.2f}  {core}")


if __name__ == "__main__":
    main()

"""Reference data on non-disk outlines from the P1 finite-element solver ``fem_outline.solve_outline``.

Cases (``CASES``; model A, default parameters of the README inputs table, equivalent radius 1.2 um, 100 mA/g to
the cut-off): an ellipse of aspect 1.8 at orientation 0.3 rad and the irregular non-convex ``IRREGULAR_POLYGON``,
each with a quarter of the perimeter blocked at eta = 0.3, arc centred at pi.  Every case is solved at every mesh
spacing of ``SPACINGS_NM`` (ratio 1.5).  Written to ``tests/reference/data/fem_outline.json``:

* ``cases.<name>.reference``: the finest level's series on the time grid (every 30 s to 20 min: mean theta, rim
  minimum, core fraction, d and its components), the line cut at 5/10/15/20 min, the cut-off time, the capacity at
  the cut-off and the core-vanish time;
* ``cases.<name>.coarse``: the same at the coarsest level (``test_fem_outline_reference.py`` re-runs it and
  compares);
* ``cases.<name>.convergence``: d(10 min), core fraction (10 min) (theta and K interpolants), capacity and
  core-vanish time per level, their observed orders from consecutive level triples,
  p = log(|Q1 - Q2| / |Q2 - Q3|) / log(1.5), error estimates of the finest level (see ``convergence``);
* ``metadata.time_error``: the second-coarsest level re-run with 10x tighter BDF tolerances, largest differences.

Usage (from the repository root; about 20 min on one core)::

    PYTHONPATH=tests python -m reference.run_fem_outline
    PYTHONPATH=tests python -m reference.run_fem_outline --spacings 60 40 --out /tmp/fem_outline.json   # quick
"""

import argparse
import json
import math
import pathlib
import time

import numpy as np

from reference.fem_outline import IRREGULAR_POLYGON, Ellipse, Polygon, solve_outline

RADIUS_M = 1.2e-6
RATE_MA_PER_G = 100.0
SPACINGS_NM = (60.0, 40.0, 26.667, 17.778)
T_OUT_S = np.arange(0.0, 1201.0, 30.0)
LINE_CUT_TIMES_S = (300.0, 600.0, 900.0, 1200.0)
LINE_CUT_POSITIONS_NM = np.arange(-1700.0, 1701.0, 50.0)
CASES = {
    "ellipse": dict(outline=Ellipse(aspect=1.8, orientation_rad=0.3), arcs=((math.pi, 0.25, 0.3),)),
    "polygon": dict(outline=Polygon(IRREGULAR_POLYGON), arcs=((math.pi, 0.25, 0.3),)),
}
SERIES = (
    "t_s", "mean_theta", "surface_min_theta", "core_fraction", "d_nm", "d_x_nm", "d_y_nm", "core_fraction_kirchhoff",
    "d_kirchhoff_nm",
)
SCALARS = ("t_cut_s", "capacity_mAh_per_g", "core_vanish_s")
DEFAULT_PATH = pathlib.Path(__file__).parent / "data" / "fem_outline.json"


def run_case(name, spacing_nm, rtol=1e-7, atol=1e-9):
    """Solve case ``name`` at one mesh spacing; returns the solver's dict."""
    case = CASES[name]
    return solve_outline(
        case["outline"],
        radius_m=RADIUS_M,
        spacing_m=spacing_nm * 1e-9,
        rate_mA_per_g=RATE_MA_PER_G,
        arcs=case["arcs"],
        t_out_s=T_OUT_S,
        line_cut_times_s=LINE_CUT_TIMES_S,
        line_cut_positions_m=LINE_CUT_POSITIONS_NM * 1e-9,
        rtol=rtol,
        atol=atol,
    )


def _value_at(result, key, time_s):
    hit = np.flatnonzero(np.isclose(result["t_s"], time_s))
    return float(result[key][hit[0]]) if hit.size else math.nan


def record(result):
    """The JSON-ready part of one run: series, scalars, line cut, mesh and solver info."""
    info = {k: v for k, v in result["info"].items() if np.isscalar(v)}
    return {
        **{k: result[k] for k in SERIES},
        **{k: result[k] for k in SCALARS},
        "line_cut_theta": result["line_cut"],
        "info": info,
    }


def observed_orders(values, ratio):
    """Observed orders from consecutive triples of levels (coarse to fine; NaN where undefined)."""
    v = np.asarray(values, float)
    orders = []
    for k in range(len(v) - 2):
        a, b = abs(v[k] - v[k + 1]), abs(v[k + 1] - v[k + 2])
        orders.append(math.log(a / b) / math.log(ratio) if a > 0 and b > 0 else math.nan)
    return orders


def convergence(runs, spacings):
    """Per-level key figures with their observed orders and error estimates of the finest level.

    Per metric: ``values`` per level (coarse to fine), ``observed_order`` per consecutive triple, the Richardson
    estimate ``richardson_error`` = |Q_finest - Q_previous| / (ratio^p - 1) (p of the finest triple clipped to
    [0.5, 4]: meaningful only where the orders are consistent) and ``spread_three_finest`` (max - min over the
    three finest levels: the mesh-to-mesh scatter of these non-nested meshes).  ``core_bracket_*``: at the finest
    level the cores of the theta and K interpolants bracket the limit (from above and below), so the mid-point is
    the best estimate and the half-width bounds the error of either; ``*_two_finest``: largest differences of the
    series between the two finest levels while the core fraction exceeds 0.05 (d is resolution-sensitive as the
    core vanishes)."""
    ratio = spacings[0] / spacings[1]
    metrics = {
        "d_600s_nm": [_value_at(r, "d_nm", 600.0) for r in runs],
        "core_fraction_600s": [_value_at(r, "core_fraction", 600.0) for r in runs],
        "d_600s_kirchhoff_nm": [_value_at(r, "d_kirchhoff_nm", 600.0) for r in runs],
        "core_fraction_600s_kirchhoff": [_value_at(r, "core_fraction_kirchhoff", 600.0) for r in runs],
        "capacity_mAh_per_g": [r["capacity_mAh_per_g"] for r in runs],
        "core_vanish_s": [r["core_vanish_s"] for r in runs],
    }
    out = {"spacing_nm": list(spacings), "n_nodes": [r["info"]["n_nodes"] for r in runs]}
    out["wall_s"] = [r["info"]["wall_s"] for r in runs]
    for key, values in metrics.items():
        orders = observed_orders(values, ratio)
        p = orders[-1] if orders and np.isfinite(orders[-1]) else 1.0
        p = min(max(p, 0.5), 4.0)
        out[key] = {
            "values": values,
            "observed_order": orders,
            "richardson_error": abs(values[-1] - values[-2]) / (ratio**p - 1.0),
            "spread_three_finest": float(np.ptp(values[-3:])),
        }
    fine, prev = runs[-1], runs[-2]
    core = fine["core_fraction"] > 0.05
    out["core_bracket_600s"] = sorted([_value_at(fine, "core_fraction", 600.0),
                                       _value_at(fine, "core_fraction_kirchhoff", 600.0)])
    out["core_bracket_max_half_width"] = float(
        0.5 * np.max(np.abs(fine["core_fraction"] - fine["core_fraction_kirchhoff"]))
    )
    out["d_theta_vs_kirchhoff_max_nm"] = float(np.max(np.abs(fine["d_nm"] - fine["d_kirchhoff_nm"])[core]))
    out["d_max_diff_two_finest_nm"] = float(np.max(np.abs(fine["d_nm"] - prev["d_nm"])[core]))
    out["core_fraction_max_diff_two_finest"] = float(np.max(np.abs(fine["core_fraction"] - prev["core_fraction"])))
    return out


def time_error(name, spacing_nm):
    """Largest differences between the default tolerances and 10x tighter ones at one level."""
    loose, tight = run_case(name, spacing_nm), run_case(name, spacing_nm, rtol=1e-8, atol=1e-10)
    both = np.isfinite(loose["d_nm"]) & np.isfinite(tight["d_nm"])
    return {
        "spacing_nm": spacing_nm,
        "rtol_atol": [[1e-7, 1e-9], [1e-8, 1e-10]],
        "max_d_diff_nm": float(np.max(np.abs(loose["d_nm"] - tight["d_nm"])[both])),
        "max_core_fraction_diff": float(np.max(np.abs(loose["core_fraction"] - tight["core_fraction"]))),
        "capacity_rel_diff": abs(loose["capacity_mAh_per_g"] / tight["capacity_mAh_per_g"] - 1.0),
        "core_vanish_diff_s": abs(loose["core_vanish_s"] - tight["core_vanish_s"]),
        "wall_s": [loose["info"]["wall_s"], tight["info"]["wall_s"]],
    }


def _jsonable(x):
    """Arrays to lists, floats to 10 significant digits, NaN to null."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(f"{x:.10g}") if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def from_json(x):
    """Inverse of the NaN-to-null conversion for lists of numbers (nested)."""
    if isinstance(x, list):
        return np.array([math.nan if v is None else v for v in x] if x and not isinstance(x[0], list) else
                        [from_json(v) for v in x], float)
    return math.nan if x is None else x


def load_reference(case, level="reference", path=DEFAULT_PATH):
    """Committed data of ``case`` ("ellipse" or "polygon") at ``level`` ("reference": the finest mesh, or
    "coarse"), with numpy arrays (NaN where the JSON has null) and the case's ``outline`` and ``arcs``.

    Keys: the ``SERIES`` on the time grid, the ``SCALARS``, ``line_cut_theta`` (times x positions) with
    ``line_cut_times_s`` and ``line_cut_positions_nm``, ``info`` (mesh and solver figures), ``convergence``."""
    data = json.loads(pathlib.Path(path).read_text())
    stored = data["cases"][case]
    out = {k: from_json(v) for k, v in stored[level].items() if k != "info"}
    out.update(
        info=stored[level]["info"],
        convergence=stored["convergence"],
        outline=CASES[case]["outline"],
        arcs=CASES[case]["arcs"],
        line_cut_times_s=np.array(data["metadata"]["line_cut_times_s"]),
        line_cut_positions_nm=np.array(data["metadata"]["line_cut_positions_nm"]),
    )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacings", type=float, nargs="+", default=SPACINGS_NM, help="mesh spacings, nm")
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    spacings = sorted(args.spacings, reverse=True)
    wall0 = time.perf_counter()
    data = {"metadata": {}, "cases": {}}
    for name in args.cases:
        runs = []
        for h in spacings:
            runs.append(run_case(name, h))
            i = runs[-1]["info"]
            print(f"{name} h={h:7.3f} nm nodes={i['n_nodes']:6d} wall={i['wall_s']:6.1f} s "
                  f"d600={_value_at(runs[-1], 'd_nm', 600.0):8.3f} nm "
                  f"core600={_value_at(runs[-1], 'core_fraction', 600.0):.5f} "
                  f"cap={runs[-1]['capacity_mAh_per_g']:.6f} vanish={runs[-1]['core_vanish_s']:.2f} s "
                  f"K: d600={_value_at(runs[-1], 'd_kirchhoff_nm', 600.0):8.3f} nm "
                  f"core600={_value_at(runs[-1], 'core_fraction_kirchhoff', 600.0):.5f}", flush=True)
        conv = convergence(runs, spacings) if len(runs) >= 3 else {}
        for key in conv:
            if isinstance(conv[key], dict):
                c = conv[key]
                print(f"  {key}: orders {np.round(c['observed_order'], 2)}, Richardson error {c['richardson_error']:.3g}, "
                      f"spread of the three finest {c['spread_three_finest']:.3g}")
        print({k: v for k, v in conv.items() if not isinstance(v, dict | list)}, conv.get("core_bracket_600s"))
        case = CASES[name]
        outline = case["outline"]
        data["cases"][name] = {
            "outline": dataclass_dict(outline),
            "arcs_rad_fraction_eta": case["arcs"],
            "reference": record(runs[-1]),
            "coarse": record(runs[0]),
            "convergence": conv,
        }
    data["metadata"] = {
        "generator": "tests/reference/run_fem_outline.py (fem_outline.solve_outline: P1 FEM, lumped mass, Kirchhoff "
        "form, scipy BDF)",
        "radius_m": RADIUS_M,
        "rate_mA_per_g": RATE_MA_PER_G,
        "parameters": "model A, total current, power-law D defaults (D_hi 1e-14 m2/s, theta_ref 0.8, m 3, D_floor "
        "1e-20 m2/s), theta0 1, theta_cut 0.2, theta_core 0.97",
        "bdf_rtol_atol": [1e-7, 1e-9],
        "line_cut_times_s": LINE_CUT_TIMES_S,
        "line_cut_positions_nm": LINE_CUT_POSITIONS_NM,
        "line_cut_coordinate": "from the area centroid along phi_c of the first arc, positive towards the arc",
        "time_error": time_error(args.cases[0], spacings[1]) if len(spacings) > 1 else {},
        "total_wall_s": time.perf_counter() - wall0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_jsonable(data), separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.1f} kB) in {time.perf_counter() - wall0:.0f} s")


def dataclass_dict(outline):
    """The outline's defining fields (vertices as the normalised polygon's, unit equivalent radius)."""
    if isinstance(outline, Polygon):
        return {"kind": "polygon", "vertices_unit_radius": outline.normalised_vertices()}
    return {"kind": "ellipse", "aspect": outline.aspect, "orientation_rad": outline.orientation_rad}


if __name__ == "__main__":
    main()

"""Reference d(t) of an elongated particle for the shape-matters fit test (``tests/fit/test_shape.py``).

The independent P1 finite-element solver ``fem_outline.solve_outline`` (scikit-fem + scipy BDF, its own mesher;
not fluxsim's forward model) charges an ellipse of aspect ``ASPECT`` (long axis along x, equivalent radius 1.2 um)
with a quarter of the perimeter blocked at eta = ``ETA``, centred at pi (the tip of the long axis), at each rate of
``RATES_MA_PER_G``; the core offset vector (hard core theta > 0.97, exact clipping on the P1 interpolant) and the
core fraction at 20 passed capacities over 1-20 mAh/g are written to ``tests/reference/data/fem_shape.json``.

Usage (from the repository root; about a minute per rate on one core)::

    PYTHONPATH=tests python -m reference.run_fem_shape
"""

import argparse
import json
import math
import pathlib
import time

import numpy as np

from reference.fem_outline import Ellipse, solve_outline

ASPECT = 2.2
ETA = 0.3
ARC = (math.pi, 0.25, ETA)
RADIUS_M = 1.2e-6
RATES_MA_PER_G = (100.0, 200.0)
CAPACITIES_MAH_PER_G = np.linspace(1.0, 20.0, 20)
SPACING_M = 30e-9
DEFAULT_PATH = pathlib.Path(__file__).parent / "data" / "fem_shape.json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacing-nm", type=float, default=SPACING_M * 1e9)
    parser.add_argument("--out", default=str(DEFAULT_PATH))
    args = parser.parse_args(argv)
    series = []
    for rate in RATES_MA_PER_G:
        t0 = time.perf_counter()
        t_out = CAPACITIES_MAH_PER_G * 3600.0 / rate
        out = solve_outline(Ellipse(aspect=ASPECT, orientation_rad=0.0), radius_m=RADIUS_M,
                            spacing_m=args.spacing_nm * 1e-9, rate_mA_per_g=rate, arcs=(ARC,), t_out_s=t_out,
                            t_end_s=float(t_out[-1]) * 1.001)
        assert len(out["t_s"]) == len(t_out), "the charge ended before the last output time"
        series.append({"rate_mA_per_g": rate, "time_s": out["t_s"].round(6).tolist(),
                       "d_x_nm": out["d_x_nm"].round(4).tolist(), "d_y_nm": out["d_y_nm"].round(4).tolist(),
                       "core_fraction": out["core_fraction"].round(6).tolist()})
        print(f"{rate:g} mA/g: {time.perf_counter() - t0:.1f} s, {out['info']}")
    data = {"metadata": {"solver": "tests/reference/fem_outline.py (P1 FEM, scipy BDF rtol 1e-7)",
                         "script": "tests/reference/run_fem_shape.py", "outline": {"kind": "ellipse",
                         "aspect": ASPECT, "orientation_rad": 0.0}, "radius_m": RADIUS_M,
                         "arc": {"center_rad": ARC[0], "fraction": ARC[1], "eta": ARC[2]},
                         "spacing_nm": args.spacing_nm, "theta_core": 0.97, "model": "A, default inputs"},
            "series": series}
    pathlib.Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

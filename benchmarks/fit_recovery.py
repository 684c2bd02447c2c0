"""Figures of the issue-4 acceptance cases, as a table (what tests/fit/test_fit.py and
tests/imaging/test_images.py assert).

Synthetic data from the fit's forward model (the mesh core at spacing R_eq / 8, rtol 1e-2): four rates (50-400
mA/g), 20 points per rate
over 1-20 mAh/g, 10 nm noise per offset component, a quarter of the perimeter blocked. Prints, per case, the truth,
the estimate, its standard error and |error| / SE; the image pipeline's worst d error in pixels; and the fit from
synthetic frames.

    python benchmarks/fit_recovery.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from fluxsim import fit as F
from fluxsim.api import make_params
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics
from fluxsim.imaging import images as I
from fluxsim.io import observations as obs_mod
from fluxsim.precision import enable_float64

enable_float64()  # the solver's validated float64 (fluxsim.precision)

NUM = Numerics(spacing=0.125, integrator=RKLSettings(rtol=1e-2, atol=1e-4), line_cut_samples=3)
RATES = (50.0, 100.0, 200.0, 400.0)
TIMES = [np.linspace(1.0, 20.0, 20) * 3600.0 / r for r in RATES]


def row(case, result, truth):
    out = {"case": case, "wall_s": result.timings["total_s"], "reduced_chi2": result.reduced_chi2}
    for name, value in truth.items():
        est, se = result.values[name], result.standard_errors[name]
        out[name] = dict(truth=value, estimate=est, se=se, error=est - value, error_over_se=(est - value) / se)
        print(f"{case:28s} {name:14s} truth {value:<7g} fit {est:.4f} +- {se:.4f}  error {est - value:+.4f} "
              f"({(est - value) / se:+.2f} SE)", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rows = []
    for eta, seed, start in ((0.2, 1, 0.5), (0.5, 2, 0.3), (0.8, 3, 0.5)):
        data = F.simulate_observations(make_params(eta=eta, blocked_fraction=0.25, arc_center_rad=0.0), RATES,
                                       TIMES, numerics=NUM, noise_nm=10.0, seed=seed)
        res = F.fit(data, ["eta"], blocked_fraction=0.25, arc_center_rad=0.0, numerics=NUM, start={"eta": start},
                    n_candidates=4, n_starts=1)
        rows.append(row(f"eta {eta}", res, {"eta": eta}))

    data = F.simulate_observations(make_params(eta=0.4, blocked_fraction=0.25, arc_center_rad=1.0), RATES, TIMES,
                                   numerics=NUM, noise_nm=10.0, seed=4)
    res = F.fit(data, ["eta", "arc_center_rad"], blocked_fraction=0.25, numerics=NUM,
                start={"eta": 0.6, "arc_center_rad": 0.0}, n_candidates=6, n_starts=2)
    rows.append(row("joint eta + arc", res, {"eta": 0.4, "arc_center_rad": 1.0}))
    rows[-1]["correlation"] = float(res.correlation[0, 1])

    truth_b = {"eta": 0.3, "r_NMC_ohm_m2": 0.02}
    params_b = make_params(surface_model="B", blocked_fraction=0.25, arc_center_rad=0.0, **truth_b)
    rates_b = (25.0, 100.0, 400.0, 1600.0)
    times_b = [np.linspace(1.0, 20.0, 20) * 3600.0 / r for r in rates_b]
    for rates, times, noise in ((RATES, TIMES, 10.0), (rates_b, times_b, 10.0), (rates_b, times_b, 3.0)):
        data = F.simulate_observations(params_b, rates, times, numerics=NUM, noise_nm=noise, seed=7)
        res = F.fit(data, ["eta", "r_NMC_ohm_m2"], model="B", blocked_fraction=0.25, arc_center_rad=0.0,
                    numerics=NUM, start={"eta": 0.6, "r_NMC_ohm_m2": 0.05}, n_candidates=6, n_starts=2, profile=None)
        rows.append(row(f"model B {rates[0]:g}-{rates[-1]:g}, {noise:g} nm", res, truth_b))
        rows[-1]["correlation"] = float(res.correlation[0, 1])
        print(f"{'':28s} correlation {rows[-1]['correlation']:+.3f}")

    etas, ses = [], []
    for s in range(6):
        data = F.simulate_observations(make_params(eta=0.5, blocked_fraction=0.25, arc_center_rad=0.0), RATES, TIMES,
                                       numerics=NUM, noise_nm=10.0, seed=100 + s)
        res = F.fit(data, ["eta"], blocked_fraction=0.25, arc_center_rad=0.0, numerics=NUM, start={"eta": 0.4},
                    n_candidates=4, n_starts=1, profile=None)
        etas.append(res.values["eta"])
        ses.append(res.standard_errors["eta"])
    spread = dict(etas=etas, sd=float(np.std(etas, ddof=1)), mean_se=float(np.mean(ses)))
    print(f"SE vs spread over 6 noise seeds: sd(eta) = {spread['sd']:.4f}, mean SE = {spread['mean_se']:.4f}",
          flush=True)

    # images: d within a pixel, then the image fit
    params = make_params(eta=0.4, blocked_fraction=0.25, arc_center_rad=0.0)
    caps = np.linspace(0.0, 24.0, 25)
    snaps, times = I.simulate_snapshots(params, RATES, caps, NUM)
    x, y, f = I.hard_offsets(snaps, float(params.radius_m))
    worst, obs_parts, mask = {}, [], None
    for i, rate in enumerate(RATES):
        stack = I.render_frames(snaps[i], float(params.radius_m), 40.0, times[i], noise=0.003, blur_px=0.7,
                                centre_offset_px=(0.25, 0.4), seed=i)
        m = I.analyse_frames(stack, rate_mA_per_g=rate, particle="img", mask=mask)
        mask = m.mask
        ok = f[i] > 0.005
        worst[rate] = float(np.max(np.hypot(m.core_x_nm - x[i], m.core_y_nm - y[i])[ok]) / 40.0)
        obs_parts.append(m.to_observations(d_sigma_nm=20.0, with_core_fraction=False))
    print(f"images (40 nm pixels, blur 0.7 px, noise 0.003): worst |d_image - d_sim| per rate [px]: {worst}",
          flush=True)
    res = F.fit(obs_mod.combine(*obs_parts), ["eta"], blocked_fraction=0.25, arc_center_rad=0.0, numerics=NUM,
                start={"eta": 0.7}, n_candidates=4, n_starts=1)
    rows.append(row("image fit", res, {"eta": 0.4}))
    figures = dict(rows=rows, se_spread=spread, image_worst_px=worst, when=time.strftime("%Y-%m-%d %H:%M"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return figures


if __name__ == "__main__":
    main()

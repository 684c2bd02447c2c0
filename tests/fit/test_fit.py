"""Inverse fitting (issue 4): synthetic recovery, standard errors, identifiability, no recompiles, the CLI.

Synthetic data come from the fit's own forward model (fluxsim.fit.simulate_observations) at the same small
numerics, with 10 nm Gaussian noise on each offset component, four rates and 20 points per rate over 1-20 mAh/g
(the Li-rich core still exists at 20 mAh/g at every rate and eta used here). The truth must come back within the
issue's tolerances *and* within two of the fit's own standard errors.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from app_support import assert_figure

from fluxsim import fit as F
from fluxsim.api import make_params
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics
from fluxsim.io import observations as obs_mod

NUM = Numerics(spacing=0.125, integrator=RKLSettings(rtol=1e-2, atol=1e-4), line_cut_samples=3)  # small and quick
RATES = (50.0, 100.0, 200.0, 400.0)
CAPACITIES = np.linspace(1.0, 20.0, 20)  # mAh/g
TIMES = [CAPACITIES * 3600.0 / r for r in RATES]
BLOCKED = 0.25
ARC = 0.0
pytestmark = pytest.mark.xdist_group("fit_small")  # one worker: the tests share compiled programs


def synthetic(eta=0.5, seed=0, noise_nm=10.0, arc=ARC, with_direction=True, **inputs):
    params = make_params(eta=eta, blocked_fraction=BLOCKED, arc_center_rad=arc, **inputs)
    return F.simulate_observations(params, RATES, TIMES, numerics=NUM, noise_nm=noise_nm, seed=seed,
                                   with_direction=with_direction)


def fit_eta(data, start=0.5, **kw):
    kw.setdefault("n_candidates", 4)
    kw.setdefault("n_starts", 1)
    return F.fit(data, ["eta"], blocked_fraction=BLOCKED, arc_center_rad=ARC, numerics=NUM,
                 start={"eta": start}, **kw)


def check_recovery(result, name, truth, tolerance):
    value, se = result.values[name], result.standard_errors[name]
    assert abs(value - truth) <= tolerance, (name, value, truth)
    assert abs(value - truth) <= 2 * se, (name, value, se, truth)
    assert result.converged


@pytest.fixture(scope="module")
def eta02():
    """eta = 0.2 data fitted from eta = 0.5 (the first fit in this module: it compiles)."""
    return fit_eta(synthetic(eta=0.2, seed=1))


def test_recovers_eta_02(eta02):
    check_recovery(eta02, "eta", 0.2, 0.03)
    assert eta02.dof == 2 * 80 - 1 and eta02.absolute_sigma
    # reduced chi2 of a correct model with the true noise level is ~1 (160 residuals: 1 +- 0.22 at 2 sigma)
    assert 0.6 < eta02.reduced_chi2 < 1.4
    assert not eta02.warnings


def test_standard_error_matches_the_chi2_curvature(eta02):
    """Gauss-Newton SE against the exact curvature of chi2 along eta (the grid profile: finite differences of
    the true chi2, including the second-derivative term Gauss-Newton drops)."""
    profile = eta02.profile
    eta, chi2 = np.asarray(profile["eta"]), np.asarray(profile["chi2"])
    near = np.abs(eta - eta02.values["eta"]) <= 2.5 * eta02.standard_errors["eta"]
    assert near.sum() >= 3
    a = np.polyfit(eta[near] - eta02.values["eta"], chi2[near], 2)[0]  # chi2 ~ chi2_min + (eta - eta_hat)^2 / se^2
    se_curvature = 1.0 / math.sqrt(a)
    assert eta02.standard_errors["eta"] == pytest.approx(se_curvature, rel=0.2)
    assert np.min(chi2) >= eta02.chi2 - 1e-6 * eta02.chi2  # the optimum is the profile's minimum


def test_second_dataset_reuses_the_compiled_programs(eta02):
    """Another dataset of the same shape (other eta, other noise) fits without compiling anything."""
    before = F.compile_counts()
    result = fit_eta(synthetic(eta=0.5, seed=2), start=0.3)
    assert F.compile_counts() == before
    check_recovery(result, "eta", 0.5, 0.03)


@pytest.mark.slow
def test_recovers_eta_08():
    check_recovery(fit_eta(synthetic(eta=0.8, seed=3), start=0.5), "eta", 0.8, 0.03)


@pytest.mark.slow
def test_joint_fit_of_eta_and_arc_angle():
    data = synthetic(eta=0.4, arc=1.0, seed=4)
    result = F.fit(data, ["eta", "arc_center_rad"], blocked_fraction=BLOCKED, numerics=NUM,
                   start={"eta": 0.6, "arc_center_rad": 0.0}, n_candidates=6, n_starts=2)
    check_recovery(result, "eta", 0.4, 0.03)
    check_recovery(result, "arc_center_rad", 1.0, 0.1)
    assert result.correlation.shape == (2, 2)


@pytest.mark.slow
def test_arc_angle_without_direction_is_reported_unidentifiable():
    """|d| does not depend on the arc angle: the fit must say so (and still recover eta). (On a mesh the disk is
    rotation invariant only to the mesh's anisotropy, so the standard error of the angle need not blow up: the
    warning is the structural one.)"""
    data = synthetic(eta=0.4, arc=1.0, seed=5, with_direction=False)
    with pytest.warns(F.IdentifiabilityWarning, match="arc_center_rad is fitted but the data give no offset direction"):
        result = F.fit(data, ["eta", "arc_center_rad"], blocked_fraction=BLOCKED, numerics=NUM,
                       start={"eta": 0.6, "arc_center_rad": 0.0}, n_candidates=4, n_starts=1, profile=None)
    assert any("arc_center_rad" in w for w in result.warnings)
    assert abs(result.values["eta"] - 0.4) <= 0.03


@pytest.mark.filterwarnings("ignore:the Gauss-Newton Hessian is near-singular")
def test_eta_is_unidentifiable_before_the_asymmetry_develops(eta02):
    """Measurements only in the first 0.02 mAh/g (the core barely moves, far below the 10 nm noise) cannot determine
    eta: the fit must warn (same data shape as eta02: no compilation)."""
    early = [np.linspace(0.001, 0.02, 20) * 3600.0 / r for r in RATES]
    data = F.simulate_observations(make_params(eta=0.5, blocked_fraction=BLOCKED, arc_center_rad=ARC), RATES, early,
                                   numerics=NUM, noise_nm=10.0, seed=9)
    with pytest.warns(F.IdentifiabilityWarning, match="eta is not identifiable"):
        result = fit_eta(data, profile=None)
    assert result.standard_errors["eta"] > F.UNIDENTIFIABLE_SE["eta"]


@pytest.mark.slow
def test_blocked_fraction_is_unidentifiable_with_eta_one():
    """With eta = 1 the blocked arc is not blocked at all, so the data cannot tell its size: warning."""
    data = synthetic(eta=1.0 - 1e-9, seed=6)
    with pytest.warns(F.IdentifiabilityWarning, match="blocked_fraction is not identifiable"):
        result = F.fit(data, ["blocked_fraction"], eta=1.0 - 1e-9, arc_center_rad=ARC, numerics=NUM,
                       n_candidates=2, n_starts=1, profile=None)
    assert not math.isfinite(result.standard_errors["blocked_fraction"]) or \
        result.standard_errors["blocked_fraction"] > F.UNIDENTIFIABLE_SE["blocked_fraction"]


@pytest.mark.slow
def test_standard_error_matches_the_spread_over_noise_seeds():
    """The SE predicts the scatter of eta over independent noise draws (6 seeds: the ratio of the sample standard
    deviation to the SE lies in [0.45, 1.6] with ~95 % probability for a correct SE)."""
    fits = [fit_eta(synthetic(eta=0.5, seed=100 + s), start=0.4, profile=None) for s in range(6)]
    etas = np.array([f.values["eta"] for f in fits])
    se = np.mean([f.standard_errors["eta"] for f in fits])
    ratio = np.std(etas, ddof=1) / se
    assert 0.45 <= ratio <= 1.6, (etas, se)


@pytest.mark.slow
def test_model_b_recovers_eta_and_film_resistance():
    """Model B (film resistance): the flux split, hence the asymmetry, depends on the rate; eta and r_NMC are both
    recovered within 10 %.

    With r_NMC = 0.02 Ohm m2 (the low end of the tested range) the open-circuit potential evens out the flux at low
    rates and the film resistance dominates at high rates, so d grows with the rate and saturates; the rates span
    25-1600 mA/g to see both regimes (eta and r_NMC are 0.94 correlated even so; with 50-400 mA/g, 0.99). At 10 nm
    noise the data pin r_NMC to +-15 % (one SE; benchmarks/fit_recovery.py), so the 10 % criterion is tested at
    2.5 nm noise, where it is a two-SE statement rather than luck of the seed (on the mesh core at these small
    numerics the SE of r_NMC is 5.05 % at 3 nm, just short of that).
    """
    truth = {"eta": 0.3, "r_NMC_ohm_m2": 0.02}
    rates = (25.0, 100.0, 400.0, 1600.0)
    times = [CAPACITIES * 3600.0 / r for r in rates]
    params = make_params(surface_model="B", blocked_fraction=BLOCKED, arc_center_rad=ARC, **truth)
    data = F.simulate_observations(params, rates, times, numerics=NUM, noise_nm=2.5, seed=7)
    # the asymmetry at a fixed passed capacity grows with the rate up to 400 mA/g (the premise of the test)
    clean = F.simulate_observations(params, rates, times, numerics=NUM).series
    for q in (10.0, 20.0):
        d_at_q = [np.interp(q, s.capacity_mAh_per_g, s.d_nm) for s in clean]
        assert np.all(np.diff(d_at_q[:3]) > 0), (q, d_at_q)
    result = F.fit(data, ["eta", "r_NMC_ohm_m2"], model="B", blocked_fraction=BLOCKED, arc_center_rad=ARC,
                   numerics=NUM, start={"eta": 0.6, "r_NMC_ohm_m2": 0.05}, n_candidates=6, n_starts=2, profile=None)
    for name, value in truth.items():
        assert abs(result.values[name] / value - 1) <= 0.10, (name, result.values[name], value)
        assert abs(result.values[name] - value) <= 2 * result.standard_errors[name]
        assert result.standard_errors[name] <= 0.05 * value  # 10 % is at least two standard errors


def test_lbfgs_agrees_with_levenberg_marquardt(eta02):
    """The optax L-BFGS path (gradient descent through the solver, one jitted optimiser step) finds the same optimum
    as the default Levenberg-Marquardt. In the default run (~40 s, mostly compiling the L-BFGS step) so that the
    optax path is exercised by CI."""
    result = fit_eta(eta02.observations, method="lbfgs", profile=None)
    assert result.values["eta"] == pytest.approx(eta02.values["eta"], abs=2e-3)


def test_fit_rejects_bad_requests():
    data = obs_mod.make_observations(100, [60, 120], [5, 10])
    with pytest.raises(ValueError, match="cannot fit 'theta0'"):
        F.fit(data, ["theta0"], blocked_fraction=BLOCKED)
    with pytest.raises(ValueError, match="eta has no effect with blocked_fraction = 0"):
        F.fit(data, ["eta"])
    with pytest.raises(ValueError, match="r_NMC_ohm_m2 is an input of surface model B"):
        F.fit(data, ["r_NMC_ohm_m2"], blocked_fraction=BLOCKED)
    with pytest.raises(ValueError, match="unknown method"):
        F.fit(data, ["eta"], blocked_fraction=BLOCKED, method="newton", numerics=NUM)


def test_cli_fit_end_to_end(tmp_path):
    """``fluxsim fit OBS.csv`` on a small synthetic file: report, curves, figure and summary."""
    csv = obs_mod.write_csv(synthetic(eta=0.3, seed=8), tmp_path / "particle.csv")
    out = tmp_path / "fit"
    exe = Path(sys.executable).with_name("fluxsim")
    cmd = [str(exe), "fit", str(csv), "--params", "eta", "--blocked-fraction", str(BLOCKED), "--out", str(out),
           "--spacing", str(NUM.spacing), "--rtol", str(NUM.integrator.rtol), "--candidates", "3", "--starts", "1",
           "--quiet", f"arc_center_rad={ARC}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "eta = " in done.stdout and done.stdout.strip().splitlines()[-1] == str(out)
    report = json.loads((out / "fit.json").read_text())
    assert abs(report["values"]["eta"] - 0.3) <= 0.03 and report["fitted"] == ["eta"]
    assert report["fixed_inputs"]["blocked_fraction"] == BLOCKED
    assert_figure(out / "fit.png")
    import xarray as xr

    ds = xr.open_zarr(out / "fit.zarr", consolidated=False)
    assert ds.sizes["series"] == len(RATES) and float(ds["estimate"][0]) == pytest.approx(report["values"]["eta"])
    # a malformed file: exit status 2 and a message naming the column
    bad = tmp_path / "bad.csv"
    bad.write_text("rate_mA_per_g,time_min,d_nm\n100,1,5\n")
    done = subprocess.run([str(exe), "fit", str(bad)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "time_min" in done.stderr


def test_profile_likelihood_intervals_beside_the_standard_errors(eta02):
    """Both kinds of interval are reported and named; for one nearly linear input the profile-likelihood interval
    (chi2 + 1, + 3.84) matches estimate +- 1 / 1.96 SE within 15 %, and brackets the estimate."""
    intervals = eta02.intervals["eta"]
    eta, se = eta02.values["eta"], eta02.standard_errors["eta"]
    for level, z in F.INTERVAL_LEVELS.items():
        lo, hi = intervals[f"profile_{level}"]
        assert lo < eta < hi
        assert (hi - lo) / 2 == pytest.approx(z * se, rel=0.15)
        assert intervals[f"gauss_newton_{level}"] == pytest.approx([eta - z * se, eta + z * se])
    report = eta02.to_dict()
    assert set(report["interval_kinds"]) == {"gauss_newton", "profile"}
    assert report["intervals"]["eta"]["profile_95"] == pytest.approx(list(intervals["profile_95"]))
    assert report["outline"]["kind"] == "Disk" and report["core_metric"] == "hard"


def test_chi2_only_points_run_forward_only_and_the_grid_profile_seeds_the_intervals(eta02):
    """Candidates, the grid profile and the intervals of one input need chi2 alone: they run the forward-only
    program, so the Jacobian is taken only by the optimiser. Intervals walked from scratch (no grid profile) agree
    with the ones the grid profile seeded."""
    counts = {k: eta02.timings[f"{k}_evaluations"] for k in ("jacobian", "forward")}
    n_grid = len(eta02.profile["eta"])
    assert counts["forward"] >= n_grid + len(eta02.candidates) - 2  # two may coincide with Jacobian points
    assert counts["jacobian"] <= 1 + sum(len(s["history_chi2"]) for s in eta02.starts) + 12  # the LM's own
    walked = fit_eta(eta02.observations, profile=None)
    assert walked.values["eta"] == eta02.values["eta"]
    se = eta02.standard_errors["eta"]
    for level in F.INTERVAL_LEVELS:
        got, want = eta02.intervals["eta"][f"profile_{level}"], walked.intervals["eta"][f"profile_{level}"]
        assert np.all(np.abs(np.array(got) - np.array(want)) <= 0.05 * se)

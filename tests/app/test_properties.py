"""Property-based tests (hypothesis) of issue 5: random valid configs validate and simulate without NaN; random
invalid ones are refused by ``config.load`` (the first thing ``fluxsim`` does) before anything is compiled.

Ranges drawn (docs/cli.md, "Validation"): every input within its documented allowed range, except that the solver
property keeps to the physically meaningful part of the open-ended ones, radius 50 nm - 10 um, rate 1 - 10^4 mA/g,
D_hi 1e-16 - 1e-12 m2/s (far outside, e.g. a 2 nm particle with D = 1e-8 m2/s charged at 0.06 mA/g, the diffusion
time is 1e-17 of the charge time; such a point may end without reaching the cut-off or as NaN, which its status
records). Blocked fractions respect the resolution criterion at the tiny numerics' mesh spacing 1/8 (at least
2 pi / spacing = 50 rim nodes): 0, 1 or in [1/50, 49/50]. A point whose charge lasts very many diffusion times
(``R**2 / D``) needs more adaptive steps than ``numerics.max_steps`` and is flagged (status 2, step_limit_reached),
never silently wrong.

The solver property varies only traced inputs (eta, blocked fraction, arc angle, radius, rate, theta0, D_hi), so the
one compiled Fig. 4 program at tiny numerics (batch of 4; xdist group ``fig4_tiny``, persistent cache) serves every
example. The default run draws a fixed, small number of examples (derandomized: the same ones every run); the slow
variants draw many more at random.
"""

from __future__ import annotations

import copy
import math

import jax
import jax.monitoring
import numpy as np
import pytest
from app_support import CACHE_DIR, TINY, compose_cfg, load_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxsim.api import make_params
from fluxsim.app import config, hydra_glue
from fluxsim.study import batch as batch_mod
from fluxsim.study import extract as extract_mod
from fluxsim.study.geometry import job_geometry

SPACING = 0.125  # numerics=tiny
N_RIM = math.floor(2 * math.pi / SPACING)  # the resolution check's bound of the rim node count
MIN_F = config.MIN_ARC_NODES / N_RIM

BASE = hydra_glue.to_container(compose_cfg(TINY))

COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *args, **kw: COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
)

FAST = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _log_uniform(lo, hi):
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda x: 10.0**x)


fractions = st.one_of(st.just(0.0), st.floats(MIN_F, 1 - MIN_F), st.just(1.0))
radii = _log_uniform(50e-9, 10e-6)
rates = _log_uniform(1.0, 1e4)
diffusivities = _log_uniform(1e-16, 1e-12)
angles = st.floats(-10.0, 10.0)


@st.composite
def physical(draw, theta_cut=0.2):
    """Traced scalar inputs of one valid point (make_params keywords)."""
    f = draw(fractions)
    eta = draw(st.floats(0.01, 1.0) if f == 1.0 else st.floats(0.0, 1.0))
    return dict(eta=eta, blocked_fraction=f, arc_center_rad=draw(angles), radius_m=draw(radii),
                rate_mA_per_g=draw(rates), theta0=draw(st.floats(theta_cut, 1.0, exclude_min=True)),
                D_hi_m2_per_s=draw(diffusivities))


@st.composite
def tables(draw):
    """A valid tabulated D law: theta strictly increasing within [0, 1], D > 0."""
    theta = sorted(draw(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6, unique=True)))
    if not all(b > a for a, b in zip(theta, theta[1:])):  # 0.0 and -0.0
        theta = [0.0, 1.0]
    d = draw(st.lists(_log_uniform(1e-20, 1e-12), min_size=len(theta), max_size=len(theta)))
    return theta, d


#: Grid keys and the valid values the grid may take (blocked fraction 1 needs eta > 0, so it is left out here).
GRID = {
    "eta": st.floats(0.0, 1.0),
    "blocked_fraction": st.one_of(st.just(0.0), st.floats(MIN_F, 1 - MIN_F)),
    "arc_center_rad": angles,
    "radius_m": radii,
    "rate_mA_per_g": rates,
    "D_hi_m2_per_s": diffusivities,
}


@st.composite
def valid_configs(draw, grid=True):
    """A composed config (plain mapping) with random valid inputs, D law and (optionally) a one-dimensional grid."""
    cfg = copy.deepcopy(BASE)
    theta_cut = draw(st.floats(0.01, 0.9))
    point = draw(physical(theta_cut))
    cfg["protocol"].update(theta_cut=theta_cut, theta0=point["theta0"], rate_mA_per_g=point["rate_mA_per_g"])
    cfg["geometry"]["radius_m"] = point["radius_m"]
    cfg["surface"].update(eta=point["eta"], blocked_fraction=point["blocked_fraction"],
                          arc_center_rad=point["arc_center_rad"])
    law = draw(st.sampled_from(["power_law", "constant", "tabulated"]))
    if law == "power_law":
        cfg["diffusivity"]["D_hi_m2_per_s"] = point["D_hi_m2_per_s"]
    elif law == "constant":
        cfg["diffusivity"] = {"law": "constant", "D_m2_per_s": point["D_hi_m2_per_s"], "low_theta_dip": False}
    else:
        theta, d = draw(tables())
        cfg["diffusivity"] = {"law": "tabulated", "table_theta": theta, "table_D_m2_per_s": d,
                              "low_theta_dip": False}
    cfg["sweep"] = {"name": "prop", "grid": {}, "points": [], "chunk_size": 4, "shard": None}
    if grid:
        keys = [k for k in GRID if law == "power_law" or k != "D_hi_m2_per_s"]
        if point["blocked_fraction"] == 1.0:  # eta = 0 would leave no active surface
            keys.remove("eta")
        key = draw(st.sampled_from(keys))
        values = draw(st.lists(GRID[key], min_size=1, max_size=3, unique=True))
        if key == "blocked_fraction" and point["eta"] == 0.0:
            values = [v for v in values if v < 1.0] or [0.0]
        cfg["sweep"]["grid"] = {key: values}
    return cfg


_WARM: list[bool] = []


def _warm():
    if not _WARM:
        load_job(["sweep=single"])  # make_params' small eager ops compile once per process
        _WARM.append(True)
    COMPILES.clear()


@FAST
@given(cfg=valid_configs())
def test_random_valid_configs_validate(cfg):
    """A random valid config validates, and every point's Params carry the drawn values."""
    job = config.load(cfg)
    (key, values), = cfg["sweep"]["grid"].items()
    assert job.sweep.dims == (key,) and len(job.params) == len(values)
    for p, v in zip(job.params, values, strict=True):
        got = {"eta": p.blocking.eta, "blocked_fraction": p.blocking.blocked_fraction,
               "arc_center_rad": p.blocking.arc_center_rad, "radius_m": p.radius_m, "rate_mA_per_g": p.rate_mA_per_g,
               "D_hi_m2_per_s": getattr(p.diffusivity, "D_hi_m2_per_s", None)}[key]
        assert float(got) == v
        assert float(p.theta0) == cfg["protocol"]["theta0"] and float(p.theta_cut) == cfg["protocol"]["theta_cut"]


# ---------------------------------------------------------------------------------------------------------------
# Invalid configs: one thing broken
# ---------------------------------------------------------------------------------------------------------------
def _outside(lo, hi):
    """Finite floats outside [lo, hi] (either side), not too far."""
    return st.one_of(st.floats(lo - 10.0, lo, exclude_max=True), st.floats(hi, hi + 10.0, exclude_min=True))


def _set(cfg, path, value):
    head, key = path.rsplit(".", 1)
    node = cfg
    for part in head.split("."):
        node = node[part]
    node[key] = value


@st.composite
def invalid_configs(draw):
    """A valid config with one thing broken; returns (config, texts the error must contain)."""
    cfg = draw(valid_configs(grid=False))
    case = draw(st.sampled_from([
        "eta", "blocked_fraction", "no_active_surface", "radius", "rate", "step_rate", "theta0", "theta_cut",
        "law", "table_unsorted", "table_nonpositive", "table_outside", "coarse_arc", "empty_grid",
        "repeated_grid", "repeated_points",
    ]))
    if case == "eta":
        v = draw(_outside(0.0, 1.0))
        _set(cfg, "surface.eta", v)
        return cfg, [f"eta = {v!r} is outside the allowed range [0, 1]"]
    if case == "blocked_fraction":
        v = draw(_outside(0.0, 1.0))
        _set(cfg, "surface.blocked_fraction", v)
        return cfg, [f"blocked_fraction = {v!r} is outside the allowed range [0, 1]"]
    if case == "no_active_surface":
        cfg["surface"].update(eta=0.0, blocked_fraction=1.0)
        return cfg, ["no active surface: blocked_fraction = 1.0 with eta = 0.0"]
    if case == "radius":
        v = draw(st.floats(-1e-3, 0.0))
        _set(cfg, "geometry.radius_m", v)
        return cfg, [f"radius_m = {v!r} m is outside the allowed range (0, inf)"]
    if case == "rate":
        v = draw(st.floats(-1e4, 0.0))
        _set(cfg, "protocol.rate_mA_per_g", v)
        return cfg, [f"rate_mA_per_g = {v!r} mA g-1 is outside the allowed range (0, inf)"]
    if case == "step_rate":
        v = draw(st.floats(-1e4, 0.0))
        kind = draw(st.sampled_from(["charge", "discharge"]))
        cfg["protocol"]["steps"] = [{"kind": "charge"}, {"kind": kind, "rate_mA_per_g": v}]
        return cfg, [f"protocol.steps[1].rate_mA_per_g = {v!r} mA g-1 is outside the allowed range (0, inf)"]
    if case == "theta0":
        cut = cfg["protocol"]["theta_cut"]
        v = draw(st.floats(0.0, cut))
        _set(cfg, "protocol.theta0", v)
        return cfg, [f"theta0 = {v!r} is outside the allowed range ({cut}, 1]"]
    if case == "theta_cut":
        v = draw(st.one_of(st.floats(-1.0, 0.0), st.floats(1.0, 2.0)))
        _set(cfg, "protocol.theta_cut", v)
        return cfg, [f"theta_cut = {v!r} is outside the allowed range (0, 1)"]
    if case == "law":
        v = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
            lambda s: s not in ("power_law", "constant", "tabulated")))
        cfg["diffusivity"]["law"] = v
        return cfg, [f"diffusivity.law = {v!r} is not a known D law; allowed: power_law, constant, tabulated"]
    if case.startswith("table"):
        theta, d = draw(tables())
        theta = [0.0, *theta[1:-1], 1.0] if len(theta) > 2 else [0.0, 1.0]
        if case == "table_unsorted":
            k = draw(st.integers(1, len(theta) - 1))
            theta[k] = theta[k - 1] - draw(st.floats(0.0, 1.0))  # not above its predecessor
            expected = [f"table_theta = {theta}", f"must be strictly increasing (entry {k}: {theta[k]!r} <="]
        elif case == "table_nonpositive":
            k = draw(st.integers(0, len(d) - 1))
            d[k] = draw(st.floats(-1e-12, 0.0))
            expected = [f"table_D_m2_per_s = {d}", f"(entry {k}: {d[k]!r} is outside the allowed range (0, inf))"]
        else:
            if draw(st.booleans()):
                theta[0] = -draw(st.floats(1e-6, 1.0))
            else:
                theta[-1] = 1.0 + draw(st.floats(1e-6, 1.0))
            expected = [f"table_theta = {theta} is outside the allowed range [0, 1]"]
        cfg["diffusivity"] = {"law": "tabulated", "table_theta": theta, "table_D_m2_per_s": d, "low_theta_dip": False}
        return cfg, expected
    if case == "coarse_arc":
        v = draw(st.floats(0.0, MIN_F, exclude_min=True, exclude_max=True))
        cfg["surface"].update(blocked_fraction=v)
        return cfg, [f"numerics.spacing = {SPACING} is too coarse for blocked_fraction = {v:.6g}"]
    if case == "empty_grid":
        key = draw(st.sampled_from(["eta", "radius_m", "rate_mA_per_g"]))
        cfg["sweep"]["grid"] = {key: draw(st.sampled_from([[], {"start": 0.1, "stop": 0.2, "num": 0}]))}
        return cfg, [f"sweep.grid.{key}", "gives a sweep with no points"]
    if case == "repeated_grid":
        key = draw(st.sampled_from(["eta", "radius_m", "rate_mA_per_g"]))
        v = draw(GRID[key])
        values = draw(st.permutations([v, v, *draw(st.lists(GRID[key], max_size=2, unique=True).filter(
            lambda xs: v not in xs))]))
        cfg["sweep"]["grid"] = {key: values}
        return cfg, [f"sweep.grid.{key} has repeated values"]
    point = {"eta": draw(st.floats(0.0, 1.0)), "blocked_fraction": draw(st.floats(MIN_F, 0.5))}
    cfg["sweep"]["points"] = [point, {"label": "other", "eta": 0.5, "blocked_fraction": 0.5} if point["eta"] != 0.5
                              else {"eta": 0.25}, dict(point, label="again")]
    return cfg, ["sweep.points[2] repeats sweep.points[0]"]


@FAST
@given(case=invalid_configs())
def test_random_invalid_configs_fail_before_compute(case):
    """A random config with one thing broken raises ConfigError naming the parameter and value, and nothing at all
    is compiled on the way."""
    cfg, expected = case
    _warm()
    with pytest.raises(config.ConfigError) as err:
        config.load(cfg)
    for text in expected:
        assert text in str(err.value)
    assert COMPILES == []


# ---------------------------------------------------------------------------------------------------------------
# Valid points through the compiled solver
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fig4_runner():
    """The Fig. 4 batch program at tiny numerics (the default job of app/test_cli.py), from the persistent cache."""
    jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    job = load_job()
    runner = batch_mod.compile_at(job, jax.local_devices()[:1])(4)
    return runner, job


#: Charges shorter than this many diffusion times R**2 / D_hi finish within numerics.max_steps at tiny numerics.
WITHIN_MAX_STEPS = 1e4


def _check_batch(fig4_runner, points):
    runner, job = fig4_runner
    params = [make_params(**p) for p in points]
    out = jax.device_get(runner(batch_mod.stack(params), job_geometry(job).mesh(0)))
    assert len(runner.traces) == 1  # one compiled program for every example
    times = np.asarray(job.output.times_s)
    for i, (p, point) in enumerate(zip(params, points, strict=True)):
        where = f"point {point}"
        q_th = p.material.theoretical_capacity_mAh_per_g
        horizon = (float(p.theta0) - float(p.theta_cut)) * 3600.0 * q_th / float(p.rate_mA_per_g)
        diffusion_times = horizon * float(p.diffusivity.D_hi_m2_per_s) / float(p.radius_m) ** 2
        assert out["status"][i] in (0, extract_mod.STATUS_INCOMPLETE), where
        assert out["status"][i] == 0 or diffusion_times > WITHIN_MAX_STEPS, (where, diffusion_times)
        for name in ("capacity_at_cutoff_mAh_per_g", "time_to_cutoff_s", "n_evaluations"):
            assert np.isfinite(out[name][i]), (where, name)
        end = out["time_to_cutoff_s"][i]
        assert end >= 0 and out["capacity_at_cutoff_mAh_per_g"][i] >= 0, where
        within = times <= end
        for name in ("passed_capacity_mAh_per_g", "mean_theta", "surface_min_theta", "surface_max_theta",
                     "theta_min", "theta_max", "core_fraction", "smooth_core_fraction"):
            assert np.isfinite(out[name][i][within]).all(), (where, name)
        assert np.isfinite(out["line_cut"][i][within]).all(), where
        taken = np.asarray(job.output.snapshot_times_s) <= end
        real = np.asarray(job_geometry(job).mesh(0).node_mask)  # NaN at the padded nodes
        assert np.isfinite(out["theta"][i][taken][:, real]).all(), where
        # d is NaN without a core (by definition): it must be finite wherever the core fraction is positive (the
        # series are saved on the stored grid itself, so no interval lies between them)
        for offset, fraction in (("offset_nm", "core_fraction"), ("smooth_offset_nm", "smooth_core_fraction")):
            defined = out[fraction][i] > 0
            assert np.isfinite(out[offset][i][defined]).all(), (where, offset)
        # Li balance (README: exact): passed capacity = (theta0 - mean theta) Q_th at every stored time
        balance = (float(p.theta0) - out["mean_theta"][i][within]) * q_th
        np.testing.assert_allclose(out["passed_capacity_mAh_per_g"][i][within], balance, rtol=0, atol=1e-9,
                                   err_msg=where)


def _diffusion_times(point) -> float:
    """How many diffusion times ``R**2 / D_hi`` a point's charge lasts at most (its cost in adaptive steps)."""
    horizon = (point["theta0"] - 0.2) * 3600.0 * 275.0 / point["rate_mA_per_g"]
    return horizon * point["D_hi_m2_per_s"] / point["radius_m"] ** 2


@pytest.mark.xdist_group("fig4_tiny")
@settings(FAST, max_examples=20)
@given(points=st.lists(physical().filter(lambda p: _diffusion_times(p) < 1e3), min_size=4, max_size=4))
def test_random_valid_points_simulate_without_nan(fig4_runner, points):
    """Four random valid points per example through the compiled batch: status 0, every output finite where it is
    defined (scalars; series up to the end of the charge, snapshots taken by then, d where there is a core), and the
    Li balance holds to 1e-9 mAh/g. The default run keeps to charges of < 1e3 diffusion times (a few hundred
    adaptive steps at most); the slow variant draws the whole range, where points beyond ``numerics.max_steps`` are
    flagged."""
    _check_batch(fig4_runner, points)


@pytest.mark.slow
@pytest.mark.xdist_group("fig4_tiny")
@THOROUGH
@given(points=st.lists(physical(), min_size=4, max_size=4))
def test_many_random_valid_points_simulate_without_nan(fig4_runner, points):
    _check_batch(fig4_runner, points)


@pytest.mark.slow
@THOROUGH
@given(case=invalid_configs())
def test_many_random_invalid_configs_fail_before_compute(case):
    test_random_invalid_configs_fail_before_compute.hypothesis.inner_test(case)


@pytest.mark.slow
@THOROUGH
@given(cfg=valid_configs())
def test_many_random_valid_configs_validate(cfg):
    test_random_valid_configs_validate.hypothesis.inner_test(cfg)

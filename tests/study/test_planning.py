"""Size planning (issue 9, item 4): large grids validate per axis, stream their points, and are planned (memory,
time) before anything is built or compiled; a batch over ``runtime.memory_budget_gb`` is refused with the numbers.

No test here compiles except ``test_memory_estimate_matches_xla`` (the shared tiny Fig. 4 program, served by the
persistent cache).
"""

from __future__ import annotations

import itertools
import tracemalloc
import zlib

import jax
import numpy as np
import pytest
from app_support import TINY, compose_cfg, load_job

from fluxsim.api import make_params
from fluxsim.app import cli, config, hydra_glue
from fluxsim.study import batch as batch_mod
from fluxsim.study import plan as plan_mod
from fluxsim.study import spec

COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *args, **kw: COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
)

#: A 1000 x 1000 grid (1e6 points) with a blocked arc, so eta has an effect.
MILLION = ["sweep=single", "sweep.chunk_size=64", "surface.blocked_fraction=0.25",
           "+sweep.grid.eta={start:0.05,stop:1.0,num:1000}",
           "+sweep.grid.rate_mA_per_g={start:50,stop:400,num:1000,log:true}"]


def _counting(monkeypatch) -> list:
    calls = []

    def counted(**kw):
        calls.append(1)
        return make_params(**kw)

    monkeypatch.setattr(config, "make_params", counted)  # validation in the loader
    monkeypatch.setattr(spec, "make_params", counted)  # the lazy per-point Params of a job
    return calls


def test_million_point_grid_validates_and_plans_without_building_points(monkeypatch):
    """1e6 points: validation calls make_params a handful of times (not 1e6), keeps no per-point objects (Python
    allocations stay below 50 MB), compiles nothing, and the plan covers every point."""
    load_job(["sweep=single"])  # warm up make_params' small eager ops, so what follows may compile nothing
    cfg = compose_cfg([*TINY, *MILLION])
    calls = _counting(monkeypatch)
    COMPILES.clear()
    tracemalloc.start()
    job = config.load(cfg)
    plan = cli.plan_job(job, jax.local_devices()[:1])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert job.sweep.size == len(job.params) == len(job.sweep.inputs) == 1_000_000
    assert len(calls) <= 10 and COMPILES == []
    assert peak < 50e6, f"{peak / 1e6:.1f} MB allocated while validating and planning"
    assert plan.points == plan.points_here == 1_000_000 and plan.fits
    assert plan.store_bytes == pytest.approx(1e6 * (8 * plan_mod.stored_floats_per_point(job) + 8))
    # points are computed on demand, in C order over (eta, rate)
    eta, rate = job.sweep.coords["eta"], job.sweep.coords["rate_mA_per_g"]
    point = job.sweep.inputs[123_456]
    assert (point["eta"], point["rate_mA_per_g"]) == (eta[123], rate[456])
    assert job.params[-1].rate_mA_per_g == rate[-1] and job.params[-1].blocking.eta == eta[-1]


def test_blocks_build_only_their_own_params(monkeypatch):
    """run_blocks builds the Params of the blocks it computes and no others (memory flat in the points)."""
    job = load_job(MILLION)
    calls = _counting(monkeypatch)

    class Fake:
        batch_size = 64

        def __call__(self, stacked, mesh):
            return {"x": np.asarray(stacked.rate_mA_per_g)}

    written = []
    todo = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)[:3]
    batch_mod.run_blocks(Fake(), job.params, todo, lambda b, out: written.append((b.flat, out["x"])))
    assert len(calls) == 3 * 64
    for flat, x in written:
        np.testing.assert_array_equal(x.ravel(), [job.sweep.inputs[i]["rate_mA_per_g"] for i in flat])


GRID_VALUES = {  # each with valid and invalid values, and the pairs make_params checks together
    "eta": [0.0, 0.5, 1.0, 1.5],
    "blocked_fraction": [0.0, 0.5, 1.0],
    "theta0": [0.3, 0.6, 1.0],
    "theta_cut": [0.2, 0.5, 0.7],
    "rate_mA_per_g": [-5.0, 100.0, 200.0],
}


@pytest.mark.parametrize("dims", list(itertools.combinations(GRID_VALUES, 3)), ids="-".join)
def test_per_axis_validation_equals_point_by_point(dims):
    """The grid is refused exactly when some point fails make_params (every triple of the inputs above, with
    values on both sides of each single-input range and of each two-input check)."""
    base = hydra_glue.to_container(compose_cfg([*TINY, "sweep=single"]))
    rng = np.random.default_rng(zlib.crc32("-".join(dims).encode()))
    outcomes = set()
    valid = {"eta": [0.5, 1.0], "blocked_fraction": [0.0, 0.5], "theta0": [0.6, 1.0], "theta_cut": [0.2, 0.5],
             "rate_mA_per_g": [100.0, 200.0]}
    draws = [{d: valid[d] for d in dims}] + [
        {d: rng.permutation(GRID_VALUES[d])[: rng.integers(1, 4)].tolist() for d in dims}  # any order
        for _ in range(12)
    ]
    for grid in draws:
        cfg = {**base, "sweep": {**base["sweep"], "grid": grid}}
        points = [dict(zip(dims, values, strict=True)) for values in itertools.product(*grid.values())]
        failing = []
        for point in points:
            try:
                make_params(**{**config._base_inputs(base), **point})
            except ValueError:
                failing.append(point)
        try:
            config.load(cfg)
        except config.ConfigError as err:
            assert failing, f"{grid}: refused ({err}) but every point is valid"
        else:
            assert not failing, f"{grid}: accepted but {failing[0]} is invalid"
        outcomes.add(bool(failing))
    assert outcomes == {True, False}  # the grids drawn test both ways


def test_duration_bound_is_vectorised():
    """The time grid's bound (output.times_s.stop: null) over a grid equals the largest bound of its points."""
    job = load_job(["sweep=single", "+sweep.grid.rate_mA_per_g=[70,100,400]", "+sweep.grid.theta0=[0.9,1.0]",
                    "+sweep.grid.theta_cut=[0.2,0.3]"])
    grid = float(np.max(config._max_duration_s(config._broadcast_inputs(job.sweep), job.protocol)))
    assert grid == max(config._max_duration_s(p, job.protocol) for p in job.sweep.inputs)


def test_plan_refuses_a_batch_over_the_budget():
    """A fixed chunk over an explicit runtime.memory_budget_gb is refused with the numbers and the chunk size that
    fits; so is chunk_size=auto when not one simulation fits; neither compiles."""
    devs = jax.local_devices()[:1]
    job = load_job([*MILLION, "runtime.memory_budget_gb=0.01"])
    COMPILES.clear()
    with pytest.raises(config.ConfigError) as err:
        cli.plan_job(job, devs)
    point_mb = plan_mod.point_bytes_estimate(job) / 1e6
    fit = int(0.01e9 // plan_mod.point_bytes_estimate(job))
    assert (f"sweep.chunk_size = 64 needs ~{64 * point_mb / 1e3:.3g} GB per device (64 simulations x "
            f"{point_mb:.3g} MB / 1 device(s), estimated), over the budget runtime.memory_budget_gb = 0.01") \
        in str(err.value)
    assert f"use sweep.chunk_size <= {fit} (or auto)" in str(err.value)
    auto = load_job(["sweep.chunk_size=auto", "runtime.memory_budget_gb=0.0001"])
    with pytest.raises(config.ConfigError, match="one simulation per device needs ~0.000"):
        cli.plan_job(auto, devs)
    assert COMPILES == []
    assert cli.plan_job(load_job([*MILLION, "runtime.memory_budget_gb=1"]), devs).fits  # 64 x 0.77 MB fits 1 GB


def test_memory_estimate_matches_xla():
    """The estimate of one simulation's device memory is within 10 % of XLA's memory analysis of the compiled
    batch (the tiny Fig. 4 program every CLI test compiles; the constants were fitted at spacings 1/8 and 1/32)."""
    job = load_job()
    cli._use_compilation_cache(job.runtime)  # the shared persistent cache (app_support.CACHE_DIR) serves it
    runner = batch_mod.compile_at(job, jax.local_devices()[:1])(4)
    measured = plan_mod.footprint_bytes(runner) / 4
    assert plan_mod.point_bytes_estimate(job) == pytest.approx(measured, rel=0.1)


def test_swept_input_without_effect_is_named():
    """eta swept without a blocked arc (blocked_fraction = 0 everywhere) warns, naming eta and why; with an arc,
    or with blocked_fraction swept through nonzero values, it does not."""
    (warning,) = config.ineffective_sweeps(load_job(["sweep=single", "+sweep.grid.eta=[0.2,0.5,0.8]"]))
    assert warning.startswith("sweep.grid.eta has no effect: blocked_fraction = 0 at every point")
    assert config.ineffective_sweeps(load_job(["sweep=single", "surface.blocked_fraction=0.25",
                                               "+sweep.grid.eta=[0.2,0.5,0.8]"])) == []
    assert config.ineffective_sweeps(load_job(["sweep=single", "+sweep.grid.eta=[0.2,0.5]",
                                               "+sweep.grid.blocked_fraction=[0,0.25]"])) == []
    (points,) = config.ineffective_sweeps(load_job(["sweep.points=[{eta:0.3},{eta:0.7}]"]))
    assert points.startswith("sweep.points[*].eta has no effect")

"""Batched sweeps equal single runs; sharding over devices changes nothing; padding and failures are contained.

Compiling dominates on CPU, so each compiled program feeds one test (pytest-xdist may put tests on different
workers): one test for the batched sweep against single runs, one subprocess for sharding.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from app_support import CACHE_DIR, TEN_POINTS, load_job, run_python

from fluxsim.api import make_params
from fluxsim.study import batch as batch_mod
from fluxsim.study import extract as extract_mod
from fluxsim.study import plan as plan_mod
from fluxsim.study.geometry import job_geometry

TESTS = str(Path(__file__).resolve().parents[1])  # tests/: app_support


def _by_point(block_outputs: list) -> dict[str, np.ndarray]:
    """Outputs of all blocks of a 1-D sweep, concatenated along the point axis."""
    names = block_outputs[0][1].keys()
    return {k: np.concatenate([out[k] for _, out in block_outputs]) for k in names}


#: Batched (vmapped, sharded) and single runs compile to different fusions: their roundoff differs, and now and then
#: an error-controlled step is decided differently on it (measured at tiny numerics: one evaluation more or less in
#: one point of ten; then up to 1.3e-6 relative in d as the core vanishes, 8.7e-5 absolute at most). The step counts
#: are not compared; sharding over 4 devices changes the values by 3e-8 at most.
RTOL, ATOL = 1e-5, 2e-4
STEP_COUNTS = ("n_steps", "n_rejected", "n_evaluations")


def _compare(got: dict, ref: dict, label: str) -> tuple[float, bool]:
    """Assert equality within :data:`RTOL` / :data:`ATOL`; returns (largest absolute difference, bitwise equal)."""
    worst, bitwise = 0.0, True
    assert set(got) == set(ref)
    for name in ref:
        if name in STEP_COUNTS:  # the adaptive steps may decide one step differently on other roundoff
            continue
        a, b = np.asarray(got[name]), np.asarray(ref[name])
        if name == "offset_direction_rad":  # the direction of a roundoff-sized offset (eta = 1) is noise
            keep = np.asarray(ref["offset_nm"]) > 1e-3
            a, b = a[keep], b[keep]
            a = b + np.angle(np.exp(1j * (a - b)))  # an angle: pi and -pi are the same direction
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=f"{label}: {name}")
        bitwise &= np.array_equal(a, b, equal_nan=True)
        if a.dtype.kind == "f" and np.isfinite(a - b).any():
            worst = max(worst, float(np.nanmax(np.abs(a - b))))
    return worst, bitwise


def test_sweep_equals_loop_of_single_runs():
    """Ten points in blocks of 4, 4 and a padded 2 through one compiled vmapped runner, against a Python loop
    of single unbatched ``simulate`` runs; then status flags on those single solutions."""
    jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    job = load_job([f"sweep.points={TEN_POINTS}"])
    spec = extract_mod.extraction_for(job)
    runner = batch_mod.compile_at(job, jax.local_devices()[:1])(4)
    todo = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)
    assert [len(b.flat) for b in todo] == [4, 4, 2]
    written = []
    batch_mod.run_blocks(runner, job.params, todo, lambda b, out: written.append((b, out)),
                         meshes=batch_mod.meshes_of(job))
    assert len(runner.traces) == 1  # three batches, one trace, no recompilation
    batched = _by_point(written)

    mesh = job_geometry(job).mesh(0)
    one = jax.jit(batch_mod.simulate, static_argnums=(2, 3, 4, 5))
    solutions = [one(p, mesh, job.protocol, job.numerics, spec.times_s, job.output.snapshot_times_s)
                 for p in job.params]
    worst, bitwise = 0.0, True
    for i, (solution, p) in enumerate(zip(solutions, job.params, strict=True)):
        ref = jax.tree.map(np.asarray, extract_mod.point_outputs(solution, p, mesh, job.protocol, spec))
        w, b = _compare({k: v[i] for k, v in batched.items()}, ref, f"point {i}")
        worst, bitwise = max(worst, w), bitwise and b
    print(f"sweep vs single runs: largest absolute difference {worst:.3g}, bitwise {bitwise}")

    # physics sanity on the stored outputs
    assert (batched["status"] == 0).all() and batched["reached_cutoff"].all()
    assert np.nanmax(batched["offset_nm"][0]) < 1e-6 < np.nanmax(batched["offset_nm"][2])
    cap, t = batched["passed_capacity_mAh_per_g"][0], job.output.times_s
    ok = np.isfinite(cap)
    np.testing.assert_allclose(cap[ok], 100.0 * t[ok] / 3600.0, rtol=1e-12, atol=1e-9)  # constant current

    # the capacity at cut-off is the current times the time to cut-off, and the series reach it
    np.testing.assert_allclose(batched["capacity_at_cutoff_mAh_per_g"], 100.0 * batched["time_to_cutoff_s"] / 3600.0,
                               rtol=1e-12)
    assert np.all(np.nanmax(batched["passed_capacity_mAh_per_g"], axis=1)
                  <= batched["capacity_at_cutoff_mAh_per_g"] + 1e-9)
    # snapshots: NaN exactly at the padded nodes
    real = np.asarray(mesh.node_mask)
    assert np.isfinite(batched["theta"][..., real]).all() and np.isnan(batched["theta"][..., ~real]).all()

    # status bits: non-finite state -> 1, a protocol step out of max_steps -> 2
    solution, p = solutions[2], job.params[2]
    bad = solution._replace(mean_theta=solution.mean_theta.at[3].set(np.nan))
    assert int(extract_mod.point_outputs(bad, p, mesh, job.protocol, spec)["status"]) == extract_mod.STATUS_NONFINITE
    slow = solution._replace(complete=np.asarray(False))
    assert int(extract_mod.point_outputs(slow, p, mesh, job.protocol, spec)["status"]) == extract_mod.STATUS_INCOMPLETE


def test_sharded_over_four_devices_equals_single_device(tmp_path):
    """In a process with 4 fake CPU devices: batches sharded over all 4 equal batches on one device."""
    out = tmp_path / "result.npz"
    code = f"""
import sys, numpy as np, jax
sys.path.insert(0, {TESTS!r})
from app_support import load_job, TEN_POINTS, CACHE_DIR
from fluxsim.study import batch as batch_mod
from fluxsim.study import extract as extract_mod
from fluxsim.study import plan as plan_mod
assert len(jax.local_devices()) == 4, jax.local_devices()
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
job = load_job([f"sweep.points={{TEN_POINTS}}"])
results = {{}}
for n in (4, 1):
    runner = batch_mod.compile_at(job, jax.local_devices()[:n])(4)
    assert len(runner.sharding.mesh.devices) == n
    res = {{}}
    def write(block, out):
        for k, v in out.items():
            res.setdefault(k, []).append(v)
    batch_mod.run_blocks(runner, job.params, plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape), write,
                         meshes=batch_mod.meshes_of(job))
    for k, v in res.items():
        results[f"{{n}}/{{k}}"] = np.concatenate(v)
np.savez({str(out)!r}, **results)
"""
    run_python(code, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"})
    data = np.load(out)
    names = {k.split("/", 1)[1] for k in data.files}
    sharded = {k: data[f"4/{k}"] for k in names}
    single = {k: data[f"1/{k}"] for k in names}
    assert sharded["status"].shape == (10,) and (sharded["status"] == 0).all()
    worst, bitwise = 0.0, True
    for i in range(10):
        w, b = _compare({k: v[i] for k, v in sharded.items()}, {k: v[i] for k, v in single.items()}, f"point {i}")
        worst, bitwise = max(worst, w), bitwise and b
    print(f"4 devices vs 1: largest absolute difference {worst:.3g}, bitwise {bitwise}")


def test_blocks_tile_the_grid():
    shape, chunk = (3, 5, 2), (2, 2, 2)
    bl = plan_mod.blocks(shape, chunk)
    flat = np.concatenate([b.flat for b in bl])
    assert sorted(flat) == list(range(30)) and len(bl) == 2 * 3 * 1
    assert all(len(b.flat) == int(np.prod(b.shape)) <= 8 for b in bl)


def test_a_failing_batch_does_not_lose_the_others():
    job = load_job([f"sweep.points={TEN_POINTS}"])

    class Flaky:
        batch_size = 4
        calls = 0

        def __call__(self, stacked, mesh):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise FloatingPointError("boom")
            return {"x": np.arange(np.shape(stacked.radius_m)[0], dtype=float)}

    written, failed = [], []
    todo = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)
    batch_mod.run_blocks(Flaky(), job.params, todo, lambda b, out: written.append(b.index),
                     fail=lambda b, err: failed.append((b.index, str(err))))
    assert written == [(0,), (2,)] and failed == [((1,), "boom")]


def test_stack_refuses_mixed_structure():
    with pytest.raises(ValueError, match="static structure"):
        batch_mod.stack([make_params(), make_params(surface_model="B", theta0=0.999)])
    stacked = batch_mod.stack([make_params(eta=0.3), make_params(eta=0.7)])
    np.testing.assert_array_equal(stacked.blocking.eta, [0.3, 0.7])


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_partition_the_blocks(n):
    """``sweep.shard = i/n`` for i = 0..n-1: disjoint, together every block, balanced to within one block."""
    all_blocks = plan_mod.blocks((3, 5, 2), (1, 2, 2))
    parts = [plan_mod.shard_blocks(all_blocks, None if n == 1 else (i, n)) for i in range(n)]
    indices = [b.index for part in parts for b in part]
    assert sorted(indices) == sorted(b.index for b in all_blocks) and len(set(indices)) == len(all_blocks)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_chunk_size_grows_with_the_budget_and_fits_it():
    point = 3.7e6  # bytes per simulation on a device
    for devices in (1, 4):
        chosen = [plan_mod.chunk_size_for_budget(point, gb * plan_mod.GB, devices, 100_000)
                  for gb in (0.01, 0.1, 0.5, 2)]
        assert chosen == sorted(chosen) and chosen[0] < chosen[-1]
        for gb, chunk in zip((0.01, 0.1, 0.5, 2), chosen, strict=True):
            assert chunk % devices == 0 and point * chunk / devices <= gb * plan_mod.GB
            assert point * (chunk + devices) / devices > gb * plan_mod.GB  # the largest that fits
    assert plan_mod.chunk_size_for_budget(point, 10 * plan_mod.GB, 4, 10) == 12  # capped: 10 points, 4 devices
    with pytest.raises(ValueError, match="below one simulation's footprint"):
        plan_mod.chunk_size_for_budget(point, 1e6, 1, 100)


class _Stats:
    def __init__(self, temp):
        self.argument_size_in_bytes, self.output_size_in_bytes, self.alias_size_in_bytes = 100, 1000, 0
        self.generated_code_size_in_bytes, self.temp_size_in_bytes = 0, temp


def test_auto_chunk_size_checks_the_compiled_batch():
    """The linear estimate from the probe picks the chunk; a compiled batch that turns out larger than the budget
    (super-linear growth) makes it shrink until the compiled footprint fits."""
    compiled = []

    def compile_at(size):
        compiled.append(size)
        runner = type("R", (), {})()
        runner.compiled = type("C", (), {"memory_analysis": lambda self: _Stats(1e5 * size ** 1.5)})()
        return runner

    budget = 5e6
    choice = plan_mod.auto_chunk_size(compile_at, lambda c: c, budget_bytes=budget, n_devices=1, n_points=10_000)
    assert compiled[0] == choice.probe_size == plan_mod.PROBE_PER_DEVICE
    assert choice.compiled_bytes == plan_mod.footprint_bytes(compile_at(choice.batch_size)) <= budget
    assert choice.chunk_size < int(budget // choice.point_bytes)  # had to shrink below the linear estimate
    bigger = plan_mod.auto_chunk_size(compile_at, lambda c: c, budget_bytes=4 * budget, n_devices=1, n_points=10_000)
    assert bigger.chunk_size > choice.chunk_size


@pytest.mark.xdist_group("fig4_tiny")  # its probe is the Fig. 4 program at tiny numerics (test_cli, test_presets)
def test_auto_chunk_size_from_xla_memory_analysis(tmp_path):
    """``sweep.chunk_size: auto`` on the real compiled solver (tiny numerics, the four Fig. 4 cases): the probe's
    XLA memory analysis gives the footprint per simulation, the chunk is the largest that fits (here all 4 points),
    the compiled batch fits the budget, and a job joining an existing store adopts its chunking."""
    from fluxsim.app.cli import resolve_chunk_size
    from fluxsim.io import store

    jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    devs = jax.local_devices()[:1]
    job = load_job(["sweep.chunk_size=auto", "runtime.memory_budget_gb=0.5"])
    sized = resolve_chunk_size(job, tmp_path / "none.zarr", devs)
    assert sized.sweep.chunk_size == 4 and sized.sweep.chunk_shape == (4,)
    runner = batch_mod.compile_at(sized, devs)(4)  # cached: probe == batch
    footprint = plan_mod.footprint_bytes(runner)
    print(f"footprint per simulation (tiny numerics, Fig. 4 outputs): {footprint / 4e6:.3f} MB")
    assert 0 < footprint <= 0.5 * plan_mod.GB
    point = footprint / 4
    assert plan_mod.chunk_size_for_budget(point, 2.5 * point, 1, 4) == 2  # a tighter budget: smaller chunks
    with pytest.raises(ValueError, match="below one simulation's footprint"):
        resolve_chunk_size(load_job(["sweep.chunk_size=auto", f"runtime.memory_budget_gb={0.5 * point / 1e9}"]),
                           tmp_path / "none.zarr", devs)

    path = tmp_path / "s.zarr"
    store.StoreWriter(path, job.with_sweep(job.sweep.with_chunk_size(2)))  # created with another budget
    assert resolve_chunk_size(job, path, devs).sweep.chunk_shape == (2,)  # its chunks win

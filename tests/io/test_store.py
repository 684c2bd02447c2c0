"""The zarr store: schema, units, lazy creation, region writes, refusal of foreign configs, resume after kill -9."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from app_support import TEN_POINTS, block_outputs, load_job, run_python

from fluxsim.app.cli import run_job
from fluxsim.io import store
from fluxsim.study import extract as extract_mod
from fluxsim.study import plan as plan_mod

TESTS = str(Path(__file__).resolve().parents[1])  # tests/: app_support


def _fake_outputs(job, block, value=0.5):
    out = {}
    for name in store.variable_names(job):
        var = store.VARIABLES[name]
        shape = block.shape + store._extra_shape(job, var.dims)
        out[name] = np.full(shape, value if var.dtype == "float64" else 1, dtype=var.dtype)
    out["status"] = np.zeros(block.shape, np.int8)
    return out


def _data_chunks(path: Path, name: str) -> list:
    return [p for p in (path / name).rglob("*") if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs")]


def test_schema_units_and_selection(tmp_path):
    job = load_job(["sweep=fig5b", "sweep.chunk_size=2"])
    path = tmp_path / "s.zarr"
    writer = store.StoreWriter(path, job)
    assert not writer.resumed and not _data_chunks(path, "theta") and not _data_chunks(path, "mean_theta")
    blocks = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)
    assert len(blocks) == 6
    writer.write(blocks[1], _fake_outputs(job, blocks[1]))  # eta = 1, rates 200 and 400

    ds = store.open_store(path)
    assert ds.attrs["fluxsim_version"] and ds.attrs["jax_backend"] == "cpu" and ds.attrs["jax_devices"]
    assert "created" in ds.attrs and "sweep:" in ds.attrs["config"] and ds.attrs["config_hash"] == job.config_hash
    assert ds.encoding.get("zarr_format", 3) == 3 or (path / "zarr.json").exists()
    for name, var in {**ds.data_vars, **ds.coords}.items():
        assert var.attrs.get("units") and var.attrs.get("long_name"), name
    assert ds.sizes["eta"] == 3 and ds.sizes["rate_mA_per_g"] == 4
    assert dict(ds["theta"].sizes) == {"blocked_fraction": 1, "eta": 3, "rate_mA_per_g": 4, "snapshot_time": 4,
                                       "node": 288}
    # the tiny disk mesh: 259 real nodes (60 on the rim) in a bucket of 288, no shape or size swept: (node,) only
    assert ds["node_x_m"].dims == ("node",) and ds["triangles"].dims == ("triangle", "corner")
    assert int(ds["node_mask"].sum()) == 259 and int(ds["node_is_rim"].sum()) == 60
    real = ds["node_mask"].values
    radius = np.hypot(ds["node_x_m"].values, ds["node_y_m"].values)
    assert np.isnan(radius[~real]).all() and np.nanmax(radius) == pytest.approx(1.2e-6, rel=1e-3)
    triangles = ds["triangles"].values
    used = triangles[triangles[:, 0] >= 0]
    assert (triangles[len(used):] == -1).all() and real[used].all()
    assert ds.attrs["outline"] == '{"kind": "disk"}' and ds.attrs["mesh_spacing"] == 0.125
    point = ds.sel(eta=1.0, rate_mA_per_g=200.0, blocked_fraction=0.25)
    assert bool(point["done"]) and int(point["status"]) == 0 and float(point["capacity_at_cutoff_mAh_per_g"]) == 0.5
    other = ds.sel(eta=0.3, rate_mA_per_g=200.0, blocked_fraction=0.25)
    assert not bool(other["done"]) and int(other["status"]) == -1 and np.isnan(float(other["time_to_cutoff_s"]))
    assert int(ds["done"].sum()) == 2
    assert ds["status"].attrs["flag_meanings"] == "nonfinite_output step_limit_reached chunk_failed"


def test_points_dimension_and_labels(tmp_path):
    job = load_job()
    writer = store.StoreWriter(tmp_path / "p.zarr", job)
    (block,) = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)
    writer.write(block, _fake_outputs(job, block))
    ds = store.open_store(tmp_path / "p.zarr")
    assert ds["eta"].dims == ("point",) and list(ds["blocked_fraction"].values) == [0, 0.25, 0.25, 0.5]
    assert str(ds["label"].values[2]) == "(c) 1/4 blocked, eta 0.3"
    assert ds["line_cut"].dims == ("point", "time", "position") and ds.sizes["position"] == 17
    assert list(ds["protocol_step_kind"].values) == ["charge"]
    assert list(ds.where(ds.label == "(d) 1/2 blocked, eta 0.3", drop=True)["point"].values) == [3]


def test_zarr_format_2(tmp_path):
    job = load_job(["output.zarr_format=2"])
    store.StoreWriter(tmp_path / "v2.zarr", job)
    assert (tmp_path / "v2.zarr" / ".zgroup").exists()
    assert store.open_store(tmp_path / "v2.zarr").attrs["config_hash"] == job.config_hash


def test_a_different_config_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    store.StoreWriter(path, load_job())
    again = store.StoreWriter(path, load_job(["runtime.progress=true"]))  # runtime does not count
    assert again.resumed
    with pytest.raises(store.StoreMismatchError, match="different config") as err:
        store.StoreWriter(path, load_job(["surface.arc_center_rad=1.0"]))
    assert "arc_center_rad" in str(err.value) and "output.overwrite=true" in str(err.value)
    replaced = store.StoreWriter(path, load_job(["surface.arc_center_rad=1.0"]), overwrite=True)
    assert not replaced.resumed


def test_config_identity_is_compared_as_data(tmp_path):
    """A store whose identity YAML has another layout (flow style, as older fluxsim wrote it) but the same content
    resumes; one value changed in that text is refused."""
    import yaml
    import zarr
    from omegaconf import OmegaConf

    job = load_job()
    path = tmp_path / "s.zarr"
    store.StoreWriter(path, job)
    data = OmegaConf.to_container(OmegaConf.create(job.identity_yaml))
    flow_text = yaml.safe_dump(data, default_flow_style=None, sort_keys=False, width=120)  # {a: 1, b: [..]}
    assert flow_text != job.identity_yaml and OmegaConf.to_container(OmegaConf.create(flow_text)) == data
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["config_identity"] = flow_text
    assert store.StoreWriter(path, job).resumed
    group.attrs["config_identity"] = flow_text.replace("radius_m: 1.2e-06", "radius_m: 1.3e-06")
    with pytest.raises(store.StoreMismatchError, match="different config"):
        store.StoreWriter(path, job)


@pytest.mark.skipif(os.name != "posix", reason="uses kill -9")
def test_resume_after_kill_equals_uninterrupted(tmp_path):
    """kill -9 after the data of the 2nd of 3 chunks is written but before its done flags: the rerun recomputes
    exactly the missing chunks and the store equals an uninterrupted run's."""
    overrides = [f"sweep.points={TEN_POINTS}", "output.plots=false"]
    killed = tmp_path / "killed.zarr"
    code = f"""
import os, signal, sys
sys.path.insert(0, {TESTS!r})
from app_support import load_job
from fluxsim.io import store
from fluxsim.app.cli import run_job

job = load_job({[*overrides, f"output.store={killed}"]!r})
original, writes = store.StoreWriter._write, []
def write(self, block, data):
    original(self, block, data)
    writes.append(block.index)
    if "done" not in data and len(writes) == 3:  # chunk 0 data, chunk 0 done, chunk 1 data
        os.kill(os.getpid(), signal.SIGKILL)
store.StoreWriter._write = write
run_job(job, {str(tmp_path)!r})
"""
    proc = run_python(code, check=False)
    assert proc.returncode == -9, proc.stderr[-3000:]
    partial = store.open_store(killed)  # readable mid-study
    np.testing.assert_array_equal(partial["done"].values, [True] * 4 + [False] * 6)
    assert (partial["status"].values[8:] == -1).all()
    partial.close()

    job = load_job([*overrides, f"output.store={killed}"])
    writer = store.StoreWriter(killed, job)
    todo = [b.index for b in plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape) if not writer.is_done(b)]
    assert writer.resumed and todo == [(1,), (2,)]
    run_job(job, tmp_path)
    fresh = tmp_path / "fresh.zarr"
    run_job(load_job([*overrides, f"output.store={fresh}"]), tmp_path)

    a, b = store.open_store(killed).load(), store.open_store(fresh).load()
    for key in ("created", "config"):  # creation time; the full config names the store path
        assert a.attrs.pop(key) and b.attrs.pop(key)
    xr.testing.assert_identical(a, b)
    assert bool(a["done"].all()) and int(a["status"].max()) == 0


def test_failed_chunk_is_recorded_and_retried(tmp_path):
    job = load_job([f"sweep.points={TEN_POINTS}"])
    writer = store.StoreWriter(tmp_path / "f.zarr", job)
    blocks = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)
    writer.fail(blocks[1], RuntimeError("x"))
    ds = store.open_store(tmp_path / "f.zarr")
    assert list(ds["status"].values[4:8]) == [extract_mod.STATUS_CHUNK_FAILED] * 4 and not ds["done"].values.any()
    assert not store.StoreWriter(tmp_path / "f.zarr", job).is_done(blocks[1])


def test_create_is_atomic_and_then_verified(tmp_path):
    """A creator that loses the race (the store appeared meanwhile) changes nothing and joins the existing store."""
    job = load_job(["sweep=fig5b", "sweep.chunk_size=2"])
    path = tmp_path / "s.zarr"
    first = store.StoreWriter(path, job)
    block = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)[3]
    first.write(block, block_outputs(job, block))
    late = object.__new__(store.StoreWriter)
    late.path, late.job, late.zarr_format = path, job, job.output.zarr_format
    assert late._create() is False  # its temporary store could not be renamed onto the existing one
    assert not list(tmp_path.glob(".s.zarr.*.tmp"))  # and was removed
    joined = store.StoreWriter(path, job)
    assert joined.resumed and joined.is_done(block)
    assert int(store.open_store(path)["done"].sum()) == 2


def test_concurrent_shards_fill_one_store(tmp_path):
    """Two processes (sweep.shard 0/2 and 1/2) start together on one store path: exactly one creates it, the other
    verifies and joins; each writes only its blocks; the result equals a single writer's store."""
    overrides = ["sweep=fig5b", "sweep.chunk_size=2"]
    path, ready = tmp_path / "shared.zarr", tmp_path / "ready"
    ready.mkdir()
    code = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from app_support import load_job
from app_support import block_outputs
from fluxsim.io import store
from fluxsim.study import extract as extract_mod
from fluxsim.study import plan as plan_mod
job = load_job({overrides!r} + ["sweep.shard={i}/2"])
Path({ready!r}, "{i}").touch()
while len(list(Path({ready!r}).iterdir())) < 2:  # barrier: both create at the same moment
    time.sleep(0.001)
writer = store.StoreWriter({path!r}, job)
mine = plan_mod.shard_blocks(plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape), job.sweep.shard)
for block in mine:
    writer.write(block, block_outputs(job, block))
print("joined" if writer.resumed else "created", [b.index for b in mine])
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", code.format(tests=TESTS, overrides=overrides, i=i, ready=str(ready),
                                                            path=str(path))], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    roles = sorted(out.split()[0] for out, _ in results)
    assert roles == ["created", "joined"], results
    assert not list(tmp_path.glob(".shared.zarr.*.tmp"))  # the loser's temporary store is gone

    job = load_job(overrides)
    single = tmp_path / "single.zarr"
    writer = store.StoreWriter(single, job)
    for block in plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape):
        writer.write(block, block_outputs(job, block))
    a, b = store.open_store(path).load(), store.open_store(single).load()
    for key in ("created", "config"):  # creation time; the full config names the shard
        assert a.attrs.pop(key) and b.attrs.pop(key)
    xr.testing.assert_identical(a, b)
    assert bool(a["done"].all())

"""Stores never lose data (issue 9): overwrite only fluxsim's own stores, verified resume, ``fluxsim verify``,
``fluxsim plot`` on a damaged store, one live run per (store, shard), warning-free ``xr.open_zarr``.

The end-to-end tests run ``fluxsim`` at tiny numerics on the ten points of tests/app_support.py (the compiled
program of tests/app/test_reliability.py, served by the shared compilation cache); the others write fake outputs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from app_support import FLUXSIM, TEN_POINTS, TINY, block_outputs, load_job, printed_folder, run_fluxsim

from fluxsim.app import cli
from fluxsim.io import store
from fluxsim.study import plan as plan_mod

NO_PLOTS = [*TINY, "output.plots=false"]


def _chunk_file(store_path: Path, name: str, block: int) -> Path:
    """The chunk file of variable ``name`` for block ``block`` along ``point`` (zarr 3 key ``c/<block>/0/...``)."""
    base = store_path / name / "c" / str(block)
    (path,) = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
    return path


def _written_store(tmp_path, overrides=("sweep.chunk_size=2",), n_blocks=None):
    """A store of the ten points (fake outputs: each value is the flat index of its point) and its job."""
    job = load_job([f"sweep.points={TEN_POINTS}", *overrides])
    path = tmp_path / "s.zarr"
    writer = store.StoreWriter(path, job)
    for block in plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)[:n_blocks]:
        writer.write(block, block_outputs(job, block))
    writer.close()
    return path, job


# ---------------------------------------------------------------------------------------------------------------
# 1. output.overwrite deletes only fluxsim's own stores
# ---------------------------------------------------------------------------------------------------------------
def _user_folder(path: Path, kind: str) -> dict[str, bytes]:
    """A folder a user owns at ``path``: their files, or a zarr store of their own. Returns its files' contents."""
    if kind == "user files":
        path.mkdir(parents=True)
        (path / "thesis.tex").write_text("\\chapter{Results}")
        (path / "data").mkdir()
        (path / "data" / "run1.csv").write_text("t,d\n0,0\n")
    else:
        xr.Dataset({"d": ("t", np.arange(3.0))}).to_zarr(path, consolidated=False)
    return {str(p): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", ["user files", "foreign zarr"])
def test_overwrite_refuses_what_is_not_a_fluxsim_store(tmp_path, kind):
    """``output.overwrite=true`` on a folder of user files or a foreign zarr store: exit 2 before any compute, the
    message names the path and does not suggest overwriting; every file is still there, unchanged."""
    target = tmp_path / "mine"
    before = _user_folder(target, kind)
    proc = run_fluxsim(*NO_PLOTS, f"output.store={target}", "output.overwrite=true", cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert f"output.store = '{target}' exists and is not a fluxsim store" in text
    assert "Traceback" not in text and "compiling" not in text and "output.overwrite" not in text
    assert {str(p): p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".mine*"))  # no lock or temporary store left beside it


def test_without_overwrite_a_user_folder_is_refused_the_same_way(tmp_path):
    target = tmp_path / "mine"
    before = _user_folder(target, "user files")
    job = load_job([f"output.store={target}"])
    for overwrite in (False, True):
        with pytest.raises(store.ConfigError, match="is not a fluxsim store") as err:
            store.check_output(target, job, overwrite=overwrite)
        assert "output.overwrite" not in str(err.value)
        with pytest.raises(store.ConfigError, match="is not a fluxsim store"):
            store.StoreWriter(target, job.with_sweep(job.sweep.with_chunk_size(4)), overwrite=overwrite)
    assert {str(p): p.read_bytes() for p in target.rglob("*") if p.is_file()} == before


def test_an_empty_folder_becomes_the_store(tmp_path):
    (tmp_path / "s.zarr").mkdir()
    path, _ = _written_store(tmp_path, n_blocks=1)
    assert store.is_fluxsim_store(path) and int(store.open_store(path)["done"].sum()) == 2


# ---------------------------------------------------------------------------------------------------------------
# 2. Completion records: resume and verify re-read what they skip
# ---------------------------------------------------------------------------------------------------------------
def test_check_points_finds_deleted_truncated_and_altered_chunks(tmp_path):
    """Five blocks of two points, four written: a deleted data chunk, a truncated one and a deleted checksum chunk
    each damage exactly their block; the untouched block stays intact and the unwritten one is just missing."""
    path, job = _written_store(tmp_path, n_blocks=4)
    _chunk_file(path, "offset_nm", 1).unlink()
    theta = _chunk_file(path, "theta", 2)
    theta.write_bytes(theta.read_bytes()[: theta.stat().st_size // 2])
    _chunk_file(path, "checksum", 3).unlink()
    health = store.verify(path)
    np.testing.assert_array_equal(health.check.intact, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(health.check.damaged, [0, 0, 1, 1, 1, 1, 1, 1, 0, 0])
    assert health.n_damaged == 6 and health.n_missing == 2 and len(health.check.problems) == 3
    assert health.damaged_points[0].startswith("point=2 (") and "eta=0.3" in health.damaged_points[0]
    resumed = store.StoreWriter(path, job)  # the resume sees the same
    todo = [b.index for b in plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape) if not resumed.is_done(b)]
    assert todo == [(1,), (2,), (3,), (4,)]


def test_checksum_ignores_nan_payloads_and_chunks_of_fill_values(tmp_path):
    """A block whose float outputs are all NaN of another payload (-NaN, as 0/0 gives) is stored as fill values (no
    chunk file) or as written: either way it reads back intact."""
    job = load_job([f"sweep.points={TEN_POINTS}", "sweep.chunk_size=2"])
    path = tmp_path / "s.zarr"
    writer = store.StoreWriter(path, job)
    block = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)[0]
    outputs = block_outputs(job, block)
    outputs = {k: np.full_like(v, -np.nan) if v.dtype == np.float64 else v for k, v in outputs.items()}
    assert np.signbit(outputs["offset_nm"]).all()
    writer.write(block, outputs)
    health = store.verify(path)
    assert health.check.intact[:2].all() and health.n_damaged == 0


def test_verify_exit_codes(tmp_path, capsys):
    """``fluxsim verify``: 0 complete and intact, 6 intact but incomplete, 5 damaged (points listed on stderr), 2 for
    a missing path or a folder that is not a store; clean messages, no traceback."""
    path, _ = _written_store(tmp_path)
    assert cli.verify_main([str(path)]) == 0
    assert "10/10 points intact, 0 damaged, 0 not computed yet" in capsys.readouterr().out
    _chunk_file(path, "mean_theta", 4).unlink()
    assert cli.verify_main([str(path)]) == cli.EXIT_DAMAGED == 5
    err = capsys.readouterr().err
    assert "2 damaged point(s)" in err and "point=8 (" in err and "point=9 (" in err and "point=7 (" not in err
    partial, _ = _written_store(tmp_path / "partial", n_blocks=3)
    assert cli.verify_main([str(partial)]) == cli.EXIT_INCOMPLETE == 6
    assert "6/10 points intact, 0 damaged, 4 not computed yet" in capsys.readouterr().out
    assert cli.verify_main([str(tmp_path / "nowhere.zarr")]) == 2
    assert "no store at" in capsys.readouterr().err
    _user_folder(tmp_path / "mine", "user files")
    assert cli.verify_main([str(tmp_path / "mine")]) == 2
    assert "is not a fluxsim store" in capsys.readouterr().err
    zarr.open_group(str(partial), mode="r+", use_consolidated=False).attrs.pop("checksum_variables")  # older store
    assert cli.verify_main([str(partial)]) == 2
    assert "without per-point checksums: its points cannot be verified" in capsys.readouterr().err
    assert int(store.open_verified(partial)["done"].sum()) == 6  # still plotted, with that warning


@pytest.mark.xdist_group("fig4_tiny")
def test_deleted_and_truncated_chunks_are_recomputed(tmp_path):
    """A finished store loses one data chunk (deleted) and another is truncated: ``fluxsim verify`` lists the six
    damaged points (exit 5), ``fluxsim plot`` refuses cleanly (exit 2), the same command recomputes exactly those
    blocks, and the store is identical to the undisturbed run's; then verify exits 0."""
    args = [*NO_PLOTS, f"sweep.points={TEN_POINTS}"]
    folder = printed_folder(run_fluxsim(*args, cwd=tmp_path))
    path = tmp_path / folder / "results.zarr"
    with store.open_store(path) as ds:
        undisturbed = ds.load()
    _chunk_file(path, "offset_nm", 1).unlink()  # points 4-7
    theta = _chunk_file(path, "theta", 2)  # points 8, 9
    theta.write_bytes(theta.read_bytes()[:100])

    verified = run_fluxsim("verify", str(path), cwd=tmp_path)
    assert verified.returncode == 5 and "Traceback" not in verified.stderr, verified.stderr[-3000:]
    assert "6 damaged point(s)" in verified.stderr
    assert all(f"point={i} (" in verified.stderr for i in range(4, 10))
    plotted = run_fluxsim("plot", str(path), str(tmp_path / "figs"), cwd=tmp_path)
    assert plotted.returncode == 2 and plotted.stdout == "" and "Traceback" not in plotted.stderr
    assert f"{path} is damaged: 6 point(s)" in plotted.stderr

    rerun = run_fluxsim(*args, cwd=tmp_path)
    text = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, text[-3000:]
    assert "6 point(s) of" in text and "computed again" in text and "resuming: 6 points left" in text
    with store.open_store(path) as ds:
        xr.testing.assert_identical(ds.load(), undisturbed)
    assert run_fluxsim("verify", str(path), cwd=tmp_path).returncode == 0


def test_plot_on_a_missing_store_fails_cleanly(tmp_path):
    proc = run_fluxsim("plot", str(tmp_path / "missing.zarr"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert f"fluxsim plot: no store at {tmp_path / 'missing.zarr'}" in proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# 3. One live run per (store, shard)
# ---------------------------------------------------------------------------------------------------------------
def _fake_lock(store_path: Path, shard, pid: int) -> Path:
    path = store.lock_path(store_path, shard)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "process_start": store._process_start(pid),
                                "started": "2026-01-01T00:00:00+00:00", "shard": list(shard) if shard else None}))
    return path


@pytest.fixture
def other_process():
    """A live process of this host other than this one (its pid holds the fake locks)."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_live_lock_refuses_overlapping_runs_only(tmp_path, other_process):
    """A lock of shard 0/2 held by a live process: another run of shard 0/2 and an unsharded run are refused (the
    message names pid, host and shard), shard 1/2 joins; the shard arithmetic covers shards of different counts."""
    path, job = _written_store(tmp_path, n_blocks=0)
    _fake_lock(path, (0, 2), other_process)
    for shard in ["0/2", None]:
        sharded = load_job([f"sweep.points={TEN_POINTS}", "sweep.chunk_size=2",
                            *([f"sweep.shard={shard}"] if shard else [])])
        with pytest.raises(store.StoreLockedError, match=f"shard 0/2 started .* by pid {other_process} on host "
                                                         f"{socket.gethostname()}"):
            store.StoreWriter(path, sharded)
    joined = store.StoreWriter(path, load_job([f"sweep.points={TEN_POINTS}", "sweep.chunk_size=2",
                                               "sweep.shard=1/2"]))
    assert joined.resumed and store.lock_path(path, (1, 2)).exists()
    joined.close()
    assert not store.lock_path(path, (1, 2)).exists() and store.lock_path(path, (0, 2)).exists()
    assert store._overlap((0, 2), (1, 3)) and store._overlap(None, (1, 4)) and not store._overlap((0, 2), (1, 4))


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    """A lock of a process that has ended (same host) is taken over, with a warning naming the dead holder."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    path, job = _written_store(tmp_path, n_blocks=0)
    lock = _fake_lock(path, None, dead.pid)
    with caplog.at_level("WARNING", logger="fluxsim"):
        writer = store.StoreWriter(path, job)
    assert f"taking over the stale lock of {path}" in caplog.text and f"pid {dead.pid}" in caplog.text
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    writer.close()
    assert not lock.exists()


@pytest.mark.xdist_group("fig4_tiny")
def test_two_identical_runs_at_once(tmp_path):
    """Contract: the second of two identical runs into one store is refused (exit 3, naming the first's pid and host)
    while the first holds the store; the first completes, and the second, started again, finds nothing to do.

    The first run is stopped (SIGSTOP) once it compiles, so that it surely holds the lock while the second starts."""
    args = [*NO_PLOTS, f"sweep.points={TEN_POINTS}"]
    first = subprocess.Popen([FLUXSIM, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    lines = []
    for line in first.stdout:
        lines.append(line)
        if "compiling" in line:
            first.send_signal(signal.SIGSTOP)
            break
    try:
        second = run_fluxsim(*args, cwd=tmp_path)
    finally:
        first.send_signal(signal.SIGCONT)
    lines += first.stdout.readlines()
    assert first.wait(timeout=300) == 0, "".join(lines)[-3000:]
    text = second.stdout + second.stderr
    assert second.returncode == 3, text[-3000:]
    assert "it is being written by a run of the whole study started" in text
    assert f"by pid {first.pid} on host {socket.gethostname()}" in text and "compiling" not in text
    again = run_fluxsim(*args, cwd=tmp_path)
    assert again.returncode == 0 and "0 points left" in again.stdout + again.stderr
    folder = printed_folder(again)
    assert not list((tmp_path / folder).glob(".results.zarr*.lock"))  # released by both


# ---------------------------------------------------------------------------------------------------------------
# Consolidated metadata: the documented xr.open_zarr(path) prints no warning
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("zarr_format", [3, 2])
def test_open_zarr_without_arguments_warns_nothing(tmp_path, zarr_format):
    """Metadata are consolidated at creation and never change, so ``xr.open_zarr(path)`` (as in README.md and
    docs/cli.md) opens a store, also a partly written one, without a warning and with every variable."""
    path, job = _written_store(tmp_path, (f"output.zarr_format={zarr_format}", "sweep.chunk_size=2"), n_blocks=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(path)
    assert set(ds.data_vars) == set(store.variable_names(job)) and int(ds["done"].sum()) == 4
    xr.testing.assert_identical(ds.load(), store.open_store(path).load())

"""Reliability (issue 5): validation before compute, isolation of failed points, crash safety, determinism.

* every invalid input of the issue's list fails in ``config.load`` (the first thing ``fluxsim`` does) with a message
  naming the parameter, its value and the allowed range, and without a single XLA compilation;
* the checks that need the file system (unwritable store path, existing store of another config or fluxsim version)
  fail through the ``fluxsim`` command before it compiles anything;
* a point that produces NaN is marked in ``status``, the others complete and equal an undisturbed run's, and
  ``fluxsim`` exits 4 after listing it;
* ``fluxsim`` killed with SIGKILL at random moments and resumed each time leaves a store identical to an
  uninterrupted run (3 kills here, 20 in the slow test; concurrent shards killed too);
* the same command twice gives bitwise-identical stores.

All runs use the tiny numerics and the Fig. 4 batch of 4, i.e. the compiled program of tests/app/test_cli.py (xdist
group ``fig4_tiny``), served by the persistent compilation cache.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import jax.monitoring
import numpy as np
import pytest
import xarray as xr
import zarr
from app_support import FLUXSIM, TEN_POINTS, TINY, load_job, printed_folder, run_fluxsim

import fluxsim
from fluxsim.app import config
from fluxsim.app.cli import EXIT_POINTS_FAILED
from fluxsim.io import store
from fluxsim.study import extract as extract_mod

# 1. Validation before compute
# ---------------------------------------------------------------------------------------------------------------
_TABLE_D = "diffusivity.table_D_m2_per_s"

#: (case, overrides on top of the tiny test settings, expected text of the ConfigError)
INVALID = [
    ("eta above 1 (model A)", ["sweep=single", "surface.eta=1.5"],
     "eta = 1.5 is outside the allowed range [0, 1]"),
    ("eta below 0 (model A), swept", ["sweep=single", "+sweep.grid.eta=[0.5,-0.1]"],
     "sweep point 1 (eta=-0.1): eta = -0.1 is outside the allowed range [0, 1]"),
    ("blocked fraction above 1", ["sweep=single", "surface.blocked_fraction=1.2"],
     "blocked_fraction = 1.2 is outside the allowed range [0, 1]"),
    ("blocked fraction below 0, in sweep.points", ["sweep.points=[{eta:0.3,blocked_fraction:-0.25}]"],
     "blocked_fraction = -0.25 is outside the allowed range [0, 1]"),
    ("no active surface", ["sweep=single", "surface.blocked_fraction=1", "surface.eta=0"],
     "no active surface: blocked_fraction = 1.0 with eta = 0.0 lets no Li out (allowed: eta > 0 or "
     "blocked_fraction < 1)"),
    ("radius zero", ["geometry.radius_m=0"], "radius_m = 0.0 m is outside the allowed range (0, inf)"),
    ("radius negative, swept", ["sweep=single", "+sweep.grid.radius_m=[1e-6,-1e-6]"],
     "sweep point 1 (radius_m=-1e-06): radius_m = -1e-06 m is outside the allowed range (0, inf)"),
    ("rate zero", ["protocol.rate_mA_per_g=0"], "rate_mA_per_g = 0.0 mA g-1 is outside the allowed range (0, inf)"),
    ("charge step rate negative", ["protocol.steps=[{kind:charge,rate_mA_per_g:-50}]"],
     "protocol.steps[0].rate_mA_per_g = -50.0 mA g-1 is outside the allowed range (0, inf)"),
    ("discharge step rate zero", ["protocol=charge_discharge",
                                  "protocol.steps=[{kind:charge},{kind:discharge,rate_mA_per_g:0}]"],
     "protocol.steps[1].rate_mA_per_g = 0.0 mA g-1 is outside the allowed range (0, inf)"),
    ("theta0 below the cut-off", ["protocol.theta0=0.15"], "theta0 = 0.15 is outside the allowed range (0.2, 1]"),
    ("theta0 at the cut-off", ["protocol.theta0=0.5", "protocol.theta_cut=0.5"],
     "theta0 = 0.5 is outside the allowed range (0.5, 1]"),
    ("cut-off zero", ["protocol.theta_cut=0"], "theta_cut = 0.0 is outside the allowed range (0, 1)"),
    ("cut-off one", ["protocol.theta_cut=1.0"], "theta_cut = 1.0 is outside the allowed range (0, 1)"),
    ("unknown D law", ["diffusivity.law=arrhenius"],
     "diffusivity.law = 'arrhenius' is not a known D law; allowed: power_law, constant, tabulated"),
    ("tabulated D unsorted", ["diffusivity=tabulated", "diffusivity.table_theta=[0.0,0.6,0.5,1.0]",
                              f"{_TABLE_D}=[1e-14,1e-14,1e-15,1e-20]"],
     "table_theta = [0.0, 0.6, 0.5, 1.0] must be strictly increasing (entry 2: 0.5 <= 0.6)"),
    ("tabulated D non-positive", ["diffusivity=tabulated", "diffusivity.table_theta=[0.0,0.5,1.0]",
                                  f"{_TABLE_D}=[1e-14,0.0,1e-20]"],
     "table_D_m2_per_s = [1e-14, 0.0, 1e-20] must be finite and > 0 m2/s everywhere (entry 1: 0.0 is outside the "
     "allowed range (0, inf))"),
    ("tabulated D outside [0, 1]", ["diffusivity=tabulated", "diffusivity.table_theta=[-0.1,0.5,1.0]",
                                    f"{_TABLE_D}=[1e-14,1e-15,1e-20]"],
     "table_theta = [-0.1, 0.5, 1.0] is outside the allowed range [0, 1] (it spans [-0.1, 1.0])"),
    ("resolution: blocked arc narrower than a node spacing",
     ["sweep=single", "+sweep.grid.blocked_fraction=[0.25,0.01]"],
     "numerics.spacing = 0.125 is too coarse for blocked_fraction = 0.01 (sweep point 1: blocked_fraction=0.01): the "
     "arc spans 0.5 rim node spacings, at least 1 are needed (allowed: a fraction of 0 or >= 0.02, or spacing <= "
     "0.0625)"),
    ("resolution: open arc narrower than a node spacing",
     ["sweep=single", "surface.blocked_fraction=0.99", "surface.eta=0.5"],
     "numerics.spacing = 0.125 is too coarse for open rest of the perimeter (1 - blocked fractions) = 0.01"),
    ("mesh numerics: spacing out of range", ["numerics.spacing=0.001"],
     "numerics.spacing must be a number in [0.004, 0.25] (units of the equivalent radius), got 0.001"),
    ("sweep without points (list)", ["sweep=single", "+sweep.grid.eta=[]"],
     "sweep.grid.eta = [] gives a sweep with no points"),
    ("sweep without points (range)", ["sweep=single", "+sweep.grid.eta={start:0.1,stop:1,num:0}"],
     "sweep.grid.eta.num = 0 gives a sweep with no points"),
    ("sweep with repeated values (list)", ["sweep=single", "+sweep.grid.eta=[0.3,0.7,0.3]"],
     "sweep.grid.eta has repeated values [0.3, 0.7, 0.3]"),
    ("sweep with repeated values (range)", ["sweep=single", "+sweep.grid.rate_mA_per_g={start:50,stop:50,num:2}"],
     "sweep.grid.rate_mA_per_g has repeated values [50.0, 50.0]"),
    ("sweep with repeated points", ["sweep.points=[{eta:0.3,blocked_fraction:0.25},"
                                    "{eta:0.3,blocked_fraction:0.25,label:again}]"],
     "sweep.points[1] repeats sweep.points[0] ({'eta': 0.3, 'blocked_fraction': 0.25})"),
]

COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *args, **kw: COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
)


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_input_fails_before_compute(overrides, message):
    """``config.load`` (what ``fluxsim`` runs first, exit 2 on error) refuses each case of issue 5 with a message
    naming the parameter, its value and the allowed range, and compiles nothing (no XLA compilation at all)."""
    load_job(["sweep=single"])  # warm up make_params' small eager ops, so what follows may compile nothing
    COMPILES.clear()
    start = time.perf_counter()
    with pytest.raises(config.ConfigError) as err:
        load_job(overrides)
    assert message in str(err.value)
    assert COMPILES == [] and time.perf_counter() - start < 5.0


def test_documented_edges_are_valid():
    """The edges of the allowed ranges (and of the resolution criterion at spacing 1/8: 50 rim nodes) are
    accepted."""
    job = load_job(["sweep=single", "+sweep.grid.blocked_fraction=[0,0.02,0.98,1]", "surface.eta=0.5",
                    "protocol.theta0=0.2000001"])
    assert job.sweep.size == 4
    load_job(["sweep=single", "surface.eta=0", "surface.blocked_fraction=0.5", "protocol.theta_cut=0.999"])


def _cli_refusal(tmp_path, *args):
    """Run ``fluxsim`` (tiny numerics); returns (exit status, all output). It must not have compiled anything."""
    proc = run_fluxsim(*TINY, *args, cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert "compiling" not in text and "Traceback" not in text, text[-3000:]
    return proc.returncode, text


def _versioned_store(path: Path, job, version: str) -> None:
    store.StoreWriter(path, job)
    zarr.open_group(str(path), mode="r+").attrs["fluxsim_version"] = version


@pytest.mark.parametrize("case", ["config", "unwritable", "other config", "other version", "other version auto"])
def test_fluxsim_refuses_before_compute(tmp_path, case):
    """Through the command: exit 2 for an invalid config or a store path that cannot be written, exit 3 for an
    existing store written with another config or another fluxsim version (also with ``sweep.chunk_size=auto``,
    whose chunk probe would compile); nothing is compiled and no store is created or changed."""
    path = tmp_path / "study" / "results.zarr"
    if case == "config":
        code, text = _cli_refusal(tmp_path, "sweep=single", "surface.blocked_fraction=0.01")
        assert code == 2 and "numerics.spacing = 0.125 is too coarse for blocked_fraction = 0.01" in text
    elif case == "unwritable":
        (tmp_path / "study").write_text("a file, not a folder")
        code, text = _cli_refusal(tmp_path, f"output.store={path}")
        assert code == 2 and f"output.store = '{path}' cannot be written" in text
    elif case == "other config":
        store.StoreWriter(path, load_job(["surface.arc_center_rad=1.0"]))
        code, text = _cli_refusal(tmp_path, f"output.store={path}")
        assert code == 3 and "it was written with a different config" in text and "arc_center_rad" in text
    else:
        auto = case.endswith("auto")
        overrides = ["sweep.chunk_size=auto"] if auto else []
        job = load_job(overrides)
        _versioned_store(path, job.with_sweep(job.sweep.with_chunk_size(4)) if auto else job, "0.0.1")
        code, text = _cli_refusal(tmp_path, f"output.store={path}", *overrides)
        assert code == 3
        assert f"it was written by fluxsim 0.0.1, this is fluxsim {fluxsim.__version__}" in text
    if path.exists():
        assert not store.open_store(path)["done"].values.any()  # untouched
    assert list(tmp_path.rglob("*.zarr")) == ([path] if path.exists() else [])


# ---------------------------------------------------------------------------------------------------------------
# Shared: an uninterrupted run of the default job (tiny numerics)
# ---------------------------------------------------------------------------------------------------------------
NO_PLOTS = [*TINY, "output.plots=false"]


def _load(path: Path) -> xr.Dataset:
    with store.open_store(path) as ds:
        return ds.load()


@pytest.fixture(scope="session")  # session: xdist may interleave other modules' tests of the group
def reference(tmp_path_factory):
    """``fluxsim`` (tiny numerics, no figures) run once without interruption: its store, loaded."""
    cwd = tmp_path_factory.mktemp("reference")
    folder = printed_folder(run_fluxsim(*NO_PLOTS, f"sweep.points={TEN_POINTS}", cwd=cwd))
    return _load(cwd / folder / "results.zarr"), folder


def _assert_bitwise(a: xr.Dataset, b: xr.Dataset, skip_points=()) -> None:
    """Data variables and coordinates bitwise equal (NaN payloads included); attributes equal except the creation
    time. ``skip_points``: indices along ``point`` left out of the data comparison."""
    assert set(a.variables) == set(b.variables)
    keep = [i for i in range(a.sizes.get("point", 0)) if i not in skip_points]
    for name in a.variables:
        x, y = a[name], b[name]
        assert x.dims == y.dims and x.dtype == y.dtype and x.attrs == y.attrs, name
        if skip_points and "point" in x.dims and name not in a.coords:
            x, y = x.isel(point=keep), y.isel(point=keep)
        xv, yv = np.ascontiguousarray(x.values), np.ascontiguousarray(y.values)
        if xv.dtype == object:
            assert xv.tolist() == yv.tolist(), name
        else:
            assert xv.tobytes() == yv.tobytes(), name
    attrs_a, attrs_b = dict(a.attrs), dict(b.attrs)
    assert attrs_a.pop("created") and attrs_b.pop("created")
    assert attrs_a == attrs_b


# ---------------------------------------------------------------------------------------------------------------
# 5. Determinism
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.xdist_group("fig4_tiny")
def test_same_command_gives_bitwise_identical_store(tmp_path, reference):
    """The same command in another folder: every data variable and coordinate is bitwise identical, and so is every
    attribute but ``created`` (the creation time)."""
    ref, folder = reference
    again = printed_folder(run_fluxsim(*NO_PLOTS, f"sweep.points={TEN_POINTS}", cwd=tmp_path))
    assert again == folder  # same config, same hash
    ds = _load(tmp_path / again / "results.zarr")
    assert bool(ds["done"].all()) and int(ds["status"].max()) == 0
    _assert_bitwise(ds, ref)


# ---------------------------------------------------------------------------------------------------------------
# 3. Isolation of failures
# ---------------------------------------------------------------------------------------------------------------
#: TEN_POINTS with point 5 at radius 1e-300 m: valid (radius_m > 0), but R^2 underflows to 0 and the solution is
#: NaN. Point 5 shares its batch (points 4-7) with three good points.
BAD_POINT = 5
POINTS_WITH_A_NAN = TEN_POINTS.replace("{eta:0.9,blocked_fraction:0.3}",
                                       "{eta:0.9,blocked_fraction:0.3,radius_m:1e-300}")


@pytest.mark.xdist_group("fig4_tiny")
def test_a_nan_point_is_isolated(tmp_path, reference):
    """One point of ten cannot be simulated (R = 1e-300 m: a zero diffusion time): its status says so (the mesh core
    runs out of its adaptive steps, bit 2, and / or its outputs are NaN, bit 1), the nine others are done, ok and
    bitwise equal to the undisturbed run's, ``fluxsim`` lists the point and exits 4 (still printing the folder); a
    rerun computes nothing and exits 4 again."""
    assert POINTS_WITH_A_NAN != TEN_POINTS
    ref, _ = reference
    proc = run_fluxsim(*NO_PLOTS, f"sweep.points={POINTS_WITH_A_NAN}", cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == EXIT_POINTS_FAILED == 4, text[-3000:]
    assert "1 point(s) failed" in text
    assert f"point={BAD_POINT} (" in text and "radius_m=1e-300" in text
    assert "nonfinite_output" in text or "step_limit_reached" in text
    folder = proc.stdout.strip().splitlines()[-1]
    ds = _load(tmp_path / folder / "results.zarr")
    status = ds["status"].values
    assert status[BAD_POINT] & (extract_mod.STATUS_NONFINITE | extract_mod.STATUS_INCOMPLETE)
    assert (np.delete(status, BAD_POINT) == 0).all() and bool(ds["done"].all())
    assert np.isnan(ds["mean_theta"].values[BAD_POINT]).any()
    ref = ref.assign_coords(radius_m=ds["radius_m"])  # the only coordinate that differs
    keep = [i for i in range(ds.sizes["point"]) if i != BAD_POINT]
    for name in ("node_x_m", "node_y_m", "node_mask", "node_is_rim", "triangles", "line_cut_position_m"):
        if name in ds.coords and "point" in ds[name].dims:  # the geometry in metres varies with the swept radius
            assert "point" not in ref[name].dims, name
            for i in keep:
                np.testing.assert_array_equal(ds[name].isel(point=i).values, ref[name].values, err_msg=name)
            ds, ref = ds.drop_vars(name), ref.drop_vars(name)
    ref.attrs.update({k: ds.attrs[k] for k in ("config", "config_identity", "config_hash")})
    _assert_bitwise(ds, ref, skip_points=(BAD_POINT,))

    rerun = run_fluxsim(*NO_PLOTS, f"sweep.points={POINTS_WITH_A_NAN}", cwd=tmp_path)
    assert rerun.returncode == 4 and "0 points left" in rerun.stdout + rerun.stderr
    assert "compiling" not in rerun.stdout + rerun.stderr


# ---------------------------------------------------------------------------------------------------------------
# 4. Crash safety
# ---------------------------------------------------------------------------------------------------------------
def run_with_kills(args, cwd, *, kills: int, rng: random.Random, window_s: float, startup_kills: int = 0,
                   check=None, log=print) -> dict:
    """Run ``fluxsim *args`` in ``cwd`` again and again, killing it with SIGKILL at random moments, until ``kills``
    kills have landed during the sweep and ``startup_kills`` during start-up, and a last run completes.

    A sweep kill lands ``uniform(0, window_s)`` s after the log line ``compiled in`` (computing, writing chunks,
    setting done flags; ``window_s`` about the sweep's duration); a start-up kill ``uniform(0, 3)`` s after the
    start (imports, store creation, compilation). A run that completes before its kill ends a round: with ``check``
    (a callable of ``cwd``) the resumed store is checked and removed and a new round starts on a fresh store;
    without it (several jobs sharing the store) the function returns. Returns the counts.
    """
    counts = {"sweep_kills": 0, "early_kills": 0, "rounds": 0}
    early_left = startup_kills
    while True:
        more_sweep = counts["sweep_kills"] < kills
        kind = "early" if early_left and (not more_sweep or rng.random() < 0.3) else "sweep" if more_sweep else None
        proc = subprocess.Popen([FLUXSIM, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        lines: list[str] = []
        started = threading.Event()

        def reader(proc=proc, lines=lines, started=started):
            for line in proc.stdout:
                lines.append(line)
                if "compiled in" in line:  # the sweep starts
                    started.set()
            started.set()  # the output ended (nothing to compute, or the process died)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        killed = False
        if kind == "early":
            time.sleep(rng.uniform(0.0, 3.0))
        elif kind == "sweep":
            started.wait(timeout=300)
            time.sleep(rng.uniform(0.0, window_s))
        if kind is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
        proc.wait(timeout=600)
        thread.join(timeout=60)
        if killed:
            assert proc.returncode == -signal.SIGKILL
            counts[f"{kind}_kills"] += 1
            early_left -= kind == "early"
            log(f"kill {counts['sweep_kills'] + counts['early_kills']} ({kind}): {_progress(cwd)}")
            continue
        assert proc.returncode == 0, "".join(lines)[-3000:]
        counts["rounds"] += 1
        if check is None or (kind is None and not early_left):
            if check is not None:
                check(cwd)
            return counts
        check(cwd)
        log(f"round {counts['rounds']} complete and checked; starting a new round on a fresh store")
        _remove_stores(cwd)


def _stores(cwd) -> list[Path]:
    return sorted(Path(cwd).glob("outputs/*/*/results.zarr"))


def _remove_stores(cwd) -> None:
    import shutil

    for path in _stores(cwd):
        shutil.rmtree(path)


def _progress(cwd) -> str:
    paths = _stores(cwd)
    if not paths:
        return "no store yet"
    try:
        with store.open_store(paths[0]) as ds:
            return f"{int(ds['done'].sum())}/{ds['done'].size} points done"
    except Exception as err:  # noqa: BLE001 - reported, the resume decides
        return f"store not readable ({type(err).__name__})"


def _checker(folder, ref):
    def check(cwd):
        ds = _load(Path(cwd) / folder / "results.zarr")
        assert bool(ds["done"].all()) and int(ds["status"].max()) == 0
        _assert_bitwise(ds, ref)

    return check


@pytest.mark.xdist_group("fig4_tiny")
def test_random_kills_then_resume_equal_an_uninterrupted_run(tmp_path, reference):
    """Three SIGKILLs at random moments of the sweep (ten points in chunks of 4, 4 and 2), resuming each time: the
    final store is bitwise identical to the uninterrupted run's."""
    ref, folder = reference
    result = run_with_kills([*NO_PLOTS, f"sweep.points={TEN_POINTS}"], tmp_path, kills=3, rng=random.Random(5),
                            window_s=0.7, check=_checker(folder, ref))
    print(result)
    assert result["sweep_kills"] == 3 and result["rounds"] >= 1


#: 48 points (12 chunks of 4): the Fig. 4 program, a longer sweep to kill in.
GRID48 = ["sweep=single", "+sweep.grid.eta=[0.2,0.4,0.6,0.8,0.9,1.0]",
          "+sweep.grid.blocked_fraction=[0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5]", "sweep.chunk_size=4",
          "output.snapshot_times_s=[300,600,900,1200]"]


@pytest.mark.slow
@pytest.mark.xdist_group("fig4_tiny")
def test_twenty_random_kills_then_resume(tmp_path):
    """At least 20 SIGKILLs during the sweep (and 5 during start-up) of a 48-point study, resuming each time: the
    final store is bitwise identical to an uninterrupted run's."""
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    proc = run_fluxsim(*NO_PLOTS, *GRID48, cwd=ref_dir)
    folder = printed_folder(proc)
    ref = _load(ref_dir / folder / "results.zarr")
    sweep_s = float(re.search(r"computed 48 simulations in ([0-9.]+) s", proc.stdout + proc.stderr).group(1))
    killed = tmp_path / "killed"
    killed.mkdir()
    result = run_with_kills([*NO_PLOTS, *GRID48], killed, kills=20, rng=random.Random(20), window_s=sweep_s + 0.2,
                            startup_kills=5, check=_checker(folder, ref))
    print(f"sweep of the uninterrupted run {sweep_s:.1f} s; {result}")
    assert result["sweep_kills"] == 20 and result["early_kills"] == 5 and result["rounds"] >= 1


@pytest.mark.slow
@pytest.mark.xdist_group("fig4_tiny")
def test_concurrent_shards_killed_at_random_fill_one_store(tmp_path):
    """Two concurrent jobs (``sweep.shard=0/2`` and ``1/2``) write disjoint chunks of one store, each killed with
    SIGKILL at random moments (up to 5 times each, until it completes) and restarted: the store equals a single
    uninterrupted job's."""
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    folder = printed_folder(run_fluxsim(*NO_PLOTS, *GRID48, cwd=ref_dir))
    ref = _load(ref_dir / folder / "results.zarr")
    shared = tmp_path / "shared"
    shared.mkdir()
    results, errors = {}, []

    def shard(i):
        try:
            results[i] = run_with_kills([*NO_PLOTS, *GRID48, f"sweep.shard={i}/2"], shared, kills=5,
                                        rng=random.Random(100 + i), window_s=0.3,
                                        log=lambda m, i=i: print(f"shard {i}:", m))
        except BaseException as err:  # noqa: BLE001 - re-raised below
            errors.append(err)

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    print(results)
    assert sum(r["sweep_kills"] for r in results.values()) >= 4
    path = shared / folder / "results.zarr"
    if not bool(store.open_store(path)["done"].all()):  # the last shard to finish may have found it incomplete
        printed_folder(run_fluxsim(*NO_PLOTS, *GRID48, cwd=shared))
    ds = _load(path)
    assert bool(ds["done"].all()) and int(ds["status"].max()) == 0
    ds.attrs["config"] = ref.attrs["config"]  # the full config names the shard
    _assert_bitwise(ds, ref)

"""The ``fluxsim`` command: config -> parameters -> vmapped solver -> metrics -> zarr store -> PNGs.

    fluxsim                                   # the default job: Fig. 4 of Lun et al. 2025 (four blocking cases)
    fluxsim numerics=fast                     # coarser and quicker
    fluxsim sweep=single surface.eta=0.3 surface.blocked_fraction=0.25 protocol.rate_mA_per_g=200
    fluxsim sweep=fig5b                       # grid eta x rate, dimension coordinates in the store
    fluxsim sweep=single +sweep.grid.eta=[0.3,0.7,1.0] +sweep.grid.rate_mA_per_g=[100,200]
    fluxsim -m numerics=default,fine          # structural choices: one hydra job each
    fluxsim plot outputs/fig4/<hash>/results.zarr   # figures from an existing store
    fluxsim verify outputs/fig4/<hash>/results.zarr # every point's data present and matching its checksum
    fluxsim --cfg job                         # print the composed config (any hydra flag works)
    fluxsim sweep=fig5b hydra.run.dir=/data/fig5b   # the whole run (store, .hydra, log, PNGs) in a folder of yours

The run folder is ``outputs/<sweep.name>/<config hash>``: re-running the same command resumes an interrupted run
(only missing points are computed) or, when everything is done, just redraws the figures. The folder is printed
as the last line of standard output; the log goes to standard output up to INFO, warnings and errors to standard
error. Everything that can be checked without computing (config, platform, devices, memory plan, store path) is
checked before hydra creates the run folder (:class:`Preflight`), so a refused run leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fluxsim.app import config as config_mod
from fluxsim.app import hydra_glue
from fluxsim.precision import enable_float64

log = logging.getLogger("fluxsim")

hydra_glue.register_resolvers()

#: ``conf/`` of the checkout (absolute: hydra would read a relative path as a Python package under fluxsim).
CONFIG_DIR = str(hydra_glue.CONF_DIR)


#: ``runtime.platform`` values and the ``Device.platform`` they give (JAX reports CUDA and ROCm devices as gpu).
_PLATFORM_DEVICES = {"cuda": "gpu", "rocm": "gpu"}


def _configure_jax(runtime: config_mod.RuntimeSpec) -> list:
    """Apply ``runtime`` to JAX and return the devices the job runs on.

    Call it before anything starts JAX's backend: ``runtime.platform`` only takes effect then, so a job never runs
    silently on another platform than the one it asked for (refused instead, as is a platform this machine lacks
    and ``runtime.devices`` above the local device count).

    Raises:
        ConfigError: naming ``runtime.platform`` / ``runtime.devices``, the value and what this machine allows.
    """
    enable_float64()  # also in a launcher's worker process, which does not run main()
    import jax

    if runtime.platform:
        jax.config.update("jax_platforms", runtime.platform)
    try:
        local = jax.local_devices()
    except RuntimeError as err:
        raise config_mod.ConfigError(
            f"runtime.platform = {runtime.platform!r} is not available on this machine ({err}); allowed: null "
            "(JAX's choice) or a platform this machine has (cpu; gpu/cuda/rocm or tpu where present)"
        ) from None
    if runtime.platform:
        wanted = {_PLATFORM_DEVICES.get(p.strip(), p.strip()) for p in runtime.platform.split(",")}
        if local[0].platform not in wanted:
            raise config_mod.ConfigError(
                f"runtime.platform = {runtime.platform!r}, but JAX already runs on {local[0].platform} in this "
                "process (the platform is fixed when JAX starts): run a fresh process, or runtime.platform=null"
            )
    n = runtime.devices
    if n is not None and n > len(local):
        raise config_mod.ConfigError(
            f"runtime.devices = {n} but this machine has {len(local)} {local[0].platform} device(s) "
            f"({', '.join(str(d) for d in local)}); allowed: 1 to {len(local)}, or null (all)"
        )
    return local[: n or len(local)]


def _overridden_by_sweep(job: config_mod.JobConfig, overrides: list[str]) -> list[str]:
    """CLI overrides of inputs that the sweep sets for every point (they would have no effect)."""
    swept = set(job.sweep.swept)
    hits = []
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        name = config_mod.CONFIG_INPUTS.get(key)
        if name in swept:
            hits.append(f"{item} (the sweep sets {name} for every point)")
    return hits


def resolve_chunk_size(job: config_mod.JobConfig, store_path: Path, devs) -> config_mod.JobConfig:
    """Resolve ``sweep.chunk_size: auto`` (:func:`fluxsim.study.plan.resolve_chunk_size`): an existing store at
    ``store_path`` keeps its chunking, else the memory budget decides. Jobs with a number are returned unchanged."""
    from fluxsim.io import store as store_mod
    from fluxsim.study import batch as batch_mod
    from fluxsim.study import plan as plan_mod

    return plan_mod.resolve_chunk_size(job, devs, lambda: store_mod.existing_chunk_shape(store_path, job),
                                       batch_mod.compile_at(job, devs))


class JobOutcome(NamedTuple):
    """What :func:`run_job` leaves behind: the store and how many of its points failed (nonzero ``status``)."""

    store_path: Path
    n_failed: int


def _use_compilation_cache(runtime: config_mod.RuntimeSpec) -> None:
    """Turn on the persistent XLA compilation cache (``runtime.compilation_cache_dir``; created here, when the job
    is about to compile, so a refused job creates no folder)."""
    import jax

    if runtime.compilation_cache_dir:
        path = Path(runtime.compilation_cache_dir).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def plan_job(job: config_mod.JobConfig, devs):
    """Estimate the job's memory and time (:func:`fluxsim.study.plan.plan`; nothing is built or compiled) and refuse a
    batch that does not fit an explicit ``runtime.memory_budget_gb`` (``ConfigError`` with the numbers)."""
    from fluxsim.study import plan as plan_mod
    plan = plan_mod.plan(job, devs)
    problem = plan.refusal()
    if problem and job.runtime.memory_budget_gb is not None:
        raise config_mod.ConfigError(problem)
    return plan


def run_job(job: config_mod.JobConfig, out_dir: str | Path, devs=None) -> JobOutcome:
    """Run a validated job into ``out_dir``: store, then figures. Returns the store path and the failed-point count.

    ``devs``: the devices from :func:`_configure_jax` (None: configure JAX from ``job.runtime`` here). Before any
    compile the job is planned (:func:`plan_job`: memory and time estimates logged, a batch over an explicit
    ``runtime.memory_budget_gb`` refused).

    With ``sweep.shard = i/n`` only the job's own blocks are computed, and the figures are drawn only by the job
    that finds the store complete when it ends (else ``fluxsim plot STORE`` draws them later).
    """
    from tqdm import tqdm

    from fluxsim.io import store as store_mod
    from fluxsim.study import batch as batch_mod
    from fluxsim.study import plan as plan_mod
    out_dir = Path(out_dir)
    store_path = Path(job.output.store) if job.output.store else out_dir / "results.zarr"
    devs = _configure_jax(job.runtime) if devs is None else devs
    plan = plan_job(job, devs)
    log.info("%s", plan.describe())
    if plan.refusal():
        log.warning("%s", plan.refusal())
    out_dir.mkdir(parents=True, exist_ok=True)
    # Before any compile: the store can be written, and an existing one was written with this config and version.
    store_mod.check_output(store_path, job, overwrite=job.output.overwrite)
    _use_compilation_cache(job.runtime)
    job = resolve_chunk_size(job, store_path, devs)
    writer = store_mod.StoreWriter(store_path, job, overwrite=job.output.overwrite)
    all_blocks = plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)
    mine = plan_mod.shard_blocks(all_blocks, job.sweep.shard)
    todo = [b for b in mine if not writer.is_done(b)]
    n_todo = sum(len(b.flat) for b in todo)
    shard = job.sweep.shard
    log.info("study %r: %d points %s in %d chunks of up to %d%s; %s", job.sweep.name, job.sweep.size,
             dict(zip(job.sweep.dims, job.sweep.shape, strict=True)), len(all_blocks), job.sweep.chunk_size,
             f"; shard {shard[0]}/{shard[1]}: {len(mine)} of the chunks" if shard else "",
             f"resuming: {n_todo} points left" if writer.resumed else "new store")
    if todo:
        size = plan_mod.batch_size(max(len(b.flat) for b in all_blocks), len(devs))
        runner = batch_mod.compile_at(job, devs)(size)
        with tqdm(total=n_todo, unit="sim", desc=job.sweep.name, disable=not job.runtime.progress,
                  dynamic_ncols=True, smoothing=0.1) as bar:
            timing = batch_mod.run_blocks(runner, job.params, todo, writer.write, meshes=batch_mod.meshes_of(job),
                                          fail=_fail(writer), progress=bar)
        rate = timing["points"] / timing["compute_s"] if timing["compute_s"] > 0 else float("nan")
        log.info("computed %d simulations in %.1f s (%.3g simulations/s, %.2f s each)", timing["points"],
                 timing["compute_s"], rate, 1 / rate if rate else float("nan"))
    writer.close()  # release this shard's lock
    ds = store_mod.open_store(store_path)
    log.info("store %s: %s", store_path, store_mod.summary(ds))
    failed = store_mod.failed_points(ds)
    if failed:
        log.error("%d point(s) failed (nonzero 'status'; the other points are complete):", len(failed))
        for line in failed[:MAX_LISTED]:
            log.error("  %s", line)
        if len(failed) > MAX_LISTED:
            log.error("  ... and %d more (ds.where(ds.status > 0))", len(failed) - MAX_LISTED)
    complete = bool(ds["done"].all())
    if shard and not complete:
        log.info("shard %d/%d done; other shards are still writing %s. The job that completes the study draws the "
                 "figures (or: fluxsim plot %s)", shard[0], shard[1], store_path, store_path)
    elif job.output.plots:
        from fluxsim.app import plots

        for path in plots.plot_store(ds, out_dir):
            log.info("wrote %s", path)
    ds.close()
    return JobOutcome(store_path, len(failed))


#: Failed points listed by name at the end of a run.
MAX_LISTED = 20

#: Exit status of ``fluxsim`` when the study ran but some points failed (``status > 0`` in the store).
EXIT_POINTS_FAILED = 4


def _fail(writer):
    def fail(block, error):
        log.error("chunk %s failed (%s: %s); its points keep status 'chunk_failed' and are retried on the next run",
                  block.index, type(error).__name__, error)
        writer.fail(block, error)

    return fail


def _refuse(message: str, code: int, *, logged: bool = True) -> SystemExit:
    """Report a refusal on standard error (one message, no traceback) and return the exit to raise.

    ``logged``: through the job's logging (its log file, and stderr for errors: ``conf/hydra/default.yaml``); else
    printed, for refusals before hydra has set up the job (and its folder).
    """
    if logged:
        log.error("%s", message)
    else:
        print(f"[fluxsim][ERROR] - {message}", file=sys.stderr, flush=True)
    return SystemExit(code)


class BelowWarning(logging.Filter):
    """Log filter of the console handler on standard output: records below WARNING (the rest go to stderr)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class Prepared(NamedTuple):
    """A job validated before its run folder exists: the job, its devices and its plan."""

    job: config_mod.JobConfig
    devs: list
    plan: object


def prepare(cfg) -> Prepared:
    """Everything ``fluxsim`` checks before it creates a run folder or compiles anything.

    JAX is configured from ``runtime`` first (so ``runtime.platform`` takes effect), then the config is validated
    (:func:`fluxsim.app.config.load`), the devices checked and the job planned (:func:`plan_job`).

    Raises:
        ConfigError: an invalid config, platform, device count or memory budget.
    """
    devs = _configure_jax(config_mod.runtime_spec(cfg))
    job = config_mod.load(cfg)
    return Prepared(job, devs, plan_job(job, devs))


#: What :class:`Preflight` validated, by the config it saw (the job then reuses it instead of validating twice).
_PREPARED: dict[str, Prepared] = {}


def _key(cfg) -> str:
    import json

    return json.dumps(hydra_glue.to_container(cfg), sort_keys=True, default=str)


def _prepare_or_exit(cfg, *, logged: bool = True) -> Prepared:
    key = _key(cfg)
    if key not in _PREPARED:
        try:
            _PREPARED[key] = prepare(cfg)
        except config_mod.ConfigError as err:
            raise _refuse(f"invalid config: {err}", 2, logged=logged) from None
    return _PREPARED[key]


class Preflight(Callback):
    """Hydra callback (``conf/hydra/default.yaml``): validate a run before hydra creates its folder.

    A refused ``fluxsim`` run (exit 2) therefore leaves no run folder, ``.hydra/`` record or log behind. In a
    multirun hydra calls no callback between composing a job's config and creating its folder, so each job
    validates in :func:`_hydra_main` instead and, when refused, removes the record hydra just wrote for it
    (:func:`_remove_refused_record`).
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        from omegaconf import OmegaConf

        from fluxsim.io import store as store_mod

        logging.getLogger("jax").setLevel(logging.WARNING)  # its backend discovery messages are noise here too
        job = _prepare_or_exit(config, logged=False).job
        path = Path(job.output.store or Path(OmegaConf.select(config, "hydra.run.dir")) / "results.zarr")
        try:
            store_mod.check_output(path, job, overwrite=job.output.overwrite)
        except config_mod.ConfigError as err:
            raise _refuse(f"invalid config: {err}", 2, logged=False) from None
        except store_mod.StoreMismatchError as err:
            raise _refuse(str(err), 3, logged=False) from None


#: The files hydra writes into a job's ``.hydra*`` record.
_HYDRA_RECORD = {"config.yaml", "hydra.yaml", "overrides.yaml"}


def _job_logs(out_dir: Path) -> dict[Path, int]:
    """The job's log files in ``out_dir`` (opened by hydra's logging setup) and their sizes now."""
    logs = {}
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            path = Path(handler.baseFilename)
            if path.parent == out_dir.resolve() and path.exists():
                logs[path] = path.stat().st_size
    return logs


def _remove_refused_record(out_dir: Path, logs_at_start: dict[Path, int]) -> None:
    """Remove what hydra created for a refused job, and only that.

    Removed only when the folder holds nothing but the job's ``.hydra*`` record (hydra's three files) and its
    log, and the log was empty when the job started (so it is this job's own); then the folder itself, if that
    leaves it empty. Anything of an earlier run (a store, figures, a log with earlier lines) keeps all of it.
    """
    import shutil

    from hydra.core.hydra_config import HydraConfig

    subdir = HydraConfig.get().output_subdir
    record = out_dir / str(subdir) if subdir else None
    try:
        ours = [record] if record is not None and record.is_dir() else []
        if any(size > 0 for size in logs_at_start.values()):
            return
        ours += [p for p in logs_at_start if p.exists()]
        if {p.name for p in out_dir.iterdir()} != {p.name for p in ours}:
            return
        if record is not None and not {f.name for f in record.iterdir()} <= _HYDRA_RECORD:
            return
    except OSError:
        return
    for handler in list(logging.getLogger().handlers):  # close the open log before removing it
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) in logs_at_start:
            logging.getLogger().removeHandler(handler)
            handler.close()
    for p in ours:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    try:
        out_dir.rmdir()
    except OSError:
        pass


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    start = time.perf_counter()
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    logs = _job_logs(out_dir)
    from fluxsim.io.store import StoreMismatchError

    try:
        job, devs, _ = _prepare_or_exit(cfg)  # a single run: already done by Preflight; a multirun job: here
        for hit in _overridden_by_sweep(job, list(hc.overrides.task)):
            log.warning("override %s; use sweep=single to run one case with it", hit)
        for warning in config_mod.ineffective_sweeps(job):
            log.warning("%s", warning)
        try:
            failed = run_job(job, out_dir, devs).n_failed
        except config_mod.ConfigError as err:  # found at run time (sweep.chunk_size=auto)
            raise _refuse(f"invalid config: {err}", 2) from None
        except StoreMismatchError as err:
            raise _refuse(str(err), 3) from None
    except SystemExit as exit_:
        if exit_.code in (2, 3):  # refused before computing: leave no record of this job behind
            _remove_refused_record(out_dir, logs)
        raise
    except KeyboardInterrupt:
        log.warning("interrupted: finished chunks are in the store; run the same command again to resume")
        raise SystemExit(EXIT_INTERRUPTED) from None
    log.info("done in %.1f s%s", time.perf_counter() - start, f"; {failed} point(s) failed" if failed else "")
    try:
        shown = out_dir.relative_to(Path.cwd())
    except ValueError:
        shown = out_dir
    print(shown, flush=True)
    if failed:
        raise SystemExit(EXIT_POINTS_FAILED)


#: Exit status of an interrupted ``fluxsim`` (Ctrl-C), at any moment: 128 + SIGINT.
EXIT_INTERRUPTED = 130


def _store_error(prog: str, err: Exception) -> int:
    print(f"{prog}: {err}", file=sys.stderr, flush=True)
    return 2


def plot_main(argv: list[str]) -> int:
    """``fluxsim plot STORE [OUT_DIR]``: draw the figures of an existing store (exit 2 for a missing, foreign or
    damaged store)."""
    import argparse

    from fluxsim.app import plots
    from fluxsim.io.store import StoreError, open_verified

    parser = argparse.ArgumentParser(prog="fluxsim plot", description=plot_main.__doc__)
    parser.add_argument("store", help="path of a fluxsim .zarr store")
    parser.add_argument("out_dir", nargs="?", help="where to write the PNGs (default: beside the store)")
    args = parser.parse_args(argv)
    try:
        ds = open_verified(args.store)
    except StoreError as err:
        return _store_error("fluxsim plot", err)
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.store).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in plots.plot_store(ds, out_dir):
        print(path)
    return 0


#: Exit status of ``fluxsim verify`` for a store with damaged points, and for an intact but incomplete one.
EXIT_DAMAGED = 5
EXIT_INCOMPLETE = 6


def verify_main(argv: list[str]) -> int:
    """``fluxsim verify STORE``: re-read every point marked done and compare it with its checksum. Exit 0: complete
    and intact; 5: damaged points (listed); 6: intact but not complete; 2: no such path, or not a fluxsim store."""
    import argparse

    from fluxsim.io.store import StoreError, verify

    parser = argparse.ArgumentParser(prog="fluxsim verify", description=verify_main.__doc__)
    parser.add_argument("store", help="path of a fluxsim .zarr store")
    args = parser.parse_args(argv)
    try:
        health = verify(args.store)
    except StoreError as err:
        return _store_error("fluxsim verify", err)
    intact = health.n_points - health.n_damaged - health.n_missing
    print(f"{args.store}: {intact}/{health.n_points} points intact, {health.n_damaged} damaged, {health.n_missing} "
          f"not computed yet; {health.n_failed} with a nonzero status")
    if health.n_damaged:
        print(f"{health.n_damaged} damaged point(s) (marked done, data missing or corrupt; re-running the command "
              "that wrote the store computes them again):", file=sys.stderr)
        for line in health.damaged_points:
            print(f"  {line}", file=sys.stderr)
        for problem in health.check.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_DAMAGED
    return EXIT_INCOMPLETE if health.n_missing else 0


def main() -> None:
    """Console entry point (``fluxsim``). The command computes in float64 (:mod:`fluxsim.precision`)."""
    enable_float64()
    if len(sys.argv) > 1 and sys.argv[1] == "plot":
        raise SystemExit(plot_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "verify":
        raise SystemExit(verify_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "fit":
        from fluxsim.app.fit_cli import main as fit_main

        raise SystemExit(fit_main(sys.argv[2:]))
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    signal.signal(signal.SIGINT, _exit_interrupted)
    _hydra_main()


def _exit_interrupted(signum, frame) -> None:
    """SIGINT (Ctrl-C) handler of the command: report and exit 130 at once, whatever runs.

    Not a ``KeyboardInterrupt``: one raised inside a callback (JAX's garbage-collection hook, a ``__del__``) is
    swallowed by Python and the run would go on. Exiting here is as safe as ``kill -9``, which the store is built to
    survive (a chunk counts only once its ``done`` flags are written; docs/cli.md, "Crash safety").
    """
    message = "interrupted: finished chunks (if any) are in the store; run the same command again to resume"
    if any(isinstance(h, logging.FileHandler) for h in logging.getLogger().handlers):
        log.warning("%s", message)  # the job's log file and stderr
    else:
        print(f"[fluxsim][WARNING] - {message}", file=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()

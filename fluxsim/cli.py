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

The run folder is ``outputs/<sweep.name>/<config hash>``: re-running the same command resumes an interrupted run
(only missing points are computed) or, when everything is done, just redraws the figures. The folder is printed
as the last line of standard output.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import hydra
from omegaconf import DictConfig

from fluxsim import config as config_mod

log = logging.getLogger("fluxsim")

config_mod.register_resolvers()

#: ``conf/`` of the checkout (absolute: hydra would read a relative path as a Python package under fluxsim).
CONFIG_DIR = str(config_mod.CONF_DIR)


def _configure_jax(runtime: config_mod.RuntimeSpec) -> None:
    import jax

    if runtime.platform:
        jax.config.update("jax_platforms", runtime.platform)
    if runtime.compilation_cache_dir:
        path = Path(runtime.compilation_cache_dir).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


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


def _compile_at(job: config_mod.JobConfig, devs):
    from fluxsim import sweep as sweep_mod

    def compile_at(size: int):
        log.info("compiling the vmapped solver: batch %d on %d device(s) %s, nr=%d nphi=%d n_steps=%d", size,
                 len(devs), [str(d) for d in devs], job.numerics.nr, job.numerics.nphi, job.numerics.n_steps)
        runner = sweep_mod.compile_runner(
            job.params[0], job.protocol, job.numerics, job.output.snapshot_times_s, sweep_mod.extraction_for(job),
            size=size, devs=devs,
        )
        log.info("compiled in %.1f s", runner.compile_s)
        return runner

    return compile_at


def _batch_for(sweep: config_mod.SweepSpec, n_devices: int, chunk_size: int) -> int:
    """Compiled batch size of a chunk size: its largest block, rounded up to the device count."""
    from fluxsim import sweep as sweep_mod

    chunk_shape = config_mod.block_shape(sweep.shape, chunk_size)
    largest = max(len(b.flat) for b in sweep_mod.blocks(sweep.shape, chunk_shape))
    return sweep_mod.batch_size(largest, n_devices)


def resolve_chunk_size(job: config_mod.JobConfig, store_path: Path, devs) -> config_mod.JobConfig:
    """Resolve ``sweep.chunk_size: auto``: adopt an existing store's chunking, else derive it from the memory budget
    (:func:`fluxsim.sweep.auto_chunk_size`). Jobs with a number are returned unchanged."""
    from fluxsim import store as store_mod
    from fluxsim import sweep as sweep_mod

    if job.sweep.chunk_size is not None:
        return job
    existing = store_mod.existing_chunk_shape(store_path, job)
    if existing is not None:
        log.info("chunk_size auto: adopting the chunking of the existing store, blocks of %s", list(existing))
        return job.with_sweep(job.sweep.with_chunk_shape(existing))
    budget = (job.runtime.memory_budget_gb * sweep_mod.GB if job.runtime.memory_budget_gb
              else sweep_mod.default_budget_bytes(devs))
    try:
        choice = sweep_mod.auto_chunk_size(
            _compile_at(job, devs), lambda c: _batch_for(job.sweep, len(devs), c),
            budget_bytes=budget, n_devices=len(devs), n_points=job.sweep.size,
        )
    except ValueError as err:
        raise config_mod.ConfigError(f"sweep.chunk_size=auto: {err}") from None
    log.info("%s", choice.describe())
    return job.with_sweep(job.sweep.with_chunk_size(choice.chunk_size))


class JobOutcome(NamedTuple):
    """What :func:`run_job` leaves behind: the store and how many of its points failed (nonzero ``status``)."""

    store_path: Path
    n_failed: int


def run_job(job: config_mod.JobConfig, out_dir: str | Path) -> JobOutcome:
    """Run a validated job into ``out_dir``: store, then figures. Returns the store path and the failed-point count.

    With ``sweep.shard = i/n`` only the job's own blocks are computed, and the figures are drawn only by the job
    that finds the store complete when it ends (else ``fluxsim plot STORE`` draws them later).
    """
    from tqdm import tqdm

    from fluxsim import store as store_mod
    from fluxsim import sweep as sweep_mod

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store_path = Path(job.output.store) if job.output.store else out_dir / "results.zarr"
    # Before any JAX work: the store can be written, and an existing one was written with this config and version.
    store_mod.check_output(store_path, job, overwrite=job.output.overwrite)
    _configure_jax(job.runtime)
    devs = sweep_mod.devices(job.runtime.devices)
    job = resolve_chunk_size(job, store_path, devs)
    writer = store_mod.StoreWriter(store_path, job, overwrite=job.output.overwrite)
    all_blocks = sweep_mod.blocks(job.sweep.shape, job.sweep.chunk_shape)
    mine = sweep_mod.shard_blocks(all_blocks, job.sweep.shard)
    todo = [b for b in mine if not writer.is_done(b)]
    n_todo = sum(len(b.flat) for b in todo)
    shard = job.sweep.shard
    log.info("study %r: %d points %s in %d chunks of up to %d%s; %s", job.sweep.name, job.sweep.size,
             dict(zip(job.sweep.dims, job.sweep.shape, strict=True)), len(all_blocks), job.sweep.chunk_size,
             f"; shard {shard[0]}/{shard[1]}: {len(mine)} of the chunks" if shard else "",
             f"resuming: {n_todo} points left" if writer.resumed else "new store")
    if todo:
        size = sweep_mod.batch_size(max(len(b.flat) for b in all_blocks), len(devs))
        runner = _compile_at(job, devs)(size)
        with tqdm(total=n_todo, unit="sim", desc=job.sweep.name, disable=not job.runtime.progress,
                  dynamic_ncols=True, smoothing=0.1) as bar:
            timing = sweep_mod.run_blocks(runner, job.params, todo, writer.write, fail=_fail(writer), progress=bar)
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
        from fluxsim import plots

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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    start = time.perf_counter()
    try:
        job = config_mod.load(cfg)
    except config_mod.ConfigError as err:
        log.error("invalid config: %s", err)
        raise SystemExit(2) from None
    hc = HydraConfig.get()
    for hit in _overridden_by_sweep(job, list(hc.overrides.task)):
        log.warning("override %s; use sweep=single to run one case with it", hit)
    out_dir = Path(hc.runtime.output_dir)
    from fluxsim.store import StoreMismatchError

    try:
        failed = run_job(job, out_dir).n_failed
    except config_mod.ConfigError as err:  # found at run time (unwritable store, sweep.chunk_size=auto)
        log.error("invalid config: %s", err)
        raise SystemExit(2) from None
    except StoreMismatchError as err:
        log.error("%s", err)
        raise SystemExit(3) from None
    except KeyboardInterrupt:
        log.warning("interrupted: finished chunks are in the store; run the same command again to resume")
        raise SystemExit(130) from None
    log.info("done in %.1f s%s", time.perf_counter() - start, f"; {failed} point(s) failed" if failed else "")
    try:
        shown = out_dir.relative_to(Path.cwd())
    except ValueError:
        shown = out_dir
    print(shown, flush=True)
    if failed:
        raise SystemExit(EXIT_POINTS_FAILED)


def _store_error(prog: str, err: Exception) -> int:
    print(f"{prog}: {err}", file=sys.stderr, flush=True)
    return 2


def plot_main(argv: list[str]) -> int:
    """``fluxsim plot STORE [OUT_DIR]``: draw the figures of an existing store (exit 2 for a missing, foreign or
    damaged store)."""
    import argparse

    from fluxsim import plots
    from fluxsim.store import StoreError, open_verified

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

    from fluxsim.store import StoreError, verify

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
    """Console entry point (``fluxsim``)."""
    if len(sys.argv) > 1 and sys.argv[1] == "plot":
        raise SystemExit(plot_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "verify":
        raise SystemExit(verify_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "fit":
        from fluxsim.fit_cli import main as fit_main

        raise SystemExit(fit_main(sys.argv[2:]))
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    _hydra_main()


if __name__ == "__main__":
    main()

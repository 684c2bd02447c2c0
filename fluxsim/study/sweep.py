"""Parameter studies: stacked :class:`~fluxsim.Params`, one compiled vmapped solver, chunks streamed to a store.

The pattern (style.md section 10, "numbers -> vmap axis inside one job"):

1. every point was validated up front (:mod:`fluxsim.app.config`, per axis); its ``Params`` is built by
   :func:`fluxsim.api.make_params` when its block runs, so memory stays flat in the number of points;
2. the points are cut into blocks of the sweep grid (:func:`blocks`), each computed as one batch of fixed size
   ``batch_size`` (the last blocks padded with copies of a real point, so nothing recompiles) and written as one
   zarr chunk;
3. a batch is the pytree of its points' ``Params`` with a leading axis (:func:`stack`), sharded over the local
   devices along that axis (``NamedSharding`` over a 1-D ``Mesh``), and run through
   ``jit(vmap(point -> simulate -> point_outputs))``, compiled once ahead of time (:func:`compile_runner`);
4. :func:`point_outputs` reduces each solution inside the compiled function to what is stored: series resampled on
   the common time grid, scalars, snapshots and the line cut, plus a ``status`` (0 ok; bit 1: non-finite output;
   bit 2: Newton not converged), so one bad point never loses the others.

The next batch is dispatched before the previous one is written, so writing overlaps compute. The numerical core
never sees any of this: it only ever simulates one particle.

Three more pieces serve large studies:

* ``sweep.chunk_size: auto`` (:func:`auto_chunk_size`): the batch size is derived from a memory budget per device,
  using XLA's own memory analysis of the compiled batch program (:func:`footprint_bytes`);
* :func:`plan`: memory and time estimates from the config alone, before anything is compiled;
* ``sweep.shard: i/n`` (:func:`shard_blocks`): job ``i`` of ``n`` computes blocks ``i, i + n, i + 2n, ...`` of the
  grid; the blocks are disjoint zarr chunks, so ``n`` jobs (hydra multirun, SLURM array) fill one shared store
  (:class:`fluxsim.io.store.StoreWriter` makes its creation safe against concurrent creators).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fluxsim.core import outputs
from fluxsim.core.polar.solver import Numerics, Params, Solution, simulate

log = logging.getLogger(__name__)

#: Bits of the per-point ``status`` (CF ``flag_masks``); 0 is success.
STATUS_NONFINITE = 1
STATUS_NOT_CONVERGED = 2
STATUS_CHUNK_FAILED = 4
STATUS_MEANINGS = {
    STATUS_NONFINITE: "nonfinite_output",
    STATUS_NOT_CONVERGED: "newton_not_converged",
    STATUS_CHUNK_FAILED: "chunk_failed",
}

#: Solution series stored on the common time grid (plus ``offset_nm``, ``offset_direction_rad``,
#: ``smooth_offset_nm``, derived here).
SERIES = (
    "passed_capacity_mAh_per_g",
    "mean_theta",
    "surface_min_theta",
    "surface_max_theta",
    "theta_min",
    "theta_max",
    "core_fraction",
    "smooth_core_fraction",
)


@dataclasses.dataclass(frozen=True)
class Extraction:
    """Static settings of :func:`point_outputs` (hashable: part of the compiled function).

    Attributes:
        times_s: common time grid of the series [s].
        core_fraction_levels: core area fractions at which the offset d is reported.
        line_cut: also resample the line cut along the arc axis.
        voltage: also store the cell voltage (surface model B).
        newton_tolerance: a point whose largest final Newton update exceeds this gets ``STATUS_NOT_CONVERGED``.
    """

    times_s: tuple[float, ...]
    core_fraction_levels: tuple[float, ...] = (0.25, 0.01)
    line_cut: bool = False
    voltage: bool = False
    newton_tolerance: float = 1e-7


def point_outputs(solution: Solution, params: Params, spec: Extraction) -> dict[str, jax.Array]:
    """Everything stored for one simulation (pure and vmappable; names match :mod:`fluxsim.io.store`)."""
    times = jnp.asarray(spec.times_s, solution.t_s.dtype)

    def resample(series):
        return outputs.at_times(solution, series, times)

    out = {name: resample(getattr(solution, name)) for name in SERIES}
    out["offset_nm"] = resample(outputs.offset_nm(solution))
    # Direction from the resampled centroid components: interpolating an angle across its wrap would be wrong.
    # NaN where there is no core (the centroid components may be NaN or 0 there).
    direction = jnp.arctan2(resample(solution.core_y_nm), resample(solution.core_x_nm))
    out["offset_direction_rad"] = jnp.where(jnp.isnan(out["offset_nm"]), jnp.nan, direction)
    out["smooth_offset_nm"] = resample(outputs.offset_nm(solution, smooth=True))
    if spec.voltage:
        out["voltage_V"] = resample(solution.voltage_V)
    if spec.line_cut:
        out["line_cut"] = jax.vmap(resample, in_axes=1, out_axes=1)(solution.line_cut)
    out["theta"] = solution.snapshots

    angle = params.blocking.arc_center_rad
    out.update(
        capacity_at_cutoff_mAh_per_g=outputs.capacity_at_cutoff(solution),
        time_to_cutoff_s=outputs.time_to_cutoff(solution),
        reached_cutoff=solution.step_cutoff[0],
        step_end_s=solution.step_end_s,
        step_cutoff=solution.step_cutoff,
        core_vanish_capacity_mAh_per_g=outputs.core_vanish_capacity(solution),
        core_vanish_time_s=solution.core_vanish_s,
        core_vanish_position_nm=solution.core_vanish_x_nm * jnp.cos(angle)
        + solution.core_vanish_y_nm * jnp.sin(angle),
        newton_iterations=solution.newton_iterations.astype(jnp.int32),
        newton_total=solution.newton_total.astype(jnp.int32),
        newton_change=solution.newton_change,
    )
    levels = spec.core_fraction_levels
    out["offset_at_core_fraction_nm"] = jnp.stack(
        [outputs.offset_at_core_fraction(solution, f) for f in levels]
    ) if levels else jnp.zeros((0,), solution.t_s.dtype)

    finite = jnp.all(jnp.isfinite(solution.mean_theta)) & jnp.all(jnp.isfinite(solution.theta_min))
    finite &= jnp.all(jnp.isfinite(solution.theta_max)) & jnp.all(jnp.isfinite(solution.step_end_s))
    finite &= jnp.all(jnp.isfinite(solution.passed_capacity_mAh_per_g))
    converged = solution.newton_change <= spec.newton_tolerance  # False for NaN
    out["status"] = (jnp.where(finite, 0, STATUS_NONFINITE) | jnp.where(converged, 0, STATUS_NOT_CONVERGED)).astype(
        jnp.int8
    )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------------------------
def stack(params: Sequence[Params]) -> Params:
    """Stack single-point ``Params`` into one pytree whose leaves have a leading batch axis.

    All points must share the static structure (D law, surface model, flux normalisation, array shapes).
    """
    treedef = jax.tree.structure(params[0])
    for i, p in enumerate(params):
        if jax.tree.structure(p) != treedef:
            raise ValueError(
                f"sweep point {i} has a different static structure than point 0 ({jax.tree.structure(p)} vs "
                f"{treedef}): D law, surface model and flux normalisation must be the same for every point"
            )
    leaves = [jax.tree.leaves(p) for p in params]
    for k in range(len(leaves[0])):
        shapes = {np.shape(row[k]) for row in leaves}
        if len(shapes) > 1:
            raise ValueError(f"sweep points disagree on the shape of a Params array ({sorted(shapes)})")
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x, dtype=float) for x in xs]), *params)


def devices(n: int | None = None) -> list:
    """The first ``n`` local JAX devices (all when None)."""
    local = jax.local_devices()
    if n is not None and n > len(local):
        raise ValueError(f"runtime.devices = {n} but only {len(local)} local device(s) are available: {local}")
    return local[: n or len(local)]


def batch_sharding(devs: Sequence) -> NamedSharding:
    """Shard the leading (batch) axis over ``devs``: a 1-D mesh named ``"points"``."""
    return NamedSharding(Mesh(np.asarray(devs), ("points",)), PartitionSpec("points"))


def batch_size(chunk_size: int, n_devices: int) -> int:
    """``chunk_size`` rounded up to a multiple of the device count (every device gets the same share)."""
    return int(math.ceil(chunk_size / n_devices) * n_devices)


@dataclasses.dataclass
class Runner:
    """A compiled batch solver: ``runner(stacked_params) -> dict of arrays with a leading batch axis``.

    Attributes:
        compiled: the AOT-compiled ``jit(vmap(...))`` (raises on a different shape instead of recompiling).
        sharding: how batches are placed on the devices.
        batch_size: points per batch.
        compile_s: compile time [s] (from the persistent cache when warm).
        traces: how many times the point function was traced (1 after compile).
    """

    compiled: Any
    sharding: NamedSharding
    batch_size: int
    compile_s: float
    traces: list

    def __call__(self, stacked: Params):
        return self.compiled(jax.device_put(stacked, self.sharding))


def compile_runner(
    example: Params,
    protocol: tuple,
    numerics: Numerics,
    snapshot_times_s: tuple[float, ...],
    spec: Extraction,
    *,
    size: int,
    devs: Sequence | None = None,
) -> Runner:
    """Compile ``jit(vmap(point -> point_outputs(simulate(point))))`` for batches of ``size`` points.

    Args:
        example: one point's ``Params`` (fixes the static structure and leaf shapes).
        protocol, numerics, snapshot_times_s: static inputs of :func:`fluxsim.core.polar.solver.simulate`.
        spec: what to extract per point.
        size: batch size (a multiple of the device count).
        devs: devices to shard over (default: all local devices).
    """
    devs = list(devs or devices())
    if size % len(devs):
        raise ValueError(f"batch size {size} is not a multiple of the device count {len(devs)}")
    shapes = tuple(np.shape(x) for x in jax.tree.leaves(example))
    key = (jax.tree.structure(example), shapes, protocol, numerics, snapshot_times_s, spec, size, tuple(devs))
    if key in _RUNNERS:  # same process, same static inputs: reuse the executable
        return _RUNNERS[key]
    sharding = batch_sharding(devs)
    traces = []

    def one(p: Params):
        traces.append(1)
        solution = simulate(p, protocol, numerics, snapshot_times_s, True)
        return point_outputs(solution, p, spec)

    fn = jax.jit(jax.vmap(one), in_shardings=(sharding,), out_shardings=sharding)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((size,) + np.shape(x), np.asarray(x, dtype=float).dtype, sharding=sharding),
        example,
    )
    start = time.perf_counter()
    compiled = fn.lower(abstract).compile()
    runner = _RUNNERS[key] = Runner(compiled, sharding, size, time.perf_counter() - start, traces)
    return runner


#: Compiled runners of this process, by their static inputs (see :func:`compile_runner`).
_RUNNERS: dict = {}


# ---------------------------------------------------------------------------------------------------------------
# Blocks of the sweep grid
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Block:
    """A rectangular block of the sweep grid: one batch, one zarr chunk, one unit of resume.

    Attributes:
        index: position in the grid of blocks.
        region: slice of each sweep dimension.
        flat: flat (C-order) indices of its points, in C order within the block.
    """

    index: tuple[int, ...]
    region: tuple[slice, ...]
    flat: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.region)


def blocks(shape: Sequence[int], chunk_shape: Sequence[int]) -> list[Block]:
    """Tile a grid of ``shape`` with blocks of ``chunk_shape`` (partial blocks at the ends), in C order."""
    counts = [math.ceil(n / c) for n, c in zip(shape, chunk_shape, strict=True)]
    flat_index = np.arange(int(np.prod(shape))).reshape(shape)
    out = []
    for index in np.ndindex(*counts):
        region = tuple(
            slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunk_shape, shape, strict=True)
        )
        out.append(Block(tuple(index), region, flat_index[region].ravel()))
    return out


def shard_blocks(all_blocks: Sequence[Block], shard: tuple[int, int] | None) -> list[Block]:
    """The blocks job ``i`` of ``n`` computes: every ``n``-th block starting at ``i`` (all blocks for None).

    Round robin rather than contiguous ranges: neighbouring blocks have similar run times (the grid varies slowest
    along its first dimensions), so every shard gets a similar mix of fast and slow blocks.
    """
    if shard is None:
        return list(all_blocks)
    i, n = shard
    return [b for k, b in enumerate(all_blocks) if k % n == i]


def _pad(items: list, size: int) -> list:
    return items + [items[0]] * (size - len(items))


def run_blocks(
    runner: Runner,
    params: Sequence[Params],
    todo: Iterable[Block],
    write: Callable[[Block, dict[str, np.ndarray]], None],
    *,
    fail: Callable[[Block, BaseException], None] | None = None,
    progress=None,
) -> dict[str, float]:
    """Compute ``todo`` batch by batch and hand each block's outputs (reshaped to the block) to ``write``.

    The next batch is dispatched (asynchronously) before the previous one is fetched and written. A batch that
    raises is handed to ``fail`` (default: re-raise) and the sweep goes on.

    Returns:
        timings: ``compute_s`` (wall time of the loop), ``points``.
    """
    todo = list(todo)
    start = time.perf_counter()
    pending = None
    done_points = 0

    def finish(item):
        nonlocal done_points
        block, result = item
        try:
            result = jax.device_get(result)
        except Exception as err:  # noqa: BLE001 - a failed batch must not lose the rest of the sweep
            if fail is None:
                raise
            fail(block, err)
        else:
            n = len(block.flat)
            shaped = {k: np.asarray(v)[:n].reshape(block.shape + np.shape(v)[1:]) for k, v in result.items()}
            write(block, shaped)
        done_points += len(block.flat)
        if progress is not None:
            progress.update(len(block.flat))

    for block in todo:
        if len(block.flat) > runner.batch_size:
            raise ValueError(f"block of {len(block.flat)} points exceeds the batch size {runner.batch_size}")
        batch = stack(_pad([params[i] for i in block.flat], runner.batch_size))
        try:
            result = runner(batch)
        except Exception as err:  # noqa: BLE001
            if fail is None:
                raise
            result = err
        if pending is not None:
            finish(pending)
        if isinstance(result, Exception):
            fail(block, result)
            pending = None
            continue
        pending = (block, result)
    if pending is not None:
        finish(pending)
    return {"compute_s": time.perf_counter() - start, "points": done_points}


def extraction_for(job) -> Extraction:
    """The :class:`Extraction` of a :class:`fluxsim.study.spec.JobConfig`."""
    return Extraction(
        times_s=tuple(float(t) for t in job.output.times_s),
        core_fraction_levels=job.output.core_fraction_levels,
        line_cut=job.output.line_cut,
        voltage=job.base_inputs.get("surface_model", "A") == "B",
        newton_tolerance=job.numerics.newton_tolerance,
    )


# ---------------------------------------------------------------------------------------------------------------
# Chunk size from a memory budget
# ---------------------------------------------------------------------------------------------------------------
#: Bytes in a GB (``runtime.memory_budget_gb``).
GB = 1e9
#: Default budget on CPU devices (per device): batching gains little there, and small chunks keep resume and the
#: progress bar fine-grained.
CPU_DEFAULT_BUDGET_GB = 1.0
#: Share of an accelerator's memory used by default (the rest: XLA runtime, fragmentation).
ACCELERATOR_BUDGET_FRACTION = 0.8
#: Points per device in the probe batch of ``chunk_size: auto``. Not 1: XLA compiles a batch of one differently
#: (on CPU it needs a third of the per-point memory of larger batches, which grow linearly from 2 on).
PROBE_PER_DEVICE = 4


def footprint_bytes(runner: Runner) -> int:
    """Peak memory of one batch on one device [bytes], from XLA's memory analysis of the compiled program.

    ``arguments + temporaries + 2 x outputs - aliased``: two batches' outputs are alive at once, because the next
    batch is dispatched before the previous one's outputs are fetched. Sharded programs are analysed per device.
    """
    stats = runner.compiled.memory_analysis()
    if stats is None:
        raise RuntimeError("this JAX backend gives no memory analysis of compiled programs: set sweep.chunk_size")
    return int(stats.argument_size_in_bytes + stats.temp_size_in_bytes + 2 * stats.output_size_in_bytes
               - stats.alias_size_in_bytes + stats.generated_code_size_in_bytes)


def default_budget_bytes(devs: Sequence) -> float:
    """Per-device budget when ``runtime.memory_budget_gb`` is null (see :data:`ACCELERATOR_BUDGET_FRACTION`)."""
    dev = devs[0]
    if dev.platform != "cpu":
        stats = dev.memory_stats() or {}
        if stats.get("bytes_limit"):
            return ACCELERATOR_BUDGET_FRACTION * float(stats["bytes_limit"])
    return CPU_DEFAULT_BUDGET_GB * GB


def budget_bytes(runtime, devs: Sequence) -> float:
    """Per-device memory budget [bytes]: ``runtime.memory_budget_gb``, else :func:`default_budget_bytes`."""
    return runtime.memory_budget_gb * GB if runtime.memory_budget_gb else default_budget_bytes(devs)


def chunk_size_for_budget(point_bytes: float, budget_bytes: float, n_devices: int, n_points: int) -> int:
    """Largest batch (a multiple of ``n_devices``) whose estimate ``point_bytes x batch / n_devices`` fits the budget.

    Capped at ``n_points`` rounded up to the device count (a larger batch would only compute padding).

    Args:
        point_bytes: memory of one simulation on a device [bytes].
        budget_bytes: what one device may use [bytes].
        n_devices: devices the batch is sharded over.
        n_points: points in the study.

    Raises:
        ValueError: the budget does not hold one simulation per device.
    """
    per_device = int(budget_bytes // point_bytes)
    if per_device < 1:
        raise ValueError(
            f"memory budget {budget_bytes / GB:.3g} GB per device is below one simulation's footprint "
            f"({point_bytes / GB:.3g} GB): raise runtime.memory_budget_gb or use coarser numerics"
        )
    return min(per_device * n_devices, batch_size(n_points, n_devices))


@dataclasses.dataclass(frozen=True)
class ChunkChoice:
    """How ``sweep.chunk_size: auto`` was resolved.

    Attributes:
        chunk_size: the chosen chunk size (points per batch and zarr chunk).
        batch_size: the compiled batch (largest block rounded up to the device count; <= chunk_size).
        budget_bytes: per-device budget.
        point_bytes: per-device memory of one simulation, measured on a probe batch of ``probe_size``.
        probe_size: batch size of the probe program (:data:`PROBE_PER_DEVICE` per device).
        compiled_bytes: measured per-device footprint of the chosen batch (<= ``budget_bytes``).
        runner: the compiled runner of the chosen batch.
    """

    chunk_size: int
    batch_size: int
    budget_bytes: float
    point_bytes: float
    probe_size: int
    compiled_bytes: int
    runner: Runner

    def describe(self) -> str:
        return (f"chunk_size auto: {self.chunk_size} points per chunk (budget {self.budget_bytes / GB:.3g} GB per "
                f"device; {self.point_bytes / 1e6:.3g} MB per simulation measured on a batch of {self.probe_size}; "
                f"compiled batch of {self.batch_size}: {self.compiled_bytes / 1e6:.3g} MB per device)")


def auto_chunk_size(
    compile_at: Callable[[int], Runner],
    batch_for: Callable[[int], int],
    *,
    budget_bytes: float,
    n_devices: int,
    n_points: int,
    max_tries: int = 4,
) -> ChunkChoice:
    """Resolve ``sweep.chunk_size: auto``: the largest chunk whose compiled batch fits ``budget_bytes`` per device.

    1. compile a probe batch of :data:`PROBE_PER_DEVICE` points per device and take its footprint
       (:func:`footprint_bytes`) per point;
    2. the chunk is the largest multiple of the device count whose linear estimate fits the budget
       (:func:`chunk_size_for_budget`);
    3. compile the batch of that chunk and measure it; should it exceed the budget after all, scale the chunk down
       by the overshoot and repeat. The returned runner is the one the sweep uses, so the check costs no extra
       compile.

    Args:
        compile_at: batch size -> compiled :class:`Runner` (cached by :func:`compile_runner`).
        batch_for: chunk size -> batch size of the blocks it gives (the largest block, rounded up to the devices).
        budget_bytes: per-device budget.
        n_devices: devices the batches are sharded over.
        n_points: points in the study.
    """
    probe_size = PROBE_PER_DEVICE * n_devices
    point_bytes = footprint_bytes(compile_at(probe_size)) * n_devices / probe_size
    chunk = chunk_size_for_budget(point_bytes, budget_bytes, n_devices, n_points)
    for _ in range(max_tries):
        size = batch_for(chunk)
        runner = compile_at(size)
        measured = footprint_bytes(runner)
        if measured <= budget_bytes:
            return ChunkChoice(chunk, size, budget_bytes, point_bytes, probe_size, measured, runner)
        log.info("batch of %d needs %.3g MB per device, over the budget: shrinking", size, measured / 1e6)
        smaller = int(chunk * budget_bytes / measured) // n_devices * n_devices
        if smaller < n_devices:
            break
        chunk = min(smaller, chunk - n_devices)
    raise ValueError(f"no batch fits the memory budget of {budget_bytes / GB:.3g} GB per device: raise "
                     "runtime.memory_budget_gb or set sweep.chunk_size")


# ---------------------------------------------------------------------------------------------------------------
# Planning: memory and time before any compile
# ---------------------------------------------------------------------------------------------------------------
#: Temporaries of one simulation's compiled program [floats]: ``TEMP_FLOATS_PER_NODE x (nr + 1) x nphi +
#: TEMP_FLOATS_PER_BLOCK_ENTRY x nphi x nr**2`` (the dense ray blocks of ``core.polar.blocksolve``). Fitted to XLA's
#: memory analysis of the CPU batch program at 8 x 32 and 32 x 128 (exact there; 13 % high at 16 x 64);
#: benchmarks/bench_plan.py prints the estimate beside the measurement.
TEMP_FLOATS_PER_NODE = 212
TEMP_FLOATS_PER_BLOCK_ENTRY = 8.8
#: CPU seconds per time step per ``nphi x nr**2`` (the block solve's cost scale), measured on the project's 2-core
#: reference CPU: 9.9 s per simulation at 32 x 128 with 200 steps (docs/cli.md, "Benchmarks"); within about 1.5x of
#: the measured 24 x 96 and 8 x 32 rates.
CPU_SECONDS_PER_STEP_UNIT = 3.8e-7
#: Bytes of host bookkeeping per sweep point (the ``done`` flags, ``status`` read back at the end, coordinates).
HOST_BYTES_PER_POINT = 16


def stored_floats_per_point(job) -> int:
    """Numbers one sweep point stores (its outputs, :func:`point_outputs`)."""
    nr, nphi = job.numerics.nr, job.numerics.nphi
    n_times = len(job.output.times_s)
    series = len(SERIES) + 3 + (1 if extraction_for(job).voltage else 0)
    floats = n_times * series + len(job.output.snapshot_times_s) * (nr + 1) * nphi
    if job.output.line_cut:
        floats += n_times * (2 * nr + 1)
    return floats + 16 + 2 * len(job.protocol) + len(job.output.core_fraction_levels)


def point_bytes_estimate(job) -> float:
    """Device memory of one simulation in a batch [bytes] (an estimate from the numerics, before any compile).

    Temporaries (:data:`TEMP_FLOATS_PER_NODE`, :data:`TEMP_FLOATS_PER_BLOCK_ENTRY`) and two batches' outputs
    (dispatch overlaps the previous batch's write), as :func:`footprint_bytes` counts them.
    """
    numerics = job.numerics
    itemsize = 4 if numerics.dtype == "float32" else 8
    n_save = sum((s.n_steps or numerics.n_steps) // numerics.save_every + 1 for s in job.protocol)
    nr, nphi = numerics.nr, numerics.nphi
    temps = (TEMP_FLOATS_PER_NODE * (nr + 1) * nphi + TEMP_FLOATS_PER_BLOCK_ENTRY * nphi * nr**2
             + n_save * (len(SERIES) + 8 + 2 * nr))
    return float(itemsize * (temps + 2 * stored_floats_per_point(job)))


def cpu_seconds_estimate(job) -> float:
    """Wall time of one simulation on one CPU device [s] (rough: see :data:`CPU_SECONDS_PER_STEP_UNIT`)."""
    numerics = job.numerics
    steps = sum(s.n_steps or numerics.n_steps for s in job.protocol)
    return CPU_SECONDS_PER_STEP_UNIT * steps * numerics.nphi * numerics.nr**2


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a study will need, estimated before any compile (:func:`plan`).

    Attributes:
        points: sweep points (all shards).
        points_here: points this job computes (its shard; resumed points are not subtracted).
        n_devices: devices a batch is sharded over.
        platform: their JAX platform.
        chunk_size: points per chunk (None: ``auto``, derived from the budget after a probe compile).
        point_bytes: estimated device memory of one simulation [bytes].
        batch_bytes: estimated per-device memory of one batch [bytes] (``auto``: of one point per device).
        budget_bytes: per-device memory budget [bytes].
        budget_from: where the budget comes from (``runtime.memory_budget_gb = ...`` or the default).
        store_bytes: the store's data, uncompressed [bytes].
        host_bytes: host memory of the bookkeeping that grows with the number of points [bytes].
        seconds: estimated compute time of this job on CPU [s] (None on accelerators: no reference rate).
    """

    points: int
    points_here: int
    n_devices: int
    platform: str
    chunk_size: int | None
    point_bytes: float
    batch_bytes: float
    budget_bytes: float
    budget_from: str
    store_bytes: float
    host_bytes: float
    seconds: float | None

    @property
    def fits(self) -> bool:
        return self.batch_bytes <= self.budget_bytes

    def largest_chunk(self) -> int:
        """The largest chunk size whose estimated batch fits the budget (0: not even one point per device)."""
        return int(self.budget_bytes // self.point_bytes) * self.n_devices

    def describe(self) -> str:
        chunk = "auto" if self.chunk_size is None else str(self.chunk_size)
        if self.seconds is None:
            eta = "compute time: shown after the first chunk (the reference rate is for CPU)"
        else:
            eta = (f"compute time ~{_duration(self.seconds)} ({_duration(self.seconds / max(self.points_here, 1))} "
                   f"per simulation on {self.n_devices} CPU device(s), reference rate, +-50 %)")
        return (f"plan: {self.points_here} of {self.points} points on {self.n_devices} {self.platform} device(s), "
                f"chunk_size {chunk}; memory ~{self.point_bytes / 1e6:.3g} MB per simulation, "
                f"~{self.batch_bytes / GB:.3g} GB per device per batch (budget {self.budget_bytes / GB:.3g} GB, "
                f"{self.budget_from}); host bookkeeping ~{self.host_bytes / 1e6:.3g} MB; store "
                f"~{self.store_bytes / GB:.3g} GB uncompressed; {eta}")

    def refusal(self) -> str | None:
        """Why the planned batch does not fit the budget (None when it does)."""
        if self.fits:
            return None
        fit = self.largest_chunk()
        if self.chunk_size is None or fit < self.n_devices:
            return (f"one simulation per device needs ~{self.point_bytes / GB:.3g} GB (estimated), over the budget "
                    f"{self.budget_from} ({self.budget_bytes / GB:.3g} GB per device): raise "
                    "runtime.memory_budget_gb or use coarser numerics")
        return (f"sweep.chunk_size = {self.chunk_size} needs ~{self.batch_bytes / GB:.3g} GB per device "
                f"({self.chunk_size} simulations x {self.point_bytes / 1e6:.3g} MB / {self.n_devices} device(s), "
                f"estimated), over the budget {self.budget_from} ({self.budget_bytes / GB:.3g} GB per device): use "
                f"sweep.chunk_size <= {fit} (or auto), or raise runtime.memory_budget_gb")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def plan(job, devs: Sequence) -> Plan:
    """Estimate a job's memory and time from its config alone: no ``Params`` are built, nothing is compiled.

    Runs in microseconds for any number of points. The per-device budget is ``runtime.memory_budget_gb`` or
    :func:`default_budget_bytes`.
    """
    n_devices = len(devs)
    sweep = job.sweep
    budget_gb = job.runtime.memory_budget_gb
    budget = budget_bytes(job.runtime, devs)
    budget_from = (f"runtime.memory_budget_gb = {budget_gb:g}" if budget_gb
                   else "the default of runtime.memory_budget_gb")
    point_bytes = point_bytes_estimate(job)
    size = batch_size(math.prod(sweep.chunk_shape) if sweep.chunk_shape else 1, n_devices)
    points_here = sweep.size
    if sweep.shard is not None and sweep.chunk_shape is not None:
        points_here = sum(len(b.flat) for b in shard_blocks(blocks(sweep.shape, sweep.chunk_shape), sweep.shard))
    elif sweep.shard is not None:
        points_here = math.ceil(sweep.size / sweep.shard[1])
    platform = devs[0].platform
    itemsize = 4 if job.numerics.dtype == "float32" else 8
    return Plan(
        points=sweep.size,
        points_here=points_here,
        n_devices=n_devices,
        platform=platform,
        chunk_size=sweep.chunk_size,
        point_bytes=point_bytes,
        batch_bytes=point_bytes * size / n_devices,
        budget_bytes=budget,
        budget_from=budget_from,
        store_bytes=float(sweep.size) * (8 * stored_floats_per_point(job) + 8),
        host_bytes=float(sweep.size) * HOST_BYTES_PER_POINT + itemsize * size * stored_floats_per_point(job) * 2,
        seconds=cpu_seconds_estimate(job) * points_here / n_devices if platform == "cpu" else None,
    )

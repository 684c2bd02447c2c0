"""Chunk planning of a study, in one place: blocks of the sweep grid (one batch, one zarr chunk, one unit of resume),
their shards, the batch size, ``chunk_size: auto`` from a memory budget, and memory / time estimates before any
compile.

* :func:`block_shape` / :func:`blocks`: the grid is cut into blocks of at most ``chunk_size`` points;
* ``sweep.chunk_size: auto`` (:func:`resolve_chunk_size`, :func:`auto_chunk_size`): the batch size is derived from a
  memory budget per device, using XLA's own memory analysis of the compiled batch program (:func:`footprint_bytes`);
* :func:`plan`: memory and time estimates from the config alone, before anything is compiled;
* ``sweep.shard: i/n`` (:func:`shard_blocks`): job ``i`` of ``n`` computes blocks ``i, i + n, i + 2n, ...`` of the
  grid; the blocks are disjoint zarr chunks, so ``n`` jobs (hydra multirun, SLURM array) fill one shared store
  (:class:`fluxsim.io.store.StoreWriter` makes its creation safe against concurrent creators).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fluxsim.model.catalogue import SHAPE_SWEEPABLE
from fluxsim.model.checks import ConfigError
from fluxsim.study.extract import SERIES, extraction_for

if TYPE_CHECKING:  # annotations only: batch imports plan
    from fluxsim.study.batch import Runner

log = logging.getLogger(__name__)


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


def batch_size(chunk_size: int, n_devices: int) -> int:
    """``chunk_size`` rounded up to a multiple of the device count (every device gets the same share)."""
    return int(math.ceil(chunk_size / n_devices) * n_devices)


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


#: Mesh nodes of an outline of unit equivalent radius (area pi) at node spacing ``s``: ``a / s**2 + b / s`` (the
#: interior lattice and the rim layer), fitted to the disk's meshes from spacing 1/4 to 1/64 (within 1 %; an ellipse of
#: aspect 2 has as many nodes to 1 %), and rim nodes ``c 2 pi / s`` (1.0-1.1 on the disk and ellipses). The estimate
#: is the node bucket of :func:`fluxsim.core.mesh.default_sizes`; triangles ``2 nodes - rim - 2`` (Euler).
NODES_PER_INVERSE_SPACING_SQUARED, NODES_PER_INVERSE_SPACING, RIM_NODES_PER_CIRCUMFERENCE = 3.57, 3.84, 1.1


#: Temporaries of one simulation's compiled program [floats]: ``TEMP_FLOATS_PER_TRIANGLE x triangles + saved times x
#: (TEMP_FLOATS_PER_SAVE + TEMP_FLOATS_PER_SAVE_SAMPLE x line_cut_samples) + TEMP_FLOATS_CONSTANT``, and with one
#: mesh per point (a swept shape input) its arrays, ``MESH_FLOATS_PER_NODE x nodes + 4 x triangles``. Fitted to XLA's
#: memory analysis of the CPU batch program of the Fig. 4 job at spacings 1/8 and 1/32 with 137 and 533 saved times
#: (exact there); benchmarks/bench_plan.py prints the estimate beside the measurement.
TEMP_FLOATS_PER_TRIANGLE = 44.0


TEMP_FLOATS_PER_SAVE, TEMP_FLOATS_PER_SAVE_SAMPLE, TEMP_FLOATS_CONSTANT = 2.0, 2.35, 830.0


MESH_FLOATS_PER_NODE = 24


#: Right-hand-side evaluations of one protocol step (a charge to cut-off) at the default numerics: the Fig. 4 cases
#: take 11,000-12,400 (measured). Stabilised explicit steps take ~ sqrt(spectral radius x step) stages, so the count
#: scales as ``1 / spacing``; the error-controlled steps of a second-order scheme as ``rtol**-0.5``.
EVALUATIONS_PER_STEP_AT_DEFAULT = 12000


#: CPU seconds per right-hand-side evaluation, per node and per simulation, on the project's 2-core reference CPU,
#: batched: the Fig. 4 job at default numerics takes 4.9 s for 4 simulations of ~11,700 evaluations on 3,840 nodes
#: (~1.2 s each), at tiny numerics ~0.035 s each (~1,800 evaluations on 288 nodes: the fixed cost per evaluation).
CPU_SECONDS_PER_NODE_EVALUATION, CPU_SECONDS_PER_EVALUATION = 2.5e-8, 1e-5


#: Bytes of host bookkeeping per sweep point (the ``done`` flags, ``status`` read back at the end, coordinates).
HOST_BYTES_PER_POINT = 16


def mesh_size_estimate(numerics) -> tuple[int, int]:
    """``(node bucket, triangle bucket)`` of an outline's mesh at ``numerics.spacing`` (estimated; no mesh is
    built)."""
    from fluxsim.core.mesh import bucket_size

    s = numerics.spacing
    nodes = NODES_PER_INVERSE_SPACING_SQUARED / s**2 + NODES_PER_INVERSE_SPACING / s
    rim = RIM_NODES_PER_CIRCUMFERENCE * 2 * math.pi / s
    return (bucket_size(math.ceil(nodes - rim + bucket_size(math.ceil(rim)))),
            bucket_size(math.ceil(2 * nodes - rim - 2)))


def nodes_estimate(numerics) -> int:
    """The node bucket of an outline's mesh (:func:`mesh_size_estimate`)."""
    return mesh_size_estimate(numerics)[0]


def stored_floats_per_point(job) -> int:
    """Numbers one sweep point stores (its outputs, :func:`point_outputs`)."""
    n_times = len(job.output.times_s)
    series = len(SERIES) + 3 + (1 if extraction_for(job).voltage else 0)
    floats = n_times * series + len(job.output.snapshot_times_s) * nodes_estimate(job.numerics)
    if job.output.line_cut:
        floats += n_times * job.numerics.line_cut_samples
    return floats + 16 + 2 * len(job.protocol) + len(job.output.core_fraction_levels)


def point_bytes_estimate(job) -> float:
    """Device memory of one simulation in a batch [bytes] (an estimate from the numerics, before any compile).

    Temporaries (:data:`TEMP_FLOATS_PER_TRIANGLE` ...), a per-point mesh when a shape input is swept, and two
    batches' outputs (dispatch overlaps the previous batch's write), as :func:`footprint_bytes` counts them.
    """
    numerics = job.numerics
    itemsize = 4 if numerics.dtype == "float32" else 8
    n_save = len(job.output.times_s) + len(job.output.snapshot_times_s)
    nodes, triangles = mesh_size_estimate(numerics)
    temps = (TEMP_FLOATS_PER_TRIANGLE * triangles + TEMP_FLOATS_CONSTANT
             + n_save * (TEMP_FLOATS_PER_SAVE + TEMP_FLOATS_PER_SAVE_SAMPLE * numerics.line_cut_samples))
    if any(name in job.sweep.swept for name in SHAPE_SWEEPABLE):  # one mesh per point: an argument per point
        temps += MESH_FLOATS_PER_NODE * nodes + 4 * triangles
    return float(itemsize * (temps + 2 * stored_floats_per_point(job)))


def evaluations_estimate(job) -> float:
    """Right-hand-side evaluations of one simulation (rough: see :data:`EVALUATIONS_PER_STEP_AT_DEFAULT`)."""
    from fluxsim.core.solve import Numerics

    default = Numerics()
    numerics = job.numerics
    per_step = (EVALUATIONS_PER_STEP_AT_DEFAULT * default.spacing / numerics.spacing
                * math.sqrt(default.integrator.rtol / numerics.integrator.rtol))
    return per_step * len(job.protocol)


def cpu_seconds_estimate(job) -> float:
    """Wall time of one simulation on one CPU device [s]: evaluations x (:data:`CPU_SECONDS_PER_EVALUATION` + nodes x
    :data:`CPU_SECONDS_PER_NODE_EVALUATION`) (rough, +-50 %)."""
    per_evaluation = CPU_SECONDS_PER_EVALUATION + CPU_SECONDS_PER_NODE_EVALUATION * nodes_estimate(job.numerics)
    return per_evaluation * evaluations_estimate(job)


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


def block_shape(shape: tuple[int, ...], chunk_size: int) -> tuple[int, ...]:
    """Largest block (filling the last dimensions first) with at most ``chunk_size`` points."""
    block, left = [], chunk_size
    for n in reversed(shape):
        b = max(1, min(n, left))
        block.append(b)
        left = max(1, left // b)
    return tuple(reversed(block))


def batch_for(sweep, n_devices: int, chunk_size: int) -> int:
    """Compiled batch size of a chunk size: its largest block, rounded up to the device count."""
    chunk_shape = block_shape(sweep.shape, chunk_size)
    largest = max(len(b.flat) for b in blocks(sweep.shape, chunk_shape))
    return batch_size(largest, n_devices)


def resolve_chunk_size(job, devs, existing_chunk_shape: Callable[[], tuple[int, ...] | None],
                       compile_at: Callable[[int], Runner]):
    """Resolve ``sweep.chunk_size: auto``: adopt an existing store's chunking (``existing_chunk_shape()``, asked only
    then), else derive it from the memory budget (:func:`auto_chunk_size`). Jobs with a number are returned unchanged.
    """
    if job.sweep.chunk_size is not None:
        return job
    existing = existing_chunk_shape()
    if existing is not None:
        log.info("chunk_size auto: adopting the chunking of the existing store, blocks of %s", list(existing))
        return job.with_sweep(job.sweep.with_chunk_shape(existing))
    budget = budget_bytes(job.runtime, devs)
    try:
        choice = auto_chunk_size(
            compile_at, lambda c: batch_for(job.sweep, len(devs), c),
            budget_bytes=budget, n_devices=len(devs), n_points=job.sweep.size,
        )
    except ValueError as err:
        raise ConfigError(f"sweep.chunk_size=auto: {err}") from None
    log.info("%s", choice.describe())
    return job.with_sweep(job.sweep.with_chunk_size(choice.chunk_size))

"""Batches of a study: stacked :class:`~fluxsim.Params`, one compiled vmapped solver, blocks streamed to a writer.

A batch is the pytree of its points' ``Params`` with a leading axis (:func:`stack`), sharded over the local devices
along that axis (``NamedSharding`` over a 1-D ``Mesh``) and run through ``jit(vmap(point -> simulate ->
point_outputs))``, compiled once ahead of time (:func:`compile_runner`); the last blocks are padded with copies of a
real point, so nothing recompiles. The next batch is dispatched before the previous one is written, so writing
overlaps compute (:func:`run_blocks`). The numerical core never sees any of this: it only ever simulates one
particle. The pattern is described in docs/architecture.md.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fluxsim.core.cache import CompileCache
from fluxsim.core.polar.solver import Numerics, simulate
from fluxsim.model.params import Params
from fluxsim.study.extract import Extraction, extraction_for, point_outputs
from fluxsim.study.plan import Block

log = logging.getLogger(__name__)


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
    def compile() -> Runner:
        start = time.perf_counter()
        compiled = fn.lower(abstract).compile()
        return Runner(compiled, sharding, size, time.perf_counter() - start, traces)

    return RUNNERS.get_or_compile(key, compile, "runner")  # same process, same static inputs: reuse the executable


#: The owner of the compiled runners of this process, by their static inputs (see :func:`compile_runner`).
RUNNERS = CompileCache("vmapped batch runners")


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


def compile_at(job, devs) -> Callable[[int], Runner]:
    """Batch size -> the job's compiled :class:`Runner` on ``devs`` (cached by :func:`compile_runner`), logged."""

    def compile_at(size: int):
        log.info("compiling the vmapped solver: batch %d on %d device(s) %s, nr=%d nphi=%d n_steps=%d", size,
                 len(devs), [str(d) for d in devs], job.numerics.nr, job.numerics.nphi, job.numerics.n_steps)
        runner = compile_runner(
            job.params[0], job.protocol, job.numerics, job.output.snapshot_times_s, extraction_for(job),
            size=size, devs=devs,
        )
        log.info("compiled in %.1f s", runner.compile_s)
        return runner

    return compile_at

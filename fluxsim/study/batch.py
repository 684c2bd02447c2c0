"""Batches of a study: stacked :class:`~fluxsim.Params` and meshes, one compiled vmapped solver, blocks streamed to a
writer.

A batch is the pytree of its points' ``Params`` with a leading axis (:func:`stack`), with its points' meshes
(:class:`~fluxsim.core.mesh.TriMesh` padded to the job's common buckets, :mod:`fluxsim.study.geometry`; one
unbatched mesh when the job has one outline), sharded over the local devices along that axis (``NamedSharding``
over a 1-D ``Mesh``) and run through ``jit(vmap(point, mesh -> simulate -> point_outputs))`` of the mesh core
(:func:`fluxsim.core.solve.simulate`), compiled once ahead of time (:func:`compile_runner`); the last blocks are
padded with copies of a real point, so nothing recompiles. The next batch is dispatched before the previous one is
written, so writing overlaps compute (:func:`run_blocks`). The numerical core never sees any of this: it only ever
simulates one particle. The pattern is described in docs/architecture.md.
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
from fluxsim.core.mesh import TriMesh
from fluxsim.core.solve import Numerics, simulate
from fluxsim.model.params import Params
from fluxsim.study.extract import Extraction, extraction_for, point_outputs
from fluxsim.study.geometry import job_geometry
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
    """A compiled batch solver: ``runner(stacked_params, mesh) -> dict of arrays with a leading batch axis``.

    Attributes:
        compiled: the AOT-compiled ``jit(vmap(...))`` (raises on a different shape instead of recompiling).
        sharding: how batches are placed on the devices.
        batch_size: points per batch.
        compile_s: compile time [s] (from the persistent cache when warm).
        traces: how many times the point function was traced (1 after compile).
        mesh_batched: the mesh argument has a leading batch axis (one mesh per point), else it is shared.
    """

    compiled: Any
    sharding: NamedSharding
    batch_size: int
    compile_s: float
    traces: list
    mesh_batched: bool = False

    def __call__(self, stacked: Params, mesh: TriMesh):
        mesh_sharding = self.sharding if self.mesh_batched else _replicated(self.sharding)
        return self.compiled(jax.device_put(stacked, self.sharding), jax.device_put(mesh, mesh_sharding))


def _replicated(sharding: NamedSharding) -> NamedSharding:
    return NamedSharding(sharding.mesh, PartitionSpec())


def compile_runner(
    example: Params,
    mesh: TriMesh,
    protocol: tuple,
    numerics: Numerics,
    snapshot_times_s: tuple[float, ...],
    spec: Extraction,
    *,
    size: int,
    mesh_batched: bool = False,
    devs: Sequence | None = None,
) -> Runner:
    """Compile ``jit(vmap(point, mesh -> point_outputs(simulate(point, mesh))))`` for batches of ``size`` points.

    Args:
        example: one point's ``Params`` (fixes the static structure and leaf shapes).
        mesh: one point's :class:`TriMesh` (fixes the bucket sizes; without a leading axis).
        protocol, numerics, snapshot_times_s: static inputs of :func:`fluxsim.core.solve.simulate` (the series are
            saved at ``spec.times_s``).
        spec: what to extract per point.
        size: batch size (a multiple of the device count).
        mesh_batched: the batches pass one mesh per point (a leading axis), else one mesh for all.
        devs: devices to shard over (default: all local devices).
    """
    devs = list(devs or devices())
    if size % len(devs):
        raise ValueError(f"batch size {size} is not a multiple of the device count {len(devs)}")
    shapes = tuple(np.shape(x) for x in jax.tree.leaves(example))
    key = (jax.tree.structure(example), shapes, tuple(mesh.sizes), mesh_batched, protocol, numerics,
           snapshot_times_s, spec, size, tuple(devs))
    sharding = batch_sharding(devs)
    mesh_sharding = sharding if mesh_batched else _replicated(sharding)
    traces = []

    def one(p: Params, m: TriMesh):
        traces.append(1)
        solution = simulate(p, m, protocol, numerics, spec.times_s, snapshot_times_s)
        return point_outputs(solution, p, m, protocol, spec)

    fn = jax.jit(jax.vmap(one, in_axes=(0, 0 if mesh_batched else None)), in_shardings=(sharding, mesh_sharding),
                 out_shardings=sharding)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((size,) + np.shape(x), np.asarray(x, dtype=float).dtype, sharding=sharding),
        example,
    )
    lead = (size,) if mesh_batched else ()
    abstract_mesh = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(lead + np.shape(x), np.asarray(x).dtype, sharding=mesh_sharding), mesh)

    def compile() -> Runner:
        start = time.perf_counter()
        compiled = fn.lower(abstract, abstract_mesh).compile()
        return Runner(compiled, sharding, size, time.perf_counter() - start, traces, mesh_batched)

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
    meshes: Callable[[np.ndarray], TriMesh] | None = None,
    fail: Callable[[Block, BaseException], None] | None = None,
    progress=None,
) -> dict[str, float]:
    """Compute ``todo`` batch by batch and hand each block's outputs (reshaped to the block) to ``write``.

    ``meshes``: the flat indices of a batch's points -> their mesh argument (stacked per point for a runner with
    ``mesh_batched``, else the one mesh; :meth:`fluxsim.study.geometry.JobGeometry.meshes_for`).

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
        flat = np.asarray(_pad(list(block.flat), runner.batch_size))
        batch = stack([params[i] for i in flat])
        try:
            result = runner(batch, None if meshes is None else meshes(flat))
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
    geometry = job_geometry(job)

    def compile_at(size: int):
        sizes = geometry.sizes
        log.info("compiling the vmapped solver: batch %d on %d device(s) %s; %d outline(s) meshed at spacing %g "
                 "(bucket of %d nodes, %d triangles), rtol %g", size, len(devs), [str(d) for d in devs],
                 len(geometry.outlines), geometry.spacing, sizes.n_nodes, sizes.n_triangles,
                 job.numerics.integrator.rtol)
        runner = compile_runner(
            job.params[0], geometry.mesh(0), job.protocol, job.numerics, job.output.snapshot_times_s,
            extraction_for(job), size=size, mesh_batched=geometry.batched, devs=devs,
        )
        log.info("compiled in %.1f s", runner.compile_s)
        return runner

    return compile_at


def meshes_of(job) -> Callable[[np.ndarray], TriMesh]:
    """Flat point indices -> the mesh argument of a batch of the job (see :func:`run_blocks`)."""
    geometry = job_geometry(job)
    return lambda flat: geometry.meshes_for(job.sweep, flat)

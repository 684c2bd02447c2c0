"""The meshes of a job: each distinct outline meshed once (host, cached), all padded to the job's common buckets.

The outline of a point depends only on the swept shape inputs (``aspect``, ``orientation_rad``), so the job's
outlines are those of the sub-grid of the sweep dimensions along which a shape input varies (:attr:`JobGeometry.dims`;
none: one outline for the whole job). :func:`fluxsim.core.mesh.stack_meshes` pads them to common bucket sizes, so
one compiled batch program serves every point of the job; a batch takes its points' meshes from the stack
(:meth:`JobGeometry.meshes_for`) and vmaps the solver over (Params, TriMesh). Without a swept shape input the one
mesh is passed to the batch unbatched.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from fluxsim.core.mesh import MeshSizes, TriMesh, stack_meshes
from fluxsim.model.catalogue import SHAPE_SWEEPABLE
from fluxsim.study.spec import POINT_DIM, JobConfig, SweepSpec

#: Inputs that set the particle's size and position of its line cut besides the outline (the store's geometry
#: variables in metres vary along them too).
SIZE_INPUTS = ("radius_m",)


def varying_dims(sweep: SweepSpec, names) -> tuple[str, ...]:
    """The sweep dimensions along which any of the inputs ``names`` varies (``point`` if the points set one)."""
    names = set(names)
    return tuple(d for d in sweep.dims
                 if d in names or (d == POINT_DIM and any(k in names for k in sweep.point_coords)))


def sub_grid_points(sweep: SweepSpec, dims: tuple[str, ...]) -> np.ndarray:
    """Flat indices of one point per combination of ``dims`` (C order; the other dimensions at their first index)."""
    axes = [sweep.dims.index(d) for d in dims]
    sizes = [sweep.shape[a] for a in axes]
    out = []
    for index in np.ndindex(*sizes):
        full = [0] * len(sweep.shape)
        for a, i in zip(axes, index, strict=True):
            full[a] = i
        out.append(int(np.ravel_multi_index(full, sweep.shape)))
    return np.asarray(out, np.int64)


def sub_grid_index(sweep: SweepSpec, dims: tuple[str, ...], flat) -> np.ndarray:
    """For flat point indices, their position in the sub-grid of ``dims`` (C order)."""
    axes = [sweep.dims.index(d) for d in dims]
    if not axes:
        return np.zeros(np.shape(flat), np.int64)
    index = np.unravel_index(np.asarray(flat), sweep.shape)
    return np.ravel_multi_index([index[a] for a in axes], [sweep.shape[a] for a in axes]).astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class JobGeometry:
    """The outlines of a job and their meshes.

    Attributes:
        dims: sweep dimensions along which the outline varies (empty: one outline).
        outlines: the :mod:`fluxsim.core.outline` objects of the sub-grid of ``dims`` (C order).
        describe: the JSON description of each (:meth:`fluxsim.study.shapes.ShapeSpec.describe`).
        meshes: their :class:`TriMesh` as host (numpy) arrays with a leading axis, padded to common buckets.
        spacing: the mesh node spacing (units of the equivalent radius).
    """

    dims: tuple[str, ...]
    outlines: tuple
    describe: tuple[str, ...]
    meshes: TriMesh
    spacing: float

    @property
    def sizes(self) -> MeshSizes:
        return self.meshes.sizes

    @property
    def batched(self) -> bool:
        """Whether points have different meshes (the batch then vmaps over meshes too)."""
        return bool(self.dims)

    def mesh(self, k: int = 0) -> TriMesh:
        """The mesh of outline ``k`` (host arrays)."""
        return jax.tree.map(lambda a: a[k], self.meshes)

    def index_of(self, sweep: SweepSpec, flat) -> np.ndarray:
        """The outline index of each point ``flat``."""
        return sub_grid_index(sweep, self.dims, flat)

    def meshes_for(self, sweep: SweepSpec, flat) -> TriMesh:
        """The meshes of points ``flat`` stacked along a leading axis (batched), else the one mesh."""
        if not self.batched:
            return self.mesh(0)
        k = self.index_of(sweep, flat)
        return jax.tree.map(lambda a: a[k], self.meshes)


@functools.lru_cache(maxsize=8)
def _build(specs: tuple, spacing: float) -> tuple:
    outlines = tuple(spec.build() for spec in specs)
    meshes = jax.device_get(stack_meshes(outlines, spacing))
    return outlines, meshes


def job_geometry(job: JobConfig) -> JobGeometry:
    """The job's outlines meshed at ``job.numerics.spacing`` (cached per distinct set of outlines and spacing)."""
    sweep = job.sweep
    dims = varying_dims(sweep, SHAPE_SWEEPABLE)
    specs = tuple(job.outline_spec(i) for i in sub_grid_points(sweep, dims))
    outlines, meshes = _build(specs, job.numerics.spacing)
    return JobGeometry(dims, outlines, tuple(s.describe() for s in specs), meshes, job.numerics.spacing)

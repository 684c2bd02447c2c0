"""A validated fluxsim job as plain data: the points of a study, what is stored and how it runs.

Plain dataclasses and numpy (no OmegaConf): the store and the study layer read these; the app's config loader
(:mod:`fluxsim.app.config`) builds them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fluxsim.api import make_params
from fluxsim.core.solve import Numerics
from fluxsim.model.catalogue import SHAPE_SWEEPABLE
from fluxsim.model.checks import ConfigError  # noqa: F401  (re-exported: the app's error)
from fluxsim.model.params import Params
from fluxsim.study.plan import block_shape
from fluxsim.study.shapes import ShapeSpec

POINT_DIM = "point"


class PointInputs(Sequence):
    """The ``make_params`` keywords of every sweep point, computed on demand (C order over the sweep dims).

    A study of a million points holds its axes, not a million dictionaries: memory stays flat in the number of
    points (issue 9). Swept shape inputs (:data:`~fluxsim.model.catalogue.SHAPE_SWEEPABLE`: ``aspect``,
    ``orientation_rad``) are no ``make_params`` keywords: :meth:`shape_of` gives them.
    """

    def __init__(self, base: Mapping, dims: tuple[str, ...], coords: Mapping[str, np.ndarray],
                 points: tuple[Mapping, ...]):
        self.base, self.dims, self.coords, self.points = dict(base), tuple(dims), coords, tuple(points)
        self.shape = tuple(len(coords[d]) for d in dims)
        self._size = math.prod(self.shape)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, flat):
        if isinstance(flat, slice):
            return [self[i] for i in range(*flat.indices(self._size))]
        flat = int(flat)
        if flat < 0:
            flat += self._size
        if not 0 <= flat < self._size:
            raise IndexError(f"sweep point {flat} out of range (the sweep has {self._size} points)")
        kw = self.point(flat)
        return {k: v for k, v in kw.items() if k not in SHAPE_SWEEPABLE}

    def point(self, flat: int) -> dict:
        """Every input the point sets: the ``make_params`` keywords and the swept shape inputs."""
        flat = int(flat)
        kw = dict(self.base)
        for d, i in zip(self.dims, np.unravel_index(flat, self.shape), strict=True):
            if d == POINT_DIM:
                kw.update(self.points[i])
            else:
                kw[d] = float(self.coords[d][i])
        return kw

    def shape_of(self, flat: int) -> dict:
        """The swept shape inputs of a point (empty when the sweep varies no shape input)."""
        return {k: v for k, v in self.point(flat).items() if k in SHAPE_SWEEPABLE}


class PointParams(Sequence):
    """The :class:`~fluxsim.model.params.Params` of every sweep point, built on demand from :class:`PointInputs`.

    The points were validated by :func:`load`; a block of the sweep builds only its own points' ``Params``
    (:func:`fluxsim.study.batch.run_blocks`), so memory stays flat in the number of points.
    """

    def __init__(self, inputs: Sequence[Mapping]):
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, flat):
        if isinstance(flat, slice):
            return [make_params(**kw) for kw in self.inputs[flat]]
        return make_params(**self.inputs[flat])


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """The points of a study and how they are laid out.

    Attributes:
        name: study name (folder name under ``outputs/``).
        dims: dimension names in store order: ``"point"`` first when explicit points are given, then the grid
            inputs in config order.
        shape: size of each dimension.
        coords: dimension coordinates (``point``: 0..n-1; grid inputs: their values).
        point_coords: non-dimension coordinates along ``point`` (the inputs the points set, and ``label``).
        inputs: ``make_params`` keywords of every point, flattened in C order over ``dims`` (a lazy
            :class:`PointInputs`: computed per point on access).
        chunk_shape: block of points computed together and written as one zarr chunk (product <= chunk_size);
            None until resolved when ``chunk_size`` is ``auto`` (see :meth:`with_chunk_size`).
        chunk_size: simulations per vmapped batch; None for ``auto`` (derived from a memory budget at run time,
            :func:`fluxsim.study.plan.auto_chunk_size`).
        shard: ``(i, n)``: this job computes only blocks ``k`` with ``k % n == i`` (None: all blocks).
    """

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    coords: Mapping[str, np.ndarray]
    point_coords: Mapping[str, np.ndarray]
    inputs: Sequence[Mapping[str, Any]]
    chunk_shape: tuple[int, ...] | None
    chunk_size: int | None
    shard: tuple[int, int] | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def swept(self) -> tuple[str, ...]:
        """The inputs that vary across points."""
        return tuple(d for d in self.dims if d != POINT_DIM) + tuple(k for k in self.point_coords if k != "label")

    def with_chunk_size(self, chunk_size: int) -> SweepSpec:
        """The same sweep with a concrete chunk size (resolves ``auto``)."""
        return dataclasses.replace(self, chunk_size=chunk_size, chunk_shape=block_shape(self.shape, chunk_size))

    def with_chunk_shape(self, chunk_shape) -> SweepSpec:
        """The same sweep with the block shape of an existing store (a job joining it adopts its chunking)."""
        chunk_shape = tuple(int(c) for c in chunk_shape)
        if len(chunk_shape) != len(self.shape) or any(not 1 <= c <= n for c, n in zip(chunk_shape, self.shape)):
            raise ConfigError(f"chunk shape {chunk_shape} does not fit the sweep shape {self.shape}")
        return dataclasses.replace(self, chunk_size=int(np.prod(chunk_shape)), chunk_shape=chunk_shape)


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """What is stored per simulation (see :mod:`fluxsim.io.store`)."""

    times_s: np.ndarray
    snapshot_times_s: tuple[float, ...]
    line_cut: bool
    core_fraction_levels: tuple[float, ...]
    store: str | None
    zarr_format: int
    plots: bool
    overwrite: bool


@dataclasses.dataclass(frozen=True)
class RuntimeSpec:
    """How to run (never changes results).

    ``memory_budget_gb``: memory one device may use for a batch, in GB (1e9 bytes); used by
    ``sweep.chunk_size: auto``; None: 80 % of an accelerator's memory, 1 GB per CPU device.
    """

    progress: bool
    devices: int | None
    platform: str | None
    compilation_cache_dir: str | None
    memory_budget_gb: float | None = None


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """One fluxsim job, validated.

    Attributes:
        base_inputs: ``make_params`` keywords from the groups (before the sweep overrides them).
        params: one :class:`~fluxsim.model.params.Params` per point (C order over ``sweep.dims``; a lazy
            :class:`PointParams`: built per point on access).
        protocol: protocol steps (static).
        numerics: discretisation (static): :class:`fluxsim.core.solve.Numerics`.
        sweep: the points.
        output: what to store.
        runtime: how to run.
        config_yaml: the full resolved config (without the hydra node), as YAML.
        identity_yaml: the part of it that determines the results, as YAML (stored; checked on resume).
        config_hash: short hash of ``identity_yaml``.
        shape: the particle's outline inputs (the sweep may vary ``aspect`` / ``orientation_rad`` per point;
            :func:`fluxsim.study.geometry.job_geometry` meshes the job's outlines).
    """

    base_inputs: Mapping[str, Any]
    params: Sequence[Params]
    protocol: tuple
    numerics: Numerics
    sweep: SweepSpec
    output: OutputSpec
    runtime: RuntimeSpec
    config_yaml: str
    identity_yaml: str
    config_hash: str
    shape: ShapeSpec = ShapeSpec()

    def outline_spec(self, flat: int) -> ShapeSpec:
        """The shape inputs of sweep point ``flat`` (the base shape with its swept values)."""
        return self.shape.with_values(self.sweep.inputs.shape_of(flat))

    def with_sweep(self, sweep: SweepSpec) -> JobConfig:
        """The same job with ``sweep`` replaced (used to resolve ``chunk_size: auto``)."""
        return dataclasses.replace(self, sweep=sweep)


def parse_shard(value) -> tuple[int, int] | None:
    """``"i/n"`` (job i of n, 0-based) -> ``(i, n)``; None or ``"0/1"``-style null -> None."""
    if value is None:
        return None
    text = str(value).strip()
    parts = text.split("/")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        i, n = (int(p) for p in parts)
        if 0 <= i < n:
            return None if n == 1 else (i, n)
    raise ConfigError(f"sweep.shard = {value!r} must be 'i/n' with 0 <= i < n (job i of n jobs), or null")

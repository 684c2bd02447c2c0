"""The results store: one xarray Dataset in zarr, created full-size up front and filled chunk by chunk.

Layout (names are module constants; every variable and coordinate has ``units`` and ``long_name``):

* sweep dimensions: the swept inputs as dimension coordinates (``ds.sel(eta=0.3, rate_mA_per_g=200)``), or a
  ``point`` dimension for an explicit list of points, with the inputs (and ``label``) as coordinates along it;
* ``time`` [s]: common grid of the series; ``snapshot_time`` [s]: the fields; ``node`` (the job's padded node
  bucket), ``triangle`` (its padded triangle bucket) and ``corner`` (3): the mesh; ``position``: the samples of the
  line cut; ``core_fraction_level`` [1]; ``protocol_step``;
* the mesh, as coordinates over the sweep dimensions along which the outline or ``radius_m`` varies (just
  ``(node,)`` when neither is swept): ``node_x_m``, ``node_y_m`` [m] relative to the particle's area centroid (NaN
  at padded nodes), ``node_mask`` (a real node), ``node_is_rim``, ``triangles (..., triangle, corner)`` (node
  indices, -1 for padded triangles); ``line_cut_position_m (..., position)`` [m] (signed, positive towards the
  blocked arc; also varies along a swept ``arc_center_rad``);
* per point: series ``(*sweep, time)``, ``theta (*sweep, snapshot_time, node)`` (NaN at padded nodes),
  ``line_cut (*sweep, time, position)``, scalars, ``status`` (-1: not computed, 0: ok, else failure bits, CF
  ``flag_masks``), ``done`` and ``checksum`` (a digest of the point's stored values).

Global attributes: ``fluxsim_version``, ``config`` (the full resolved config as YAML), ``config_identity`` (the part
that determines results; checked on resume), ``config_hash``, ``outline`` (JSON: the outline's kind and
parameters), ``mesh_spacing`` [1, units of the equivalent radius], ``jax_backend``, ``jax_devices``, ``created``.

The store is created with its full shape but no data chunks (zarr skips chunks equal to the fill value), then each
computed block is written to its region with ``to_zarr(region=...)`` and its completion record, the ``done`` flags
and the per-point ``checksum`` of the values just written, afterwards. Re-opening with the same config resumes; a
different config is refused (:class:`StoreMismatchError`). Resuming verifies what it skips: a point counts as done
only when its record is set and its values, read back, are readable and match the checksum (:func:`check_points`);
points with missing or corrupt chunks are computed again. ``fluxsim verify STORE`` runs the same check.

Only a store fluxsim recognises as its own (root attributes ``fluxsim_version`` and ``config_identity``) is ever
resumed or replaced (``output.overwrite``); any other existing, non-empty path is refused and left untouched.
Metadata are written once, consolidated, at creation and never change afterwards, so ``xr.open_zarr(path)`` opens
the store without a warning, also while shards are writing it.

Several jobs may write one store (``sweep.shard``): every block is exactly one zarr chunk of every variable, so
disjoint blocks are disjoint files. Creation is safe against concurrent creators without locks (which shared
cluster file systems do not always honour): each creator writes the complete empty store under a private temporary
name and renames it into place; ``rename`` is atomic, so exactly one creator wins and the others find a complete
store, whose config they then verify like any resumed store (create, then verify). Two runs of the same shard (or
two unsharded runs) are kept apart by a lock file beside the store (:func:`acquire_lock`).
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import difflib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import yaml
import zarr

from fluxsim._version import __version__
from fluxsim.model.catalogue import SHAPE_SWEEPABLE, entry
from fluxsim.study.extract import STATUS_CHUNK_FAILED, STATUS_MEANINGS
from fluxsim.study.geometry import SIZE_INPUTS, job_geometry, sub_grid_points, varying_dims
from fluxsim.study.plan import Block, blocks
from fluxsim.study.spec import POINT_DIM, ConfigError, JobConfig

log = logging.getLogger("fluxsim")

TIME = "time"
SNAPSHOT_TIME = "snapshot_time"
NODE = "node"
TRIANGLE = "triangle"
CORNER = "corner"
POSITION = "position"
LEVEL = "core_fraction_level"
PROTOCOL_STEP = "protocol_step"


class StoreMismatchError(RuntimeError):
    """An existing store was written with a different config or another fluxsim version."""


class StoreLockedError(StoreMismatchError):
    """Another live run of the same shard (or an overlapping one) holds the store's lock."""


@dataclasses.dataclass(frozen=True)
class Var:
    """A stored variable: its dimensions after the sweep dimensions, dtype, fill value and attributes."""

    dims: tuple[str, ...]
    units: str
    long_name: str
    dtype: str = "float64"
    fill: float | int | bool = np.nan
    extra: tuple = ()


VARIABLES: dict[str, Var] = {
    # series on the common time grid (NaN after the end of the protocol)
    "passed_capacity_mAh_per_g": Var((TIME,), "mA h g-1", "net charge passed (charge positive)"),
    "mean_theta": Var((TIME,), "1", "mean Li occupancy"),
    "surface_min_theta": Var((TIME,), "1", "minimum surface Li occupancy"),
    "surface_max_theta": Var((TIME,), "1", "maximum surface Li occupancy"),
    "theta_min": Var((TIME,), "1", "minimum Li occupancy"),
    "theta_max": Var((TIME,), "1", "maximum Li occupancy"),
    "core_fraction": Var((TIME,), "1", "area fraction of the Li-rich core"),
    "smooth_core_fraction": Var((TIME,), "1", "area fraction of the Li-rich core (sigmoid weight)"),
    "offset_nm": Var((TIME,), "nm", "distance between particle and Li-rich core centroids"),
    "offset_direction_rad": Var((TIME,), "rad", "direction of the core offset, counter-clockwise from +x"),
    "smooth_offset_nm": Var((TIME,), "nm", "core offset (sigmoid weight, differentiable)"),
    "voltage_V": Var((TIME,), "V", "cell voltage (surface model B)"),
    "line_cut": Var((TIME, POSITION), "1", "Li occupancy along the blocked-arc axis through the centroid"),
    "theta": Var((SNAPSHOT_TIME, NODE), "1", "Li occupancy at the mesh nodes (NaN: padded node)"),
    # scalars
    "capacity_at_cutoff_mAh_per_g": Var((), "mA h g-1", "extracted capacity when the first protocol step ended"),
    "time_to_cutoff_s": Var((), "s", "duration of the first protocol step (time to cut-off)"),
    "reached_cutoff": Var((), "1", "first protocol step ended at its cut-off", "bool", False),
    "step_end_s": Var((PROTOCOL_STEP,), "s", "time each protocol step ended"),
    "step_cutoff": Var((PROTOCOL_STEP,), "1", "protocol step ended at its cut-off", "bool", False),
    "offset_at_core_fraction_nm": Var((LEVEL,), "nm", "core offset when the core area fraction falls to the level"),
    "core_vanish_capacity_mAh_per_g": Var((), "mA h g-1", "passed capacity at which the Li-rich core disappears"),
    "core_vanish_time_s": Var((), "s", "time at which the Li-rich core disappears"),
    "core_vanish_position_nm": Var((), "nm", "where the core disappears, along the blocked-arc axis"),
    "n_steps": Var((), "1", "accepted time steps, all protocol steps", "int32", 0),
    "n_rejected": Var((), "1", "rejected time steps, all protocol steps", "int32", 0),
    "n_evaluations": Var((), "1", "right-hand-side evaluations (the cost)", "int32", 0),
    "status": Var((), "1", "simulation status (-1: not computed, 0: ok, else failure bits)", "int8", -1),
    "done": Var((), "1", "point computed and written", "bool", False),
    "checksum": Var((), "1", "BLAKE2b-64 digest of the point's stored values, written after them (checked on resume)",
                    "uint64", 0),
}

#: The completion record of a block, written after its data: ``done`` flags and the ``checksum`` of each point.
DONE = "done"
CHECKSUM = "checksum"
RECORD = (DONE, CHECKSUM)

#: Root attributes that mark a store as fluxsim's own (only such a store is resumed or replaced).
OWN_ATTRS = ("fluxsim_version", "config_identity")


# ---------------------------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------------------------
def _attrs(units: str, long_name: str, **extra) -> dict:
    return {"units": units, "long_name": long_name, **extra}


def variable_names(job: JobConfig) -> list[str]:
    """The variables this job stores (depends on the output settings and the surface model)."""
    names = []
    for name in VARIABLES:
        if name == "voltage_V" and job.base_inputs.get("surface_model", "A") != "B":
            continue
        if name == "line_cut" and not job.output.line_cut:
            continue
        if name == "theta" and not job.output.snapshot_times_s:
            continue
        if name == "offset_at_core_fraction_nm" and not job.output.core_fraction_levels:
            continue
        names.append(name)
    return names


def coordinates(job: JobConfig) -> dict[str, xr.Variable]:
    """All coordinates of the store."""
    sweep, out = job.sweep, job.output
    coords: dict[str, xr.Variable] = {}
    for d in sweep.dims:
        if d == POINT_DIM:
            coords[d] = xr.Variable(d, np.asarray(sweep.coords[d], np.int64), _attrs("1", "sweep point index"))
        else:
            units, name = entry(d).unit, entry(d).long_name
            coords[d] = xr.Variable(d, np.asarray(sweep.coords[d], float), _attrs(units, name))
    for key, values in sweep.point_coords.items():
        if key == "label":
            coords[key] = xr.Variable(POINT_DIM, np.asarray(values, dtype=object), {"long_name": "case label",
                                                                                 "units": "1"})
        else:
            units, name = entry(key).unit, entry(key).long_name
            coords[key] = xr.Variable(POINT_DIM, np.asarray(values, float), _attrs(units, name))
    coords[TIME] = xr.Variable(TIME, np.asarray(out.times_s, float), _attrs("s", "time since the start", axis="T"))
    names = set(variable_names(job))
    if "theta" in names:
        coords[SNAPSHOT_TIME] = xr.Variable(SNAPSHOT_TIME, np.asarray(out.snapshot_times_s, float),
                                            _attrs("s", "time of the occupancy snapshot"))
    coords.update(mesh_coordinates(job))
    if job.output.core_fraction_levels:
        coords[LEVEL] = xr.Variable(LEVEL, np.asarray(job.output.core_fraction_levels, float),
                                    _attrs("1", "core area fraction level"))
    kinds = np.asarray([step.kind for step in job.protocol], dtype=object)  # vlen strings: zarr v3 spec
    coords[PROTOCOL_STEP] = xr.Variable(PROTOCOL_STEP, np.arange(len(job.protocol)), _attrs("1", "protocol step"))
    coords["protocol_step_kind"] = xr.Variable(PROTOCOL_STEP, kinds, _attrs("1", "kind of protocol step"))
    return coords


#: Inputs along which the mesh in metres varies (the outline's shape and the particle's size), and the line cut's
#: sample positions (also the blocked arc's direction).
MESH_INPUTS = (*SHAPE_SWEEPABLE, *SIZE_INPUTS)
LINE_CUT_INPUTS = (*MESH_INPUTS, "arc_center_rad")


def mesh_coordinates(job: JobConfig) -> dict[str, xr.Variable]:
    """The mesh of every outline of the job (and the line cut's positions) as coordinates, in metres."""
    from fluxsim.core.observables import line_cut_stencil

    sweep, geometry = job.sweep, job_geometry(job)
    mesh_dims = varying_dims(sweep, MESH_INPUTS)
    cut_dims = varying_dims(sweep, LINE_CUT_INPUTS)
    n, n_rim = geometry.sizes.n_nodes, geometry.sizes.n_rim

    def radius_m(flat):
        return float(sweep.inputs[flat]["radius_m"])

    x, y, mask, rim, tri = [], [], [], [], []
    for flat in sub_grid_points(sweep, mesh_dims):
        mesh = geometry.mesh(int(geometry.index_of(sweep, flat)))
        real = np.asarray(mesh.node_mask)
        xy = (np.asarray(mesh.xy) - np.asarray(mesh.centroid)) * radius_m(flat)
        x.append(np.where(real, xy[:, 0], np.nan))
        y.append(np.where(real, xy[:, 1], np.nan))
        mask.append(real)
        rim.append(real & (np.arange(n) < n_rim))
        triangles = np.asarray(mesh.triangles, np.int32)
        tri.append(np.where((np.asarray(mesh.triangle_area) > 0)[:, None], triangles, -1))
    shape = tuple(sweep.shape[sweep.dims.index(d)] for d in mesh_dims)

    def grid(rows, dims, units, long_name, dtype):
        data = np.asarray(rows, dtype).reshape(shape + np.shape(rows[0]))
        return xr.Variable(mesh_dims + dims, data, _attrs(units, long_name))

    coords = {
        "node_x_m": grid(x, (NODE,), "m", "node x relative to the particle's area centroid", float),
        "node_y_m": grid(y, (NODE,), "m", "node y relative to the particle's area centroid", float),
        "node_mask": grid(mask, (NODE,), "1", "real mesh node (False: padding of the node bucket)", bool),
        "node_is_rim": grid(rim, (NODE,), "1", "node on the particle's rim", bool),
        "triangles": grid(tri, (TRIANGLE, CORNER), "1", "mesh triangles: node indices, counter-clockwise "
                          "(-1: padding of the triangle bucket)", np.int32),
    }
    if "line_cut" in variable_names(job):
        samples = job.numerics.line_cut_samples
        positions = []
        for flat in sub_grid_points(sweep, cut_dims):
            mesh = geometry.mesh(int(geometry.index_of(sweep, flat)))
            angle = float(sweep.inputs[flat]["arc_center_rad"])
            positions.append(np.asarray(line_cut_stencil(mesh, angle, samples).position) * radius_m(flat))
        cut_shape = tuple(sweep.shape[sweep.dims.index(d)] for d in cut_dims)
        coords["line_cut_position_m"] = xr.Variable(
            cut_dims + (POSITION,), np.asarray(positions, float).reshape(cut_shape + (samples,)),
            _attrs("m", "position along the blocked-arc axis through the centroid (positive towards the arc)"))
    return coords


def _extra_shape(job: JobConfig, dims: tuple[str, ...]) -> tuple[int, ...]:
    sizes = {
        TIME: len(job.output.times_s),
        SNAPSHOT_TIME: len(job.output.snapshot_times_s),
        NODE: job_geometry(job).sizes.n_nodes,
        POSITION: job.numerics.line_cut_samples,
        LEVEL: len(job.output.core_fraction_levels),
        PROTOCOL_STEP: len(job.protocol),
    }
    return tuple(sizes[d] for d in dims)


def outline_attr(job: JobConfig) -> str:
    """The ``outline`` attribute: JSON of the outline's kind and parameters, and which of them the sweep varies."""
    data = json.loads(job.shape.describe())
    swept = [name for name in SHAPE_SWEEPABLE if name in job.sweep.swept]
    if swept:
        data["swept"] = swept
    return json.dumps(data)


def global_attrs(job: JobConfig) -> dict:
    import jax

    devs = jax.devices()
    return {
        "title": f"fluxsim study {job.sweep.name!r}",
        "source": f"fluxsim {__version__}",
        "fluxsim_version": __version__,
        "Conventions": "CF-1.10",
        "references": "Lun et al., Energy Environ. Sci. 2025, 18, 4097, doi:10.1039/d5ee00267b",
        "config": job.config_yaml,
        "config_identity": job.identity_yaml,
        "config_hash": job.config_hash,
        "outline": outline_attr(job),
        "mesh_spacing": job.numerics.spacing,
        "sweep_dims": list(job.sweep.dims),
        "chunk_shape": list(job.sweep.chunk_shape),
        "checksum_variables": [n for n in variable_names(job) if n not in RECORD],
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in devs],
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def template(job: JobConfig) -> tuple[xr.Dataset, dict]:
    """The full-size dataset (data are zero-stride views of the fill value, so no memory) and its encoding."""
    sweep = job.sweep
    data_vars, encoding = {}, {}
    for name in variable_names(job):
        var = VARIABLES[name]
        dims = sweep.dims + var.dims
        shape = sweep.shape + _extra_shape(job, var.dims)
        data = np.broadcast_to(np.asarray(var.fill, dtype=var.dtype), shape)
        attrs = _attrs(var.units, var.long_name)
        if name == "status":
            attrs.update(
                flag_values=[-1, 0], flag_masks=list(STATUS_MEANINGS),
                flag_meanings=" ".join(STATUS_MEANINGS.values()),
                comment="-1: not computed yet; 0: ok; otherwise the sum of the failure bits in flag_masks",
            )
        data_vars[name] = xr.Variable(dims, data, attrs)
        enc = {"chunks": sweep.chunk_shape + _extra_shape(job, var.dims)}
        if var.dtype == "float64":
            enc["_FillValue"] = np.nan
        else:
            enc["_FillValue"] = None
        encoding[name] = enc
    ds = xr.Dataset(data_vars, coords=coordinates(job), attrs=global_attrs(job))
    for name in ds.coords:
        encoding[name] = {"_FillValue": None}
    return ds, encoding


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------
class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as OmegaConf (which wrote the text) does: ``1e-14`` is a float."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
                   |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def load_yaml(text: str):
    """The data of a config YAML text written by the app (``config`` / ``config_identity`` attributes)."""
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


def _identity_diff(old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), "store", "this run", lineterm="", n=1)
    return "\n".join(list(lines)[:40])


class StoreWriter:
    """Creates or re-opens the store of a job and writes blocks of points into it.

    Holds the lock of the job's shard (:func:`acquire_lock`) from construction until :meth:`close` (or the end of the
    process).

    Args:
        path: the ``.zarr`` directory.
        job: the validated job.
        overwrite: replace a fluxsim store written with a different config instead of refusing (anything that is not
            a fluxsim store is never replaced).
    """

    def __init__(self, path: str | Path, job: JobConfig, *, overwrite: bool = False):
        self.path = Path(path)
        self.job = job
        self.names = variable_names(job)
        self.zarr_format = job.output.zarr_format
        if job.sweep.chunk_shape is None:
            raise ValueError("resolve sweep.chunk_size=auto before creating the store (see fluxsim.app.cli.run_job)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = acquire_lock(self.path, job.sweep.shard)
        try:
            self._open(overwrite)
        except BaseException:
            self.close()
            raise

    def _open(self, overwrite: bool) -> None:
        if not _occupied(self.path) and self._create():
            return
        refuse_foreign(self.path, "output.store")
        problem, old = self._open_existing()
        if problem is None:
            return
        if not overwrite:
            raise _mismatch(self.path, problem, old, self.job)
        shutil.rmtree(self.path)
        if not self._create():
            raise StoreMismatchError(f"{self.path} was re-created by another process while being replaced")

    def close(self) -> None:
        """Release the lock (the store stays as it is)."""
        release_lock(self.lock)

    def _create(self) -> bool:
        """Create the empty store atomically; False if another process created it first (nothing is changed).

        The metadata are consolidated in the private copy, before the rename: they never change afterwards.
        """
        ds, encoding = template(self.job)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        try:
            with warnings.catch_warnings():  # zarr 3: consolidated metadata are not (yet) in the v3 spec
                warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
                ds.to_zarr(tmp, mode="w-", encoding=encoding, zarr_format=self.zarr_format, consolidated=True,
                           write_empty_chunks=False)
            os.rename(tmp, self.path)  # atomic; fails if another creator's non-empty store is already there
        except OSError:
            if not self.path.exists():
                raise
            return False
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        self.done = np.zeros(self.job.sweep.shape, bool)
        self.damaged = np.zeros(self.job.sweep.shape, bool)
        self.resumed = False
        return True

    def _open_existing(self) -> tuple[str | None, str | None]:
        """Re-open an existing store: ``(None, identity)`` when this job may resume it, else ``(problem, identity)``.

        The points it may skip are those whose completion record matches their data (:func:`check_points`); the
        others, damaged ones included, are computed again.
        """
        problem, old = _inspect(self.path, self.job)
        if problem is None:
            check = check_points(self.path, [n for n in self.names if n not in RECORD], self.job.sweep.shape,
                                 self.job.sweep.chunk_shape)
            self.done, self.damaged = check.intact, check.damaged
            self.resumed = True
            if self.damaged.any():
                log.warning("%d point(s) of %s are marked done but their data are missing or corrupt; they are "
                            "computed again", int(self.damaged.sum()), self.path)
        return problem, old

    def is_done(self, block: Block) -> bool:
        return bool(self.done[block.region].all())

    def _write(self, block: Block, data: dict[str, np.ndarray]) -> None:
        sweep_dims = self.job.sweep.dims
        variables = {
            name: xr.Variable(sweep_dims + VARIABLES[name].dims, np.asarray(value, VARIABLES[name].dtype))
            for name, value in data.items()
        }
        region = dict(zip(sweep_dims, block.region, strict=True))
        xr.Dataset(variables).to_zarr(self.path, region=region, mode="r+", consolidated=False)

    def write(self, block: Block, outputs: dict[str, np.ndarray]) -> None:
        """Write a computed block (each output shaped ``block.shape + extra``), then its completion record."""
        data = {name: outputs[name] for name in self.names if name not in RECORD}
        self._write(block, data)
        self._write(block, {DONE: np.ones(block.shape, bool), CHECKSUM: point_checksums(data, block.shape)})
        self.done[block.region] = True

    def fail(self, block: Block, error: BaseException) -> None:
        """Record a block whose computation raised (status bit ``chunk_failed``; not done, so a rerun retries)."""
        self._write(block, {"status": np.full(block.shape, STATUS_CHUNK_FAILED, np.int8)})


# ---------------------------------------------------------------------------------------------------------------
# Completion records: checksums, verification
# ---------------------------------------------------------------------------------------------------------------
def point_checksums(data: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """The ``checksum`` of each point of a block: BLAKE2b-64 over its values of every variable in ``data`` (in the
    order given), each as stored (its ``VARIABLES`` dtype, little-endian; NaNs canonical, since a chunk of fill
    values is not written and reads back as the fill NaN)."""
    n = math.prod(shape)
    digests = [hashlib.blake2b(digest_size=8) for _ in range(n)]
    for name, value in data.items():
        dtype = np.dtype(VARIABLES[name].dtype)
        values = np.asarray(value, dtype).reshape(n, -1)
        if dtype.kind == "f":
            values = np.where(np.isnan(values), np.nan, values)
        rows = np.ascontiguousarray(values, dtype.newbyteorder("<"))
        for digest, row in zip(digests, rows, strict=True):
            digest.update(row.tobytes())
    return np.asarray([int.from_bytes(d.digest(), "little") for d in digests], np.uint64).reshape(shape)


@dataclasses.dataclass(frozen=True)
class PointCheck:
    """Result of :func:`check_points`, one flag per sweep point.

    Attributes:
        intact: done, and its data are readable and match its checksum (a resume skips it).
        damaged: marked done (or its record cannot be read) but its data are missing, unreadable or altered.
        problems: one text per damaged block: its index and what is wrong.
    """

    intact: np.ndarray
    damaged: np.ndarray
    problems: tuple[str, ...]


def check_points(path: str | Path, names: list[str], shape: tuple[int, ...], chunk_shape: tuple[int, ...]
                 ) -> PointCheck:
    """Re-read every block whose completion record is set and compare each point with its checksum.

    Reads block by block (memory does not grow with the study); a chunk that cannot be decoded (truncated) marks its
    whole block damaged, a deleted chunk reads as fill values and fails its checksum.
    """
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    intact = np.zeros(shape, bool)
    damaged = np.zeros(shape, bool)
    problems = []
    for block in blocks(shape, chunk_shape):
        try:
            done = np.asarray(group[DONE][block.region], bool)
        except Exception as err:  # noqa: BLE001 - an unreadable record: the block must be computed again
            damaged[block.region] = True
            problems.append(f"block {block.index}: its 'done' flags cannot be read ({type(err).__name__})")
            continue
        if not done.any():
            continue
        try:
            data = {name: group[name][block.region] for name in names}
            stored = np.asarray(group[CHECKSUM][block.region], np.uint64)
        except Exception as err:  # noqa: BLE001 - missing array or undecodable chunk
            damaged[block.region] = done
            problems.append(f"block {block.index}: data cannot be read ({type(err).__name__}: {err})")
            continue
        ok = done & (point_checksums(data, block.shape) == stored)
        intact[block.region] = ok
        damaged[block.region] = done & ~ok
        if (done & ~ok).any():
            problems.append(f"block {block.index}: {int((done & ~ok).sum())} point(s) do not match their checksum "
                            "(missing or altered chunks)")
    return PointCheck(intact, damaged, tuple(problems))


def is_fluxsim_store(path: str | Path) -> bool:
    """Whether ``path`` is a zarr group with fluxsim's root attributes (``OWN_ATTRS``)."""
    try:
        attrs = zarr.open_group(str(path), mode="r", use_consolidated=False).attrs
        return all(key in attrs for key in OWN_ATTRS)
    except Exception:  # noqa: BLE001 - anything unreadable is not recognised
        return False


def _occupied(path: Path) -> bool:
    """Something is at ``path`` (an empty folder is not: a new store may take its place)."""
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def refuse_foreign(path: Path, key: str = "output.store") -> None:
    """Raise :class:`ConfigError` unless ``path`` is empty, absent or a fluxsim store (names the path; fluxsim
    neither writes into nor deletes anything else)."""
    if _occupied(path) and not is_fluxsim_store(path):
        raise ConfigError(
            f"{key} = {str(path)!r} exists and is not a fluxsim store (it has no fluxsim store metadata, or they are "
            "unreadable); fluxsim does not write into or delete it. Choose another output.store, or move that folder "
            "away yourself."
        )


# ---------------------------------------------------------------------------------------------------------------
# Locks: one live run per (store, shard)
# ---------------------------------------------------------------------------------------------------------------
_HELD: set[Path] = set()


def lock_path(store: str | Path, shard: tuple[int, int] | None) -> Path:
    """The lock file of a shard of ``store`` (beside it: ``.results.zarr.lock``, ``.results.zarr.shard0of2.lock``)."""
    store = Path(store)
    suffix = "" if shard is None else f".shard{shard[0]}of{shard[1]}"
    return store.with_name(f".{store.name}{suffix}.lock")


def _process_start(pid: int) -> str | None:
    """Start time of a process (clock ticks since boot, Linux ``/proc``), to tell a reused pid apart; None elsewhere."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _record(shard: tuple[int, int] | None) -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "process_start": _process_start(pid),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "shard": list(shard) if shard else None}


def _read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(holder: dict) -> bool:
    """Whether a lock's holder may still run (a holder on another host always may: it cannot be checked here)."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = int(holder.get("pid", -1))
    if pid <= 0:
        return False  # a lock file left empty by a writer that died while creating it
    if pid == os.getpid():
        return False  # this process: an earlier run_job in it that ended without releasing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = holder.get("process_start")
    return start is None or _process_start(pid) in (None, start)


def _describe(holder: dict, path: Path) -> str:
    shard = holder.get("shard")
    what = f"shard {shard[0]}/{shard[1]}" if shard else "a run of the whole study"
    return (f"{what} started {holder.get('started')} by pid {holder.get('pid')} on host {holder.get('host')} "
            f"(lock file {path})")


def _overlap(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    """Whether shards ``a`` and ``b`` (None: all blocks) share blocks: k = i mod n and k = j mod m have a common
    solution iff i = j mod gcd(n, m)."""
    (i, n), (j, m) = a or (0, 1), b or (0, 1)
    return (i - j) % math.gcd(n, m) == 0


def _take(path: Path, shard: tuple[int, int] | None) -> dict | None:
    """Create the lock file exclusively; returns None when taken, else the record of its present holder."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        for _ in range(20):  # a holder that has just created it may still be writing it
            holder = _read_lock(path)
            if holder is not None:
                return holder
            if not path.exists():
                return {}  # released meanwhile: try again
            time.sleep(0.05)
        return {"pid": -1, "host": socket.gethostname()}  # empty for a second: its writer died; stale
    with os.fdopen(fd, "w") as f:
        json.dump(_record(shard), f)
    return None


def _remove_stale(path: Path, holder: dict) -> None:
    """Remove the lock file if it still holds ``holder``'s record (rename it away first, so that a lock a live run
    has just created in its place is put back, not deleted)."""
    grabbed = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.stale")
    try:
        os.rename(path, grabbed)
    except FileNotFoundError:
        return
    if _read_lock(grabbed) not in (holder, None):
        try:
            os.link(grabbed, path)
        except FileExistsError:
            pass
    grabbed.unlink()


def acquire_lock(store: str | Path, shard: tuple[int, int] | None) -> Path:
    """Take the lock of ``shard`` of ``store``: an exclusively created file beside the store holding host, pid and
    start time. Refused (:class:`StoreLockedError`, naming the holder) while a live run holds it or the lock of an
    overlapping shard (an unsharded run overlaps every shard); a stale lock (same host, process gone) is taken over
    with a warning. Released by :func:`release_lock` or at the end of the process."""
    path = lock_path(store, shard)
    for _ in range(5):
        holder = _take(path, shard)
        if holder is None:
            break
        if not holder:
            continue
        if _alive(holder):
            raise StoreLockedError(f"refusing to write into {Path(store)}: it is being written by "
                                   f"{_describe(holder, path)}. Wait for that run to end; if it is no longer "
                                   "running (e.g. killed on another host), delete the lock file.")
        if holder.get("pid") != os.getpid():
            log.warning("taking over the stale lock of %s: %s is no longer running", store, _describe(holder, path))
        _remove_stale(path, holder)
    else:
        raise StoreLockedError(f"could not take the lock {path} of {store} (other runs keep taking it)")
    _HELD.add(path)
    for other in path.parent.glob(f".{Path(store).name}*.lock"):
        holder = _read_lock(other) if other != path else None
        if holder and _overlap(shard, tuple(holder["shard"]) if holder.get("shard") else None) and _alive(holder):
            release_lock(path)
            raise StoreLockedError(f"refusing to write into {Path(store)}: an overlapping run holds it, "
                                   f"{_describe(holder, other)}.")
    return path


def release_lock(path: Path) -> None:
    """Remove a lock this process holds (nothing if it holds no such lock)."""
    if path in _HELD:
        _HELD.discard(path)
        holder = _read_lock(path)
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            path.unlink(missing_ok=True)


@atexit.register
def _release_all() -> None:
    for path in list(_HELD):
        release_lock(path)


def _same_identity(old: str | None, new: str) -> bool:
    """Whether two ``config_identity`` YAML texts describe the same config (as data: layout and style may differ)."""
    if old == new:
        return True
    if old is None:
        return False
    try:
        return load_yaml(old) == load_yaml(new)
    except Exception:  # noqa: BLE001 - unreadable identity text: not the same config
        return False


def _inspect(path: Path, job: JobConfig) -> tuple[str | None, str | None]:
    """Whether ``job`` may resume the existing store at ``path``: ``(problem or None, its identity)``.

    Refused: a store that cannot be read, one written with another config (``config_identity``) or by another
    fluxsim version (``fluxsim_version``; results may differ between versions), one chunked differently (checked
    only once the job's chunking is known), or one without per-point checksums.
    """
    try:
        existing = xr.open_zarr(path, consolidated=False)
        old = existing.attrs.get("config_identity")
    except Exception as err:  # noqa: BLE001 - a broken store: report it as such
        return f"it cannot be read as a fluxsim store ({err})", None
    try:
        if not _same_identity(old, job.identity_yaml):
            return "it was written with a different config", old
        version = existing.attrs.get("fluxsim_version")
        if version != __version__:
            return (f"it was written by fluxsim {version}, this is fluxsim {__version__} (results may differ "
                    "between versions)"), None
        chunks = tuple(existing.attrs.get("chunk_shape", ()))
        if job.sweep.chunk_shape is not None and chunks != tuple(job.sweep.chunk_shape):
            mine = list(job.sweep.chunk_shape)
            return (f"it is chunked in blocks of {list(chunks)} points, this job in blocks of {mine} (with "
                    "sweep.chunk_size=auto, give runtime.memory_budget_gb the value the store was created with, "
                    "or set sweep.chunk_size)"), None
        if CHECKSUM not in existing.variables:
            return "it has no per-point checksums (written by an older fluxsim), so its points cannot be verified", None
        return None, old
    finally:
        existing.close()


def _mismatch(path: Path, problem: str, old: str | None, job: JobConfig) -> StoreMismatchError:
    diff = _identity_diff(old, job.identity_yaml) if old else ""
    return StoreMismatchError(
        f"refusing to write into {path}: {problem}.\n{diff}\nUse another output.store, delete the store, or set "
        "output.overwrite=true to replace it."
    )


def check_output(path: str | Path, job: JobConfig, *, overwrite: bool = False) -> None:
    """Before any compute: the store's folder can be written, and an existing store there may be resumed.

    Creates the store's parent folders (as writing it would) and writes and removes a probe file where the store's
    files go.

    Raises:
        ConfigError: the path cannot be written (names ``output.store``, the path and the reason).
        ConfigError: something that is not a fluxsim store is at the path (never written into or replaced,
            whatever ``overwrite`` says).
        StoreMismatchError: an existing store was written with another config or fluxsim version (and
            ``overwrite`` is false).
    """
    path = Path(path)
    key = f"output.store = {str(path)!r}" if job.output.store else f"the store path {str(path)!r}"
    try:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a directory")
        folder = path if path.exists() else path.parent
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fluxsim-write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{key} cannot be written ({err}); choose a writable output.store") from None
    refuse_foreign(path, "output.store" if job.output.store else "the store path")
    if _occupied(path) and not overwrite:
        problem, old = _inspect(path, job)
        if problem is not None:
            raise _mismatch(path, problem, old, job)


def existing_chunk_shape(path: str | Path, job: JobConfig) -> tuple[int, ...] | None:
    """The block shape of an existing store written with this job's config (None: no such store).

    A job with ``sweep.chunk_size: auto`` that joins or resumes a store adopts its chunking instead of deriving one.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with xr.open_zarr(path, consolidated=False) as ds:
            if ds.attrs.get("config_identity") != job.identity_yaml:
                return None
            return tuple(int(c) for c in ds.attrs["chunk_shape"])
    except Exception:  # noqa: BLE001 - not readable: StoreWriter reports it
        return None


def open_store(path: str | Path) -> xr.Dataset:
    """Open a store (also while it is being written) as a lazily loaded ``xarray.Dataset``."""
    return xr.open_zarr(path, consolidated=False)


def stored_config(ds: xr.Dataset) -> dict:
    """The resolved config a store was written with."""
    return load_yaml(ds.attrs["config"])


def stored_input(ds: xr.Dataset, name: str):
    """An input as the stored config sets it (at its catalogue config key), else the catalogue default."""
    node = stored_config(ds)
    for part in entry(name).config_key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return entry(name).default if node is None else node


def case_input(ds: xr.Dataset, sel: dict, name: str):
    """An input of one case of a store: its sweep coordinate, else :func:`stored_input`."""
    point = ds[DONE].isel(sel)
    if name in point.coords:
        return float(point.coords[name])
    return stored_input(ds, name)


def summary(ds: xr.Dataset) -> str:
    """A one-paragraph summary of a store (dims, progress, failures)."""
    done = int(ds[DONE].sum())
    total = int(ds[DONE].size)
    failed = int((ds["status"] > 0).sum())
    dims = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
    return f"{done}/{total} points done, {failed} failed; dims: {dims}"


def status_names(status: int) -> str:
    """The failure bits of a ``status`` value, by name (``"nonfinite_output+newton_not_converged"``)."""
    if status < 0:
        return "not_computed"
    return "+".join(name for bit, name in STATUS_MEANINGS.items() if status & bit) or "ok"


def point_lines(ds: xr.Dataset, mask: np.ndarray, what=lambda index: "") -> list[str]:
    """One line per point where ``mask`` is set (C order over the sweep): its position and inputs, then
    ``what(index)``."""
    sweep_dims = tuple(ds.attrs.get("sweep_dims", ds["status"].dims))
    lines = []
    for index in zip(*np.nonzero(mask), strict=True):
        point = ds["status"][dict(zip(sweep_dims, index, strict=True))]
        values = {k: v.item() for k, v in point.coords.items() if v.ndim == 0}
        text = {k: f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()}
        inputs = ", ".join(t for k, t in text.items() if k not in sweep_dims)
        lines.append(f"{', '.join(text[d] for d in sweep_dims)}{f' ({inputs})' if inputs else ''}{what(index)}")
    return lines


def failed_points(ds: xr.Dataset) -> list[str]:
    """One line per point with a nonzero status: its position, inputs and failure bits (C order over the sweep)."""
    status = np.asarray(ds["status"].values)
    return point_lines(ds, status > 0, lambda i: f": status {int(status[i])} ({status_names(int(status[i]))})")


class StoreError(Exception):
    """A path given as a store is missing, or is not a readable fluxsim store."""


class UnverifiableStoreError(StoreError):
    """A fluxsim store written before per-point checksums: readable, but its points cannot be verified."""


@dataclasses.dataclass(frozen=True)
class Health:
    """What :func:`verify` found: the per-point check, and the damaged points described one per line."""

    check: PointCheck
    damaged_points: list[str]
    n_points: int
    n_failed: int

    @property
    def n_damaged(self) -> int:
        return int(self.check.damaged.sum())

    @property
    def n_missing(self) -> int:
        """Points not computed yet (or whose chunk failed): neither intact nor damaged."""
        return self.n_points - int(self.check.intact.sum()) - self.n_damaged


def verify(path: str | Path) -> Health:
    """Check a store without its job: every point marked done is re-read and compared with its checksum.

    Raises:
        StoreError: nothing at ``path``, or not a fluxsim store (or its metadata cannot be read).
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no store at {path}: the path does not exist")
    if not is_fluxsim_store(path):
        raise StoreError(f"{path} is not a fluxsim store (no fluxsim store metadata, or they cannot be read)")
    try:
        ds = xr.open_zarr(path, consolidated=False)
        if "checksum_variables" not in ds.attrs:
            ds.close()
            raise UnverifiableStoreError(f"{path} was written by a fluxsim without per-point checksums: its points "
                                         "cannot be verified")
        names = list(ds.attrs["checksum_variables"])
        shape, chunks = ds[DONE].shape, tuple(ds.attrs["chunk_shape"])
    except StoreError:
        raise
    except Exception as err:  # noqa: BLE001 - damaged metadata
        raise StoreError(f"{path} cannot be read as a fluxsim store ({type(err).__name__}: {err})") from None
    with ds:
        check = check_points(path, names, shape, chunks)
        try:
            failed = int((np.asarray(ds["status"].values) > 0).sum())
        except Exception:  # noqa: BLE001 - a damaged status chunk: counted as damage already
            failed = 0
        lines = point_lines(ds, check.damaged, lambda i: ": marked done, data missing or corrupt")
    return Health(check, lines, math.prod(shape), failed)


def open_verified(path: str | Path) -> xr.Dataset:
    """:func:`open_store` after :func:`verify`: raises :class:`StoreError` for a missing, foreign or damaged store
    (a store older than the checksums is opened with a warning)."""
    try:
        health = verify(path)
    except UnverifiableStoreError as err:
        log.warning("%s", err)
        return open_store(path)
    if health.n_damaged:
        raise StoreError(f"{path} is damaged: {health.n_damaged} point(s) are marked done but their data are missing "
                         f"or corrupt ({'; '.join(health.check.problems[:5])}). Run `fluxsim verify {path}` for the "
                         "list; re-running the command that wrote the store computes them again.")
    return open_store(path)

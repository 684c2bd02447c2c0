"""The results store: one xarray Dataset in zarr, created full-size up front and filled chunk by chunk.

Layout (names are module constants; every variable and coordinate has ``units`` and ``long_name``):

* sweep dimensions: the swept inputs as dimension coordinates (``ds.sel(eta=0.3, rate_mA_per_g=200)``), or a
  ``point`` dimension for an explicit list of points, with the inputs (and ``label``) as coordinates along it;
* ``time`` [s]: common grid of the series; ``snapshot_time`` [s], ``r`` [1, r / R] and ``phi`` [rad]: the fields
  (polar layout of :class:`fluxsim.api.Result`: row 0 is the centre); ``position`` [1, x / R along the blocked-arc
  axis, positive towards the arc]: the line cut; ``core_fraction_level`` [1]; ``protocol_step``;
* per point: series ``(*sweep, time)``, ``theta (*sweep, snapshot_time, r, phi)``, ``line_cut (*sweep, time,
  position)``, scalars, ``status`` (-1: not computed, 0: ok, else failure bits, CF ``flag_masks``) and ``done``.

Global attributes: ``fluxsim_version``, ``config`` (the full resolved config as YAML), ``config_identity`` (the part
that determines results; checked on resume), ``config_hash``, ``jax_backend``, ``jax_devices``, ``created``.

The store is created with its full shape but no data chunks (zarr skips chunks equal to the fill value), then each
computed block is written to its region with ``to_zarr(region=...)`` and its ``done`` flags set afterwards. Re-opening
with the same config resumes; a different config is refused (:class:`StoreMismatchError`).

Several jobs may write one store (``sweep.shard``): every block is exactly one zarr chunk of every variable, so
disjoint blocks are disjoint files. Creation is safe against concurrent creators without locks (which shared
cluster file systems do not always honour): each creator writes the complete empty store under a private temporary
name and renames it into place; ``rename`` is atomic, so exactly one creator wins and the others find a complete
store, whose config they then verify like any resumed store (create, then verify).
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import xarray as xr
from omegaconf import OmegaConf

import fluxsim
from fluxsim.config import INPUTS, POINT_DIM, ConfigError, JobConfig
from fluxsim.sweep import STATUS_CHUNK_FAILED, STATUS_MEANINGS, Block

TIME = "time"
SNAPSHOT_TIME = "snapshot_time"
R = "r"
PHI = "phi"
POSITION = "position"
LEVEL = "core_fraction_level"
PROTOCOL_STEP = "protocol_step"


class StoreMismatchError(RuntimeError):
    """An existing store was written with a different config or another fluxsim version."""


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
    "line_cut": Var((TIME, POSITION), "1", "Li occupancy along the blocked-arc axis through the centre"),
    "theta": Var((SNAPSHOT_TIME, R, PHI), "1", "Li occupancy field (NaN: time not reached)"),
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
    "newton_iterations": Var((), "1", "most Newton updates any time step needed", "int32", 0),
    "newton_total": Var((), "1", "Newton updates over all time steps", "int32", 0),
    "newton_change": Var((), "1", "largest final Newton update of any time step"),
    "status": Var((), "1", "simulation status (-1: not computed, 0: ok, else failure bits)", "int8", -1),
    "done": Var((), "1", "point computed and written", "bool", False),
}

#: Written after the data of a block: the block counts as finished only once it is set.
DONE = "done"


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
            units, name = INPUTS[d]
            coords[d] = xr.Variable(d, np.asarray(sweep.coords[d], float), _attrs(units, name))
    for key, values in sweep.point_coords.items():
        if key == "label":
            coords[key] = xr.Variable(POINT_DIM, np.asarray(values, dtype=object), {"long_name": "case label",
                                                                                 "units": "1"})
        else:
            units, name = INPUTS[key]
            coords[key] = xr.Variable(POINT_DIM, np.asarray(values, float), _attrs(units, name))
    coords[TIME] = xr.Variable(TIME, np.asarray(out.times_s, float), _attrs("s", "time since the start", axis="T"))
    grid = job.numerics.grid
    names = set(variable_names(job))
    if "theta" in names:
        coords[SNAPSHOT_TIME] = xr.Variable(SNAPSHOT_TIME, np.asarray(out.snapshot_times_s, float),
                                            _attrs("s", "time of the occupancy snapshot"))
        coords[R] = xr.Variable(R, grid.r, _attrs("1", "radial position / particle radius (0: centre)"))
        coords[PHI] = xr.Variable(PHI, grid.phi, _attrs("rad", "polar angle, counter-clockwise from +x"))
    if "line_cut" in names:
        nr = job.numerics.nr
        coords[POSITION] = xr.Variable(
            POSITION, np.arange(-nr, nr + 1) / nr,
            _attrs("1", "position along the blocked-arc axis / particle radius (positive towards the arc)"),
        )
    if job.output.core_fraction_levels:
        coords[LEVEL] = xr.Variable(LEVEL, np.asarray(job.output.core_fraction_levels, float),
                                    _attrs("1", "core area fraction level"))
    kinds = np.asarray([step.kind for step in job.protocol], dtype=object)  # vlen strings: zarr v3 spec
    coords[PROTOCOL_STEP] = xr.Variable(PROTOCOL_STEP, np.arange(len(job.protocol)), _attrs("1", "protocol step"))
    coords["protocol_step_kind"] = xr.Variable(PROTOCOL_STEP, kinds, _attrs("1", "kind of protocol step"))
    return coords


def _extra_shape(job: JobConfig, dims: tuple[str, ...]) -> tuple[int, ...]:
    sizes = {
        TIME: len(job.output.times_s),
        SNAPSHOT_TIME: len(job.output.snapshot_times_s),
        R: job.numerics.nr + 1,
        PHI: job.numerics.nphi,
        POSITION: 2 * job.numerics.nr + 1,
        LEVEL: len(job.output.core_fraction_levels),
        PROTOCOL_STEP: len(job.protocol),
    }
    return tuple(sizes[d] for d in dims)


def global_attrs(job: JobConfig) -> dict:
    import jax

    devs = jax.devices()
    return {
        "title": f"fluxsim study {job.sweep.name!r}",
        "source": f"fluxsim {fluxsim.__version__}",
        "fluxsim_version": fluxsim.__version__,
        "Conventions": "CF-1.10",
        "references": "Lun et al., Energy Environ. Sci. 2025, 18, 4097, doi:10.1039/d5ee00267b",
        "config": job.config_yaml,
        "config_identity": job.identity_yaml,
        "config_hash": job.config_hash,
        "sweep_dims": list(job.sweep.dims),
        "chunk_shape": list(job.sweep.chunk_shape),
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
def _identity_diff(old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), "store", "this run", lineterm="", n=1)
    return "\n".join(list(lines)[:40])


class StoreWriter:
    """Creates or re-opens the store of a job and writes blocks of points into it.

    Args:
        path: the ``.zarr`` directory.
        job: the validated job.
        overwrite: replace a store written with a different config instead of refusing.
    """

    def __init__(self, path: str | Path, job: JobConfig, *, overwrite: bool = False):
        self.path = Path(path)
        self.job = job
        self.names = variable_names(job)
        self.zarr_format = job.output.zarr_format
        if job.sweep.chunk_shape is None:
            raise ValueError("resolve sweep.chunk_size=auto before creating the store (see fluxsim.cli.run_job)")
        if not self.path.exists() and self._create():
            return
        problem, old = self._open_existing()
        if problem is None:
            return
        if not overwrite:
            raise _mismatch(self.path, problem, old, job)
        shutil.rmtree(self.path)
        if not self._create():
            raise StoreMismatchError(f"{self.path} was re-created by another process while being replaced")

    def _create(self) -> bool:
        """Create the empty store atomically; False if another process created it first (nothing is changed)."""
        ds, encoding = template(self.job)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        try:
            ds.to_zarr(tmp, mode="w-", encoding=encoding, zarr_format=self.zarr_format, consolidated=False,
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
        self.resumed = False
        return True

    def _open_existing(self) -> tuple[str | None, str | None]:
        """Re-open an existing store: ``(None, identity)`` when this job may resume it, else ``(problem, identity)``."""
        problem, old, done = _inspect(self.path, self.job)
        if problem is None:
            self.done = done
            self.resumed = True
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
        """Write a computed block (each output shaped ``block.shape + extra``), then mark it done."""
        data = {name: outputs[name] for name in self.names if name not in (DONE,)}
        self._write(block, data)
        self._write(block, {DONE: np.ones(block.shape, bool)})
        self.done[block.region] = True

    def fail(self, block: Block, error: BaseException) -> None:
        """Record a block whose computation raised (status bit ``chunk_failed``; not done, so a rerun retries)."""
        self._write(block, {"status": np.full(block.shape, STATUS_CHUNK_FAILED, np.int8)})


def _same_identity(old: str | None, new: str) -> bool:
    """Whether two ``config_identity`` YAML texts describe the same config (as data: layout and style may differ)."""
    if old == new:
        return True
    if old is None:
        return False
    try:
        return OmegaConf.to_container(OmegaConf.create(old)) == OmegaConf.to_container(OmegaConf.create(new))
    except Exception:  # noqa: BLE001 - unreadable identity text: not the same config
        return False


def _inspect(path: Path, job: JobConfig) -> tuple[str | None, str | None, np.ndarray | None]:
    """Whether ``job`` may resume the existing store at ``path``: ``(problem or None, its identity, its done flags)``.

    Refused: a store that cannot be read, one written with another config (``config_identity``) or by another
    fluxsim version (``fluxsim_version``; results may differ between versions), or one chunked differently (checked
    only once the job's chunking is known).
    """
    try:
        existing = xr.open_zarr(path, consolidated=False)
        old = existing.attrs.get("config_identity")
    except Exception as err:  # noqa: BLE001 - a broken store: report it as such
        return f"it cannot be read as a fluxsim store ({err})", None, None
    try:
        if not _same_identity(old, job.identity_yaml):
            return "it was written with a different config", old, None
        version = existing.attrs.get("fluxsim_version")
        if version != fluxsim.__version__:
            return (f"it was written by fluxsim {version}, this is fluxsim {fluxsim.__version__} (results may differ "
                    "between versions)"), None, None
        chunks = tuple(existing.attrs.get("chunk_shape", ()))
        if job.sweep.chunk_shape is not None and chunks != tuple(job.sweep.chunk_shape):
            mine = list(job.sweep.chunk_shape)
            return (f"it is chunked in blocks of {list(chunks)} points, this job in blocks of {mine} (with "
                    "sweep.chunk_size=auto, give runtime.memory_budget_gb the value the store was created with, "
                    "or set sweep.chunk_size)"), None, None
        return None, old, np.asarray(existing[DONE].values, bool)
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
    if path.exists() and not overwrite:
        problem, old, _ = _inspect(path, job)
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
    return OmegaConf.to_container(OmegaConf.create(ds.attrs["config"]))


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


def failed_points(ds: xr.Dataset) -> list[str]:
    """One line per point with a nonzero status: its position, inputs and failure bits (C order over the sweep)."""
    sweep_dims = tuple(ds.attrs.get("sweep_dims", ds["status"].dims))
    status = np.asarray(ds["status"].values)
    lines = []
    for index in zip(*np.nonzero(status > 0), strict=True):
        point = ds["status"][dict(zip(sweep_dims, index, strict=True))]

        values = {k: v.item() for k, v in point.coords.items() if v.ndim == 0}
        text = {k: f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()}
        inputs = ", ".join(t for k, t in text.items() if k not in sweep_dims)
        value = int(status[index])
        lines.append(f"{', '.join(text[d] for d in sweep_dims)}{f' ({inputs})' if inputs else ''}: "
                     f"status {value} ({status_names(value)})")
    return lines

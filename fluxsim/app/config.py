"""Validate a composed hydra config into typed, frozen objects, before any JAX work.

The command line (``fluxsim ...``) composes ``conf/config.yaml`` with hydra; :func:`load` turns the resulting
``DictConfig`` into a :class:`JobConfig`: the base inputs of :func:`fluxsim.api.make_params`, the particle's outline
(:class:`~fluxsim.study.shapes.ShapeSpec`), the protocol steps, the mesh core's
:class:`~fluxsim.core.solve.Numerics`, the sweep (one set of ``make_params`` keywords per point, its dimensions and
coordinates), the output and runtime settings. Every sweep point is checked by ``make_params`` here (per axis, not
point by point: :func:`representative_points`), so a bad value anywhere in a study of any size fails in seconds with
a message naming the parameter, the value and the allowed range, rather than after hours of compute. Points are
computed on demand (:class:`PointInputs`, :class:`PointParams`). Nothing downstream sees OmegaConf.

Config keys carry the unit-suffixed names of ``make_params`` (``surface.eta``, ``protocol.rate_mA_per_g``,
``geometry.radius_m``, ...); :data:`CONFIG_INPUTS` maps each key to its keyword.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fluxsim.api import make_params
from fluxsim.app.hydra_glue import as_plain, config_hash, dump_yaml, identity, to_container
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics
from fluxsim.io.masks import read_mask
from fluxsim.model import catalogue, checks
from fluxsim.model.checks import MIN_ARC_NODES  # noqa: F401  (re-exported: the resolution limit)
from fluxsim.model.constants import FARADAY_C_PER_MOL
from fluxsim.model.protocol import Charge, Discharge, Rest, check_protocol
from fluxsim.study.plan import block_shape
from fluxsim.study.shapes import ShapeSpec, check_shape
from fluxsim.study.shapes import check_value as check_shape_value
from fluxsim.study.spec import (  # noqa: F401  (re-exported: the typed job)
    POINT_DIM,
    ConfigError,
    JobConfig,
    OutputSpec,
    PointInputs,
    PointParams,
    RuntimeSpec,
    SweepSpec,
    parse_shard,
)

#: Scalar inputs of ``make_params`` (sweepable) -> (UDUNITS unit, long name): the catalogue's.
INPUTS: dict[str, tuple[str, str]] = {n: (catalogue.INPUTS[n].unit, catalogue.INPUTS[n].long_name)
                                      for n in catalogue.SWEEPABLE}

#: Config key (group.key) -> make_params keyword, for every physical input: the catalogue's.
CONFIG_INPUTS: dict[str, str] = catalogue.BY_CONFIG_KEY

#: The default outline's shape inputs.
DISK_SHAPE = ShapeSpec()

#: Shape inputs that can be swept (``geometry.aspect``, ``geometry.orientation_rad``) -> (unit, long name).
SHAPE_INPUTS: dict[str, tuple[str, str]] = {n: (catalogue.SHAPE_INPUTS[n].unit, catalogue.SHAPE_INPUTS[n].long_name)
                                            for n in catalogue.SHAPE_SWEEPABLE}

#: The inputs of each D law, of the low-theta dip and of surface model B (an input of another law / model is refused).
_LAW_INPUTS = {law: set(catalogue.applying_to(f"diffusivity {law}")) for law in catalogue.DIFFUSIVITY_LAWS}
_DIP_INPUTS = set(catalogue.applying_to(catalogue.DIP))
_MODEL_B_INPUTS = set(catalogue.applying_to(catalogue.MODEL_B))
_ALL_LAW_INPUTS = set().union(*_LAW_INPUTS.values())


# ---------------------------------------------------------------------------------------------------------------
# Typed configuration
# ---------------------------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------
def _get(container: Mapping, path: str, default=KeyError):
    node: Any = container
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is KeyError:
                raise ConfigError(f"missing config key {path!r}")
            return default
        node = node[part]
    return node


def _number(path: str, value, *, integer=False, allow_inf=False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{path} = {value!r} must be {kind}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{path} = {value!r} must be an integer")
        return int(value)
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ConfigError(f"{path} = {value!r} must be finite")
    return value


def _bool(path: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path} = {value!r} must be true or false")
    return value


# ---------------------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------------------
def _base_inputs(cfg: Mapping, radius_m: float | None = None) -> dict:
    """``make_params`` keywords from the groups; keys the chosen D law / surface model lacks are left out.

    ``radius_m``: the equivalent radius a mask with a pixel size fixes (``geometry.radius_m`` is null then).
    """
    missing = object()
    inputs = {}
    for path, name in CONFIG_INPUTS.items():
        value = _get(cfg, path, default=missing)
        if name == "radius_m" and radius_m is not None:
            value = radius_m
        if value is missing:
            if path.startswith(("diffusivity.", "surface.")) and path not in ("diffusivity.law", "surface.model"):
                continue
            raise ConfigError(f"missing config key {path!r}")
        if name in INPUTS:
            if value is None:
                if name == "theta0":
                    continue  # the surface model's default
                raise ConfigError(f"{path} must be a number, got null")
            # checked below by make_params against the input's range (NaN, inf and text included)
        elif name == "low_theta_dip":
            value = _bool(path, value)
        elif name == "extra_arcs":
            if value:
                rows = np.asarray(value, dtype=object)
                if rows.ndim != 2 or rows.shape[1] != 3:
                    raise ConfigError(f"{path} must be a list of [center_rad, fraction, eta] rows, got {value!r}")
                value = [[_number(f"{path}[{i}][{j}]", x) for j, x in enumerate(row)] for i, row in enumerate(value)]
            else:
                value = None
        elif name in ("eta_profile", "table_theta", "table_D_m2_per_s"):
            if value is not None:
                if not isinstance(value, list):
                    raise ConfigError(f"{path} must be a list of numbers or null, got {value!r}")
                value = [_number(f"{path}[{i}]", x) for i, x in enumerate(value)]
        elif not isinstance(value, str):
            raise ConfigError(f"{path} = {value!r} must be a string")
        elif name == "diffusivity" and value not in _LAW_INPUTS:
            raise ConfigError(f"{path} = {value!r} is not a known D law; allowed: {', '.join(_LAW_INPUTS)}")
        inputs[name] = value
    try:
        make_params(**inputs)
    except checks.InputError as err:
        raise ConfigError(err.renamed(CONFIG_KEYS.get(err.name, err.name))) from None
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None
    return {k: float(v) if k in INPUTS else v for k, v in inputs.items()}


#: make_params keyword -> config key (messages about the groups' values name the key the user typed).
CONFIG_KEYS: dict[str, str] = {name: path for path, name in CONFIG_INPUTS.items()}


def _protocol(cfg: Mapping) -> tuple:
    steps = _get(cfg, "protocol.steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigError("protocol.steps must be a non-empty list of steps (kind: charge | rest | discharge)")
    allowed = {
        "charge": ("rate_mA_per_g", "max_duration_s", "until_cutoff", "n_steps"),
        "discharge": ("rate_mA_per_g", "max_duration_s", "until_cutoff", "n_steps"),
        "rest": ("duration_s", "n_steps"),
    }
    out = []
    for i, step in enumerate(steps):
        where = f"protocol.steps[{i}]"
        if not isinstance(step, Mapping) or step.get("kind") not in allowed:
            raise ConfigError(f"{where} needs kind: charge, rest or discharge (got {step!r})")
        kind = step["kind"]
        unknown = set(step) - {"kind", *allowed[kind]}
        if unknown:
            raise ConfigError(f"{where} ({kind}) has unknown keys {sorted(unknown)}; allowed: {allowed[kind]}")
        kw = {}
        n_steps = step.get("n_steps")
        if n_steps is not None:
            kw["n_steps"] = _number(f"{where}.n_steps", n_steps, integer=True)
        if kind == "rest":
            if step.get("duration_s") is None:
                raise ConfigError(f"{where} (rest) needs duration_s [s]")
            out.append(Rest(duration_s=_number(f"{where}.duration_s", step["duration_s"]), **kw))
            continue
        if step.get("rate_mA_per_g") is not None:
            try:
                kw["rate_mA_per_g"] = checks.check_range(f"{where}.rate_mA_per_g", step["rate_mA_per_g"], 0,
                                                         lo_open=True, unit=catalogue.INPUTS["rate_mA_per_g"].unit)
            except checks.InputError as err:
                raise ConfigError(str(err)) from None
        if step.get("max_duration_s") is not None:
            kw["max_duration_s"] = _number(f"{where}.max_duration_s", step["max_duration_s"], allow_inf=True)
        if step.get("until_cutoff") is not None:
            kw["until_cutoff"] = _bool(f"{where}.until_cutoff", step["until_cutoff"])
        out.append((Charge if kind == "charge" else Discharge)(**kw))
    try:
        return check_protocol(out)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None


#: Keys of the ``numerics`` group: the mesh core's :class:`~fluxsim.core.solve.Numerics` fields and, flat, those of
#: its :class:`~fluxsim.core.rkl.RKLSettings` integrator (their defaults and ranges are the core's own).
NUMERICS_KEYS = ("spacing", "line_cut_samples", "dtype")
INTEGRATOR_KEYS = ("rtol", "atol", "max_steps", "max_stages")


def _numerics(cfg: Mapping, base: Mapping, sweep: SweepSpec | None = None) -> Numerics:
    """The mesh core's numerics from the flat ``numerics`` keys; ``integer_exponent`` is set when every point of the
    sweep has the power law with the same integer exponent (the faster, same-valued Kirchhoff potential)."""
    section = dict(_get(cfg, "numerics"))
    unknown = set(section) - {*NUMERICS_KEYS, *INTEGRATOR_KEYS}
    if unknown:
        raise ConfigError(f"numerics has unknown keys {sorted(unknown)}; allowed: "
                          f"{', '.join((*NUMERICS_KEYS, *INTEGRATOR_KEYS))}")
    try:
        for key in ("max_steps", "max_stages", "line_cut_samples"):
            if key in section:
                section[key] = checks.real(f"numerics.{key}", section[key], integer=True)
        for key in ("spacing", "rtol", "atol"):
            if key in section:
                section[key] = checks.real(f"numerics.{key}", section[key])
    except checks.InputError as err:
        raise ConfigError(str(err)) from None
    integrator = {k: section.pop(k) for k in INTEGRATOR_KEYS if k in section}
    try:
        settings = RKLSettings(**integrator)
        numerics = Numerics(integrator=settings, integer_exponent=_integer_exponent(base, sweep), **section)
    except ValueError as err:
        raise ConfigError(f"numerics.{err}") from None
    return numerics


def _integer_exponent(base: Mapping, sweep: SweepSpec | None) -> int | None:
    """The power law's exponent when it is the same integer at every point (else None)."""
    if base.get("diffusivity", "power_law") != "power_law" or base.get("low_theta_dip", False) or sweep is None:
        return None
    values = np.unique(_values_of(sweep, "exponent"))
    values = values[~np.isnan(values)]
    if len(values) == 0:
        values = np.asarray([float(base.get("exponent", catalogue.default("exponent")))])
    if len(values) == 1 and float(values[0]).is_integer() and values[0] >= 1:
        return int(values[0])
    return None


def _values(path: str, spec) -> np.ndarray:
    """Grid values from a list or from ``{start, stop, num, log}``."""
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"start", "stop", "num", "log"}
        if unknown or not {"start", "stop", "num"} <= set(spec):
            raise ConfigError(f"{path} must be a list of values or {{start, stop, num[, log]}}, got {dict(spec)}")
        start, stop = _number(f"{path}.start", spec["start"]), _number(f"{path}.stop", spec["stop"])
        num = _number(f"{path}.num", spec["num"], integer=True)
        if num < 1:
            raise ConfigError(f"{path}.num = {num} gives a sweep with no points: it must be >= 1")
        if spec.get("log", False):
            if not (start > 0 and stop > 0):
                raise ConfigError(f"{path}: a log-spaced range needs start > 0 and stop > 0")
            values = np.geomspace(start, stop, num)
        else:
            values = np.linspace(start, stop, num)
    elif isinstance(spec, list) and not spec:
        raise ConfigError(f"{path} = [] gives a sweep with no points: give at least one value")
    elif not isinstance(spec, list):
        raise ConfigError(f"{path} must be a non-empty list of numbers or {{start, stop, num[, log]}}")
    else:
        values = np.array([_number(f"{path}[{i}]", v, allow_inf=True) for i, v in enumerate(spec)])
    if len(np.unique(values)) != len(values):
        raise ConfigError(f"{path} has repeated values {[float(v) for v in values]}: a dimension coordinate must be "
                          "unique")
    return values


def _check_sweepable(path: str, name: str, base: Mapping, protocol, shape: ShapeSpec = DISK_SHAPE) -> None:
    if name in SHAPE_INPUTS:
        if shape.outline != "ellipse":
            raise ConfigError(f"{path}: {name} has no effect with geometry.outline = {shape.outline} (it is an input "
                              "of the ellipse outline: geometry=ellipse or geometry.outline=ellipse)")
        return
    if name == "radius_m" and shape.pixel_size_m is not None:
        raise ConfigError(f"{path}: radius_m cannot be swept while geometry.pixel_size_m = {shape.pixel_size_m:g} m "
                          "fixes it from the mask (set geometry.pixel_size_m=null to scale the mask's shape)")
    if name not in INPUTS:
        raise ConfigError(
            f"{path}: {name!r} cannot be swept. Sweepable inputs (scalar keywords of fluxsim.api.make_params and "
            f"the ellipse's shape): {', '.join((*INPUTS, *SHAPE_INPUTS))}. Structural choices (resolution, D law, "
            "surface model, outline kind) vary across hydra multirun jobs (-m) instead."
        )
    law = base.get("diffusivity", "power_law")
    model = base.get("surface_model", "A")
    if name in _ALL_LAW_INPUTS and name not in _LAW_INPUTS.get(law, set()):
        raise ConfigError(f"{path}: {name} has no effect with diffusivity law {law!r}")
    if name in _DIP_INPUTS and not base.get("low_theta_dip", False):
        raise ConfigError(f"{path}: {name} has no effect without the low-theta dip (diffusivity.low_theta_dip)")
    if name in _MODEL_B_INPUTS and model != "B":
        raise ConfigError(f"{path}: {name} has no effect with surface model {model!r} (use surface=model_b)")
    if name == "rate_mA_per_g" and all(s.kind == "rest" or s.rate_mA_per_g is not None for s in protocol):
        raise ConfigError(f"{path}: rate_mA_per_g has no effect: every protocol step sets its own rate")


def _check_shape_values(path: str, name: str, values) -> None:
    """Swept shape values lie in their catalogue range (``geometry.aspect`` in [1, 20], ...)."""
    for value in np.atleast_1d(values):
        check_shape_value(path, name, float(value))


def _sweep(cfg: Mapping, base: Mapping, protocol, shape: ShapeSpec = DISK_SHAPE) -> SweepSpec:
    section = _get(cfg, "sweep")
    unknown = set(section) - {"name", "grid", "points", "chunk_size", "shard"}
    if unknown:
        raise ConfigError(f"sweep has unknown keys {sorted(unknown)}; allowed: name, grid, points, chunk_size, shard")
    name = section.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"sweep.name = {name!r} must be a non-empty string without '/'")
    chunk_size = section.get("chunk_size", 1)
    if chunk_size != "auto":
        chunk_size = _number("sweep.chunk_size", chunk_size, integer=True)
        if chunk_size < 1:
            raise ConfigError(f"sweep.chunk_size = {chunk_size} must be >= 1 (or auto)")
    shard = parse_shard(section.get("shard"))
    grid = section.get("grid") or {}
    points = section.get("points") or []
    if not isinstance(grid, Mapping):
        raise ConfigError("sweep.grid must be a mapping {input: [values]}")
    if not isinstance(points, list):
        raise ConfigError("sweep.points must be a list of mappings {input: value, label: text}")

    dims, coords = [], {}
    for key, spec in grid.items():
        _check_sweepable(f"sweep.grid.{key}", key, base, protocol, shape)
        dims.append(key)
        coords[key] = _values(f"sweep.grid.{key}", spec)
        if key in SHAPE_INPUTS:
            _check_shape_values(f"sweep.grid.{key}", key, coords[key])

    point_inputs: list[dict] = []
    labels: list[str] = []
    seen: dict[tuple, int] = {}
    for i, point in enumerate(points):
        if not isinstance(point, Mapping):
            raise ConfigError(f"sweep.points[{i}] must be a mapping {{input: value}}, got {point!r}")
        inputs = {}
        for key, value in point.items():
            if key == "label":
                labels.append(str(value))
                continue
            _check_sweepable(f"sweep.points[{i}].{key}", key, base, protocol, shape)
            if key in coords:
                raise ConfigError(f"sweep: {key!r} is both a grid dimension and set by sweep.points[{i}]")
            inputs[key] = _number(f"sweep.points[{i}].{key}", value, allow_inf=True)
            if key in SHAPE_INPUTS:
                _check_shape_values(f"sweep.points[{i}].{key}", key, inputs[key])
        if "label" not in point:
            labels.append(f"point {i}")
        key = tuple(sorted((k, v) for k, v in inputs.items()
                           if base.get(k, getattr(shape, k, None)) != v))  # the point as it differs
        if key in seen:
            j = seen[key]
            raise ConfigError(f"sweep.points[{i}] repeats sweep.points[{j}] ({point_inputs[j]}): every point of a "
                              "sweep must differ (repeated values)")
        seen[key] = i
        point_inputs.append(inputs)

    point_coords: dict[str, np.ndarray] = {}
    if point_inputs or not dims:
        point_inputs = point_inputs or [{}]
        dims.insert(0, POINT_DIM)
        coords = {POINT_DIM: np.arange(len(point_inputs)), **coords}
        keys = list(dict.fromkeys(k for p in point_inputs for k in p))
        for key in keys:
            default = base.get(key, getattr(shape, key, np.nan))
            point_coords[key] = np.array([float(p.get(key, default)) for p in point_inputs])
        if points:
            point_coords["label"] = np.array(labels, dtype=str)

    inputs = PointInputs(base, tuple(dims), coords, tuple(point_inputs))
    return SweepSpec(
        name=name,
        dims=tuple(dims),
        shape=inputs.shape,
        coords=coords,
        point_coords=point_coords,
        inputs=inputs,
        chunk_shape=None if chunk_size == "auto" else block_shape(inputs.shape, chunk_size),
        chunk_size=None if chunk_size == "auto" else chunk_size,
        shard=shard,
    )


def _max_duration_s(inputs: Mapping, protocol):
    """Upper bound on a point's protocol duration [s] (a charge cannot outlast its mean reaching theta_cut).

    Elementwise: ``inputs`` may hold arrays that broadcast against each other (:func:`_broadcast_inputs`), which
    bounds every point of a grid at once.
    """
    def given(name):
        return inputs.get(name, catalogue.default(name))

    q_th = FARADAY_C_PER_MOL / (3.6 * np.asarray(given("molar_mass_g_per_mol"), float))
    theta0 = np.asarray(given("theta0"), float)
    theta_cut, theta_upper = given("theta_cut"), given("theta_upper")
    total = 0.0
    for step in protocol:
        if step.kind == "rest":
            total = total + step.duration_s
            continue
        rate = step.rate_mA_per_g or given("rate_mA_per_g")
        span = (np.maximum(theta0, theta_upper) - theta_cut) if step.kind == "charge" else (theta_upper - theta_cut)
        bound = span * 3600.0 * q_th / rate if step.until_cutoff else math.inf
        total = total + np.minimum(step.max_duration_s, bound)
    return total


def _broadcast_inputs(sweep: SweepSpec) -> dict[str, Any]:
    """The base inputs, with each swept input as an array that broadcasts over ``sweep.shape`` (size 1 along the
    dimensions it does not vary on), so a function of the inputs evaluates a whole grid without a loop per point."""
    inputs = sweep.inputs
    out: dict[str, Any] = {k: v for k, v in inputs.base.items() if v is not None}
    for axis, d in enumerate(sweep.dims):
        view = [1] * len(sweep.dims)
        view[axis] = sweep.shape[axis]
        if d != POINT_DIM:
            out[d] = np.asarray(sweep.coords[d], float).reshape(view)
            continue
        for key in dict.fromkeys(k for p in inputs.points for k in p):
            values = [p.get(key, inputs.base.get(key, np.nan)) for p in inputs.points]
            out[key] = np.asarray(values, float).reshape(view)
    return out


def _output(cfg: Mapping, sweep: SweepSpec, protocol) -> OutputSpec:
    section = _get(cfg, "output")
    times = section.get("times_s")
    if not isinstance(times, Mapping) or set(times) - {"start", "stop", "step"}:
        raise ConfigError("output.times_s must be {start, stop, step} [s] (stop null: the longest run)")
    start = _number("output.times_s.start", times.get("start", 0.0))
    step = _number("output.times_s.step", times.get("step"))
    if start < 0 or not step > 0:
        raise ConfigError(f"output.times_s needs start >= 0 and step > 0, got start={start}, step={step}")
    stop = times.get("stop")
    if stop is None:
        longest = float(np.max(_max_duration_s(_broadcast_inputs(sweep), protocol)))
        n = int(math.ceil((longest - start) / step - 1e-9)) + 1
    else:
        stop = _number("output.times_s.stop", stop)
        if stop < start:
            raise ConfigError(f"output.times_s.stop = {stop} must be >= start = {start}")
        n = int(math.floor((stop - start) / step + 1e-9)) + 1
    if n > 100_000:
        raise ConfigError(f"output.times_s gives {n} times: increase step or set stop")
    snapshot_times = section.get("snapshot_times_s") or []
    if not isinstance(snapshot_times, list):
        raise ConfigError("output.snapshot_times_s must be a list of times [s]")
    snaps = tuple(_number(f"output.snapshot_times_s[{i}]", t) for i, t in enumerate(snapshot_times))
    if any(t < 0 for t in snaps) or len(set(snaps)) != len(snaps):
        raise ConfigError(f"output.snapshot_times_s = {list(snaps)} must be distinct times >= 0 s")
    levels = section.get("core_fraction_levels") or []
    levels = tuple(_number(f"output.core_fraction_levels[{i}]", v) for i, v in enumerate(levels))
    if any(not 0 < v < 1 for v in levels):
        raise ConfigError(f"output.core_fraction_levels = {list(levels)} must lie in (0, 1)")
    zarr_format = _number("output.zarr_format", section.get("zarr_format", 3), integer=True)
    if zarr_format not in (2, 3):
        raise ConfigError(f"output.zarr_format = {zarr_format} must be 2 or 3")
    store = section.get("store")
    if store is not None and not isinstance(store, str):
        raise ConfigError(f"output.store = {store!r} must be a path or null")
    return OutputSpec(
        times_s=start + step * np.arange(n),
        snapshot_times_s=snaps,
        line_cut=_bool("output.line_cut", section.get("line_cut", False)),
        core_fraction_levels=levels,
        store=store,
        zarr_format=zarr_format,
        plots=_bool("output.plots", section.get("plots", True)),
        overwrite=_bool("output.overwrite", section.get("overwrite", False)),
    )


def _runtime(cfg: Mapping) -> RuntimeSpec:
    section = _get(cfg, "runtime", default={}) or {}
    devices = section.get("devices")
    if devices is not None:
        devices = _number("runtime.devices", devices, integer=True)
        if devices < 1:
            raise ConfigError(f"runtime.devices = {devices} must be >= 1 (or null: all)")
    platform = section.get("platform")
    cache = section.get("compilation_cache_dir")
    budget = section.get("memory_budget_gb")
    if budget is not None:
        budget = _number("runtime.memory_budget_gb", budget)
        if not budget > 0:
            raise ConfigError(f"runtime.memory_budget_gb = {budget} must be > 0 (or null: the device's memory)")
    return RuntimeSpec(
        progress=_bool("runtime.progress", section.get("progress", True)),
        devices=devices,
        platform=None if platform is None else str(platform),
        compilation_cache_dir=None if cache is None else str(cache),
        memory_budget_gb=budget,
    )


def runtime_spec(cfg) -> RuntimeSpec:
    """Only the ``runtime`` section, validated: what must be applied before JAX starts (``runtime.platform``)."""
    section = as_plain(cfg["runtime"]) if isinstance(cfg, DictConfig) and "runtime" in cfg else None
    return _runtime({"runtime": section} if section is not None else to_container(cfg))


def load(cfg) -> JobConfig:
    """Validate a composed config (``DictConfig`` or plain mapping) into a :class:`JobConfig`.

    Every sweep point is checked by :func:`fluxsim.api.make_params` before any compute, per axis rather than point
    by point (:func:`representative_points`), so a grid of a million points validates in well under a second and
    no point's ``Params`` is kept (``JobConfig.params`` builds them on demand).

    Raises:
        ConfigError: naming the offending key, its value and what is allowed.
    """
    container = to_container(cfg)
    shape, mask_radius_m = check_shape(_get(container, "geometry"), read_mask)
    base = _base_inputs(container, mask_radius_m)
    protocol = _protocol(container)
    _numerics(container, base)  # its keys, before the sweep's
    sweep = _sweep(container, base, protocol, shape)
    numerics = _numerics(container, base, sweep)
    try:  # the groups' own values, even where the sweep replaces them (a typo there is still a typo)
        make_params(**base)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None
    for i in representative_points(sweep):
        try:
            make_params(**sweep.inputs[i])
        except (ValueError, TypeError) as err:
            where = "" if sweep.size == 1 else f"sweep point {i} ({_describe(sweep, i)}): "
            raise ConfigError(f"{where}{err}") from None
    check_resolution(numerics, protocol, sweep)
    output = _output(container, sweep, protocol)
    runtime = _runtime(container)
    if sweep.shard is not None and output.overwrite:
        raise ConfigError(
            "output.overwrite=true cannot be combined with sweep.shard: one shard would delete the store the others "
            "are writing. Delete the store once, then start the shards."
        )
    ident = identity(container)
    return JobConfig(
        base_inputs=base,
        params=PointParams(sweep.inputs),
        protocol=protocol,
        numerics=numerics,
        sweep=sweep,
        output=output,
        runtime=runtime,
        config_yaml=dump_yaml(container),
        identity_yaml=dump_yaml(ident),
        config_hash=config_hash(container),
        shape=shape,
    )


def _values_of(sweep: SweepSpec, name: str) -> np.ndarray:
    """Every value ``name`` takes across the sweep's points (grid coordinate, point coordinate or base value)."""
    if name in sweep.coords:
        return np.asarray(sweep.coords[name], float)
    if name in sweep.point_coords:
        return np.asarray(sweep.point_coords[name], float)
    return np.asarray([sweep.inputs.base.get(name, np.nan)], float)


def ineffective_sweeps(job: JobConfig) -> list[str]:
    """Warnings for swept inputs that cannot change any result of this study (one line each, naming the input).

    ``eta`` is the flux ratio on the primary blocked arc: with ``blocked_fraction = 0`` at every point there is no
    such arc, so every value of eta gives the same results (``extra_arcs`` carry their own eta).
    """
    sweep = job.sweep
    found = []
    if "eta" in sweep.swept and not np.any(_values_of(sweep, "blocked_fraction") > 0):
        where = "sweep.grid.eta" if "eta" in sweep.coords else "sweep.points[*].eta"
        found.append(f"{where} has no effect: blocked_fraction = 0 at every point, so there is no blocked arc for "
                     "eta (its flux ratio) to act on and every eta gives identical results; set "
                     "surface.blocked_fraction > 0 (or sweep it too)")
    return found


def representative_points(sweep: SweepSpec) -> list[int]:
    """Flat indices of the sweep points whose validation validates every point (ascending, no repeats).

    * every explicit point (``sweep.points``), and the smallest and largest value of every grid dimension, the
      other dimensions at their first index;
    * for every pair of dimensions, the corners of their extremes (every explicit point against both extremes of a
      grid dimension), the other dimensions at their first index.

    This is exact because every check of :func:`fluxsim.api.make_params` allows an interval of each input (so the
    extremes of an axis bound all its values), and each check that involves more than one input involves two
    sweepable inputs, monotonically (``theta0 > theta_cut``; an active surface: ``blocked_fraction < 1`` or
    ``eta > 0``), so a violation anywhere in the grid shows at a corner of those two dimensions
    (``tests/study/test_planning.py`` compares with point-by-point validation). At most
    ``points + 2 x dims + 4 x pairs`` calls instead of ``prod(shape)``.
    """
    shape, dims = sweep.shape, sweep.dims

    def extremes(axis: int) -> list[int]:
        if dims[axis] == POINT_DIM:
            return list(range(shape[axis]))
        values = sweep.coords[dims[axis]]
        return sorted({int(np.argmin(values)), int(np.argmax(values))})

    def flat(index: dict[int, int]) -> int:
        full = [0] * len(shape)
        for axis, i in index.items():
            full[axis] = i
        return int(np.ravel_multi_index(full, shape))

    found = {flat({a: i}) for a in range(len(shape)) for i in extremes(a)}
    for a in range(len(shape)):
        for b in range(a + 1, len(shape)):
            found.update(flat({a: i, b: j}) for i in extremes(a) for j in extremes(b))
    return sorted(found)


def _axis_points(sweep: SweepSpec) -> Iterator[int]:
    """Flat indices of every value of every dimension, the other dimensions at their first index."""
    for axis, n in enumerate(sweep.shape):
        for i in range(n):
            index = [0] * len(sweep.shape)
            index[axis] = i
            yield int(np.ravel_multi_index(index, sweep.shape))


def check_resolution(numerics: Numerics, protocol, sweep: SweepSpec) -> None:
    """Refuse a mesh spacing too coarse for any point of the sweep (:func:`fluxsim.model.checks.check_rim_resolution`).

    No mesh is built: the rim of any outline meshed at ``numerics.spacing`` (units of the equivalent radius) has at
    least ``2 pi / spacing`` nodes, since the disk has the shortest perimeter of all outlines of its area.

    Raises:
        ConfigError: naming ``numerics.spacing``, its value, the input it cannot resolve and what would do.
    """
    describe = None if sweep.size == 1 else (lambda i: _describe(sweep, i))
    points = list(_axis_points(sweep))  # each arc depends on one input: its own axis covers the grid
    n_rim = math.floor(2 * math.pi / numerics.spacing)
    try:
        checks.check_rim_resolution(n_rim, (sweep.inputs[i] for i in points), spacing=numerics.spacing,
                                    describe=describe, indices=points)
    except checks.InputError as err:
        raise ConfigError(str(err)) from None


def _describe(sweep: SweepSpec, flat: int) -> str:
    index = np.unravel_index(flat, sweep.shape)
    parts = []
    for d, i in zip(sweep.dims, index, strict=True):
        if d == POINT_DIM:
            parts.extend(f"{k}={v[i]}" for k, v in sweep.point_coords.items())
        else:
            parts.append(f"{d}={sweep.coords[d][i]:g}")
    return ", ".join(parts)



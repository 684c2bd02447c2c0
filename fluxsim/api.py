"""Notebook entry point: physical keyword arguments in, a :class:`Result` out.

    >>> import fluxsim
    >>> result = fluxsim.run(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=100, snapshot_times_s=[300, 600])
    >>> result.capacity_at_cutoff_mAh_per_g, result.offset_at(600.0)
    >>> fluxsim.run(outline=fluxsim.Ellipse(aspect=1.8), eta=0.3, blocked_fraction=0.25)  # any outline

The outline is meshed once per shape and spacing (cached), and the mesh core (:mod:`fluxsim.core.solve`) runs on it.

For gradients, build the parameter pytree once with :func:`make_params`, vary inputs with :func:`replace` (no
validation, traceable), and differentiate :func:`fluxsim.simulate` composed with the functions of
:mod:`fluxsim.core.outputs`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import NamedTuple

import jax
import numpy as np

from fluxsim.core import outputs, raster
from fluxsim.core.mesh import DISK, TriMesh, mesh_outline
from fluxsim.core.outline import Curve, Disk, Ellipse, Polygon
from fluxsim.core.solve import HORIZON_MARGIN, Numerics, Solution, simulate, with_integer_exponent
from fluxsim.model.catalogue import DEFAULTS as _D
from fluxsim.model.catalogue import DIFFUSIVITY_LAWS, FLUX_NORMALISATIONS, INPUTS, SURFACE_MODELS, THETA0_MODEL_B
from fluxsim.model.checks import InputError, UnknownInputError, check_names, check_rim_resolution, numbers
from fluxsim.model.checks import check_range as _check_range
from fluxsim.model.constants import Material
from fluxsim.model.diffusivity import ConstantDiffusivity, LowThetaDip, ModifiedLaw, PowerLaw, TabulatedDiffusivity
from fluxsim.model.params import Params
from fluxsim.model.protocol import Charge, check_protocol
from fluxsim.model.surface import FilmResistance, FluxRatio, make_blocking
from fluxsim.precision import enable_float64

__all__ = ["OUTLINES", "THETA0_MODEL_B", "FieldOnGrid", "Result", "default_save_times", "make_diffusivity",
           "make_params", "replace", "run"]


def _check(name: str, value, surface_model: str = "A", **bounds):
    """Check ``value`` against the catalogue's range of input ``name`` (``bounds``: inputs a range bound names)."""
    entry = INPUTS[name]
    rng = entry.range_for(surface_model)
    lo, hi = (bounds[b] if isinstance(b, str) else b for b in (rng.lo, rng.hi))
    if rng.inf_allowed and hi is None:
        hi = math.inf
    unit = "" if entry.unit == "1" else entry.unit
    return _check_range(name, value, lo, hi, rng.lo_open, rng.hi_open, unit=unit)


def make_diffusivity(
    law=_D["diffusivity"],
    *,
    D_hi_m2_per_s=_D["D_hi_m2_per_s"],
    theta_ref=_D["theta_ref"],
    exponent=_D["exponent"],
    D_floor_m2_per_s=_D["D_floor_m2_per_s"],
    D_m2_per_s=_D["D_m2_per_s"],
    table_theta=None,
    table_D_m2_per_s=None,
    low_theta_dip=_D["low_theta_dip"],
    D_low_m2_per_s=_D["D_low_m2_per_s"],
    theta_dip=_D["theta_dip"],
    dip_width=_D["dip_width"],
):
    """Build a D(theta) law (see :mod:`fluxsim.model.diffusivity`) from physical inputs, with checks."""
    if law == "power_law":
        _check("D_hi_m2_per_s", D_hi_m2_per_s)
        _check("theta_ref", theta_ref)
        _check("exponent", exponent)
        _check("D_floor_m2_per_s", D_floor_m2_per_s)
        base = PowerLaw(D_hi_m2_per_s, theta_ref, exponent, D_floor_m2_per_s)
    elif law == "constant":
        _check("D_m2_per_s", D_m2_per_s)
        base = ConstantDiffusivity(D_m2_per_s)
    elif law == "tabulated":
        if table_theta is None or table_D_m2_per_s is None:
            raise ValueError("the tabulated D law needs table_theta and table_D_m2_per_s")
        th = numbers("table_theta", table_theta)
        d = numbers("table_D_m2_per_s", table_D_m2_per_s)
        if th.ndim != 1 or th.shape != d.shape or th.size < 2:
            raise ValueError("table_theta and table_D_m2_per_s must be 1-D of equal length >= 2")
        if not np.all(np.isfinite(th)):
            raise ValueError(f"table_theta = {th.tolist()} must be finite")
        if np.any(np.diff(th) <= 0):
            k = int(np.argmax(np.diff(th) <= 0)) + 1
            raise ValueError(f"table_theta = {th.tolist()} must be strictly increasing (entry {k}: {float(th[k])!r} <= "
                             f"{float(th[k - 1])!r})")
        if th[0] < 0 or th[-1] > 1:
            raise ValueError(f"table_theta = {th.tolist()} is outside the allowed range [0, 1] (it spans "
                             f"[{float(th[0])!r}, {float(th[-1])!r}])")
        bad = ~(d > 0) | ~np.isfinite(d)
        if np.any(bad):
            k = int(np.argmax(bad))
            raise ValueError(f"table_D_m2_per_s = {d.tolist()} must be finite and > 0 m2/s everywhere (entry {k}: "
                             f"{float(d[k])!r} is outside the allowed range (0, inf))")
        base = TabulatedDiffusivity(th, d)
    else:
        raise ValueError(f"unknown diffusivity law {law!r}; allowed: {', '.join(map(repr, DIFFUSIVITY_LAWS))}")
    if low_theta_dip:
        _check("D_low_m2_per_s", D_low_m2_per_s)
        _check("theta_dip", theta_dip)
        _check("dip_width", dip_width)
        return LowThetaDip(base, D_low_m2_per_s, theta_dip, dip_width)
    return base


def make_params(
    *,
    radius_m=_D["radius_m"],
    rate_mA_per_g=_D["rate_mA_per_g"],
    eta=_D["eta"],
    blocked_fraction=_D["blocked_fraction"],
    arc_center_rad=_D["arc_center_rad"],
    extra_arcs=None,
    eta_profile=None,
    surface_model=_D["surface_model"],
    flux_normalisation=_D["flux_normalisation"],
    r_NMC_ohm_m2=_D["r_NMC_ohm_m2"],
    U0_V=_D["U0_V"],
    k_V=_D["k_V"],
    temperature_K=_D["temperature_K"],
    voltage_cut_V=_D["voltage_cut_V"],
    theta0=None,
    theta_cut=_D["theta_cut"],
    theta_upper=_D["theta_upper"],
    theta_core=_D["theta_core"],
    core_smoothing=_D["core_smoothing"],
    molar_mass_g_per_mol=_D["molar_mass_g_per_mol"],
    density_kg_per_m3=_D["density_kg_per_m3"],
    **diffusivity,
) -> Params:
    """Build :class:`~fluxsim.model.params.Params` from physical keyword arguments (units in the names).

    Every input is checked against its allowed range before any compute (``ValueError`` naming the parameter).
    The README's input table documents every argument, its unit, default and range; ``diffusivity`` keywords are
    those of :func:`make_diffusivity` (``diffusivity="power_law"``, ``D_hi_m2_per_s=...``, ...).
    """
    check_names(diffusivity, _DIFFUSIVITY_NAMES, "fluxsim.make_params", MAKE_PARAMS_NAMES)
    _check("radius_m", radius_m)
    _check("rate_mA_per_g", rate_mA_per_g)
    if surface_model not in SURFACE_MODELS:
        raise ValueError(f"surface_model must be 'A' (flux ratio) or 'B' (film resistance), got {surface_model!r}")
    _check("eta", eta, surface_model)
    _check("blocked_fraction", blocked_fraction)
    _check("arc_center_rad", arc_center_rad)
    arcs = [(float(blocked_fraction), float(eta))]
    if extra_arcs is not None:
        extra_arcs = numbers("extra_arcs", extra_arcs)
        if extra_arcs.shape != (3,) and (extra_arcs.ndim != 2 or extra_arcs.shape[1] != 3):
            raise InputError("extra_arcs", f" = {extra_arcs.tolist()} must be rows of [center_rad, fraction, eta]")
        extra_arcs = extra_arcs.reshape(-1, 3)
        for k, (_, frac, eta_k) in enumerate(extra_arcs):
            _check_range(f"extra_arcs[{k}] fraction", frac, 0, 1)
            _check_range(f"extra_arcs[{k}] eta", eta_k, 0, 1 if surface_model == "A" else None)
            arcs.append((float(frac), float(eta_k)))
        if float(blocked_fraction) + extra_arcs[:, 1].sum() > 1:
            raise ValueError("the blocked arcs cover more than the whole perimeter (fractions sum > 1)")
    open_fraction = 1.0 - sum(f for f, _ in arcs)
    if open_fraction <= 0 and all(f == 0 or e == 0 for f, e in arcs):
        raise ValueError(
            f"no active surface: blocked_fraction = {float(blocked_fraction)!r} with eta = {float(eta)!r} lets no Li "
            "out (allowed: eta > 0 or blocked_fraction < 1)"
        )
    if eta_profile is not None:
        eta_profile = numbers("eta_profile", eta_profile)
        if eta_profile.ndim != 1 or eta_profile.size < 2 or np.any(eta_profile < 0) or not eta_profile.any():
            raise ValueError("eta_profile must be 1-D, >= 2 samples, all >= 0 and not all zero")
    theta0 = INPUTS["theta0"].default_for(surface_model) if theta0 is None else theta0
    _check("theta_cut", theta_cut)
    _check("theta0", theta0, theta_cut=theta_cut)  # model A's closed range; model B's open end: below
    _check("theta_upper", theta_upper)
    _check("theta_core", theta_core)
    _check("core_smoothing", core_smoothing)
    _check("molar_mass_g_per_mol", molar_mass_g_per_mol)
    _check("density_kg_per_m3", density_kg_per_m3)
    if surface_model == "A":
        if flux_normalisation not in FLUX_NORMALISATIONS:
            raise ValueError(
                f"flux_normalisation must be 'total_current' or 'open_surface', got {flux_normalisation!r}"
            )
        kinetics = FluxRatio(flux_normalisation)
    else:
        _check("r_NMC_ohm_m2", r_NMC_ohm_m2, surface_model)
        _check("temperature_K", temperature_K, surface_model)
        _check("U0_V", U0_V, surface_model)
        _check("k_V", k_V, surface_model)
        _check("voltage_cut_V", voltage_cut_V, surface_model)
        if float(theta0) >= 1.0:
            raise ValueError("theta0 must be < 1 with surface model B (its OCP diverges at 1); try 1 - 1e-4")
        kinetics = FilmResistance(r_NMC_ohm_m2, U0_V, k_V, temperature_K)
    law = diffusivity.pop("diffusivity", _D["diffusivity"])
    return Params(
        radius_m=radius_m,
        rate_mA_per_g=rate_mA_per_g,
        theta0=theta0,
        theta_cut=theta_cut,
        theta_upper=theta_upper,
        theta_core=theta_core,
        core_smoothing=core_smoothing,
        voltage_cut_V=voltage_cut_V,
        blocking=make_blocking(eta, blocked_fraction, arc_center_rad, extra_arcs, eta_profile),
        diffusivity=make_diffusivity(law, **diffusivity),
        kinetics=kinetics,
        material=Material(molar_mass_g_per_mol, density_kg_per_m3),
    )


#: Keywords of :func:`make_diffusivity` that :func:`make_params` passes on (``diffusivity`` names the law).
_DIFFUSIVITY_NAMES = frozenset(inspect.signature(make_diffusivity).parameters) - {"law"} | {"diffusivity"}
#: Every keyword :func:`make_params` accepts.
MAKE_PARAMS_NAMES = frozenset(inspect.signature(make_params).parameters) - {"diffusivity"} | _DIFFUSIVITY_NAMES

#: Where each scalar input lives in the Params pytree: ``(group or None for a top-level field, field name)``, from the
#: catalogue's ``params_path`` (``dip_width`` is ``LowThetaDip.width``; ``width`` is accepted as its field name).
_INPUT_LOCATION = {name: (e.group, e.field) for name, e in INPUTS.items() if e.kind == "scalar"}
_INPUT_LOCATION["width"] = _INPUT_LOCATION["dip_width"]


def replace(params: Params, **inputs) -> Params:
    """Return ``params`` with named scalar inputs replaced, without validation, so values may be traced.

    This is the differentiable counterpart of :func:`make_params`: build validated parameters once, then vary
    inputs inside ``jax.grad`` / ``jax.vmap`` / fitting code::

        base = make_params(blocked_fraction=0.25)
        capacity = lambda eta: outputs.capacity_at_cutoff(simulate(replace(base, eta=eta)))

    Names are those of :func:`make_params` (``eta``, ``blocked_fraction``, ``arc_center_rad``, ``radius_m``,
    ``rate_mA_per_g``, ``theta0``, ``D_hi_m2_per_s``, ``r_NMC_ohm_m2``, ...); an input the parameters' D law or
    surface model does not have raises ``ValueError``; so does an array input (``extra_arcs``, ``table_theta``, ...:
    build new parameters with :func:`make_params`). With the low-theta dip, the base law's inputs
    (``D_hi_m2_per_s``, ...) are replaced inside the base law; the dip's width is ``dip_width`` (or ``width``).
    """
    groups: dict[str, dict] = {}
    top = {}
    for name, value in inputs.items():
        if name not in _INPUT_LOCATION:
            kind = INPUTS[name].kind if name in INPUTS else None
            raise ValueError(f"unknown input {name!r}" if kind is None else
                             f"input {name!r} ({kind}) cannot be replaced; build new parameters with make_params")
        location, field = _INPUT_LOCATION[name]
        if location is None:
            top[field] = value
        else:
            groups.setdefault(location, {})[field] = value
    for location, values in groups.items():
        top[location] = _replace_in(getattr(params, location), values, location)
    return dataclasses.replace(params, **top)


def _replace_in(obj, values, location):
    names = {f.name for f in dataclasses.fields(obj)}
    own = {k: v for k, v in values.items() if k in names}
    rest = {k: v for k, v in values.items() if k not in names}
    if rest and isinstance(obj, ModifiedLaw):  # LowThetaDip: the remaining inputs belong to the base law
        own["base"] = _replace_in(obj.base, rest, location)
        rest = {}
    if rest:
        raise ValueError(f"{type(obj).__name__} ({location}) has no input(s) {sorted(rest)}")
    return dataclasses.replace(obj, **own)


# ---- geometry and numerics of a run -----------------------------------------------------------------------------
#: The outline classes :func:`run` accepts (shapes of :mod:`fluxsim.core.outline`).
OUTLINES = (Disk, Ellipse, Polygon, Curve)
#: Entries of the default output time grid of :func:`run` (evenly spaced over the protocol's longest duration).
DEFAULT_SAVES = 121
#: Replacements of the polar solver's keywords, for the message that refuses them.
_REPLACED = {
    "nr": "numerics=fluxsim.Numerics(spacing=...) (mesh node spacing in units of the equivalent radius)",
    "nphi": "numerics=fluxsim.Numerics(spacing=...) (mesh node spacing in units of the equivalent radius)",
    "n_steps": "error-controlled time steps: numerics=fluxsim.Numerics(integrator=fluxsim.RKLSettings(rtol=...))",
}


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is >= ``value`` (> 0)."""
    scale = 10.0 ** math.floor(math.log10(value))
    return next(f * scale for f in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if f * scale >= value * (1 - 1e-12))


def default_save_times(params: Params, protocol) -> tuple[float, ...]:
    """:data:`DEFAULT_SAVES` evenly spaced times [s] from 0 to a bound of the protocol's duration.

    Each step lasts at most its ``max_duration_s`` and, when it runs to its cut-off, at most the time the mean
    occupancy needs to cross the whole allowed range (with the solver's margin); the bound is rounded up to a
    1-2-5-like value so that runs at nearby inputs share one compiled program.
    """
    theta0, cut, upper = (float(params.theta0), float(params.theta_cut), float(params.theta_upper))
    total = 0.0
    for step in protocol:
        duration = float(step.max_duration_s)
        if step.until_cutoff:
            rate = float(params.rate_mA_per_g if step.rate_mA_per_g is None else step.rate_mA_per_g)
            span = max(theta0, upper) - cut if step.kind == "charge" else upper - min(theta0, cut)
            duration = min(duration, HORIZON_MARGIN * span / float(params.material.mean_rate_per_s(rate)))
        total += duration
    return tuple(float(t) for t in np.linspace(0.0, _nice_ceiling(total), DEFAULT_SAVES))


def _check_times(name: str, times) -> tuple[float, ...]:
    times = times if np.ndim(times) else [times]
    out = tuple(_check_range(f"{name}[{i}]", t, 0, None, unit="s") for i, t in enumerate(times))
    if any(b < a for a, b in zip(out, out[1:])):
        raise InputError(name, f" = {list(out)} must be sorted (non-decreasing) [s]")
    return out


def _check_outline(outline):
    if not isinstance(outline, OUTLINES):
        raise InputError("outline", f" = {outline!r} must be a fluxsim outline: Disk(), Ellipse(aspect, "
                         "orientation_rad), Polygon(vertices) or the Curve of outline_from_mask(mask, pixel_size_m)")
    return outline


def host_mesh(mesh: TriMesh) -> TriMesh:
    """The mesh with numpy arrays (for plots and host-side post-processing)."""
    return jax.tree.map(np.asarray, mesh)


def real_triangles(mesh: TriMesh) -> np.ndarray:
    """The real triangles of a (host) mesh, ``(t, 3)``, indexing the real nodes in their order in the mesh."""
    mask = np.asarray(mesh.node_mask)
    index = np.cumsum(mask) - 1
    return index[raster.triangles_on_host(mesh)]


class FieldOnGrid(NamedTuple):
    """A node field resampled onto a square pixel grid (P1 interpolation; NaN outside the particle)."""

    x_nm: np.ndarray  # (n_pixels,) pixel-centre x [nm] relative to the area centroid
    y_nm: np.ndarray  # (n_pixels,) pixel-centre y [nm] (y up)
    theta: np.ndarray  # (n_pixels y, n_pixels x) occupancy


@dataclasses.dataclass(frozen=True)
class Result:
    """Outputs of one simulation with physical units (a thin wrapper around :class:`~fluxsim.core.solve.Solution`).

    Attributes:
        solution: the raw arrays (numpy), on the time grid ``t_s``.
        params: the inputs.
        protocol: the protocol steps.
        numerics: the numerical settings (:class:`~fluxsim.core.solve.Numerics`).
        snapshot_times_s: times of ``snapshots`` [s].
        outline: the particle's shape (:mod:`fluxsim.core.outline`).
        mesh: the padded :class:`~fluxsim.core.mesh.TriMesh` it ran on, as numpy arrays (units of the equivalent
            radius; :attr:`node_xy_nm` and :attr:`triangles` give the real nodes and triangles).
    """

    solution: Solution
    params: Params
    protocol: tuple
    numerics: Numerics
    snapshot_times_s: tuple
    outline: object
    mesh: TriMesh

    # --- time series -------------------------------------------------------------------------------------------
    @property
    def t_s(self) -> np.ndarray:
        """Saved times [s] (the requested grid)."""
        return np.asarray(self.solution.t_s)

    @property
    def offset_nm(self) -> np.ndarray:
        """Core offset d [nm] per saved time (NaN without a core)."""
        return np.asarray(outputs.offset_nm(self.solution))

    @property
    def offset_direction_rad(self) -> np.ndarray:
        """Direction of the core offset [rad], counter-clockwise from +x."""
        return np.asarray(outputs.offset_direction_rad(self.solution))

    @property
    def spread(self) -> np.ndarray:
        """max(theta) - min(theta) per saved time."""
        return np.asarray(outputs.spread(self.solution))

    def series(self, name: str) -> np.ndarray:
        """Any saved series of :class:`~fluxsim.core.solve.Solution` by name (e.g. ``"mean_theta"``)."""
        return np.asarray(getattr(self.solution, name))

    def at(self, name: str, times_s) -> np.ndarray:
        """A saved series interpolated at ``times_s`` [s] (NaN after the end of the time grid)."""
        series = outputs.offset_nm(self.solution) if name == "offset_nm" else getattr(self.solution, name)
        return np.asarray(outputs.at_times(self.solution, series, times_s))

    def offset_at(self, times_s) -> np.ndarray:
        """Core offset d [nm] at ``times_s`` [s]."""
        return self.at("offset_nm", times_s)

    # --- scalars -----------------------------------------------------------------------------------------------
    @property
    def capacity_at_cutoff_mAh_per_g(self) -> float:
        """Extracted capacity when the first protocol step ended [mAh g-1]."""
        return float(outputs.capacity_at_cutoff(self.solution))

    @property
    def time_to_cutoff_s(self) -> float:
        """Duration of the first protocol step [s] (the time to cut-off for a charge)."""
        return float(outputs.time_to_cutoff(self.solution))

    @property
    def reached_cutoff(self) -> bool:
        """Whether the first protocol step ended at its cut-off (rather than its time limit)."""
        return bool(self.solution.step_cutoff[0])

    @property
    def complete(self) -> bool:
        """Whether every protocol step finished within ``numerics.integrator.max_steps`` steps."""
        return bool(self.solution.complete)

    def offset_at_core_fraction(self, fraction: float) -> float:
        """Core offset d [nm] when the core area fraction first falls to ``fraction`` (robust summary)."""
        return float(outputs.offset_at_core_fraction(self.solution, fraction))

    @property
    def core_vanish_s(self) -> float:
        """Time at which the Li-rich core disappears [s] (located inside its step; NaN if it does not)."""
        return float(self.solution.core_vanish_s)

    @property
    def core_vanish_capacity_mAh_per_g(self) -> float:
        """Passed capacity at which the Li-rich core disappears [mAh g-1] (NaN if it does not)."""
        return float(outputs.core_vanish_capacity(self.solution))

    @property
    def core_vanish_position_nm(self) -> float:
        """Where the last of the core was, along the line cut (positive towards the blocked arc) [nm]."""
        angle = float(self.params.blocking.arc_center_rad)
        x, y = float(self.solution.core_vanish_x_nm), float(self.solution.core_vanish_y_nm)
        return x * math.cos(angle) + y * math.sin(angle)

    # --- mesh and fields ---------------------------------------------------------------------------------------
    @property
    def node_xy_nm(self) -> np.ndarray:
        """Coordinates of the real mesh nodes ``(n_nodes, 2)`` [nm], relative to the particle's area centroid."""
        mask = np.asarray(self.mesh.node_mask)
        xy = np.asarray(self.mesh.xy)[mask] - np.asarray(self.mesh.centroid)[None, :]
        return xy * float(self.params.radius_m) * 1e9

    @property
    def triangles(self) -> np.ndarray:
        """The real triangles ``(n_triangles, 3)``: counter-clockwise indices into :attr:`node_xy_nm`."""
        return real_triangles(self.mesh)

    @property
    def snapshots(self) -> np.ndarray:
        """Occupancy on the real nodes ``(n_snapshots, n_nodes)`` at ``snapshot_times_s`` (the final state after
        the end of the protocol)."""
        return np.asarray(self.solution.snapshots)[:, np.asarray(self.mesh.node_mask)]

    @property
    def line_cut_position_nm(self) -> np.ndarray:
        """Positions of the line-cut samples [nm] through the area centroid, positive towards the blocked arc."""
        return np.asarray(self.solution.line_cut_position_nm)

    @property
    def line_cut(self) -> np.ndarray:
        """Occupancy along the line cut ``(n_saves, line_cut_samples)``."""
        return np.asarray(self.solution.line_cut)

    def field_on_grid(self, snapshot_index: int = -1, n_pixels: int = 128) -> FieldOnGrid:
        """Snapshot ``snapshot_index`` resampled onto an ``n_pixels`` x ``n_pixels`` grid over the particle's
        bounding box (P1 interpolation on the triangles, exact point location; NaN outside the particle)."""
        n_pixels = int(_check_range("n_pixels", n_pixels, 2, None, integer=True))
        field = self.snapshots[snapshot_index]
        xy = self.node_xy_nm
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        centre, half = (lo + hi) / 2, (hi - lo).max() / 2
        x = np.linspace(centre[0] - half, centre[0] + half, n_pixels)
        y = np.linspace(centre[1] - half, centre[1] + half, n_pixels)
        return FieldOnGrid(x, y, raster.apply_stencil(raster.grid_stencil(xy, self.triangles, x, y), field))


#: The simulation behind :func:`run`, compiled once per static configuration (shape buckets, protocol, numerics,
#: time grids) and shared by every run in the process.
_SIMULATE = jax.jit(simulate, static_argnums=(2, 3, 4, 5))


def run(
    *,
    outline=DISK,
    protocol=None,
    save_times_s=None,
    snapshot_times_s=(),
    numerics: Numerics | None = None,
    **physical,
) -> Result:
    """Simulate one particle from physical keyword arguments.

    Args:
        outline: the particle's shape (default a disk): :class:`~fluxsim.core.outline.Disk`,
            :class:`~fluxsim.core.outline.Ellipse` ``(aspect, orientation_rad)``,
            :class:`~fluxsim.core.outline.Polygon` ``(vertices)`` or the curve of
            :func:`~fluxsim.core.outline.outline_from_mask`; ``radius_m`` is its equivalent radius sqrt(A / pi)
            (:func:`~fluxsim.core.outline.ellipse_from_semi_axes` and friends give both from physical sizes).
        protocol: steps (default: one constant-current charge to the surface cut-off at ``rate_mA_per_g``).
        save_times_s: the output time grid [s] (sorted, >= 0); default :func:`default_save_times`, which covers
            the whole protocol.
        snapshot_times_s: times [s] at which to keep the whole occupancy field.
        numerics: :class:`~fluxsim.core.solve.Numerics` (mesh spacing, tolerances); the outline is meshed at
            ``numerics.spacing``.
        **physical: inputs of :func:`make_params` (``radius_m``, ``rate_mA_per_g``, ``eta``, ``blocked_fraction``,
            ``arc_center_rad``, ``surface_model``, ``D_hi_m2_per_s``, ``theta0``, ``r_NMC_ohm_m2``, ...).

    Returns:
        A :class:`Result`.
    """
    for name in _REPLACED.keys() & physical.keys():
        raise UnknownInputError(name, f" is no longer an input of fluxsim.run (the polar grid is gone): use "
                                f"{_REPLACED[name]}")
    check_names(physical, MAKE_PARAMS_NAMES, "fluxsim.run", MAKE_PARAMS_NAMES | _RUN_NAMES)
    outline = _check_outline(outline)
    if numerics is not None and not isinstance(numerics, Numerics):
        raise UnknownInputError("numerics", f" = {numerics!r} must be a fluxsim.Numerics")
    enable_float64()  # the one-call front door runs in float64 (fluxsim.precision)
    params = make_params(**physical)
    protocol = check_protocol((Charge(),) if protocol is None else protocol)
    numerics = with_integer_exponent(numerics or Numerics(), params.diffusivity)
    snapshot_times_s = _check_times("snapshot_times_s", snapshot_times_s)
    save_times_s = (default_save_times(params, protocol) if save_times_s is None
                    else _check_times("save_times_s", save_times_s))
    if not save_times_s:
        raise InputError("save_times_s", " = [] must hold at least one time [s]")
    check_rim_resolution(None, [physical], spacing=numerics.spacing)
    mesh = mesh_outline(outline, numerics.spacing)
    solution = jax.tree.map(np.asarray, _SIMULATE(params, mesh, protocol, numerics, save_times_s, snapshot_times_s))
    return Result(solution, params, protocol, numerics, snapshot_times_s, outline, host_mesh(mesh))


#: The keywords of :func:`run` besides those of :func:`make_params`.
_RUN_NAMES = frozenset(inspect.signature(run).parameters) - {"physical"}

"""Notebook entry point: physical keyword arguments in, a :class:`Result` out.

    >>> import fluxsim
    >>> result = fluxsim.run(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=100, snapshot_times_s=[300, 600])
    >>> result.capacity_at_cutoff_mAh_per_g, result.offset_at(600.0)

For gradients, build the parameter pytree once with :func:`make_params`, vary inputs with :func:`replace` (no
validation, traceable), and differentiate :func:`fluxsim.simulate` composed with the functions of
:mod:`fluxsim.core.outputs`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import jax
import numpy as np

from fluxsim.core import outputs
from fluxsim.core.polar.solver import Numerics, Params, Solution, simulate
from fluxsim.core.polar.solver import check_numerics as check_solver_numerics
from fluxsim.model.catalogue import DEFAULTS as _D
from fluxsim.model.catalogue import DIFFUSIVITY_LAWS, FLUX_NORMALISATIONS, INPUTS, SURFACE_MODELS, THETA0_MODEL_B
from fluxsim.model.checks import InputError, UnknownInputError, check_names, check_numerics, check_resolution, numbers
from fluxsim.model.checks import check_range as _check_range
from fluxsim.model.constants import Material
from fluxsim.model.diffusivity import ConstantDiffusivity, LowThetaDip, ModifiedLaw, PowerLaw, TabulatedDiffusivity
from fluxsim.model.protocol import Charge, check_protocol
from fluxsim.model.surface import FilmResistance, FluxRatio, make_blocking
from fluxsim.precision import enable_float64

__all__ = ["THETA0_MODEL_B", "Result", "make_diffusivity", "make_params", "replace", "run"]


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


@dataclasses.dataclass(frozen=True)
class Result:
    """Outputs of one simulation with physical units (a thin wrapper around :class:`~fluxsim.core.solution.Solution`).

    Attributes:
        solution: the raw arrays (numpy).
        params: the inputs.
        protocol: the protocol steps.
        numerics: the discretisation.
        snapshot_times_s: times of ``snapshots``.
    """

    solution: Solution
    params: Params
    protocol: tuple
    numerics: Numerics
    snapshot_times_s: tuple

    # --- time series -------------------------------------------------------------------------------------------
    @property
    def t_s(self) -> np.ndarray:
        """Saved times [s]."""
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
        """Any saved series of :class:`~fluxsim.core.solution.Solution` by name (e.g. ``"mean_theta"``)."""
        return np.asarray(getattr(self.solution, name))

    def at(self, name: str, times_s) -> np.ndarray:
        """A saved series interpolated at ``times_s`` [s] (NaN after the end)."""
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

    def offset_at_core_fraction(self, fraction: float) -> float:
        """Core offset d [nm] when the core area fraction first falls to ``fraction`` (robust summary)."""
        return float(outputs.offset_at_core_fraction(self.solution, fraction))

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

    # --- fields ------------------------------------------------------------------------------------------------
    @property
    def snapshots(self) -> np.ndarray:
        """Occupancy fields ``(n_snapshots, nr + 1, nphi)`` at ``snapshot_times_s`` (row 0: centre)."""
        return np.asarray(self.solution.snapshots)

    @property
    def r_nm(self) -> np.ndarray:
        """Node radii [nm] (rows of the fields)."""
        return self.numerics.grid.r * float(self.params.radius_m) * 1e9

    @property
    def phi_rad(self) -> np.ndarray:
        """Node angles [rad] (columns of the fields)."""
        return self.numerics.grid.phi

    @property
    def line_cut_position_nm(self) -> np.ndarray:
        """Positions of the line-cut samples [nm], positive towards the blocked-arc centre."""
        nr = self.numerics.nr
        return np.arange(-nr, nr + 1) / nr * float(self.params.radius_m) * 1e9


def run(
    *,
    protocol=None,
    snapshot_times_s=(),
    numerics: Numerics | None = None,
    nr=None,
    nphi=None,
    n_steps=None,
    **physical,
) -> Result:
    """Simulate one particle from physical keyword arguments.

    Args:
        protocol: steps (default: one constant-current charge to the surface cut-off at ``rate_mA_per_g``).
        snapshot_times_s: times [s] at which to keep the whole occupancy field.
        numerics: full discretisation settings; or override ``nr``, ``nphi``, ``n_steps`` individually.
        **physical: inputs of :func:`make_params` (``radius_m``, ``rate_mA_per_g``, ``eta``, ``blocked_fraction``,
            ``arc_center_rad``, ``surface_model``, ``D_hi_m2_per_s``, ``theta0``, ``r_NMC_ohm_m2``, ...).

    Returns:
        A :class:`Result`.
    """
    check_names(physical, MAKE_PARAMS_NAMES, "fluxsim.run", MAKE_PARAMS_NAMES | _RUN_NAMES)
    enable_float64()  # the one-call front door runs in float64 (fluxsim.precision)
    params = make_params(**physical)
    protocol = check_protocol((Charge(),) if protocol is None else protocol)
    if numerics is not None and not isinstance(numerics, Numerics):
        raise UnknownInputError("numerics", f" = {numerics!r} must be a fluxsim.Numerics")
    numerics = numerics or Numerics()
    overrides = {k: v for k, v in dict(nr=nr, nphi=nphi, n_steps=n_steps).items() if v is not None}
    numerics = dataclasses.replace(numerics, **overrides)
    numerics = check_numerics(numerics)  # types and ranges, then the solver's own consistency checks
    check_solver_numerics(numerics, protocol)
    check_resolution(numerics, protocol, [physical], prefix="")
    times = snapshot_times_s if np.ndim(snapshot_times_s) else [snapshot_times_s]
    snapshot_times_s = tuple(_check_range(f"snapshot_times_s[{i}]", t, 0, None, unit="s") for i, t in enumerate(times))
    solve = jax.jit(simulate, static_argnums=(1, 2, 3, 4))
    solution = solve(params, protocol, numerics, snapshot_times_s, False)
    solution = jax.tree.map(np.asarray, solution)
    return Result(solution, params, protocol, numerics, snapshot_times_s)


#: The keywords of :func:`run` besides those of :func:`make_params`.
_RUN_NAMES = frozenset(inspect.signature(run).parameters) - {"physical"}

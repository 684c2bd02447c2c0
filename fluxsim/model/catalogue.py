"""The catalogue of physical inputs: every fact about an input, stated once.

For each keyword of :func:`fluxsim.api.make_params` an :class:`Input` records its unit (UDUNITS), long name, default,
allowed range (open or closed ends, and whether ``inf`` is a value), where it lives in the
:class:`~.params.Params` pytree, its hydra config key, its fit transform (if it can be fitted) and the law or
surface model it belongs to. The equations behind the inputs are in docs/model.md (sections 1-6, assumptions in
section 9).

Validation, the config loader, store attributes, fit transforms and the README's inputs table are meant to read this
module (issue 10); until they do, ``tests/model/test_catalogue.py`` checks that it agrees with each of them.

Pure Python (no jax, numpy, hydra): importing it costs nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

#: What an input belongs to (:attr:`Input.applies`): it has an effect only under that choice.
ALWAYS = "always"
MODEL_A = "surface model A"
MODEL_B = "surface model B"
POWER_LAW = "diffusivity power_law"
CONSTANT = "diffusivity constant"
TABULATED = "diffusivity tabulated"
DIP = "low-theta dip"

SURFACE_MODELS = ("A", "B")
DIFFUSIVITY_LAWS = ("power_law", "constant", "tabulated")
FLUX_NORMALISATIONS = ("total_current", "open_surface")


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a scalar: ``lo``..``hi`` with open or closed ends.

    ``lo`` / ``hi`` None: unbounded on that side (the value must still be finite unless ``inf_allowed``). A string
    bound names another input (``theta0`` lies in ``(theta_cut, 1]``). NaN is never allowed.

    Attributes:
        lo, hi: bounds (None: unbounded; str: the value of that input).
        lo_open, hi_open: whether the bound itself is excluded.
        inf_allowed: ``+inf`` is a meaningful value (``voltage_cut_V = inf``: no voltage cut-off).
        tested: a narrower range that has been tested or published (informative, not enforced).
    """

    lo: float | str | None = None
    hi: float | str | None = None
    lo_open: bool = False
    hi_open: bool = False
    inf_allowed: bool = False
    tested: tuple[float, float] | None = None

    def contains(self, value: float, bounds: Mapping[str, float] | None = None) -> bool:
        """Whether ``value`` is allowed (``bounds``: values of the inputs a string bound names)."""
        v = float(value)
        if math.isnan(v) or (math.isinf(v) and not (self.inf_allowed and v > 0)):
            return False
        lo, hi = (bounds[b] if isinstance(b, str) else b for b in (self.lo, self.hi))
        if lo is not None and (v <= lo if self.lo_open else v < lo):
            return False
        return not (hi is not None and (v >= hi if self.hi_open else v > hi))

    def text(self) -> str:
        """The range as the README writes it: ``> 0``, ``[0, 1]``, ``(theta_cut, 1]``, ``finite``, ``any``."""
        lo, hi = self.lo, self.hi
        if lo is None and hi is None:
            return "any" if self.inf_allowed else "finite"
        if hi is None:
            return f"{'>' if self.lo_open else '>='} {_fmt(lo)}"
        if lo is None:
            return f"{'<' if self.hi_open else '<='} {_fmt(hi)}"
        return f"{'(' if self.lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if self.hi_open else ']'}"


@dataclasses.dataclass(frozen=True)
class Fit:
    """How an input is fitted (:mod:`fluxsim.fit`): the optimiser works on an unconstrained ``u``.

    Attributes:
        transform: ``"logit"`` (``u = log(v / (1 - v))``, for (0, 1)), ``"log"`` (``u = log(v / start)``, for
            positive inputs) or ``"identity"`` (an angle).
        sample: multi-start sample range (relative to the start value when ``relative_sample``).
        relative_sample: whether ``sample`` multiplies the start value.
        default_start: start value when the caller gives none (None: the base parameters' value).
        transform_model_b: transform under surface model B where it differs (``eta`` may exceed 1 there: log).
    """

    transform: str
    sample: tuple[float, float]
    relative_sample: bool = False
    default_start: float | None = None
    transform_model_b: str | None = None

    def transform_for(self, surface_model: str) -> str:
        return self.transform_model_b if surface_model == "B" and self.transform_model_b else self.transform


@dataclasses.dataclass(frozen=True)
class Input:
    """One physical input.

    Attributes:
        name: the keyword of :func:`fluxsim.api.make_params` (unit-suffixed where it has a unit).
        unit: UDUNITS unit (``"1"``: dimensionless; ``""`` for a choice or a switch).
        long_name: what it is, for store attributes and plot labels.
        kind: ``"scalar"`` (a number; sweepable), ``"array"``, ``"choice"`` (one of :attr:`choices`), ``"bool"`` or
            ``"path"`` (a file).
        default: the default value (model A's where the surface model changes it).
        range: allowed values of a scalar (elementwise for an array; model A's where the model changes it).
        config_key: the hydra config key, ``group.key``.
        params_path: where the value lives in :class:`~.params.Params` (``"blocking.eta"``), or how it shows
            there for a structural choice (``"type(kinetics)"``). Inputs of the base law sit in
            ``diffusivity.base.*`` when the low-theta dip is on.
        traced: the value is a pytree leaf (``fluxsim.api.replace`` can vary it inside ``jit`` / ``grad``).
        applies: what it belongs to (:data:`ALWAYS`, :data:`MODEL_A`, :data:`MODEL_B`, :data:`POWER_LAW`, ...).
        assumed: an [A] value of docs/model.md section 9 (no published value).
        choices: the allowed values of a ``"choice"``.
        fit: how it is fitted, None if it cannot be.
        default_model_b, range_model_b: the default / range under surface model B where they differ.
        note: anything a user must know that the fields do not say.
    """

    name: str
    unit: str
    long_name: str
    kind: str
    default: Any
    range: Range | None
    config_key: str
    params_path: str
    traced: bool
    applies: str = ALWAYS
    assumed: bool = False
    choices: tuple[str, ...] = ()
    fit: Fit | None = None
    default_model_b: Any = None
    range_model_b: Range | None = None
    note: str = ""

    @property
    def sweepable(self) -> bool:
        """Scalars can be swept inside one job (a vmap axis); the rest vary across hydra multirun jobs."""
        return self.kind == "scalar"

    @property
    def field(self) -> str:
        """The field name inside its pytree node (``dip_width`` is ``LowThetaDip.width``)."""
        return self.params_path.rsplit(".", 1)[-1]

    @property
    def group(self) -> str | None:
        """The sub-pytree of ``Params`` that holds it (None: a top-level field or a structural choice)."""
        head, dot, _ = self.params_path.partition(".")
        return head if dot and not self.params_path.startswith("type(") else None

    def default_for(self, surface_model: str = "A") -> Any:
        return self.default_model_b if surface_model == "B" and self.default_model_b is not None else self.default

    def range_for(self, surface_model: str = "A") -> Range | None:
        return self.range_model_b if surface_model == "B" and self.range_model_b is not None else self.range


_POSITIVE = Range(0, None, lo_open=True)
_UNIT_OPEN = Range(0, 1, lo_open=True, hi_open=True)
_UNIT_CLOSED = Range(0, 1)
_FINITE = Range()

#: Default initial occupancy with surface model B (its open-circuit potential diverges at theta = 1).
THETA0_MODEL_B = 1.0 - 1e-4

_ENTRIES = (
    # --- geometry, protocol, material -------------------------------------------------------------------------
    Input("radius_m", "m", "particle radius", "scalar", 1.2e-6, _POSITIVE, "geometry.radius_m", "radius_m", True,
          fit=Fit("log", (0.8, 1.25), relative_sample=True)),
    Input("rate_mA_per_g", "mA g-1", "specific current", "scalar", 100.0, _POSITIVE, "protocol.rate_mA_per_g",
          "rate_mA_per_g", True, note="used by the charge / discharge steps whose own rate is None"),
    Input("theta0", "1", "initial Li occupancy", "scalar", 1.0, Range("theta_cut", 1, lo_open=True),
          "protocol.theta0", "theta0", True, assumed=True, default_model_b=THETA0_MODEL_B,
          range_model_b=Range("theta_cut", 1, lo_open=True, hi_open=True),
          note="config null: the surface model's default"),
    Input("theta_cut", "1", "surface occupancy at the charge cut-off", "scalar", 0.2, _UNIT_OPEN,
          "protocol.theta_cut", "theta_cut", True),
    Input("theta_upper", "1", "surface occupancy at the discharge cut-off", "scalar", 0.99,
          Range(0, 1, lo_open=True), "protocol.theta_upper", "theta_upper", True, assumed=True),
    Input("molar_mass_g_per_mol", "g mol-1", "molar mass", "scalar", 97.46, _POSITIVE,
          "material.molar_mass_g_per_mol", "material.molar_mass_g_per_mol", True,
          note="LiNi0.88Mn0.05Co0.07O2; Q_th = F / (3.6 M) = 275.0 mAh/g"),
    Input("density_kg_per_m3", "kg m-3", "density", "scalar", 4780.0, _POSITIVE, "material.density_kg_per_m3",
          "material.density_kg_per_m3", True, note="c_max = rho / M = 49,045 mol m-3"),
    # --- observables ----------------------------------------------------------------------------------------------
    Input("theta_core", "1", "occupancy threshold of the Li-rich core", "scalar", 0.97, _UNIT_OPEN,
          "output.theta_core", "theta_core", True, assumed=True),
    Input("core_smoothing", "1", "sigmoid width of the smooth core metrics", "scalar", 0.005, _POSITIVE,
          "output.core_smoothing", "core_smoothing", True),
    # --- surface: blocking ----------------------------------------------------------------------------------------
    Input("surface_model", "", "surface model", "choice", "A", None, "surface.model", "type(kinetics)", False,
          choices=SURFACE_MODELS, note="A: prescribed flux ratio (FluxRatio); B: film resistance + OCP"),
    Input("eta", "1", "flux ratio on the blocked arc (j_RSL / j_NMC)", "scalar", 1.0, _UNIT_CLOSED, "surface.eta",
          "blocking.eta", True, range_model_b=Range(0, None),
          fit=Fit("logit", (0.05, 0.95), default_start=0.5, transform_model_b="log"),
          note="model B: conductance ratio, r_RSL = r_NMC / eta"),
    Input("blocked_fraction", "1", "blocked fraction of the perimeter", "scalar", 0.0, _UNIT_CLOSED,
          "surface.blocked_fraction", "blocking.blocked_fraction", True, fit=Fit("logit", (0.05, 0.6))),
    Input("arc_center_rad", "rad", "centre angle of the blocked arc", "scalar", math.pi, _FINITE,
          "surface.arc_center_rad", "blocking.arc_center_rad", True, assumed=True,
          fit=Fit("identity", (0.0, 2 * math.pi)), note="counter-clockwise from +x (pi: the left side)"),
    Input("extra_arcs", "rad, 1, 1", "further blocked arcs, rows (center_rad, fraction, eta)", "array", None,
          _UNIT_CLOSED, "surface.extra_arcs", "blocking.extra_arcs", True,
          note="range: each fraction (and each eta under model A); fractions sum <= 1; arcs must not overlap; "
               "config [] = none"),
    Input("eta_profile", "1", "sampled multiplicative transfer profile p(phi)", "array", None, Range(0, None),
          "surface.eta_profile", "blocking.eta_profile", True,
          note=">= 2 samples at phi_i = 2 pi i / n, not all zero; piecewise linear, periodic"),
    Input("flux_normalisation", "", "flux normalisation of surface model A", "choice", "total_current", None,
          "surface.flux_normalisation", "kinetics.normalisation", False, applies=MODEL_A, assumed=True,
          choices=FLUX_NORMALISATIONS),
    # --- surface model B ------------------------------------------------------------------------------------------
    Input("r_NMC_ohm_m2", "ohm m2", "film resistance of the open surface", "scalar", 0.05,
          Range(0, None, lo_open=True, tested=(0.02, 0.1)), "surface.r_NMC_ohm_m2", "kinetics.r_NMC_ohm_m2", True,
          applies=MODEL_B, assumed=True, fit=Fit("log", (0.02, 0.1))),
    Input("U0_V", "V", "open-circuit potential at half occupancy", "scalar", 3.9, _FINITE, "surface.U0_V",
          "kinetics.U0_V", True, applies=MODEL_B, assumed=True),
    Input("k_V", "V", "open-circuit potential slope term", "scalar", 0.3, _FINITE, "surface.k_V", "kinetics.k_V",
          True, applies=MODEL_B, assumed=True),
    Input("temperature_K", "K", "temperature", "scalar", 298.0, _POSITIVE, "surface.temperature_K",
          "kinetics.temperature_K", True, applies=MODEL_B),
    Input("voltage_cut_V", "V", "upper cut-off voltage", "scalar", math.inf, Range(inf_allowed=True),
          "surface.voltage_cut_V", "voltage_cut_V", True, applies=MODEL_B, note="inf: no voltage cut-off"),
    # --- diffusivity ----------------------------------------------------------------------------------------------
    Input("diffusivity", "", "diffusivity law D(theta)", "choice", "power_law", None, "diffusivity.law",
          "type(diffusivity)", False, assumed=True, choices=DIFFUSIVITY_LAWS),
    Input("D_hi_m2_per_s", "m2 s-1", "plateau diffusivity", "scalar", 1e-14, _POSITIVE, "diffusivity.D_hi_m2_per_s",
          "diffusivity.D_hi_m2_per_s", True, applies=POWER_LAW, assumed=True,
          fit=Fit("log", (0.3, 3.0), relative_sample=True)),
    Input("theta_ref", "1", "occupancy where the diffusivity plateau starts", "scalar", 0.80, _UNIT_OPEN,
          "diffusivity.theta_ref", "diffusivity.theta_ref", True, applies=POWER_LAW, assumed=True),
    Input("exponent", "1", "power-law exponent of the diffusivity", "scalar", 3.0, _POSITIVE,
          "diffusivity.exponent", "diffusivity.exponent", True, applies=POWER_LAW, assumed=True),
    Input("D_floor_m2_per_s", "m2 s-1", "diffusivity floor", "scalar", 1e-20, _POSITIVE,
          "diffusivity.D_floor_m2_per_s", "diffusivity.D_floor_m2_per_s", True, applies=POWER_LAW, assumed=True),
    Input("D_m2_per_s", "m2 s-1", "constant diffusivity", "scalar", 1e-14, _POSITIVE, "diffusivity.D_m2_per_s",
          "diffusivity.D_m2_per_s", True, applies=CONSTANT),
    Input("table_theta", "1", "occupancies of the diffusivity table", "array", None, _UNIT_CLOSED,
          "diffusivity.table_theta", "diffusivity.theta", True, applies=TABULATED, assumed=True,
          note="strictly increasing, >= 2 entries, same length as table_D_m2_per_s"),
    Input("table_D_m2_per_s", "m2 s-1", "diffusivities of the diffusivity table", "array", None, _POSITIVE,
          "diffusivity.table_D_m2_per_s", "diffusivity.D_m2_per_s", True, applies=TABULATED, assumed=True,
          note="log-linear interpolation; held at the end values outside the table"),
    Input("low_theta_dip", "", "low-theta dip of the diffusivity", "bool", False, None, "diffusivity.low_theta_dip",
          "type(diffusivity)", False, assumed=True, note="True: the law is wrapped in LowThetaDip"),
    Input("D_low_m2_per_s", "m2 s-1", "diffusivity at the bottom of the low-theta dip", "scalar", 1e-15, _POSITIVE,
          "diffusivity.D_low_m2_per_s", "diffusivity.D_low_m2_per_s", True, applies=DIP, assumed=True),
    Input("theta_dip", "1", "centre of the low-theta dip", "scalar", 0.3, _UNIT_OPEN, "diffusivity.theta_dip",
          "diffusivity.theta_dip", True, applies=DIP, assumed=True),
    Input("dip_width", "1", "width of the low-theta dip", "scalar", 0.05, _POSITIVE, "diffusivity.dip_width",
          "diffusivity.width", True, applies=DIP, assumed=True),
)

#: Every physical input by name, in the README's order of topics.
INPUTS: dict[str, Input] = {entry.name: entry for entry in _ENTRIES}

# --- the particle's shape (the outline; config group ``geometry``) ----------------------------------------------
#: The outlines ``geometry.outline`` offers (docs/model.md section 8): :mod:`fluxsim.core.outline`'s Disk, Ellipse,
#: Polygon, and a Curve traced from a segmentation mask.
OUTLINES = ("disk", "ellipse", "polygon", "mask")
ELLIPSE = "outline ellipse"
POLYGON = "outline polygon"
MASK = "outline mask"

_SHAPE_ENTRIES = (
    Input("outline", "", "particle outline", "choice", "disk", None, "geometry.outline", "outline", False,
          choices=OUTLINES, note="geometry.radius_m is the equivalent radius sqrt(A / pi) of any outline"),
    Input("aspect", "1", "ellipse aspect ratio (long / short semi-axis)", "scalar", 1.0, Range(1, 20),
          "geometry.aspect", "outline.aspect", False, applies=ELLIPSE, note="1: the disk"),
    Input("orientation_rad", "rad", "angle of the ellipse's long axis", "scalar", 0.0, _FINITE,
          "geometry.orientation_rad", "outline.orientation_rad", False, applies=ELLIPSE,
          note="counter-clockwise from +x"),
    Input("vertices", "1", "polygon corners, rows (x, y)", "array", None, _FINITE, "geometry.vertices",
          "outline.vertices", False, applies=POLYGON,
          note="shape only (any unit and scale; scaled to geometry.radius_m); >= 3 rows, a simple polygon"),
    Input("mask_file", "", "segmentation mask of the particle", "path", None, None, "geometry.mask_file",
          "outline.points", False, applies=MASK,
          note=".npy (bool or 0/1) or an image file (nonzero / bright pixels: the particle); one particle"),
    Input("pixel_size_m", "m", "pixel size of the segmentation mask", "scalar", None, _POSITIVE,
          "geometry.pixel_size_m", "radius_m", False, applies=MASK,
          note="null: the mask's shape scaled to geometry.radius_m; set: the mask fixes the radius "
               "(geometry.radius_m must then be null)"),
)

#: The shape inputs of the particle (config group ``geometry``; not ``make_params`` keywords: they choose the
#: outline the mesh is built on, :mod:`fluxsim.core.outline`).
SHAPE_INPUTS: dict[str, Input] = {entry.name: entry for entry in _SHAPE_ENTRIES}

#: Shape inputs that can be swept inside one job (each distinct outline is meshed once, all padded to common sizes).
SHAPE_SWEEPABLE: tuple[str, ...] = ("aspect", "orientation_rad")


def entry(name: str) -> Input:
    """The catalogue entry of a physical or shape input."""
    return INPUTS[name] if name in INPUTS else SHAPE_INPUTS[name]

#: Config key (``group.key``) -> input name.
BY_CONFIG_KEY: dict[str, str] = {entry.config_key: entry.name for entry in _ENTRIES}

#: The inputs that can be swept inside one job (scalars), in catalogue order.
SWEEPABLE: tuple[str, ...] = tuple(entry.name for entry in _ENTRIES if entry.sweepable)

#: The inputs that can be fitted.
FITTABLE: dict[str, Input] = {entry.name: entry for entry in _ENTRIES if entry.fit is not None}


#: Every input's default (model A's where the surface model changes it), for signatures.
DEFAULTS: dict[str, Any] = {entry.name: entry.default for entry in _ENTRIES}


def default(name: str) -> Any:
    """The default of input ``name`` (model A's where the surface model changes it): the one place it is written."""
    return INPUTS[name].default


def applying_to(applies: str) -> tuple[str, ...]:
    """Names of the inputs that belong to one law or model (e.g. :data:`MODEL_B`)."""
    return tuple(entry.name for entry in _ENTRIES if entry.applies == applies)


def _fmt(bound) -> str:
    if isinstance(bound, str):
        return bound
    return f"{bound:g}"

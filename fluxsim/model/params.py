"""The parameters of one simulation: a pytree of every number that can be swept, fitted or differentiated."""

from __future__ import annotations

import dataclasses
from typing import Any

from fluxsim.model._pytree import pytree_dataclass
from fluxsim.model.catalogue import default
from fluxsim.model.constants import Material
from fluxsim.model.diffusivity import PowerLaw
from fluxsim.model.surface import Blocking, FluxRatio, make_blocking


@pytree_dataclass
class Params:
    """Every number of one simulation that can be swept, fitted or differentiated (SI, unit-suffixed).

    Defaults, units and allowed ranges: :mod:`fluxsim.model.catalogue` (the README's inputs table).

    Attributes:
        radius_m: particle radius R [m].
        rate_mA_per_g: specific current of charge/discharge steps whose own rate is None [mA g-1].
        theta0: initial uniform Li occupancy [-].
        theta_cut: surface occupancy that ends a charge (fixed upper cut-off voltage) [-].
        theta_upper: surface occupancy that ends a discharge [-].
        theta_core: occupancy above which a region counts as Li-rich core [-].
        core_smoothing: sigmoid width of the smooth core metrics, in occupancy [-].
        voltage_cut_V: upper cut-off voltage of a charge for surface model B [V].
        blocking: where the surface is blocked (:class:`fluxsim.model.surface.Blocking`).
        diffusivity: the D(theta) law (:mod:`fluxsim.model.diffusivity`).
        kinetics: surface model, :class:`~.surface.FluxRatio` (A) or :class:`~.surface.FilmResistance` (B).
        material: molar mass and density (:class:`fluxsim.model.constants.Material`).
    """

    radius_m: float = default("radius_m")
    rate_mA_per_g: float = default("rate_mA_per_g")
    theta0: float = default("theta0")
    theta_cut: float = default("theta_cut")
    theta_upper: float = default("theta_upper")
    theta_core: float = default("theta_core")
    core_smoothing: float = default("core_smoothing")
    voltage_cut_V: float = default("voltage_cut_V")
    blocking: Blocking = dataclasses.field(default_factory=make_blocking)
    diffusivity: Any = dataclasses.field(default_factory=PowerLaw)
    kinetics: Any = dataclasses.field(default_factory=FluxRatio)
    material: Material = dataclasses.field(default_factory=Material)

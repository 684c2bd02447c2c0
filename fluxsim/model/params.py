"""The parameters of one simulation: a pytree of every number that can be swept, fitted or differentiated."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from fluxsim.model._pytree import pytree_dataclass
from fluxsim.model.constants import Material
from fluxsim.model.diffusivity import PowerLaw
from fluxsim.model.surface import Blocking, FluxRatio, make_blocking


@pytree_dataclass
class Params:
    """Every number of one simulation that can be swept, fitted or differentiated (SI, unit-suffixed).

    Attributes:
        radius_m: particle radius R [m] (default 1.2e-6, the paper's 2.4 um diameter).
        rate_mA_per_g: specific current of charge/discharge steps whose own rate is None [mA g-1] (default 100).
        theta0: initial uniform Li occupancy [-] (default 1.0; use 1 - 1e-4 with surface model B).
        theta_cut: surface occupancy that ends a charge (fixed upper cut-off voltage) [-] (default 0.2).
        theta_upper: surface occupancy that ends a discharge [-] (default 0.99).
        theta_core: occupancy above which a region counts as Li-rich core [-] (default 0.97).
        core_smoothing: sigmoid width of the smooth core metrics, in occupancy [-] (default 0.005).
        voltage_cut_V: upper cut-off voltage of a charge for surface model B [V] (default inf: none).
        blocking: where the surface is blocked (:class:`fluxsim.model.surface.Blocking`).
        diffusivity: the D(theta) law (:mod:`fluxsim.model.diffusivity`).
        kinetics: surface model, :class:`~.surface.FluxRatio` (A) or :class:`~.surface.FilmResistance` (B).
        material: molar mass and density (:class:`fluxsim.model.constants.Material`).
    """

    radius_m: float = 1.2e-6
    rate_mA_per_g: float = 100.0
    theta0: float = 1.0
    theta_cut: float = 0.2
    theta_upper: float = 0.99
    theta_core: float = 0.97
    core_smoothing: float = 0.005
    voltage_cut_V: float = math.inf
    blocking: Blocking = dataclasses.field(default_factory=make_blocking)
    diffusivity: Any = dataclasses.field(default_factory=PowerLaw)
    kinetics: Any = dataclasses.field(default_factory=FluxRatio)
    material: Material = dataclasses.field(default_factory=Material)

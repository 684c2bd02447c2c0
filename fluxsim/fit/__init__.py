"""Inverse fitting of surface-blocking inputs to microscopy core offsets (issue 4); see :mod:`fluxsim.fit.driver`.

Jobs: :mod:`~fluxsim.fit.model` (the forward model and residuals, pure JAX), :mod:`~fluxsim.fit.optimisers`
(Levenberg-Marquardt, optax, the compile cache), :mod:`~fluxsim.fit.synthetic` (synthetic measurements),
:mod:`~fluxsim.fit.report` (:class:`FitResult`) and :mod:`~fluxsim.fit.driver` (:func:`fit`, :func:`fit_particles`).
"""

from fluxsim.fit.driver import (
    UNIDENTIFIABLE_CONDITION,
    UNIDENTIFIABLE_RELATIVE_SE,
    UNIDENTIFIABLE_SE,
    IdentifiabilityWarning,
    fit,
    fit_particles,
)
from fluxsim.fit.model import (
    CANONICAL_HORIZON_S,
    DEFAULT_CORE_FRACTION_SIGMA,
    DEFAULT_D_SIGMA_NM,
    DEFAULT_NUMERICS,
    FITTABLE,
    HORIZON_MARGIN,
    PAD_POINTS,
    SAVE_POINTS,
    common_buckets,
    fit_mesh,
    fixed_inputs,
    time_rescaled,
)
from fluxsim.fit.optimisers import COMPILE_LOG, EXECUTABLES, METHODS, compile_counts, halton
from fluxsim.fit.report import INTERVAL_KINDS, INTERVAL_LEVELS, FitResult
from fluxsim.fit.synthetic import simulate_observations

__all__ = [
    "CANONICAL_HORIZON_S", "COMPILE_LOG", "DEFAULT_CORE_FRACTION_SIGMA", "DEFAULT_D_SIGMA_NM", "DEFAULT_NUMERICS",
    "EXECUTABLES", "FITTABLE", "HORIZON_MARGIN", "INTERVAL_KINDS", "INTERVAL_LEVELS", "METHODS", "PAD_POINTS",
    "SAVE_POINTS", "UNIDENTIFIABLE_CONDITION",
    "UNIDENTIFIABLE_RELATIVE_SE", "UNIDENTIFIABLE_SE", "FitResult", "IdentifiabilityWarning", "common_buckets",
    "compile_counts", "fit",
    "fit_mesh", "fit_particles", "fixed_inputs", "halton", "simulate_observations", "time_rescaled",
]

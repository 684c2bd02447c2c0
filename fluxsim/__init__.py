"""fluxsim: delithiation of a cathode particle with a partially blocked surface, in JAX.

Importing fluxsim enables 64-bit floats in JAX (``jax_enable_x64``): the solver defaults to float64 and the
accuracy tests rely on it. The numerical core imports only jax and numpy; hydra, xarray and zarr are imported by
the modules that need them (configuration, storage, CLI).
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from fluxsim.api import Result, run  # noqa: E402
from fluxsim.protocol import Charge, Discharge, Rest  # noqa: E402
from fluxsim.solver import Numerics, Params, Solution, simulate  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Charge", "Discharge", "Numerics", "Params", "Rest", "Result", "Solution", "run", "simulate"]

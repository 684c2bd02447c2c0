"""fluxsim: delithiation of a cathode particle with a partially blocked surface, in JAX.

Importing fluxsim changes no global state. The solver defaults to float64, which JAX computes only with
``jax_enable_x64`` on: :func:`run` and the ``fluxsim`` commands switch it on; before calling :func:`simulate` (or
:mod:`fluxsim.fit`) directly, call :func:`enable_float64` (see :mod:`fluxsim.precision`). The numerical core imports
only jax and numpy; hydra, xarray and zarr are imported by the modules that need them (configuration, storage, CLI).

The package is layered (docs/architecture.md): ``fluxsim.model`` (inputs and parameters) < ``fluxsim.core``
(the solvers and their outputs) < ``fluxsim.api`` (this facade) < ``fluxsim.study`` (sweeps) < ``fluxsim.io``
(store, observations) < ``fluxsim.fit`` < ``fluxsim.imaging`` < ``fluxsim.app`` (config, CLI, plots).
"""

from fluxsim._version import __version__
from fluxsim.api import Result, make_params, replace, run
from fluxsim.core import outputs
from fluxsim.core.polar.solver import Numerics, simulate
from fluxsim.core.solution import Solution
from fluxsim.model.params import Params
from fluxsim.model.protocol import Charge, Discharge, Rest
from fluxsim.precision import enable_float64, float64_enabled

__all__ = ["Charge", "Discharge", "Numerics", "Params", "Rest", "Result", "Solution", "__version__", "enable_float64",
           "float64_enabled", "make_params",
           "outputs", "replace", "run", "simulate"]

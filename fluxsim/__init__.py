"""fluxsim: delithiation of a cathode particle with a partially blocked surface, in JAX.

Importing fluxsim enables 64-bit floats in JAX (``jax_enable_x64``): the solver defaults to float64 and the
accuracy tests rely on it. The numerical core imports only jax and numpy; hydra, xarray and zarr are imported by
the modules that need them (configuration, storage, CLI).

The package is layered (docs/architecture.md): ``fluxsim.model`` (inputs and parameters) < ``fluxsim.core``
(the solvers and their outputs) < ``fluxsim.api`` (this facade) < ``fluxsim.study`` (sweeps) < ``fluxsim.io``
(store, observations) < ``fluxsim.fit`` < ``fluxsim.imaging`` < ``fluxsim.app`` (config, CLI, plots).
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from fluxsim._version import __version__  # noqa: E402
from fluxsim.api import Result, make_params, replace, run  # noqa: E402
from fluxsim.core import outputs  # noqa: E402
from fluxsim.core.polar.solver import Numerics, simulate  # noqa: E402
from fluxsim.core.solution import Solution  # noqa: E402
from fluxsim.model.params import Params  # noqa: E402
from fluxsim.model.protocol import Charge, Discharge, Rest  # noqa: E402

__all__ = ["Charge", "Discharge", "Numerics", "Params", "Rest", "Result", "Solution", "__version__", "make_params",
           "outputs", "replace", "run", "simulate"]

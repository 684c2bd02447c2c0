"""fluxsim: delithiation of a cathode particle with a partially blocked surface, in JAX.

Importing fluxsim changes no global state. The solver defaults to float64, which JAX computes only with
``jax_enable_x64`` on: :func:`run` and the ``fluxsim`` commands switch it on; before calling :func:`simulate` (or
:mod:`fluxsim.fit`) directly, call :func:`enable_float64` (see :mod:`fluxsim.precision`).

The solver is the mesh core (:mod:`fluxsim.core.solve`): any particle outline (:class:`Disk`, :class:`Ellipse`,
:class:`Polygon`, or the curve of :func:`outline_from_mask`; also as ``fluxsim.outline``) is triangulated once
(:func:`mesh_outline`) and integrated with error-controlled steps; ``simulate(params, mesh, protocol, numerics,
save_times_s, snapshot_times_s)`` returns a :class:`Solution` on the given time grid. The numerical core imports
only jax and numpy; hydra, xarray and zarr are imported by the modules that need them (configuration, storage, CLI).

The package is layered (docs/architecture.md): ``fluxsim.model`` (inputs and parameters) < ``fluxsim.core``
(the solvers and their outputs) < ``fluxsim.api`` (this facade) < ``fluxsim.study`` (sweeps) < ``fluxsim.io``
(store, observations) < ``fluxsim.fit`` < ``fluxsim.imaging`` < ``fluxsim.app`` (config, CLI, plots).
"""

from fluxsim._version import __version__
from fluxsim.api import Result, make_params, replace, run
from fluxsim.core import outline, outputs
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import (
    Curve,
    Disk,
    Ellipse,
    Polygon,
    ellipse_from_semi_axes,
    outline_from_mask,
    polygon_from_vertices,
)
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics, Solution, simulate
from fluxsim.model.params import Params
from fluxsim.model.protocol import Charge, Discharge, Rest
from fluxsim.precision import enable_float64, float64_enabled

__all__ = ["Charge", "Curve", "Discharge", "Disk", "Ellipse", "Numerics", "Params", "Polygon", "RKLSettings", "Rest",
           "Result", "Solution", "__version__", "ellipse_from_semi_axes", "enable_float64", "float64_enabled",
           "make_params", "mesh_outline", "outline", "outline_from_mask", "outputs", "polygon_from_vertices", "replace",
           "run", "simulate"]

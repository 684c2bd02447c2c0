"""Small helpers shared by the solver tests (the mesh core; ``polar_batched`` for the polar solver's own tests)."""

import jax
import numpy as np

from fluxsim.core import solve
from fluxsim.core.mesh import DISK, mesh_outline
from fluxsim.core.polar import solver as polar
from fluxsim.model.protocol import Charge


def stack(params_list):
    """Stack Params pytrees of identical structure along a new leading batch axis."""
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *params_list)


def batched(numerics, protocol=(Charge(),), save_times_s=solve.DEFAULT_SAVE_TIMES_S, snapshot_times_s=(),
            outline=DISK):
    """A jitted, vmapped mesh-core ``simulate`` for one static configuration on ``outline`` meshed at
    ``numerics.spacing``."""
    mesh = mesh_outline(outline, numerics.spacing)
    return jax.jit(jax.vmap(lambda p: solve.simulate(p, mesh, protocol, numerics, tuple(save_times_s),
                                                     tuple(snapshot_times_s))))


def polar_batched(numerics, protocol=(Charge(),), snapshot_times_s=()):
    """A jitted, vmapped polar-solver ``simulate`` for one static configuration."""
    return jax.jit(jax.vmap(lambda p: polar.simulate(p, protocol, numerics, snapshot_times_s)))


def unbatch(tree, i):
    """Item ``i`` of a batched pytree."""
    return jax.tree.map(lambda x: x[i], tree)

"""Small helpers shared by the solver tests."""

import jax
import numpy as np

from fluxsim.core.polar.solver import simulate
from fluxsim.model.protocol import Charge


def stack(params_list):
    """Stack Params pytrees of identical structure along a new leading batch axis."""
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *params_list)


def batched(numerics, protocol=(Charge(),), snapshot_times_s=()):
    """A jitted, vmapped ``simulate`` for one static configuration."""
    return jax.jit(jax.vmap(lambda p: simulate(p, protocol, numerics, snapshot_times_s)))


def unbatch(tree, i):
    """Item ``i`` of a batched pytree."""
    return jax.tree.map(lambda x: x[i], tree)

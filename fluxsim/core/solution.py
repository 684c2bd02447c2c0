"""The raw result of one simulation, shared by the solvers of :mod:`fluxsim.core`."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


class Solution(NamedTuple):
    """Raw outputs of :func:`simulate` (a pytree of arrays; :class:`fluxsim.api.Result` wraps it for users).

    Series have one entry per saved time (the initial state, then every ``save_every`` steps), ``n_save`` in all.
    After a protocol step ends early (cut-off) its remaining entries repeat the final state.
    """

    t_s: jnp.ndarray  # (n_save,) time since the start of the protocol [s]
    protocol_step: jnp.ndarray  # (n_save,) index of the protocol step
    passed_capacity_mAh_per_g: jnp.ndarray  # (n_save,) net charge passed (charge positive) [mAh g-1]
    mean_theta: jnp.ndarray  # (n_save,)
    surface_min_theta: jnp.ndarray  # (n_save,)
    surface_max_theta: jnp.ndarray  # (n_save,)
    theta_min: jnp.ndarray  # (n_save,) over the whole particle
    theta_max: jnp.ndarray  # (n_save,)
    core_fraction: jnp.ndarray  # (n_save,) area fraction of the Li-rich core
    core_x_nm: jnp.ndarray  # (n_save,) core centroid relative to the particle centroid [nm] (0 where no core)
    core_y_nm: jnp.ndarray
    smooth_core_fraction: jnp.ndarray  # (n_save,) sigmoid-weighted versions
    smooth_core_x_nm: jnp.ndarray
    smooth_core_y_nm: jnp.ndarray
    voltage_V: jnp.ndarray  # (n_save,) cell voltage (surface model B; NaN for model A)
    line_cut: jnp.ndarray  # (n_save, 2 nr + 1) occupancy along the arc axis
    step_end_s: jnp.ndarray  # (n_protocol,) time each protocol step ended [s]
    step_cutoff: jnp.ndarray  # (n_protocol,) whether it ended at its cut-off (not its time limit)
    snapshots: jnp.ndarray  # (n_snapshots, nr + 1, nphi) occupancy at the requested times (NaN: not reached)
    core_vanish_s: jnp.ndarray  # first time the maximum occupancy falls to theta_core [s] (NaN: never)
    core_vanish_x_nm: jnp.ndarray  # where the last of the core was (node of maximum occupancy) [nm]
    core_vanish_y_nm: jnp.ndarray
    newton_iterations: jnp.ndarray  # most Newton updates any time step needed
    newton_change: jnp.ndarray  # largest last Newton update of any step (occupancy): ~1e-15 when all converged
    newton_total: jnp.ndarray  # Newton updates summed over all time steps (a cost diagnostic)

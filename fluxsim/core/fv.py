"""The semi-discrete finite-volume system in Kirchhoff form on a :class:`~fluxsim.core.mesh.TriMesh` (pure JAX).

Nondimensional (lengths by the equivalent radius ``R_eq``, time by ``R_eq**2 / D_ref``)::

    M_L dtheta/dt = -A K(theta) - b(theta_rim)

``M_L`` the lumped P1 masses, ``A`` the P1 stiffness (graph Laplacian with conductances ``w_ij >= 0``), ``K`` the
Kirchhoff potential ``integral of D / D_ref`` (:mod:`fluxsim.model.diffusivity`), ``b`` the rim outflow
(:mod:`fluxsim.core.rim`, nonzero only on the rim slots ``0 .. n_rim - 1``). Because ``A`` is symmetric with zero row
sums, the Li content ``sum_i m_i theta_i`` changes only by ``-sum b`` (exact discrete balance, to rounding).

GPU shape: one evaluation is a fixed set of batched elementwise kernels plus one gather: ``K`` per node, a gather of
``K`` over the ELL neighbour table ``(n, k)``, a weighted row sum, the rim outflow on the first ``n_rim`` nodes (a
slice and a pad: no scatter) and a multiply by ``1 / m``. No loop over grid lines, no linear solve. Padded nodes
have conductance 0 and ``inv_mass`` 0, so they never change. Cost on the default disk mesh (3,840 node slots, ELL
width 8; XLA CPU cost analysis, batch of 64 with the mesh as an argument): 2.0e5 flop, 3.8e3 transcendentals and
7.8e5 bytes per evaluation and simulation (the CPU backend materialises the ``(batch, n, 8)`` gather; the
irreducible traffic is ~5 node arrays, ~1.5e5 bytes in float64).

API:

* ``kirchhoff_rhs(mesh, params, theta, drive) -> (dtheta_dt (n,), voltage_V ())``;
* ``net_inflow(mesh, potential) -> (n,)``: ``-A u``, the building block (mass-weighted);
* ``spectral_radius_bound(mesh, params, theta=None, drive=None) -> ()``: a Gershgorin upper bound of the spectral
  radius of the Jacobian of ``dtheta_dt`` (for the stage count of a stabilised explicit integrator);
* ``max_diffusivity(law) -> ()``: the largest ``D(theta) / D_ref`` over ``theta in [0, 1]``;
* ``time_scale_s(params) -> ()``: ``R_eq**2 / D_ref`` [s].
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from fluxsim.core.mesh import TriMesh
from fluxsim.core.rim import Drive, rim_outflow

#: Occupancies at which D is sampled for its maximum over [0, 1] (together with the law's reference).
_D_SAMPLES = np.linspace(0.0, 1.0, 257)


def time_scale_s(params):
    """``R_eq**2 / D_ref`` [s]: one unit of nondimensional time."""
    return params.radius_m**2 / params.diffusivity.reference


def net_inflow(mesh: TriMesh, potential: Float[Array, " n"]) -> Float[Array, " n"]:
    """``-A u``: net inflow into each control volume, ``sum_j w_ij (u_j - u_i)`` ``(n,)`` (mass-weighted)."""
    return jnp.sum(mesh.conductance * (potential[mesh.neighbours] - potential[:, None]), axis=-1)


def kirchhoff_rhs(mesh: TriMesh, params, theta: Float[Array, " n"], drive: Drive):
    """``dtheta/dt`` (nondimensional time) of every node and the cell voltage.

    Args:
        mesh: the mesh (unbatched; vmap outside).
        params: :class:`fluxsim.model.params.Params` (diffusivity law and kinetics are used here).
        theta: nodal occupancy ``(n,)`` (padded nodes: any finite value; they stay put).
        drive: :func:`fluxsim.core.rim.make_drive` of the protocol step.

    Returns:
        ``(dtheta_dt (n,), voltage_V ())``: voltage NaN for model A.
    """
    law = params.diffusivity
    potential = law.kirchhoff(theta) / law.reference
    outflow, _, voltage = rim_outflow(params, theta[: mesh.n_rim], drive)
    outflow = jnp.pad(outflow, (0, theta.shape[-1] - mesh.n_rim))  # fuses into the elementwise tail (20 % fewer bytes)
    return (net_inflow(mesh, potential) - outflow) * mesh.inv_mass, voltage


def max_diffusivity(law, dtype=jnp.float64):
    """Largest nondimensional ``D(theta) / D_ref`` for ``theta`` in [0, 1].

    The maximum over 257 evenly spaced occupancies and the law's reference: exact for the power law (maximum at
    ``theta = 0``), constant and tabulated laws (maximum at a table point, which is the reference); within sampling
    for other smooth laws.
    """
    samples = law(jnp.asarray(_D_SAMPLES, dtype))
    return jnp.maximum(jnp.max(samples), law.reference) / law.reference


def _gershgorin_rows(mesh: TriMesh, scale):
    """Row sums of ``|diag(scale) A diag(scale)|``: ``scale_i (sum_j w_ij scale_i + sum_j w_ij scale_j)``."""
    w = mesh.conductance
    return scale * (jnp.sum(w, axis=-1) * scale + jnp.sum(w * scale[mesh.neighbours], axis=-1))


def spectral_radius_bound(mesh: TriMesh, params, theta=None, drive: Drive | None = None):
    """Gershgorin upper bound of the spectral radius of the Jacobian of ``dtheta_dt`` w.r.t. ``theta``.

    The Jacobian is ``-M^-1 (A diag(D) + S)`` with ``D = K'(theta) / D_ref`` and the rim Jacobian ``S``.

    * Model A (``S = 0``): ``M^-1 A diag(D)`` is similar to the symmetric ``E A E``, ``E = (D / M)^(1/2)``, whose
      Gershgorin rows are ``e_i (e_i sum_j w_ij + sum_j w_ij e_j)``. Without ``theta`` the bound is
      ``D_max * laplacian_bound`` (``E A E <= D_max M^-1/2 A M^-1/2`` in the Loewner order, ``D_max`` over
      theta in [0, 1]): it holds for every state, so it bounds every stage of a step. With ``theta`` given, D is
      taken at that state (tighter, for that state only).
    * Model B (``theta`` and ``drive`` given, state-dependent kinetics): ``S = diag(e) - omega e^T`` (``omega_j``
      the share of the total current) is not symmetric, so plain row sums are used:
      ``(D_i sum_j w_ij + sum_j w_ij D_j + e_i + omega_i sum_j e_j) / m_i`` (``e`` depends on the state, so model B
      has no state-independent bound; without ``drive`` the rim term is left out).

    Returns:
        A scalar (nondimensional, per unit of ``R_eq**2 / D_ref``).
    """
    law = params.diffusivity
    if theta is None:
        return max_diffusivity(law, mesh.xy.dtype) * mesh.laplacian_bound
    d = law(theta) / law.reference
    if drive is None or not params.kinetics.state_dependent:
        scaled = d * mesh.inv_mass  # 0 on padding: a safe square root keeps NaN out of gradients
        positive = scaled > 0
        return jnp.max(_gershgorin_rows(mesh, jnp.where(positive, jnp.sqrt(jnp.where(positive, scaled, 1.0)), 0.0)))
    w = mesh.conductance
    rows = (d * jnp.sum(w, axis=-1) + jnp.sum(w * d[mesh.neighbours], axis=-1)) * mesh.inv_mass
    _, slope, _ = rim_outflow(params, theta[: mesh.n_rim], drive)
    e = jnp.abs(slope)
    omega = drive.weights / jnp.sum(drive.weights)
    rim_rows = (e + omega * jnp.sum(e)) * mesh.inv_mass[: mesh.n_rim]
    return jnp.max(rows + jnp.pad(rim_rows, (0, theta.shape[-1] - mesh.n_rim)))

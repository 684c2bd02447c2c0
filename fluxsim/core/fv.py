"""The semi-discrete finite-volume system in Kirchhoff form on a :class:`~fluxsim.core.mesh.TriMesh` (pure JAX).

Nondimensional (lengths by the equivalent radius ``R_eq``, time by ``R_eq**2 / D_ref``)::

    M_L dtheta/dt = -A K(theta) - b(theta_rim)

``M_L`` the lumped P1 masses, ``A`` the P1 stiffness (graph Laplacian with conductances ``w_ij >= 0``), ``K`` the
Kirchhoff potential ``integral of D / D_ref`` (:mod:`fluxsim.model.diffusivity`), ``b`` the rim outflow
(:mod:`fluxsim.core.rim`, nonzero only on the rim slots ``0 .. n_rim - 1``). Because ``A`` is symmetric with zero row
sums, the Li content ``sum_i m_i theta_i`` changes only by ``-sum b`` (exact discrete balance, to rounding).

GPU shape: one evaluation is a fixed set of batched elementwise kernels plus gathers: ``K`` per node, one gather of
``K`` per ELL slot (a column of the neighbour table ``(n, k)``) fused with its multiply-add, the rim outflow on the
first ``n_rim`` nodes (a slice and a pad: no scatter) and a multiply by ``1 / m``. No loop over grid lines, no
linear solve. Padded nodes have conductance 0 and ``inv_mass`` 0, so they never change. The power law's ``K`` costs
an exp and a log per node (its exponent is traced) unless the static ``integer_exponent`` promise is given (then a
few multiplications). Before the per-slot gathers (XLA CPU cost analysis, 3,840 node slots, ELL width 8, batch of
64 with the mesh as an argument): 2.0e5 flop, 3.8e3 transcendentals and 7.8e5 bytes per evaluation and simulation
(the CPU backend materialised the ``(batch, n, 8)`` gather; the irreducible traffic is ~5 node arrays, ~1.5e5 bytes
in float64).

API:

* ``kirchhoff_rhs(mesh, params, theta, drive, integer_exponent=None, loop=None) -> (dtheta_dt (n,), voltage_V ())``;
* ``kirchhoff_system(mesh, params, drive, integer_exponent=None, loop=None) -> SemiLinear``: the same ``dtheta/dt``
  split for the integrator's adjoint (:mod:`fluxsim.core.rkl2`);
* ``potential(law, theta, integer_exponent=None) -> (n,)``: ``K(theta) / D_ref``;
* ``net_inflow(mesh, potential, loop=None) -> (n,)``: ``-A u``, the building block (mass-weighted);
* ``spectral_radius_bound(mesh, params, theta=None, drive=None) -> ()``: a Gershgorin upper bound of the spectral
  radius of the Jacobian of ``dtheta_dt`` (for the stage count of a stabilised explicit integrator);
* ``spectral_radius_estimate(mesh, params) -> ()``: the tighter Lanczos-based one model A's stage count uses;
* ``max_diffusivity(law) -> ()``: the largest ``D(theta) / D_ref`` over ``theta in [0, 1]``;
* ``time_scale_s(params) -> ()``: ``R_eq**2 / D_ref`` [s].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from fluxsim.core.mesh import TriMesh
from fluxsim.core.rim import Drive, rim_outflow
from fluxsim.core.rkl2 import SemiLinear

#: Occupancies at which D is sampled for its maximum over [0, 1] (together with the law's reference).
_D_SAMPLES = np.linspace(0.0, 1.0, 257)
#: Lanczos iterations of :func:`laplacian_spectral_radius` and the safety factor on its (from below) estimate.
LANCZOS_ITERATIONS = 32
LANCZOS_MARGIN = 1.05


def time_scale_s(params):
    """``R_eq**2 / D_ref`` [s]: one unit of nondimensional time."""
    return params.radius_m**2 / params.diffusivity.reference


def _ell_sum(mesh: TriMesh, field, term, loop: bool | None = None) -> Float[Array, " n"]:
    """``sum_k term(w_k, field_k)`` over the ELL slots ``k`` (columns of the ``(n, k)`` table), in slot order.

    ``term(w_k, field_k)`` gets the conductances ``(n,)`` of slot ``k`` and ``field`` gathered at that slot's
    neighbours ``(n,)``. Every slot is one contiguous gather with its multiply-add (under ``vmap`` on CPU 4x faster
    than gathering the ``(batch, n, k)`` block). On CPU the slots run in a loop, which makes XLA materialise
    ``field`` once instead of fusing its computation into every slot's gather (with the traced-exponent power: ``k``
    exp and log per node); elsewhere (GPU) they are unrolled into one fused kernel (recomputing is cheap there,
    kernel launches are not). ``loop`` forces one of the two (None: by platform).
    """
    width = mesh.neighbours.shape[-1]
    neighbours, conductance = mesh.neighbours.T, mesh.conductance.T  # slot-major (k, n): a slot is one row

    def add_slot(k, total):
        index = jax.lax.dynamic_index_in_dim(neighbours, k, keepdims=False)
        at_neighbours = field.at[index].get(mode="promise_in_bounds")  # ELL indices are in range by construction
        return total + term(jax.lax.dynamic_index_in_dim(conductance, k, keepdims=False), at_neighbours)

    def looped(zero):
        return jax.lax.fori_loop(0, width, add_slot, zero)

    def unrolled(zero):
        for k in range(width):
            zero = add_slot(k, zero)
        return zero

    zero = jnp.zeros(field.shape, jnp.result_type(mesh.conductance, field))
    if loop is not None:
        return (looped if loop else unrolled)(zero)
    return jax.lax.platform_dependent(zero, cpu=looped, default=unrolled)


def net_inflow(mesh: TriMesh, potential: Float[Array, " n"], loop: bool | None = None) -> Float[Array, " n"]:
    """``-A u``: net inflow into each control volume, ``sum_j w_ij (u_j - u_i)`` ``(n,)`` (mass-weighted).

    ``loop``: the ELL slots in a loop (True) or unrolled (False); None: by platform (see :func:`_ell_sum`)."""
    return _ell_sum(mesh, potential, lambda w, at_neighbours: w * (at_neighbours - potential), loop)


def potential(law, theta, integer_exponent: int | None = None):
    """The nondimensional Kirchhoff potential ``K(theta) / D_ref`` of every node.

    ``integer_exponent``: the static promise of :meth:`fluxsim.model.diffusivity.PowerLaw.kirchhoff` (the power
    law's exponent is this integer: no exp and log per node; NaN if broken); None for any law.
    """
    if integer_exponent is None:
        return law.kirchhoff(theta) / law.reference
    return law.kirchhoff(theta, integer_exponent=integer_exponent) / law.reference


def kirchhoff_rhs(mesh: TriMesh, params, theta: Float[Array, " n"], drive: Drive,
                  integer_exponent: int | None = None, loop: bool | None = None):
    """``dtheta/dt`` (nondimensional time) of every node and the cell voltage.

    Args:
        mesh: the mesh (unbatched; vmap outside).
        params: :class:`fluxsim.model.params.Params` (diffusivity law and kinetics are used here).
        theta: nodal occupancy ``(n,)`` (padded nodes: any finite value; they stay put).
        drive: :func:`fluxsim.core.rim.make_drive` of the protocol step.
        integer_exponent: static promise that the power law's exponent is this integer (see :func:`potential`).
        loop: static; the ELL slots looped or unrolled (None: by platform; benchmarks count the GPU shape with False).

    Returns:
        ``(dtheta_dt (n,), voltage_V ())``: voltage NaN for model A.
    """
    u, outflow, voltage = _local(mesh, params, theta, drive, integer_exponent)
    return (net_inflow(mesh, u, loop) - outflow) * mesh.inv_mass, voltage


def _local(mesh: TriMesh, params, theta, drive: Drive, integer_exponent: int | None):
    """The pointwise part of :func:`kirchhoff_rhs`: the potential, the rim outflow padded to every node, the voltage."""
    u = potential(params.diffusivity, theta, integer_exponent)
    outflow, _, voltage = rim_outflow(params, theta[: mesh.n_rim], drive)
    outflow = jnp.pad(outflow, (0, theta.shape[-1] - mesh.n_rim))  # fuses into the elementwise tail (20 % fewer bytes)
    return u, outflow, voltage


def kirchhoff_system(mesh: TriMesh, params, drive: Drive, integer_exponent: int | None = None,
                     loop: bool | None = None) -> SemiLinear:
    """:func:`kirchhoff_rhs`'s ``dtheta/dt`` as a :class:`~fluxsim.core.rkl2.SemiLinear` system for the integrator:
    ``inv_mass * (-A u - b)`` with the local part ``theta -> (u, b)`` and ``-A`` (:func:`net_inflow`, symmetric
    because the ELL table lists ``j`` among ``i``'s neighbours with ``w_ij`` exactly when it lists ``i`` among
    ``j``'s with ``w_ji = w_ij``: :func:`fluxsim.core.mesh.mesh_outline` builds it from the symmetric stiffness)."""
    return SemiLinear(local=lambda theta: _local(mesh, params, theta, drive, integer_exponent)[:2],
                      operator=lambda u: net_inflow(mesh, u, loop), scale=mesh.inv_mass)


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
    return scale * (jnp.sum(mesh.conductance, axis=-1) * scale + _ell_sum(mesh, scale, jnp.multiply))


def laplacian_spectral_radius(mesh: TriMesh, iterations: int = LANCZOS_ITERATIONS):
    """Largest eigenvalue of ``M^-1/2 A M^-1/2`` by Lanczos with full reorthogonalisation (a stop-gradient scalar).

    The Ritz value approaches the eigenvalue from below; on the meshes of :mod:`fluxsim.core.mesh` (disk and
    ellipse, spacing 0.03-0.06 R) 24 iterations agree with scipy's ``eigsh`` to 1e-7 and 32 to 1e-9, where the
    Gershgorin ``mesh.laplacian_bound`` is 1.29-1.31 times larger. The start vector is a fixed high-frequency
    pattern of the node coordinates (deterministic; padded nodes have ``inv_mass`` 0 and drop out).
    """
    mesh = jax.tree.map(jax.lax.stop_gradient, mesh)
    dtype = mesh.xy.dtype
    scale = jnp.sqrt(mesh.inv_mass)

    def apply(v):
        return -scale * net_inflow(mesh, scale * v)

    v = scale * jnp.cos(997.0 * mesh.xy[:, 0] + 1693.0 * mesh.xy[:, 1] + 0.3)
    v = v / jnp.linalg.norm(v)
    basis = jnp.zeros((iterations + 1,) + v.shape, dtype).at[0].set(v)

    def body(k, c):
        basis, alpha, beta = c
        q = basis[k]
        w = apply(q)
        alpha = alpha.at[k].set(jnp.dot(q, w))
        w = w - basis.T @ (basis @ w)  # full reorthogonalisation (rows past k are zero)
        w = w - basis.T @ (basis @ w)
        b = jnp.linalg.norm(w)
        beta = beta.at[k].set(b)
        return basis.at[k + 1].set(w / jnp.where(b > 0, b, 1.0)), alpha, beta

    zeros = jnp.zeros((iterations,), dtype)
    _, alpha, beta = jax.lax.fori_loop(0, iterations, body, (basis, zeros, zeros))
    tridiagonal = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    return jnp.linalg.eigvalsh(tridiagonal)[-1]


def spectral_radius_estimate(mesh: TriMesh, params, margin: float = LANCZOS_MARGIN):
    """State-independent spectral radius for the stage count of model A: ``D_max`` times ``margin`` times the
    Lanczos estimate of :func:`laplacian_spectral_radius`, never above :func:`spectral_radius_bound` (Loewner order
    as there: ``E A E <= D_max M^-1/2 A M^-1/2``), rounded up as below. About 1.23 times smaller than the
    Gershgorin bound on quasi-uniform meshes: 1.11 times fewer RKL2 stages (they scale with its square root)."""
    law = params.diffusivity
    # Rounded up to a power of 2**(1/32) (at most 2.2 % more): programs that compute the Lanczos estimate with
    # different rounding (batched or not, a constant or an argument mesh) then agree on it, and so on every stage
    # count, instead of differing by one stage where h rho falls on a stage boundary.
    lanczos = jnp.exp2(jnp.ceil(jnp.log2(margin * laplacian_spectral_radius(mesh)) * 32.0) / 32.0)
    return jnp.minimum(max_diffusivity(law, mesh.xy.dtype) * lanczos, spectral_radius_bound(mesh, params))


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
    rows = (d * jnp.sum(mesh.conductance, axis=-1) + _ell_sum(mesh, d, jnp.multiply)) * mesh.inv_mass
    _, slope, _ = rim_outflow(params, theta[: mesh.n_rim], drive)
    e = jnp.abs(slope)
    omega = drive.weights / jnp.sum(drive.weights)
    rim_rows = (e + omega * jnp.sum(e)) * mesh.inv_mass[: mesh.n_rim]
    return jnp.max(rows + jnp.pad(rim_rows, (0, theta.shape[-1] - mesh.n_rim)))

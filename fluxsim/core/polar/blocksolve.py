"""Direct solver for the implicit operator on the polar grid: periodic block-tridiagonal with a bordered centre.

Order the unknowns ray by ray: ``x_j`` (rings 1..nr of ray ``j``, ``m = nr`` values) for ``j = 0 .. n-1``
(``n = nphi``), plus the centre node ``c``. The operator ``V + gamma h L_D`` then reads

    A_j x_j - c_{j-1} * x_{j-1} - c_j * x_{j+1} - s_j e_1 c = r_j      (indices mod n)
    (V_c + sum_j s_j) c - sum_j s_j x_j[0] = r_c

with ``A_j`` tridiagonal (radial faces, diagonal terms), ``c_j`` the diagonal couplings between rays ``j`` and
``j + 1`` (azimuthal faces, one per ring) and ``s_j`` the spokes joining the centre to ring 1. The matrix is symmetric
and strictly diagonally dominant, so block elimination without pivoting between blocks is stable.

* Rays ``0 .. n-2`` are eliminated by block Thomas (a ``lax.scan``; the pivot blocks fill to dense ``m x m``).
  Ray ``n - 1`` closes the period and is recovered from an ``m x m`` Schur complement.
* The centre is recovered from a scalar Schur complement.
* An optional rank-one term ``-u v^T`` (the surface-kinetics Jacobian of model B) uses Sherman-Morrison.

Cost per factorisation is ``O(n m**3)``, per solve ``O(n m**2)``. This is exact, which matters: an approximately
factored (ADI/AMF) operator is not stable enough for the degenerate diffusivity on a polar grid.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

#: Unroll the ray scans. Only for XLA cost analysis (benchmarks/bench_roofline.py): XLA counts a loop body once,
#: so the flop and byte counts of a rolled scan leave out all but one iteration.
UNROLL_FOR_COST_ANALYSIS = False


def _scan(f, init, xs, reverse=False):
    return jax.lax.scan(f, init, xs, reverse=reverse, unroll=True if UNROLL_FOR_COST_ANALYSIS else 1)


def _inverse(a):
    """Inverse of SPD, diagonally dominant ``(m, m)`` blocks by Gauss-Jordan elimination without pivoting.

    Pure array code (no LAPACK call): fast under ``scan``/``vmap`` on CPU and GPU. Pivoting is unnecessary because
    every pivot block of the elimination is a Schur complement of a strictly diagonally dominant SPD matrix.
    """
    m = a.shape[-1]
    for k in range(m):
        pivot = a[..., k, k]
        row = a[..., k, :]
        col = a[..., :, k]
        a = a - col[..., :, None] * row[..., None, :] / pivot[..., None, None]
        a = a.at[..., k, :].set(row / pivot[..., None])
        a = a.at[..., :, k].set(-col / pivot[..., None])
        a = a.at[..., k, k].set(1.0 / pivot)
    return a


class RayFactor(NamedTuple):
    pivots_inv: jnp.ndarray  # (n - 1, m, m) inverses of the block-Thomas pivots of rays 0..n-2
    couple: jnp.ndarray  # (n, m) coupling of ray j with ray j + 1
    closure: jnp.ndarray  # (n - 1, m, m) response of rays 0..n-2 to the unknowns of ray n - 1
    closure_schur_inv: jnp.ndarray  # (m, m)


def _sweep(fac: RayFactor, rhs):
    """Solve the block system of rays 0..n-2 (without the periodic closure) for ``rhs`` (n - 1, m, ...)."""
    couple = fac.couple

    def forward(prev, inputs):
        p_inv, r, c_prev = inputs
        y = p_inv @ (r + c_prev[:, None] * prev)
        return y, y

    extra = rhs.shape[2:]
    r = rhs.reshape(rhs.shape[:2] + (-1,))
    zero = jnp.zeros_like(r[0])
    c_prev = jnp.concatenate([jnp.zeros_like(couple[:1]), couple[:-2]])  # coupling to the previous ray
    _, y = _scan(forward, zero, (fac.pivots_inv, r, c_prev))

    def backward(nxt, inputs):
        yj, p_inv, c_next = inputs
        x = yj + p_inv @ (c_next[:, None] * nxt)
        return x, x

    c_next = jnp.concatenate([couple[:-2], jnp.zeros_like(couple[:1])])
    _, x = _scan(backward, zero, (y, fac.pivots_inv, c_next), reverse=True)
    return x.reshape(x.shape[:2] + extra)


def factor_rays(blocks, couple) -> RayFactor:
    """Factorise the periodic block-tridiagonal part.

    Args:
        blocks: diagonal blocks ``A_j``, shape ``(n, m, m)``.
        couple: couplings ``c_j`` between ray ``j`` and ray ``j + 1`` (mod n), shape ``(n, m)``, entering the matrix
            with a minus sign.
    """
    n, m = couple.shape

    def pivot(prev_inv, inputs):
        a, c_prev = inputs
        p = a - c_prev[:, None] * prev_inv * c_prev[None, :]
        p_inv = _inverse(p)
        return p_inv, p_inv

    c_prev = jnp.concatenate([jnp.zeros_like(couple[:1]), couple[:-2]])
    _, pivots_inv = _scan(pivot, jnp.zeros((m, m), blocks.dtype), (blocks[:-1], c_prev))
    partial = RayFactor(pivots_inv, couple, None, None)
    # Ray n - 1 couples to ray 0 through couple[n - 1] and to ray n - 2 through couple[n - 2].
    border = jnp.zeros((n - 1, m, m), blocks.dtype)
    border = border.at[0].set(jnp.diag(couple[n - 1])).at[n - 2].add(jnp.diag(couple[n - 2]))
    closure = _sweep(partial, border)
    schur = blocks[n - 1] - couple[n - 2][:, None] * closure[n - 2] - couple[n - 1][:, None] * closure[0]
    return RayFactor(pivots_inv, couple, closure, _inverse(schur))


def solve_rays(fac: RayFactor, rhs):
    """Solve the periodic block system for ``rhs`` of shape ``(n, m)`` (or ``(n, m, k)``)."""
    couple = fac.couple
    partial = _sweep(fac, rhs[:-1])
    expand = (slice(None),) + (None,) * (rhs.ndim - 2)
    last = rhs[-1] + couple[-2][expand] * partial[-1] + couple[-1][expand] * partial[0]
    last = jnp.tensordot(fac.closure_schur_inv, last, axes=1)
    rest = partial + jnp.tensordot(fac.closure, last, axes=([2], [0]))
    return jnp.concatenate([rest, last[None]])


class WheelFactor(NamedTuple):
    """Factorisation of the full operator: rays, bordered centre, optional rank-one term."""

    rays: RayFactor
    spokes: jnp.ndarray  # (n,) centre-to-ring-1 couplings
    spoke_response: jnp.ndarray  # (n, m) ray solution for the spoke column
    centre_schur: jnp.ndarray
    rank_one_u: jnp.ndarray | None  # (n + 1 layout) response W0^-1 u, full grid incl. centre
    rank_one_v: jnp.ndarray | None  # (n, m) v on the rays (zero on the centre)
    rank_one_denominator: jnp.ndarray | None


def _solve_wheel0(fac: WheelFactor, centre_rhs, ray_rhs):
    x = solve_rays(fac.rays, ray_rhs)
    centre = (centre_rhs + jnp.sum(fac.spokes * x[:, 0])) / fac.centre_schur
    return centre, x + fac.spoke_response * centre


def factor_wheel(blocks, couple, spokes, centre_diag, rank_one=None) -> WheelFactor:
    """Factorise rays + centre (+ an optional rank-one term ``-u v^T`` on the rays).

    Args:
        blocks: ``(n, m, m)`` ray blocks (including the spokes on ring 1's diagonal).
        couple: ``(n, m)`` ray-to-ray couplings.
        spokes: ``(n,)`` couplings of the centre to ring 1 of each ray.
        centre_diag: the centre's diagonal entry (``V_c + sum(spokes)`` plus any centre terms).
        rank_one: optional ``(u, v)``, each ``(n, m)``: the matrix gains ``-u v^T`` (u, v on the rays).
    """
    rays = factor_rays(blocks, couple)
    unit = jnp.zeros(couple.shape, blocks.dtype).at[:, 0].set(spokes)
    spoke_response = solve_rays(rays, unit)
    centre_schur = centre_diag - jnp.sum(spokes * spoke_response[:, 0])
    fac = WheelFactor(rays, spokes, spoke_response, centre_schur, None, None, None)
    if rank_one is None:
        return fac
    u, v = rank_one
    u_centre, u_rays = _solve_wheel0(fac, jnp.zeros((), blocks.dtype), u)
    denominator = 1.0 - jnp.sum(v * u_rays)
    return fac._replace(rank_one_u=(u_centre, u_rays), rank_one_v=v, rank_one_denominator=denominator)


def solve_wheel(fac: WheelFactor, centre_rhs, ray_rhs):
    """Solve for the centre value and the ray values ``(n, m)``."""
    centre, rays = _solve_wheel0(fac, centre_rhs, ray_rhs)
    if fac.rank_one_v is not None:
        scale = jnp.sum(fac.rank_one_v * rays) / fac.rank_one_denominator
        centre = centre + fac.rank_one_u[0] * scale
        rays = rays + fac.rank_one_u[1] * scale
    return centre, rays

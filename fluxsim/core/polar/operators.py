"""Finite-volume operators on the polar grid and the implicit operator of the time stepper.

Semi-discrete system (nondimensional: lengths / R, times * D_ref / R**2)::

    V dtheta/dt = -L K(theta) - B(theta)

``V`` the control volumes, ``L`` the (symmetric, zero row-sum) graph Laplacian with conductances ``face length /
node distance``, ``K`` the Kirchhoff potential, ``B`` the surface outflow. Because ``L`` has zero column sums, the
total Li content changes only through ``B`` (exact discrete balance).

The BDF2 stepper (:mod:`~.stepper`) solves each Newton update in Kirchhoff-increment variables ``z = D dx``, with
the operator ``diag + gamma h (L_F + dB/dtheta)``: :func:`factor_operator` factorises it and :func:`solve_operator`
applies its inverse. The stepper passes ``diag = V / D`` and unit face multipliers ``F`` (so ``L_F = L``); the
multipliers scale each face's conductance for callers that need them. The matrix is symmetric (apart from model B's
rank-one term) and strictly diagonally dominant. It is solved exactly by :mod:`~.blocksolve`, because approximate
factorisations (ADI/AMF) proved unstable for the degenerate front near the polar centre, where the azimuthal
coupling is very stiff. The scheme is described in docs/model.md section 10.

Model B's surface Jacobian is ``diag(e) - omega e^T``. Its rank-one part keeps the total current fixed, so the exact
Li balance survives the implicit solve.
"""

from __future__ import annotations

import jax.numpy as jnp

from fluxsim.core.polar import blocksolve
from fluxsim.core.polar.grid import PolarGrid


def net_inflow(grid: PolarGrid, potential, face_coefficients=None):
    """Net inflow ``-L u`` of every control volume, ``(nr + 1, nphi)``; row 0 holds the centre's share.

    Args:
        grid: the polar grid.
        potential: nodal field ``u`` (e.g. the Kirchhoff potential), ``(nr + 1, nphi)`` (row 0: centre, repeated).
        face_coefficients: optional ``(radial, azimuthal)`` per-face multipliers of the conductances (each
            ``(nr, nphi)``: radial face ``k`` joins ring ``k`` and ``k + 1``, azimuthal face ``(i, j)`` joins
            nodes ``(i + 1, j)`` and ``(i + 1, j + 1)``); ``L`` then becomes ``L_F``.
    """
    w_r = jnp.asarray(grid.w_radial, potential.dtype)[:, None]
    w_a = jnp.asarray(grid.w_azimuthal, potential.dtype)[:, None]
    if face_coefficients is not None:
        w_r, w_a = w_r * face_coefficients[0], w_a * face_coefficients[1]
    from_outer = w_r * (potential[1:] - potential[:-1])  # into ring k from ring k + 1 (k = 0: the centre)
    zero_row = jnp.zeros_like(potential[:1])
    inflow = jnp.concatenate([from_outer, zero_row]) - jnp.concatenate([zero_row, from_outer])
    centre = jnp.broadcast_to(jnp.mean(from_outer[0]), potential[0].shape)
    ring = potential[1:]
    from_next = w_a * (jnp.roll(ring, -1, axis=1) - ring)  # into (i, j) from (i, j + 1)
    rings = inflow[1:] + from_next - jnp.roll(from_next, 1, axis=1)
    return jnp.concatenate([centre[None], rings])


def factor_operator(grid: PolarGrid, face_d, gamma_h, surface_slope=None, surface_share=None, diagonal=None):
    """Factorise ``diag + gamma h (L_F + dB/dtheta)`` for one time step (``diag`` = ``V`` by default).

    Args:
        grid: the polar grid.
        face_d: ``(radial, azimuthal)`` face multipliers ``F`` of the conductances, each ``(nr, nphi)`` (the
            stepper's are ones).
        gamma_h: ``gamma * h`` (nondimensional).
        surface_slope: ``e_j = d B_j / d theta_j`` on the surface ring ``(nphi,)`` (model B), or None.
        surface_share: ``omega_j``, each node's share of the total current ``(nphi,)`` (model B), or None.
        diagonal: nodal diagonal ``(nr + 1, nphi)`` replacing ``V`` (centre split over row 0 as for ``V``).
    """
    d_rad, d_az = face_d
    dtype = d_rad.dtype
    nr = grid.nr
    volume = jnp.asarray(grid.volume, dtype) if diagonal is None else diagonal
    c_rad = gamma_h * jnp.asarray(grid.w_radial, dtype)[:, None] * d_rad  # (nr, nphi); face k joins ring k, k + 1
    c_az = gamma_h * jnp.asarray(grid.w_azimuthal, dtype)[:, None] * d_az  # (nr, nphi); (i, j) joins j, j + 1

    # One block per ray j: rings 1..nr; ring 1's inner face is the spoke to the centre.
    outer = jnp.concatenate([c_rad[1:], jnp.zeros_like(c_rad[:1])])
    diag = volume[1:] + c_rad + outer + c_az + jnp.roll(c_az, 1, axis=1)
    if surface_slope is not None:
        diag = diag.at[-1].add(gamma_h * surface_slope)
    eye = jnp.eye(nr, dtype=dtype)
    upper = jnp.eye(nr, k=1, dtype=dtype)
    off = -c_rad[1:].T  # (nphi, nr - 1): coupling ring i+1 <-> i+2
    blocks = (
        diag.T[:, :, None] * eye[None]
        + jnp.pad(off, ((0, 0), (0, 1)))[:, :, None] * upper[None]
        + jnp.pad(off, ((0, 0), (0, 1)))[:, None, :] * upper.T[None]
    )
    spokes = c_rad[0]
    rank_one = None
    if surface_slope is not None:
        u = jnp.zeros_like(diag.T).at[:, -1].set(gamma_h * surface_share)
        v = jnp.zeros_like(diag.T).at[:, -1].set(surface_slope)
        rank_one = (u, v)
    return blocksolve.factor_wheel(blocks, c_az.T, spokes, jnp.sum(volume[0]) + jnp.sum(spokes), rank_one)


def solve_operator(factor: blocksolve.WheelFactor, rhs):
    """Apply the inverse of the factored operator to a mass-weighted right-hand side ``(nr + 1, nphi)``.

    Row 0 of ``rhs`` holds the centre's value split evenly over ``nphi`` (as :func:`net_inflow` returns it); the
    result is a nodal increment with row 0 equal to the centre value.
    """
    centre, rays = blocksolve.solve_wheel(factor, jnp.sum(rhs[0]), rhs[1:].T)
    return jnp.concatenate([jnp.broadcast_to(centre, (1, rays.shape[0])), rays.T])

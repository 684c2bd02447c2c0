"""The particle surface on any outline: blocked arcs, the eta profile, and the surface drive (pure JAX).

Conventions (docs/model.md, non-disk outlines):

* rim arclength ``s`` runs counter-clockwise; ``s = 0`` for the profile is the rim point hit by the ray from the area
  centroid along +x. On a rim of perimeter ``P`` the *rim angle* is ``u = 2 pi s / P`` (on a disk ``u`` is the polar
  angle);
* a blocked arc ``(phi_c, f, eta)`` of :class:`fluxsim.model.surface.Blocking` covers the rim interval of length ``f P``
  centred on the rim point hit by the ray from the area centroid at polar angle ``phi_c`` (the first crossing of the
  outline, counter-clockwise from +x); ``Blocking.eta_profile`` is sampled evenly in ``u``;
* the transfer profile ``g`` is integrated exactly over each rim node's share (its dual arc, half of each adjacent
  rim edge), arc ends cutting through a share by length: :func:`rim_weights` maps shares and arc centres to rim
  angles and reuses :meth:`fluxsim.model.surface.Blocking.node_weights`, then converts back to length;
* the mean current density through the lateral surface is ``ibar = I rho R_eq A / P`` (nondimensional discrete
  ``A``, ``P``), so the total outflow is ``ibar P`` and the mean occupancy falls at exactly ``I / (3600 Q_th)`` on
  every outline (on a disk ``A / P = 1 / 2``: today's ``I rho R / 2``). The kinetics' ``outflow`` receives the
  discrete perimeter, so total-current normalisation (model A) and the galvanostatic voltage (model B) use it.

Everything is differentiable in the traced inputs (``arc_center_rad`` through the ray-rim crossing, ``eta``,
``blocked_fraction``, the profile, ``radius_m``, the rate).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from fluxsim.core.mesh import TriMesh
from fluxsim.model.constants import FARADAY_C_PER_MOL

TWO_PI = 2.0 * jnp.pi


def ray_rim_crossing(mesh: TriMesh, angle_rad):
    """First rim crossing of the ray from the area centroid at ``angle_rad``: its arclength and its distance.

    Args:
        mesh: the mesh.
        angle_rad: ray direction, counter-clockwise from +x [rad] (traced; any shape, broadcast elementwise).

    Returns:
        ``(s, distance)`` with the shape of ``angle_rad``: arclength from rim node 0 counter-clockwise, in
        ``[0, perimeter)``, and the distance from the centroid (units of ``R_eq``); differentiable in the angle.
    """
    dtype = mesh.xy.dtype
    angle = jnp.asarray(angle_rad, dtype)
    shape = angle.shape
    angle = angle.reshape(-1, 1)
    p = mesh.xy[: mesh.n_rim] - mesh.centroid[None, :]  # rim vertices relative to the centroid (r, 2)
    q = jnp.roll(p, -1, axis=0)
    e = q - p
    dx, dy = jnp.cos(angle), jnp.sin(angle)  # (k, 1)
    # Solve t (dx, dy) = p + lam e:  cross products.
    (ex, ey), (px, py) = e.T[:, None, :], p.T[:, None, :]  # each (1, r)
    denom = ex * dy - ey * dx  # (k, r)
    ok = jnp.abs(denom) > 1e-14
    safe = jnp.where(ok, denom, 1.0)
    lam = (py * dx - px * dy) / safe
    t = (py * ex - px * ey) / safe
    # A ray through a rim vertex meets both edges at lam ~ 1 and ~ 0: the tolerance keeps rounding from missing both.
    valid = ok & (lam >= -1e-12) & (lam <= 1 + 1e-12) & (t > 0) & (mesh.rim_edge > 0)[None, :]
    first = jnp.argmin(jnp.where(valid, t, jnp.inf), axis=1)
    lam_hit = jnp.take_along_axis(lam, first[:, None], axis=1)[:, 0]
    t_hit = jnp.take_along_axis(t, first[:, None], axis=1)[:, 0]
    s = mesh.rim_s[first] + jnp.clip(lam_hit, 0.0, 1.0) * mesh.rim_edge[first]
    return jnp.mod(s, mesh.perimeter).reshape(shape), t_hit.reshape(shape)


def ray_rim_arclength(mesh: TriMesh, angle_rad):
    """Arclength of the first rim crossing of the ray from the centroid (see :func:`ray_rim_crossing`)."""
    return ray_rim_crossing(mesh, angle_rad)[0]


def rim_angles(mesh: TriMesh, blocking):
    """A copy of ``blocking`` with every arc centre mapped from its polar angle to the rim angle ``u``."""
    origin = ray_rim_arclength(mesh, 0.0)
    to_u = TWO_PI / mesh.perimeter

    def u_of(angle):
        return (ray_rim_arclength(mesh, angle) - origin) * to_u

    extra = blocking.extra_arcs
    if extra is not None and jnp.shape(extra)[0] > 0:
        extra = jnp.asarray(extra)
        extra = extra.at[:, 0].set(u_of(extra[:, 0]))
    return dataclasses.replace(blocking, arc_center_rad=u_of(blocking.arc_center_rad), extra_arcs=extra), origin


def rim_weights(mesh: TriMesh, blocking) -> Float[Array, " r"]:
    """Exact integral of the transfer profile ``g`` over each rim slot's share, ``(n_rim,)`` (0 on padding).

    The weights are nondimensional lengths (units of ``R_eq``); with ``g = 1`` they are the shares and sum to
    ``perimeter``.
    """
    mapped, origin = rim_angles(mesh, blocking)
    to_u = TWO_PI / mesh.perimeter
    return mapped.node_weights((mesh.rim_s_lo - origin) * to_u, (mesh.rim_s_hi - origin) * to_u) / to_u


class Drive(NamedTuple):
    """What the surface term of one protocol step needs besides the state (a pytree; see :func:`make_drive`)."""

    weights: jax.Array  # (n_rim,) rim_weights: integral of g over each share (nondimensional length)
    current_density: jax.Array  # ibar = I rho R_eq A / P [A m-2], signed (> 0 delithiates)
    current_to_flux: jax.Array  # R_eq / (F c_max D_ref) [m2 A-1]
    perimeter: jax.Array  # discrete nondimensional perimeter P / R_eq


def make_drive(mesh: TriMesh, params, signed_rate_mA_per_g, weights=None) -> Drive:
    """The surface drive of a protocol step at specific current ``signed_rate_mA_per_g`` (> 0 charges) [mA g-1].

    Args:
        mesh: the mesh.
        params: :class:`fluxsim.model.params.Params` (``radius_m`` is the equivalent radius).
        signed_rate_mA_per_g: specific current [mA g-1 = A kg-1], signed (> 0 delithiates; 0 at rest).
        weights: precomputed :func:`rim_weights` (default: computed from ``params.blocking``).
    """
    if weights is None:
        weights = rim_weights(mesh, params.blocking)
    material = params.material
    current_density = signed_rate_mA_per_g * material.density_kg_per_m3 * params.radius_m * mesh.area / mesh.perimeter
    current_to_flux = params.radius_m / (FARADAY_C_PER_MOL * material.c_max_mol_per_m3 * params.diffusivity.reference)
    dtype = mesh.xy.dtype
    return Drive(jnp.asarray(weights, dtype), jnp.asarray(current_density, dtype), jnp.asarray(current_to_flux, dtype),
                 mesh.perimeter)


def rim_outflow(params, theta_rim: Float[Array, " r"], drive: Drive
                ) -> tuple[Float[Array, " r"], Float[Array, " r"], Float[Array, ""]]:
    """Nondimensional outflow of each rim slot ``(n_rim,)``, ``d outflow_j / d theta_j`` ``(n_rim,)`` and the cell
    voltage [V] (NaN for model A), from the kinetics of ``params`` (:mod:`fluxsim.model.surface`)."""
    return params.kinetics.outflow(theta_rim, drive.weights, drive.current_density, drive.current_to_flux,
                                   drive.perimeter)

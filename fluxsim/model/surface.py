"""Partially blocked particle surface: where the rocksalt layer is, and how Li crosses the surface.

Two ingredients, kept separate:

* :class:`Blocking` says *where* the surface is blocked: a dimensionless transfer profile ``g(phi)`` (1 on open
  surface, ``eta`` on a blocked arc), built from one primary arc, optional extra arcs and an optional sampled profile.
  Each surface node receives the exact integral of ``g`` over its dual arc, so arc ends that cut through a boundary
  cell are handled by arc length (docs/model.md section 1).
* A kinetics model says *how much* Li leaves each node for a given applied current:

  - :class:`FluxRatio` (surface model A, the paper's): prescribed flux ``j = j_NMC g(phi)``;
  - :class:`FilmResistance` (surface model B): ``i = g(phi) (V - U(theta_s)) / r_NMC`` with the cell voltage ``V``
    fixed every evaluation by the galvanostatic constraint (closed form, the film law is linear in ``V``).

Angles are counter-clockwise from +x [rad]. Quantities passed to the solver are nondimensional: the outflow of node
``j`` is ``B_j = integral over its dual arc of q R / D_ref dphi`` (``q`` the flux density [m s-1]).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import ClassVar

import jax.numpy as jnp

from fluxsim.model._pytree import Interface, pytree_dataclass, static_field
from fluxsim.model.catalogue import DEFAULTS, FLUX_NORMALISATIONS, default
from fluxsim.model.constants import FARADAY_C_PER_MOL, GAS_CONSTANT_J_PER_MOL_K

TWO_PI = 2.0 * math.pi


@pytree_dataclass
class Blocking:
    """Where the surface is blocked.

    The transfer profile is ``g(phi) = p(phi) * (1 - sum_a (1 - eta_a) 1[phi in arc a])``: arcs must not overlap.

    Attributes:
        eta: flux ratio ``j_RSL / j_NMC`` on the primary blocked arc [-], in [0, 1] for model A (1: no blocking).
        blocked_fraction: fraction ``f`` of the perimeter covered by the primary arc [-], in [0, 1].
        arc_center_rad: centre angle ``phi_b`` of the primary arc [rad] (default pi, the left side).
        extra_arcs: further arcs, shape ``(k, 3)``: rows ``(center_rad, fraction, eta)``.
        eta_profile: optional sampled multiplicative profile ``p(phi)``, shape ``(n,)``, at ``phi_i = 2 pi i / n``,
            interpolated linearly and periodically (empty: ``p = 1``).
    """

    eta: float = default("eta")
    blocked_fraction: float = default("blocked_fraction")
    arc_center_rad: float = default("arc_center_rad")
    extra_arcs: jnp.ndarray | None = None
    eta_profile: jnp.ndarray | None = None

    def arcs(self):
        """All arcs as ``(centers, fractions, etas)`` arrays (primary first)."""
        extra = jnp.zeros((0, 3)) if self.extra_arcs is None else jnp.reshape(jnp.asarray(self.extra_arcs), (-1, 3))
        centers = jnp.concatenate([jnp.reshape(self.arc_center_rad, (1,)), extra[:, 0]])
        fractions = jnp.concatenate([jnp.reshape(self.blocked_fraction, (1,)), extra[:, 1]])
        etas = jnp.concatenate([jnp.reshape(self.eta, (1,)), extra[:, 2]])
        return centers, fractions, etas

    def _profile_antiderivative(self, phi):
        """``P(phi) = integral from 0 to phi of p`` for any real ``phi`` (periodic extension of ``p``)."""
        if self.eta_profile is None or jnp.shape(self.eta_profile)[0] == 0:
            return phi
        p = jnp.asarray(self.eta_profile)
        n = p.shape[0]
        spacing = TWO_PI / n
        p_next = jnp.roll(p, -1)
        cumulative = jnp.concatenate([jnp.zeros(1, p.dtype), jnp.cumsum((p + p_next) * spacing / 2)])
        turns = jnp.floor(phi / TWO_PI)
        x = phi - turns * TWO_PI
        k = jnp.clip(jnp.floor(x / spacing).astype(jnp.int32), 0, n - 1)
        u = x - k * spacing
        within = cumulative[k] + u * p[k] + u * u / (2 * spacing) * (p_next[k] - p[k])
        return turns * cumulative[-1] + within

    def node_weights(self, arc_start, arc_end):
        """Integral of ``g`` over each surface node's dual arc ``[arc_start, arc_end]`` [rad], shape ``(nphi,)``."""
        integral = self._profile_antiderivative
        total = integral(arc_end) - integral(arc_start)
        centers, fractions, etas = self.arcs()
        for a in range(centers.shape[0]):
            half = jnp.pi * fractions[a]
            centre = arc_start + jnp.mod(centers[a] - arc_start, TWO_PI)  # in [arc_start, arc_start + 2 pi)
            covered = 0.0
            for shift in (-TWO_PI, 0.0):  # the two copies of the arc that can meet a dual arc
                lo = jnp.maximum(arc_start, centre - half + shift)
                hi = jnp.maximum(jnp.minimum(arc_end, centre + half + shift), lo)
                covered = covered + integral(hi) - integral(lo)
            total = total - (1.0 - etas[a]) * covered
        return total


def make_blocking(eta=DEFAULTS["eta"], blocked_fraction=DEFAULTS["blocked_fraction"],
                  arc_center_rad=DEFAULTS["arc_center_rad"], extra_arcs=None, eta_profile=None):
    """Build a :class:`Blocking` with empty ``extra_arcs`` / ``eta_profile`` when not given."""
    return Blocking(
        eta=eta,
        blocked_fraction=blocked_fraction,
        arc_center_rad=arc_center_rad,
        extra_arcs=jnp.zeros((0, 3)) if extra_arcs is None else jnp.asarray(extra_arcs, dtype=float),
        eta_profile=jnp.zeros((0,)) if eta_profile is None else jnp.asarray(eta_profile, dtype=float),
    )


class SurfaceKinetics(Interface):
    """A surface model: how the applied current leaves through the surface nodes (both solvers call only this).

    Implementations derive from :class:`PrescribedFlux` (the outflow does not depend on the state) or
    :class:`StateDependentKinetics` (it does, through a cell voltage); the solvers branch on which, at trace time.
    """

    #: The catalogue's ``surface_model`` choice this class implements ("A", "B").
    model: ClassVar[str]
    #: Whether the outflow depends on the surface occupancy (fixed by the two interfaces below).
    state_dependent: ClassVar[bool]

    @abc.abstractmethod
    def outflow(self, theta_surface, weights, current_density, current_to_flux, perimeter=TWO_PI):
        """``(outflow (nphi,), d outflow_j / d theta_j (nphi,), cell voltage [V])``; see :meth:`FluxRatio.outflow`."""

    def time_rescaled(self, factor) -> SurfaceKinetics:
        """The kinetics of the same solution with every diffusivity times ``factor`` (the fit's time rescaling)."""
        return self


class PrescribedFlux(SurfaceKinetics):
    """A surface model whose outflow is independent of the state (no cell voltage: nan)."""

    state_dependent = False


class StateDependentKinetics(SurfaceKinetics):
    """A surface model whose outflow depends on the surface occupancy through a cell voltage."""

    state_dependent = True

    @abc.abstractmethod
    def voltage(self, theta_surface, weights, current_density, perimeter=TWO_PI):
        """Cell voltage [V] that makes the surface currents add up to ``current_density`` [A m-2] on average."""


#: Model A's normalisations (catalogue ``flux_normalisation``): the scale of the outflow ``scale * weights`` from the
#: nondimensional mean flux, the transfer weights and the perimeter.
_NORMALISATIONS = {
    "total_current": lambda flux_scale, weights, perimeter: flux_scale * perimeter / jnp.sum(weights),
    "open_surface": lambda flux_scale, weights, perimeter: flux_scale,
}


@pytree_dataclass
class FluxRatio(PrescribedFlux):
    """Surface model A: prescribed flux ratio ``eta = j_RSL / j_NMC`` (Lun et al. 2025).

    Attributes:
        normalisation: ``"total_current"`` (default, [A]): ``j_NMC = jbar / (1 - f + f eta)``, so the applied
            specific current is the same for every eta and f; ``"open_surface"``: ``j_NMC = jbar`` and the blocked
            arc simply loses current (the particle then passes ``(1 - f + f eta)`` times the nominal current).
    """

    normalisation: str = static_field(default="total_current")

    model = "A"

    def __post_init__(self):
        if self.normalisation not in _NORMALISATIONS:
            raise ValueError(f"surface normalisation must be one of {', '.join(map(repr, FLUX_NORMALISATIONS))}, "
                             f"got {self.normalisation!r}")

    def outflow(self, theta_surface, weights, current_density, current_to_flux, perimeter=TWO_PI):
        """Nondimensional outflow of each surface node.

        Args:
            theta_surface: surface occupancies ``(nphi,)`` (unused by model A).
            weights: dual-arc integrals of the transfer profile ``(nphi,)``.
            current_density: applied mean current density ``ibar = I rho R / 2`` [A m-2] (signed: > 0 delithiates).
            current_to_flux: ``R / (F c_max D_ref)`` [m2 A-1], converting a current density into the
                nondimensional flux ``qbar R / D_ref``.
            perimeter: nondimensional perimeter ``P / R`` of the outline (default ``2 pi``: the unit disk; the
                weights are then integrals over dual arcs of the same length unit).

        Returns:
            ``(outflow (nphi,), d outflow_j / d theta_j (nphi,), cell voltage [V] (nan for model A))``.
        """
        scale = _NORMALISATIONS[self.normalisation](current_density * current_to_flux, weights, perimeter)
        outflow = scale * weights
        return outflow, jnp.zeros_like(outflow), jnp.full((), jnp.nan, outflow.dtype)


@pytree_dataclass
class FilmResistance(StateDependentKinetics):
    """Surface model B: film resistance in series with an open-circuit potential (rate-dependent flux split).

    Local current density ``i(phi) = g(phi) (V - U(theta_s(phi))) / r_NMC`` [A m-2]; on a blocked arc the film
    resistance is ``r_NMC / eta``. ``V`` follows from ``integral of i ds = ibar 2 pi R`` every evaluation. The
    open-circuit potential (docs/model.md section 3, [A]) is
    ``U(theta) = U0 - (R T / F) ln(theta / (1 - theta)) - k (theta - 0.5)``.

    Attributes:
        r_NMC_ohm_m2: film resistance of the open surface [Ohm m2], tested range 0.02-0.1.
        U0_V: OCP at half occupancy [V], default 3.9.
        k_V: OCP slope term [V], default 0.3.
        temperature_K: temperature [K], default 298.
    """

    r_NMC_ohm_m2: float = default("r_NMC_ohm_m2")
    U0_V: float = default("U0_V")
    k_V: float = default("k_V")
    temperature_K: float = default("temperature_K")

    model = "B"

    def time_rescaled(self, factor) -> FilmResistance:
        return dataclasses.replace(self, r_NMC_ohm_m2=self.r_NMC_ohm_m2 / factor)

    def ocp(self, theta):
        """Open-circuit potential U [V] (occupancy clipped to [1e-12, 1 - 1e-12])."""
        theta = jnp.clip(theta, 1e-12, 1.0 - 1e-12)
        thermal = GAS_CONSTANT_J_PER_MOL_K * self.temperature_K / FARADAY_C_PER_MOL
        return self.U0_V - thermal * jnp.log(theta / (1.0 - theta)) - self.k_V * (theta - 0.5)

    def ocp_slope(self, theta):
        """dU/dtheta [V] (negative)."""
        theta = jnp.clip(theta, 1e-12, 1.0 - 1e-12)
        thermal = GAS_CONSTANT_J_PER_MOL_K * self.temperature_K / FARADAY_C_PER_MOL
        return -thermal / (theta * (1.0 - theta)) - self.k_V

    def voltage(self, theta_surface, weights, current_density, perimeter=TWO_PI):
        """Cell voltage [V] that makes the surface currents add up to ``current_density`` [A m-2] on average
        (``perimeter`` as in :meth:`FluxRatio.outflow`)."""
        u = self.ocp(theta_surface)
        return (current_density * perimeter * self.r_NMC_ohm_m2 + jnp.sum(weights * u)) / jnp.sum(weights)

    def outflow(self, theta_surface, weights, current_density, current_to_flux, perimeter=TWO_PI):
        """Nondimensional outflow of each surface node; arguments and returns as :meth:`FluxRatio.outflow`."""
        v = self.voltage(theta_surface, weights, current_density, perimeter)
        conductance = weights / self.r_NMC_ohm_m2 * current_to_flux
        outflow = conductance * (v - self.ocp(theta_surface))
        local_slope = -conductance * self.ocp_slope(theta_surface)
        return outflow, local_slope, v

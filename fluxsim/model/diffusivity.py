"""Concentration-dependent Li diffusivity laws D(theta) and their Kirchhoff potentials.

Every law provides

* ``law(theta)``: the diffusivity D [m2 s-1] at occupancy ``theta``;
* ``law.kirchhoff(theta)``: the Kirchhoff potential ``K(theta) = integral of D`` [m2 s-1], up to an additive constant,
  so that ``div(D grad theta) = laplacian K(theta)``; the solver's face flux ``-(K_j - K_i) / dx`` then uses the exact
  mean of D between the two node values (monotone for degenerate diffusion, docs/model.md section 4);
* ``law.reference``: a representative diffusivity [m2 s-1] that sets the solver's time scale ``R**2 / reference``.

All numbers are pytree leaves: they can be swept with ``vmap``, fitted and differentiated.
"""

from __future__ import annotations

import abc
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fluxsim.model._pytree import Interface, pytree_dataclass
from fluxsim.model.catalogue import default


def _safe_pow(x, p):
    """``x ** p`` for ``x >= 0`` with finite gradients at ``x = 0`` (also with respect to ``p``)."""
    positive = x > 0
    return jnp.where(positive, jnp.where(positive, x, 1.0) ** p, 0.0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _promised_pow(x, p, n: int):
    """``x ** p`` for ``x >= 0`` where the caller guarantees ``p == n`` (a static integer >= 2): multiplications per
    element instead of an exp and a log, with the derivatives of ``x ** p`` (w.r.t. ``p``: ``x ** n log x``, finite
    at ``x = 0``)."""
    return jax.lax.integer_pow(x, n)


@_promised_pow.defjvp
def _promised_pow_jvp(n, primals, tangents):
    x, p = primals
    dx, dp = tangents
    value = _promised_pow(x, p, n)
    positive = x > 0
    x_log_x = jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), 0.0) * value
    return value, n * jax.lax.integer_pow(x, n - 1) * dx + x_log_x * dp


def _exprel(z):
    """``expm1(z) / z``, equal to 1 at ``z = 0``, smooth and differentiable everywhere."""
    small = jnp.abs(z) < 1e-6
    z_safe = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 + z / 2 + z * z / 6, jnp.expm1(z_safe) / z_safe)


class DiffusivityLaw(Interface):
    """A diffusivity law D(theta) (the interface of the module docstring); concrete laws are final pytrees."""

    @abc.abstractmethod
    def __call__(self, theta):
        """The diffusivity D [m2 s-1] at occupancy ``theta``."""

    @abc.abstractmethod
    def kirchhoff(self, theta):
        """The Kirchhoff potential ``K(theta)`` [m2 s-1], up to an additive constant."""

    @property
    @abc.abstractmethod
    def reference(self):
        """A representative diffusivity [m2 s-1] (the solver's time scale ``R**2 / reference``)."""

    @abc.abstractmethod
    def scaled(self, factor) -> DiffusivityLaw:
        """The same law with every diffusivity times ``factor`` (the fit's time rescaling)."""

    def find(self, name: str) -> DiffusivityLaw:
        """The law that owns the input ``name`` (``self``; a modified law looks in its base for inputs it lacks)."""
        return self


class ModifiedLaw(DiffusivityLaw):
    """A law built on a ``base`` law (its inputs not found on the modification belong to the base)."""

    base: DiffusivityLaw

    def find(self, name: str) -> DiffusivityLaw:
        return self if name in {f.name for f in dataclasses.fields(self)} else self.base.find(name)


@pytree_dataclass
class PowerLaw(DiffusivityLaw):
    """Default law (docs/model.md section 4): very slow near full lithiation, fast once Li leaves.

    ``D(theta) = D_hi * min(1, ((1 - theta) / (1 - theta_ref)) ** exponent) + D_floor``

    Attributes:
        D_hi_m2_per_s: plateau diffusivity below ``theta_ref`` [m2 s-1], default 1e-14.
        theta_ref: occupancy where the plateau starts [-], default 0.80.
        exponent: power ``m`` [-], default 3.
        D_floor_m2_per_s: floor at full lithiation [m2 s-1], default 1e-20 (must be > 0).
    """

    D_hi_m2_per_s: float = default("D_hi_m2_per_s")
    theta_ref: float = default("theta_ref")
    exponent: float = default("exponent")
    D_floor_m2_per_s: float = default("D_floor_m2_per_s")

    def __call__(self, theta):
        x = jnp.clip(1.0 - theta, 0.0, None) / (1.0 - self.theta_ref)
        return self.D_hi_m2_per_s * jnp.minimum(1.0, _safe_pow(x, self.exponent)) + self.D_floor_m2_per_s

    def kirchhoff(self, theta, integer_exponent: int | None = None):
        """``K(theta) = integral from 1 to theta of D`` (closed form; ``K(1) = 0``).

        Args:
            theta: occupancies.
            integer_exponent: a static promise that ``exponent`` equals this integer (>= 1): the per-node power is
                then evaluated by multiplication (no exp and log per node; the same values to rounding, the same
                derivatives, also w.r.t. ``exponent``), and the result is NaN if the promise is broken.
        """
        m1 = self.exponent + 1.0
        gap = 1.0 - self.theta_ref
        one_minus = jnp.clip(1.0 - theta, 0.0, None)
        if integer_exponent is None:
            power = _safe_pow(one_minus, m1)
        else:
            power = _promised_pow(one_minus, m1, integer_exponent + 1)
        steep = power / (m1 * _safe_pow(gap, self.exponent))
        plateau = gap / m1 + (self.theta_ref - theta)
        power_part = jnp.where(theta >= self.theta_ref, steep, plateau)
        k = -self.D_hi_m2_per_s * power_part - self.D_floor_m2_per_s * (1.0 - theta)
        return k if integer_exponent is None else jnp.where(self.exponent == integer_exponent, k, jnp.nan)

    @property
    def reference(self):
        return self.D_hi_m2_per_s

    def scaled(self, factor) -> PowerLaw:
        return dataclasses.replace(self, D_hi_m2_per_s=self.D_hi_m2_per_s * factor,
                                   D_floor_m2_per_s=self.D_floor_m2_per_s * factor)


@pytree_dataclass
class ConstantDiffusivity(DiffusivityLaw):
    """Constant D [m2 s-1] (negative control: no sharp Li-rich core; also the analytic Bessel-series case)."""

    D_m2_per_s: float = default("D_m2_per_s")

    def __call__(self, theta):
        return jnp.full_like(theta, self.D_m2_per_s) if hasattr(theta, "shape") else self.D_m2_per_s

    def kirchhoff(self, theta):
        return self.D_m2_per_s * (theta - 1.0)

    @property
    def reference(self):
        return self.D_m2_per_s

    def scaled(self, factor) -> ConstantDiffusivity:
        return dataclasses.replace(self, D_m2_per_s=self.D_m2_per_s * factor)


@pytree_dataclass
class TabulatedDiffusivity(DiffusivityLaw):
    """User data, e.g. a GITT table: log-linear interpolation of D between sorted occupancies.

    Outside the table D is held at the end values. The Kirchhoff potential is exact for the log-linear interpolant
    (piecewise exponential integrals).

    Attributes:
        theta: occupancies, shape ``(n,)``, strictly increasing, within [0, 1].
        D_m2_per_s: diffusivities at those occupancies, shape ``(n,)``, all > 0 [m2 s-1].
    """

    theta: jax.Array
    D_m2_per_s: jax.Array

    def _segments(self, theta):
        th = jnp.asarray(self.theta)
        logd = jnp.log(jnp.asarray(self.D_m2_per_s))
        k = jnp.clip(jnp.searchsorted(th, theta, side="right") - 1, 0, th.shape[0] - 2)
        slope = (logd[1:] - logd[:-1]) / (th[1:] - th[:-1])
        x = jnp.clip(theta, th[0], th[-1]) - th[k]
        return th, logd, k, slope, x

    def __call__(self, theta):
        _, logd, k, slope, x = self._segments(theta)
        return jnp.exp(logd[k] + slope[k] * x)

    def kirchhoff(self, theta):
        th, logd, k, slope, x = self._segments(theta)
        d = jnp.exp(logd)
        widths = th[1:] - th[:-1]
        segment_integrals = d[:-1] * widths * _exprel(slope * widths)
        cumulative = jnp.concatenate([jnp.zeros(1, segment_integrals.dtype), jnp.cumsum(segment_integrals)])
        inside = cumulative[k] + d[k] * x * _exprel(slope[k] * x)
        below = jnp.minimum(theta - th[0], 0.0) * d[0]
        above = jnp.maximum(theta - th[-1], 0.0) * d[-1]
        return inside + below + above

    @property
    def reference(self):
        return jnp.max(jnp.asarray(self.D_m2_per_s))

    def scaled(self, factor) -> TabulatedDiffusivity:
        return dataclasses.replace(self, D_m2_per_s=self.D_m2_per_s * factor)


# Gauss-Legendre rule used by the numerical Kirchhoff correction of LowThetaDip.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(4)
_DIP_PANELS = 128


@pytree_dataclass
class LowThetaDip(ModifiedLaw):
    """A base law with the optional low-occupancy dip of docs/model.md section 4.

    ``log D <- (1 - s) log D_base + s log D_low``, ``s = 1 / (1 + exp((theta - theta_dip) / width))``.

    The dip controls how much the cut-off capacity depends on rate. Its Kirchhoff potential is the base law's exact
    one plus the integral of the (smooth) difference ``D - D_base``, computed by composite 4-point Gauss-Legendre
    quadrature on 128 fixed panels of [0, 1] (relative error far below the solver's).

    Attributes:
        base: the law being modified (PowerLaw, TabulatedDiffusivity or ConstantDiffusivity).
        D_low_m2_per_s: diffusivity at the bottom of the dip [m2 s-1], default 1e-15.
        theta_dip: centre of the dip's sigmoid [-], default 0.3.
        width: sigmoid width [-], default 0.05.
    """

    base: PowerLaw
    D_low_m2_per_s: float = default("D_low_m2_per_s")
    theta_dip: float = default("theta_dip")
    width: float = default("dip_width")

    def __call__(self, theta):
        s = jax.nn.sigmoid((self.theta_dip - theta) / self.width)
        return jnp.exp((1.0 - s) * jnp.log(self.base(theta)) + s * jnp.log(self.D_low_m2_per_s))

    def _excess(self, theta):
        return self(theta) - self.base(theta)

    def _excess_integral(self, lo, hi):
        """Integral of ``D - D_base`` from ``lo`` to ``hi`` (elementwise) by 4-point Gauss-Legendre."""
        half = (hi - lo) / 2
        mid = (hi + lo) / 2
        dtype = jnp.result_type(mid)
        lead = (1,) * jnp.ndim(mid)  # the quadrature axis last, explicitly broadcast
        x, w = (jnp.asarray(a, dtype).reshape(lead + (-1,)) for a in (_GL_X, _GL_W))
        nodes = mid[..., None] + half[..., None] * x
        return half * jnp.sum(w * self._excess(nodes), axis=-1)

    def kirchhoff(self, theta):
        edges = jnp.asarray(np.linspace(0.0, 1.0, _DIP_PANELS + 1), dtype=jnp.result_type(theta))
        panel = self._excess_integral(edges[:-1], edges[1:])
        cumulative = jnp.concatenate([jnp.zeros(1, panel.dtype), jnp.cumsum(panel)])
        k = jnp.clip(jnp.floor(theta * _DIP_PANELS).astype(jnp.int32), 0, _DIP_PANELS - 1)
        from_zero = cumulative[k] + self._excess_integral(edges[k], theta)
        return self.base.kirchhoff(theta) + from_zero - cumulative[-1]

    @property
    def reference(self):
        return self.base.reference

    def scaled(self, factor) -> LowThetaDip:
        return dataclasses.replace(self, base=self.base.scaled(factor), D_low_m2_per_s=self.D_low_m2_per_s * factor)


DIFFUSIVITY_LAWS = {
    "power_law": PowerLaw,
    "constant": ConstantDiffusivity,
    "tabulated": TabulatedDiffusivity,
}

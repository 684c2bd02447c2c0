"""Cycling protocols: sequences of constant-current charge, rest and constant-current discharge steps.

A protocol is static structure (it decides how the computation is laid out); the swept / fitted numbers live in
:class:`~.params.Params`. A step's rate left as ``None`` uses ``Params.rate_mA_per_g``, so the common case of
one rate is sweepable.

Each step is integrated with a fixed number of time steps on a *horizon* that is known when the step starts:

* charge: ``min(max_duration_s, (mean theta - theta_cut) / (mean delithiation rate))``. The surface is the most
  delithiated part of a charging particle, so the surface cut-off is reached before the mean reaches ``theta_cut``;
* discharge: ``min(max_duration_s, (theta_upper - mean theta) / (mean lithiation rate))``;
* rest: ``duration_s``.

The step sizes within a step are fixed fractions of its horizon (:func:`step_fractions`), graded geometrically from
a small first step (the flux switches on or off abruptly) up to uniform steps. Since the schedule is a smooth
function of the inputs (no accept/reject decisions), the discrete solution is smooth in every parameter and its
gradients agree with finite differences. The cut-off event is located inside the step where it happens.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from fluxsim.model._pytree import Interface
from fluxsim.model.catalogue import INPUTS
from fluxsim.model.checks import check_range


class ProtocolStep(Interface):
    """One step of a protocol; concrete steps are final frozen dataclasses (static structure, hashable).

    The solvers ask a step only through this interface: its current sign, its horizon and its surface cut-off.
    """

    #: The step's name in configs and stores ("charge", "rest", "discharge").
    kind: ClassVar[str]
    #: Sign of the applied current: +1 delithiates (charge), 0 rest, -1 lithiates (discharge).
    sign: ClassVar[float]
    #: Whether a state-dependent surface model may also end the step at ``Params.voltage_cut_V``.
    voltage_cutoff: ClassVar[bool] = False

    @abc.abstractmethod
    def horizon_s(self, params, mean_theta, mean_rate_per_s):
        """Duration [s] over which the step's time steps are laid out, given the mean occupancy at its start and
        the mean (de)lithiation rate [s-1] of its current (see the module docstring)."""

    @abc.abstractmethod
    def surface_cutoff(self, params, surface_before, surface_after):
        """``(before, after, level)`` such that the step's surface cut-off is crossed when ``after <= level``
        (``before`` the value at the start of the time step); None for a step without one."""

    def unbounded_error(self, i: int) -> str:
        """The error text for a step that would never end (no cut-off, no finite duration)."""
        return f"protocol step {i} ({self.kind}): needs until_cutoff=True or a finite max_duration_s"

    def check(self, i: int) -> None:
        """Raise a clear error if the step's settings are invalid (``i``: its position in the protocol)."""
        if self.rate_mA_per_g is not None and self.sign != 0:  # a rest has no rate to check
            check_range(f"protocol[{i}].rate_mA_per_g", self.rate_mA_per_g, 0, lo_open=True,
                        unit=INPUTS["rate_mA_per_g"].unit)
        if not self.max_duration_s > 0:
            raise ValueError(f"protocol step {i} ({self.kind}): duration must be > 0 s, got {self.max_duration_s}")
        if not self.until_cutoff and not math.isfinite(self.max_duration_s):
            raise ValueError(self.unbounded_error(i))
        if self.n_steps is not None and not (isinstance(self.n_steps, int) and self.n_steps >= 4):
            raise ValueError(f"protocol step {i} ({self.kind}): n_steps must be an integer >= 4, got {self.n_steps}")


@dataclasses.dataclass(frozen=True)
class Charge(ProtocolStep):
    """Constant-current delithiation until the surface cut-off (or the time limit).

    Attributes:
        rate_mA_per_g: specific current [mA g-1] (> 0); None uses ``Params.rate_mA_per_g``.
        max_duration_s: time limit [s]; the step ends at the first of cut-off and time limit.
        until_cutoff: stop when the surface occupancy reaches ``Params.theta_cut`` (or, for model B, the voltage
            reaches ``Params.voltage_cut_V``).
        n_steps: time steps for this protocol step (None: the solver's default).
    """

    rate_mA_per_g: float | None = None
    max_duration_s: float = math.inf
    until_cutoff: bool = True
    n_steps: int | None = None

    kind = "charge"
    sign = 1.0
    voltage_cutoff = True

    def horizon_s(self, params, mean_theta, mean_rate_per_s):
        if not self.until_cutoff:
            return jnp.asarray(self.max_duration_s, jnp.result_type(mean_theta))
        return jnp.minimum(self.max_duration_s, (mean_theta - params.theta_cut) / mean_rate_per_s)

    def surface_cutoff(self, params, surface_before, surface_after):
        """The most delithiated surface node reaches ``Params.theta_cut``."""
        return jnp.min(surface_before), jnp.min(surface_after), params.theta_cut


@dataclasses.dataclass(frozen=True)
class Discharge(ProtocolStep):
    """Constant-current lithiation until the surface reaches ``Params.theta_upper`` (or the time limit)."""

    rate_mA_per_g: float | None = None
    max_duration_s: float = math.inf
    until_cutoff: bool = True
    n_steps: int | None = None

    kind = "discharge"
    sign = -1.0

    def horizon_s(self, params, mean_theta, mean_rate_per_s):
        if not self.until_cutoff:
            return jnp.asarray(self.max_duration_s, jnp.result_type(mean_theta))
        return jnp.minimum(self.max_duration_s, (params.theta_upper - mean_theta) / mean_rate_per_s)

    def surface_cutoff(self, params, surface_before, surface_after):
        """The most lithiated surface node reaches ``Params.theta_upper`` (signs flipped: a crossing from above)."""
        return -jnp.max(surface_before), -jnp.max(surface_after), -params.theta_upper


@dataclasses.dataclass(frozen=True)
class Rest(ProtocolStep):
    """Open circuit (zero total current) for ``duration_s`` [s]."""

    duration_s: float
    n_steps: int | None = None

    kind = "rest"
    sign = 0.0
    rate_mA_per_g = 0.0
    until_cutoff = False

    @property
    def max_duration_s(self):
        return self.duration_s

    def horizon_s(self, params, mean_theta, mean_rate_per_s):
        return jnp.asarray(self.duration_s, jnp.result_type(mean_theta))

    def surface_cutoff(self, params, surface_before, surface_after):
        return None

    def unbounded_error(self, i: int) -> str:
        return f"protocol step {i} (rest): duration_s must be finite, got {self.duration_s}"


Step = Charge | Discharge | Rest


def check_protocol(protocol) -> tuple:
    """Validate a protocol and return it as a tuple of steps (clear errors before any compute)."""
    steps = tuple(protocol)
    if not steps:
        raise ValueError("protocol must contain at least one step (Charge, Rest or Discharge)")
    for i, step in enumerate(steps):
        if not isinstance(step, ProtocolStep):
            raise TypeError(f"protocol step {i} must be Charge, Rest or Discharge, got {step!r}")
        step.check(i)
    return steps


def step_fractions(n_steps: int, first_ratio: float, grading_width: float) -> np.ndarray:
    """Static step sizes as fractions of a protocol step's horizon (they sum to 1).

    The steps sample the smooth map ``F(s)`` (``s = k / n_steps``) whose density
    ``F'(s) ~ 1 / (1 + (1 / first_ratio - 1) exp(-s / grading_width))`` grows geometrically from ``first_ratio``
    times the final step size to the final size over a few ``grading_width``. Doubling ``n_steps`` splits every step
    in two (a uniform refinement), so observed temporal orders are clean.

    Args:
        n_steps: number of steps (>= 4).
        first_ratio: first step / final (uniform) step, in (0, 1].
        grading_width: width of the graded start as a fraction of the schedule, > 0.
    """
    if not 0 < first_ratio <= 1:
        raise ValueError(f"first_ratio must be in (0, 1], got {first_ratio}")
    if not grading_width > 0:
        raise ValueError(f"grading_width must be > 0, got {grading_width}")
    s = np.linspace(0.0, 1.0, n_steps + 1)
    a = 1.0 / first_ratio - 1.0
    # F(s) ~ w ln(exp(s / w) + a), written stably as s + w ln(1 + a exp(-s / w)).
    f = s + grading_width * np.log1p(a * np.exp(-s / grading_width))
    f = (f - f[0]) / (f[-1] - f[0])
    return np.diff(f)

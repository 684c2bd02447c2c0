"""The forward model of a fit (pure JAX): problem description, traced data, reparameterisation, time
rescaling, model curves and weighted residuals (:mod:`fluxsim.fit`).

The model is the mesh core :func:`fluxsim.core.solve.simulate` on the particle's own outline: the outline is meshed
once on the host at ``numerics.spacing`` (:func:`fit_mesh`) and the :class:`~fluxsim.core.mesh.TriMesh` travels as a
traced input (:class:`Extra`), so another particle whose mesh falls in the same node-count buckets reuses the
compiled programs. Every rate is simulated on one static grid of ``SAVE_POINTS`` canonical times (time rescaling,
:func:`time_rescaled`) and interpolated linearly to the measurement times.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxsim.api import replace
from fluxsim.core.mesh import MeshSizes, TriMesh, bucket_size, mesh_outline, mesh_sizes
from fluxsim.core.outline import Disk
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics, simulate, with_integer_exponent
from fluxsim.io import observations as obs_mod
from fluxsim.model import catalogue
from fluxsim.model._pytree import Interface
from fluxsim.model.params import Params
from fluxsim.model.protocol import Charge

#: Static length [s] of the simulated window of every time-rescaled series (its value does not change results).
CANONICAL_HORIZON_S = 1000.0
#: Simulated window = this factor x the last measurement (in passed capacity).
HORIZON_MARGIN = 1.05
#: Default discretisation of fits: the solver's mesh spacing R_eq / 32 with rtol 1e-3 (R_eq / 16 leaves a bias of
#: 1 standard error in eta on 4 rates x 20 points, R_eq / 24 about 1.4 SE against the finite-element reference of
#: tests/fit/test_shape.py; ``benchmarks/bench_fit.py`` measures the default against twice the resolution); no line
#: cut (a fit does not use it).
DEFAULT_NUMERICS = Numerics(spacing=1 / 32, integrator=RKLSettings(rtol=1e-3, atol=1e-5), line_cut_samples=3)
#: Core metrics the model can be compared in: ``"hard"`` (theta > theta_core, by exact clipping of the P1 field on
#: the triangles: what a thresholded image measures; continuous and piecewise smooth in every input) and
#: ``"smooth"`` (sigmoid of width core_smoothing: smooth, but 1.5-4.5 nm off the hard d on an aspect-2.2 ellipse at
#: 10-20 mAh/g, several standard errors of a fit to 10 nm data). The default is the first.
METRICS = ("hard", "smooth")
#: Canonical save times of every (time-rescaled) series over the simulated window; the model is interpolated
#: linearly between them (d(t) is smooth: 128 intervals leave < 0.1 nm).
SAVE_POINTS = 129
#: Uncertainties assumed where the file gives none (the covariance is then rescaled by the reduced chi2).
DEFAULT_D_SIGMA_NM = obs_mod.DEFAULT_D_SIGMA_NM  # stated with the CSV format
DEFAULT_CORE_FRACTION_SIGMA = 0.02
#: Data points per series are padded to a multiple of this (fewer distinct shapes, fewer compilations).
PAD_POINTS = 8


#: The inputs that can be fitted, with their unit and transform (:class:`fluxsim.model.catalogue.Fit`).
FITTABLE = catalogue.FITTABLE


def _transform(name: str, model: str) -> str:
    """``"logit"``, ``"log"`` or ``"identity"``: the catalogue's, under surface model ``model``."""
    return FITTABLE[name].fit.transform_for(model)


# ---------------------------------------------------------------------------------------------------------------------
# static problem description and traced data
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Problem:
    """Static structure of a fit (changing it recompiles): fitted names, their transforms, the numerics."""

    names: tuple[str, ...]
    transforms: tuple[str, ...]
    numerics: Numerics
    horizon_s: float = CANONICAL_HORIZON_S
    n_save: int = SAVE_POINTS
    metric: str = "hard"

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")

    @property
    def save_times_s(self) -> tuple[float, ...]:
        return tuple(float(t) for t in np.linspace(0.0, self.horizon_s, self.n_save))


class Data(NamedTuple):
    """Observations as padded arrays, ``(S, N)`` for S series of at most N points (weights 0 on padding)."""

    rate: jnp.ndarray  # (S,) [mA g-1]
    rate_sim: jnp.ndarray  # () rate of the time-rescaled simulations [mA g-1]
    t: jnp.ndarray  # (S, N) [s]
    d: jnp.ndarray  # (S, N) measured |d| [nm]
    dx: jnp.ndarray  # (S, N) measured offset vector [nm] (0 without a direction)
    dy: jnp.ndarray
    f: jnp.ndarray  # (S, N) measured core fraction
    w_mag: jnp.ndarray  # (S, N) 1 / sigma_d where only |d| is known, else 0 [nm-1]
    w_vec: jnp.ndarray  # (S, N) 1 / sigma_d where the direction is known, else 0 [nm-1]
    w_f: jnp.ndarray  # (S, N) 1 / sigma_f where a core fraction is known, else 0


class Extra(NamedTuple):
    """Traced inputs of the compiled functions besides the unconstrained parameters."""

    base: Params
    mesh: TriMesh  # the particle's outline, meshed (nondimensional; traced)
    data: Data
    scales: jnp.ndarray  # (k,) scale of log-parameterised inputs
    mask: jnp.ndarray  # (k,) 1: free, 0: held (profile re-optimisation)


def make_data(observations: obs_mod.Observations, pad_to: int = PAD_POINTS) -> tuple[Data, bool]:
    """Pad the series of one particle into :class:`Data`; also whether every uncertainty came from the file."""
    series = observations.series
    n = max(len(s) for s in series)
    n = int(math.ceil(n / pad_to) * pad_to)
    shape = (len(series), n)
    arrays = {k: np.zeros(shape) for k in ("t", "d", "dx", "dy", "f", "w_mag", "w_vec", "w_f")}
    absolute = True
    for i, s in enumerate(series):
        m = len(s)
        sigma = s.d_sigma_nm if s.d_sigma_nm is not None else np.full(m, DEFAULT_D_SIGMA_NM)
        absolute &= s.d_sigma_nm is not None
        arrays["t"][i, :m] = s.time_s
        arrays["t"][i, m:] = s.time_s[-1]
        arrays["d"][i, :m] = s.d_nm
        if s.direction_rad is not None:
            arrays["dx"][i, :m] = s.d_nm * np.cos(s.direction_rad)
            arrays["dy"][i, :m] = s.d_nm * np.sin(s.direction_rad)
            arrays["w_vec"][i, :m] = 1.0 / sigma
        else:
            arrays["w_mag"][i, :m] = 1.0 / sigma
        if s.core_fraction is not None:
            fs = s.core_fraction_sigma
            absolute &= fs is not None
            arrays["f"][i, :m] = s.core_fraction
            arrays["w_f"][i, :m] = 1.0 / (fs if fs is not None else DEFAULT_CORE_FRACTION_SIGMA)
    rate = np.array([s.rate_mA_per_g for s in series], float)
    reach = max(float(s.rate_mA_per_g * s.time_s[-1]) for s in series)  # mA g-1 s
    if not reach > 0:
        raise ValueError("every series ends at t = 0: nothing to fit")
    rate_sim = HORIZON_MARGIN * reach / CANONICAL_HORIZON_S
    return Data(rate=rate, rate_sim=np.asarray(rate_sim), **arrays), bool(absolute)


# ---------------------------------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------------------------------
class Transform(Interface):
    """How a fitted input's physical value ``v`` maps to the optimiser's unconstrained ``u`` (catalogue name)."""

    #: ``u`` is relative to the start value: ``v = scale * exp(u)`` (the others take ``scale = 1``).
    relative: ClassVar[bool] = False

    @abc.abstractmethod
    def to_physical(self, u, scale):
        """``v(u)`` (traced)."""

    @abc.abstractmethod
    def to_unconstrained(self, v: float, scale: float) -> float:
        """``u(v)`` (host)."""

    @abc.abstractmethod
    def derivative(self, v: float) -> float:
        """``dv / du`` at ``v`` (scale-free)."""


class Logit(Transform):
    """A fraction in (0, 1): ``v = sigmoid(u)`` (values are pulled 1e-6 inside the interval)."""

    def to_physical(self, u, scale):
        return jax.nn.sigmoid(u)

    def to_unconstrained(self, v, scale):
        v = min(max(v, 1e-6), 1 - 1e-6)
        return math.log(v / (1 - v))

    def derivative(self, v):
        return v * (1 - v)


class Log(Transform):
    """A positive value relative to its start: ``v = scale * exp(u)``."""

    relative = True

    def to_physical(self, u, scale):
        return scale * jnp.exp(u)

    def to_unconstrained(self, v, scale):
        return math.log(v / scale)

    def derivative(self, v):
        return v


class Identity(Transform):
    """An unbounded value (an angle): ``v = u``."""

    def to_physical(self, u, scale):
        return u

    def to_unconstrained(self, v, scale):
        return v

    def derivative(self, v):
        return 1.0


#: The catalogue's transform names (``Fit.transform_for``) and their implementations.
TRANSFORMS: dict[str, Transform] = {"logit": Logit(), "log": Log(), "identity": Identity()}


def _to_physical(u, scales, problem: Problem) -> dict:
    return {name: TRANSFORMS[kind].to_physical(u[i], scales[i])
            for i, (name, kind) in enumerate(zip(problem.names, problem.transforms))}


def to_unconstrained(values: Mapping[str, float], scales, problem: Problem) -> np.ndarray:
    """Physical values -> the optimiser's unconstrained vector (bounded values are pulled 1e-6 inside)."""
    return np.asarray([TRANSFORMS[kind].to_unconstrained(float(values[name]), float(scales[i]))
                       for i, (name, kind) in enumerate(zip(problem.names, problem.transforms))], float)


def physical_jacobian(values: Mapping[str, float], problem: Problem) -> np.ndarray:
    """d(physical value)/du per fitted input (diagonal)."""
    return np.asarray([TRANSFORMS[kind].derivative(float(values[name]))
                       for name, kind in zip(problem.names, problem.transforms)])


def time_rescaled(params: Params, rate_sim, rate) -> Params:
    """Parameters whose solution at ``rate_sim`` and time ``t rate / rate_sim`` equals ``params``' at ``rate``, t.

    Diffusivities are multiplied and the model-B film resistance divided by ``rate_sim / rate``.
    """
    factor = rate_sim / rate
    return dataclasses.replace(params, rate_mA_per_g=rate_sim, diffusivity=params.diffusivity.scaled(factor),
                               kinetics=params.kinetics.time_rescaled(factor))


class Curves(NamedTuple):
    """Model series of every rate, ``(S, T)`` over the simulation's saved times."""

    t_s: jnp.ndarray
    d_nm: jnp.ndarray
    x_nm: jnp.ndarray
    y_nm: jnp.ndarray
    core_fraction: jnp.ndarray


def _held(series, present):
    """Hold a series at its last value where ``present`` (the core exists) is False."""
    last = jax.lax.cummax(jnp.where(present, jnp.arange(series.shape[0]), 0))
    return jnp.where(present, series, 0.0)[last]


def fit_numerics(numerics: Numerics, base: Params) -> Numerics:
    """``numerics`` with the integer exponent of the base's power law promised (the exponent is never fitted;
    :func:`fluxsim.core.solve.with_integer_exponent`)."""
    return with_integer_exponent(numerics, base.diffusivity)


def fit_mesh(outline=None, numerics: Numerics = DEFAULT_NUMERICS, buckets: MeshSizes | None = None) -> TriMesh:
    """The mesh of a fit: ``outline`` (default :class:`~fluxsim.core.outline.Disk`) at ``numerics.spacing``, padded
    to ``buckets`` (default: its own, :func:`fluxsim.core.mesh.mesh_outline`)."""
    return mesh_outline(Disk() if outline is None else outline, numerics.spacing, buckets)


def common_buckets(outlines, spacing: float) -> MeshSizes:
    """Array sizes that hold the mesh of every outline (as :func:`fluxsim.core.mesh.stack_meshes` pads them): the
    fits of several particles padded to them share one compiled program."""
    sizes = [mesh_sizes(o, spacing) for o in outlines]
    n_rim = bucket_size(max(s.n_rim for s in sizes))
    n_nodes = bucket_size(max(s.n_nodes - s.n_rim for s in sizes) + n_rim)
    return MeshSizes(n_nodes, n_rim, bucket_size(max(s.n_triangles for s in sizes)), max(s.max_degree for s in sizes))


def simulate_jit(params, mesh, protocol, numerics, save_times_s, snapshot_times_s=()):
    """:func:`fluxsim.core.solve.simulate`, jit-compiled once per static settings and shapes (host helpers)."""
    return _SIMULATE(params, mesh, protocol, numerics, tuple(save_times_s), tuple(snapshot_times_s))


_SIMULATE = jax.jit(simulate, static_argnums=(2, 3, 4, 5))


def offset_nm(x, y):
    """``|(x, y)|`` whose derivative is safe (0) where the offset is exactly 0."""
    nonzero = (x != 0) | (y != 0)
    return jnp.where(nonzero, jnp.hypot(jnp.where(nonzero, x, 1.0), jnp.where(nonzero, y, 0.0)), 0.0)


def simulate_series(params: Params, mesh: TriMesh, data: Data, problem: Problem, snapshot_times_s=()):
    """The time-rescaled solutions of every rate (vmapped): ``(Solution, physical time factor (S,))``."""
    protocol = (Charge(max_duration_s=problem.horizon_s, until_cutoff=False),)

    def one(rate):
        return simulate(time_rescaled(params, data.rate_sim, rate), mesh, protocol, problem.numerics,
                        problem.save_times_s, snapshot_times_s)

    return jax.vmap(one)(data.rate), data.rate_sim / data.rate


def core_series(solution, metric: str):
    """``(fraction, x_nm, y_nm)`` of the core metric ``"hard"`` or ``"smooth"`` of a solution."""
    if metric == "hard":
        return solution.core_fraction, solution.core_x_nm, solution.core_y_nm
    return solution.smooth_core_fraction, solution.smooth_core_x_nm, solution.smooth_core_y_nm


def model_curves(params: Params, mesh: TriMesh, data: Data, problem: Problem) -> Curves:
    """Core metrics (``problem.metric``) of every series (vmapped over rates), in physical time."""
    solutions, factor = simulate_series(params, mesh, data, problem)

    def one(solution, factor):
        fraction, x, y = core_series(solution, problem.metric)
        present = fraction > 0
        d = offset_nm(x, y)
        return Curves(
            t_s=solution.t_s * factor,
            d_nm=_held(jnp.where(present, d, 0.0), present),
            x_nm=_held(x, present),
            y_nm=_held(y, present),
            core_fraction=fraction,
        )

    return jax.vmap(one)(solutions, factor)


def _at_data(curves: Curves, data: Data) -> Curves:
    interp = jax.vmap(jnp.interp)
    return Curves(data.t, *(interp(data.t, curves.t_s, c) for c in curves[1:]))


def residuals(u, extra: Extra, problem: Problem):
    """Weighted residuals (flat, ``4 S N``: |d|, d_x, d_y, core fraction per point) and the model curves."""
    params = replace(extra.base, **_to_physical(u, extra.scales, problem))
    curves = model_curves(params, extra.mesh, extra.data, problem)
    m, data = _at_data(curves, extra.data), extra.data
    r = jnp.stack([
        data.w_mag * (m.d_nm - data.d),
        data.w_vec * (m.x_nm - data.dx),
        data.w_vec * (m.y_nm - data.dy),
        data.w_f * (m.core_fraction - data.f),
    ], axis=-1)
    return r.ravel(), curves


def _loss_function(problem: Problem):
    """``0.5 chi2(u)`` whose reverse-mode gradient is computed in forward mode (``J^T r``, masked)."""

    @jax.custom_vjp
    def loss(u, extra):
        r, _ = residuals(u, extra, problem)
        return 0.5 * jnp.sum(r * r)

    def fwd(u, extra):
        jac, r = jax.jacfwd(lambda v: (lambda rr: (rr, rr))(residuals(v, extra, problem)[0]), has_aux=True)(u)
        return 0.5 * jnp.sum(r * r), (extra.mask * (jac.T @ r), extra)

    def bwd(saved, g):
        grad, extra = saved
        return g * grad, jax.tree.map(jnp.zeros_like, extra)

    loss.defvjp(fwd, bwd)
    return loss


def _input_value(params: Params, name: str) -> float:
    if name in ("eta", "blocked_fraction", "arc_center_rad"):
        return float(getattr(params.blocking, name))
    if name == "radius_m":
        return float(params.radius_m)
    if name == "r_NMC_ohm_m2":
        return float(params.kinetics.r_NMC_ohm_m2)
    return float(getattr(params.diffusivity.find(name), name))


def fixed_inputs(params: Params) -> dict[str, Any]:
    """The scalar inputs of ``params`` worth reporting (surface, size, core threshold, D law, model)."""
    out = {"surface_model": params.kinetics.model}
    for name in ("eta", "blocked_fraction", "arc_center_rad", "radius_m", "r_NMC_ohm_m2", "D_hi_m2_per_s"):
        try:
            out[name] = _input_value(params, name)
        except (AttributeError, ValueError):
            pass
    for name in ("theta0", "theta_core", "core_smoothing"):
        out[name] = float(getattr(params, name))
    out["diffusivity"] = type(params.diffusivity).__name__
    return out


def _as_float_tree(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)

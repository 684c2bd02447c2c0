"""Inverse fitting: surface-blocking parameters from microscopy asymmetry measurements (issue 4).

Given measured core offsets d(t) (and optionally the offset direction and the core area fraction) of one particle
charged at several rates (:mod:`fluxsim.io.observations`), :func:`fit` finds the model inputs that minimise the weighted
least-squares misfit

    chi2(p) = sum_i ((model_i(p) - data_i) / sigma_i) ** 2

through the differentiable solver (Levenberg-Marquardt on the residuals by default; optax ``lbfgs`` and ``adam`` on
chi2 as alternatives), from several starts, and reports standard errors and correlations from the Gauss-Newton
Hessian ``J^T J`` at the optimum (``J`` = d weighted residuals / d parameters, by ``jax.jacfwd``), the chi2 profile
along eta, and a warning for every parameter the data cannot identify.

Fittable inputs and their reparameterisation (the optimiser works on the unconstrained ``u``):

====================  ===========  ===================================  ==========================================
input                 unit         reparameterisation                   multi-start sample range
====================  ===========  ===================================  ==========================================
``eta``               -            logit (model A: (0, 1)); log (B)     [0.05, 0.95]
``blocked_fraction``  -            logit, (0, 1)                        [0.05, 0.6]
``arc_center_rad``    rad          none (an angle)                      [0, 2 pi)
``D_hi_m2_per_s``     m2 s-1       log                                  start x [0.3, 3]
``radius_m``          m            log                                  start x [0.8, 1.25]
``r_NMC_ohm_m2``      ohm m2       log (model B only)                   [0.02, 0.1] (docs/model.md, tested range)
====================  ===========  ===================================  ==========================================

Residuals, per measurement (``sigma`` from the file, else ``DEFAULT_D_SIGMA_NM`` / ``DEFAULT_CORE_FRACTION_SIGMA``
with the covariance then scaled by the reduced chi2, as ``scipy.optimize.curve_fit(absolute_sigma=False)``):

* with a direction: the two Cartesian components of (model offset vector - measured offset vector) / sigma_d;
* without: (model |d| - measured d) / sigma_d (the arc angle is then not identifiable: rotating the arc rotates the
  offset without changing |d|);
* with a core fraction: (model fraction - measured fraction) / sigma_f.

The model uses the *smooth* core metrics (:func:`~fluxsim.core.polar.metrics.smooth_core`), so the misfit is smooth
in every input. After the model's core has vanished its offset is held at its last value.

Performance (all rates of a particle in one vmapped batch, every solver call jit-compiled once per problem shape):

* only the observation window is simulated: one charge step without cut-off to 1.05 x the last measurement;
* the series are *time-rescaled* so that every rate runs on the same static horizon: the solution at rate I with
  diffusivities D (and model-B film resistance r) at time t equals the solution at rate I' with D I' / I (and
  r I / I') at time t I / I' (divide the diffusion equation and the flux boundary condition by I / I'). fluxsim
  simulates every series at I' = 1.05 max(I_k t_last,k) / H with H = ``CANONICAL_HORIZON_S``, so the time steps cover
  each series' own window, the protocol is the same static object for every dataset, and the rates, windows and
  all fitted inputs are traced arrays: a second dataset of the same shape reuses the compiled code;
* the default optimiser, Levenberg-Marquardt (:func:`_levenberg_marquardt`), needs only the weighted residuals and
  their Jacobian, taken in *forward* mode (``jax.jacfwd``: few parameters, and the implicit-function JVP of each
  time step reuses its factorisation) by one ahead-of-time compiled program (``_evaluate``) that also serves the
  multi-start candidates, the covariance and the profile. Evaluations are cached by parameter vector;
* with ``method="lbfgs"``/``"adam"`` the whole optax step (value, forward-mode gradient behind a
  ``jax.custom_vjp``, L-BFGS update with its zoom line search) is a second compiled program (about 30 s to compile
  on 2 CPU cores); :data:`COMPILE_LOG` records every compilation;
* modest default numerics (:data:`DEFAULT_NUMERICS`, 16 rings x 64 nodes, 64 steps over the window): for 4 rates
  x 20 points over 1-20 mAh/g (eta = 0.5, a quarter blocked) d(t) is within 1.7 nm (mean) / 5.8 nm (worst point)
  of the solver's default numerics (32 x 128, 200 steps); ``benchmarks/bench_fit.py --accuracy`` measures it.

Example (notebook)::

    from fluxsim import fit
    from fluxsim.io import observations
    obs = observations.read_csv("particle_A.csv")
    result = fit.fit(obs, ["eta", "arc_center_rad"], blocked_fraction=0.25)
    print(result)                       # table of estimates, standard errors, correlations, warnings
    result.save("fit_A")                # fit.json, fit.zarr, fit.png
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fluxsim._version import __version__
from fluxsim.api import make_params, replace
from fluxsim.core import outputs
from fluxsim.core.cache import CompileCache
from fluxsim.core.polar.solver import Numerics, simulate
from fluxsim.io import observations as obs_mod
from fluxsim.model import catalogue, checks
from fluxsim.model.params import Params
from fluxsim.model.protocol import Charge

#: Static length [s] of the simulated window of every time-rescaled series (its value does not change results).
CANONICAL_HORIZON_S = 1000.0
#: Simulated window = this factor x the last measurement (in passed capacity).
HORIZON_MARGIN = 1.05
#: Default discretisation of fits (see the module docstring for its accuracy).
DEFAULT_NUMERICS = Numerics(nr=16, nphi=64, n_steps=64)
#: Uncertainties assumed where the file gives none (the covariance is then rescaled by the reduced chi2).
DEFAULT_D_SIGMA_NM = obs_mod.DEFAULT_D_SIGMA_NM  # stated with the CSV format
DEFAULT_CORE_FRACTION_SIGMA = 0.02
#: Data points per series are padded to a multiple of this (fewer distinct shapes, fewer compilations).
PAD_POINTS = 8
#: A parameter is reported as not identifiable above these standard errors (absolute for bounded/angle inputs,
#: relative for log-parameterised ones) or when the Gauss-Newton Hessian is this ill-conditioned.
UNIDENTIFIABLE_SE = {"eta": 0.25, "blocked_fraction": 0.25, "arc_center_rad": 0.5}
UNIDENTIFIABLE_RELATIVE_SE = 0.5
UNIDENTIFIABLE_CONDITION = 1e10

#: Optimisers of :func:`fit`: Levenberg-Marquardt on the residuals (default), optax L-BFGS and adam on chi2.
METHODS = ("lm", "lbfgs", "adam")

#: The owner of the fit's compiled executables (by function, static settings and argument shapes).
EXECUTABLES = CompileCache("fit executables")
#: Every compilation the fit performed: (function, problem key, seconds). Tests use it to check for recompiles.
COMPILE_LOG = EXECUTABLES.log


class IdentifiabilityWarning(UserWarning):
    """The data cannot determine a fitted parameter (near-singular Gauss-Newton Hessian or huge standard error)."""


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
def _to_physical(u, scales, problem: Problem) -> dict:
    values = {}
    for i, (name, kind) in enumerate(zip(problem.names, problem.transforms)):
        if kind == "logit":
            values[name] = jax.nn.sigmoid(u[i])
        elif kind == "log":
            values[name] = scales[i] * jnp.exp(u[i])
        else:
            values[name] = u[i]
    return values


def to_unconstrained(values: Mapping[str, float], scales, problem: Problem) -> np.ndarray:
    """Physical values -> the optimiser's unconstrained vector (bounded values are pulled 1e-6 inside)."""
    u = []
    for i, (name, kind) in enumerate(zip(problem.names, problem.transforms)):
        v = float(values[name])
        if kind == "logit":
            v = min(max(v, 1e-6), 1 - 1e-6)
            u.append(math.log(v / (1 - v)))
        elif kind == "log":
            u.append(math.log(v / float(scales[i])))
        else:
            u.append(v)
    return np.asarray(u, float)


def physical_jacobian(values: Mapping[str, float], problem: Problem) -> np.ndarray:
    """d(physical value)/du per fitted input (diagonal)."""
    out = []
    for name, kind in zip(problem.names, problem.transforms):
        v = float(values[name])
        out.append(v * (1 - v) if kind == "logit" else v if kind == "log" else 1.0)
    return np.asarray(out)


def _scale_law(law, factor):
    """The diffusivity law with every diffusivity (fields ``*_m2_per_s``, also inside ``base``) times ``factor``."""
    changes = {}
    for field in dataclasses.fields(law):
        value = getattr(law, field.name)
        if field.name.endswith("_m2_per_s"):
            changes[field.name] = value * factor
        elif field.name == "base":
            changes[field.name] = _scale_law(value, factor)
    return dataclasses.replace(law, **changes)


def time_rescaled(params: Params, rate_sim, rate) -> Params:
    """Parameters whose solution at ``rate_sim`` and time ``t rate / rate_sim`` equals ``params``' at ``rate``, t.

    Diffusivities are multiplied and the model-B film resistance divided by ``rate_sim / rate``.
    """
    factor = rate_sim / rate
    kinetics = params.kinetics
    if hasattr(kinetics, "r_NMC_ohm_m2"):
        kinetics = dataclasses.replace(kinetics, r_NMC_ohm_m2=kinetics.r_NMC_ohm_m2 / factor)
    return dataclasses.replace(params, rate_mA_per_g=rate_sim, diffusivity=_scale_law(params.diffusivity, factor),
                               kinetics=kinetics)


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


def model_curves(params: Params, data: Data, problem: Problem) -> Curves:
    """Smooth core metrics of every series (vmapped over rates), in physical time."""
    protocol = (Charge(max_duration_s=problem.horizon_s, until_cutoff=False),)

    def one(rate):
        solution = simulate(time_rescaled(params, data.rate_sim, rate), protocol, problem.numerics)
        present = solution.smooth_core_fraction > 0
        d = outputs.offset_nm(solution, smooth=True)
        return Curves(
            t_s=solution.t_s * data.rate_sim / rate,
            d_nm=_held(jnp.where(present, d, 0.0), present),
            x_nm=_held(solution.smooth_core_x_nm, present),
            y_nm=_held(solution.smooth_core_y_nm, present),
            core_fraction=solution.smooth_core_fraction,
        )

    return jax.vmap(one)(data.rate)


def _at_data(curves: Curves, data: Data) -> Curves:
    interp = jax.vmap(jnp.interp)
    return Curves(data.t, *(interp(data.t, curves.t_s, c) for c in curves[1:]))


def residuals(u, extra: Extra, problem: Problem):
    """Weighted residuals (flat, ``4 S N``: |d|, d_x, d_y, core fraction per point) and the model curves."""
    params = replace(extra.base, **_to_physical(u, extra.scales, problem))
    curves = model_curves(params, extra.data, problem)
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


@dataclasses.dataclass(frozen=True)
class OptimiserSpec:
    """Static optimiser settings (part of the compilation key)."""

    method: str = "lbfgs"
    learning_rate: float = 0.05  # adam only (unconstrained units)
    memory_size: int = 10  # lbfgs only
    max_linesearch_steps: int = 16  # lbfgs only

    def build(self) -> optax.GradientTransformation:
        if self.method == "lbfgs":
            return optax.lbfgs(memory_size=self.memory_size, linesearch=optax.scale_by_zoom_linesearch(
                max_linesearch_steps=self.max_linesearch_steps, initial_guess_strategy="one"))
        if self.method == "adam":
            return optax.adam(self.learning_rate)
        raise ValueError(f"unknown method {self.method!r}; allowed: 'lbfgs', 'adam'")


def _evaluate(u, extra: Extra, *, problem: Problem):
    """Residuals, their Jacobian d r / d u (forward mode) and the model curves."""
    jac, (r, curves) = jax.jacfwd(lambda v: (lambda rc: (rc[0], rc))(residuals(v, extra, problem)), has_aux=True)(u)
    return r, jac, curves


def _step(u, state, extra: Extra, *, problem: Problem, spec: OptimiserSpec):
    """One optimiser step, all of it inside one compiled function."""
    optimiser = spec.build()
    loss = _loss_function(problem)

    def value_fn(v):
        return loss(v, extra)

    if spec.method == "lbfgs":
        value, grad = optax.value_and_grad_from_state(value_fn)(u, state=state)
        updates, state = optimiser.update(grad, state, u, value=value, grad=grad, value_fn=value_fn)
    else:
        value, grad = jax.value_and_grad(value_fn)(u)
        updates, state = optimiser.update(grad, state, u)
    return optax.apply_updates(u, updates), state, value, grad


def _signature(args) -> tuple:
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((np.shape(x), np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x)) for x in leaves)


def _compiled(fn, args, **static):
    """Ahead-of-time compiled ``fn`` for these argument shapes and static settings (cached; logged)."""
    key = (fn.__name__, tuple(sorted(static.items())), _signature(args))
    return EXECUTABLES.get_or_compile(
        key, lambda: jax.jit(fn, static_argnames=tuple(static)).lower(*args, **static).compile(), fn.__name__)


# ---------------------------------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------------------------------
def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


@dataclasses.dataclass
class FitResult:
    """Everything a fit found. ``print(result)`` shows a summary; :meth:`save` writes JSON, zarr and PNG.

    Attributes:
        names: fitted inputs, in order.
        values: best estimates (physical units, unit-suffixed names).
        standard_errors: from the Gauss-Newton covariance (NaN where the Hessian is singular).
        covariance, correlation: ``(k, k)`` matrices in physical units.
        chi2: sum of squared weighted residuals at the optimum; ``dof`` = residuals - parameters.
        absolute_sigma: True when every uncertainty came from the data (else the covariance is scaled by
            ``chi2 / dof``).
        starts: each optimiser run (start, end, chi2, iterations, converged).
        candidates: the multi-start candidates and their chi2.
        profile: chi2 along eta (``{"eta": [...], "chi2": [...], "mode": ...}``) or None.
        warnings: identifiability and convergence warnings.
        timings: ``compile_s`` (ahead-of-time compilations), ``run_s`` (everything else) and ``total_s``.
        params: the fitted :class:`~fluxsim.model.params.Params` (base inputs with the estimates).
        inputs: the fixed inputs of the model, for the report.
        observations: the data.
        curves: the model series at the optimum (numpy :class:`Curves`), ``(S, T)``.
        fitted: the model at the data times (numpy :class:`Curves`), ``(S, N)``.
    """

    names: tuple[str, ...]
    model: str
    method: str
    numerics: Numerics
    values: dict[str, float]
    standard_errors: dict[str, float]
    covariance: np.ndarray
    correlation: np.ndarray
    chi2: float
    dof: int
    n_residuals: int
    absolute_sigma: bool
    hessian_condition: float
    starts: list[dict]
    candidates: list[dict]
    profile: dict | None
    warnings: list[str]
    timings: dict[str, float]
    params: Params
    inputs: dict[str, Any]
    observations: obs_mod.Observations
    curves: Curves
    fitted: Curves

    @property
    def reduced_chi2(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else float("nan")

    @property
    def converged(self) -> bool:
        return any(s["converged"] for s in self.starts)

    def to_dict(self) -> dict:
        """The report as plain Python (what :meth:`to_json` writes)."""
        return _json_ready({
            "fluxsim_version": __version__,
            "observations": self.observations.source,
            "particles": self.observations.particles,
            "rates_mA_per_g": self.observations.rates_mA_per_g,
            "n_measurements": self.observations.n_points,
            "model": self.model,
            "method": self.method,
            "numerics": dataclasses.asdict(self.numerics),
            "fitted": list(self.names),
            "units": {n: FITTABLE[n].unit for n in self.names},
            "values": self.values,
            "standard_errors": self.standard_errors,
            "correlation": self.correlation,
            "covariance": self.covariance,
            "chi2": self.chi2,
            "dof": self.dof,
            "reduced_chi2": self.reduced_chi2,
            "absolute_sigma": self.absolute_sigma,
            "hessian_condition": self.hessian_condition,
            "converged": self.converged,
            "warnings": self.warnings,
            "fixed_inputs": self.inputs,
            "starts": self.starts,
            "candidates": self.candidates,
            "profile": self.profile,
            "timings": self.timings,
        })

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_dataset(self):
        """Data, fitted curves, estimates and profile as an ``xarray.Dataset`` (write with ``.to_zarr``)."""
        import xarray as xr

        series = self.observations.series
        n_max = self.fitted.t_s.shape[1]

        def padded(attr, transform=None):
            out = np.full((len(series), n_max), np.nan)
            for i, s in enumerate(series):
                v = getattr(s, attr)
                if v is not None:
                    out[i, : len(s)] = v
            return out

        def var(dims, values, units, long_name):
            return xr.Variable(dims, np.asarray(values, float), {"units": units, "long_name": long_name})

        lengths = np.array([len(s) for s in series])
        valid = np.arange(n_max)[None, :] < lengths[:, None]
        fitted_d = np.where(valid, np.asarray(self.fitted.d_nm), np.nan)
        names = list(self.names)
        data_vars = {
            "model_time": var(("series", "time"), self.curves.t_s, "s", "time of the model series"),
            "model_d": var(("series", "time"), self.curves.d_nm, "nm", "model core offset d (smooth metric)"),
            "model_core_x": var(("series", "time"), self.curves.x_nm, "nm", "model core centroid x"),
            "model_core_y": var(("series", "time"), self.curves.y_nm, "nm", "model core centroid y"),
            "model_core_fraction": var(("series", "time"), self.curves.core_fraction, "1", "model core area fraction"),
            "obs_time": var(("series", "point"), padded("time_s"), "s", "measurement time"),
            "obs_d": var(("series", "point"), padded("d_nm"), "nm", "measured core offset d"),
            "obs_d_sigma": var(("series", "point"), padded("d_sigma_nm"), "nm", "uncertainty of d"),
            "obs_direction": var(("series", "point"), padded("direction_rad"), "rad", "measured offset direction"),
            "obs_core_fraction": var(("series", "point"), padded("core_fraction"), "1", "measured core fraction"),
            "fit_d": var(("series", "point"), fitted_d, "nm", "model d at the measurement times"),
            "fit_core_fraction": var(("series", "point"), np.where(valid, self.fitted.core_fraction, np.nan), "1",
                                     "model core fraction at the measurement times"),
            "estimate": var(("parameter",), [self.values[n] for n in names], "", "best-fit value (units: attrs)"),
            "standard_error": var(("parameter",), [self.standard_errors[n] for n in names], "",
                                  "Gauss-Newton standard error"),
            "correlation": var(("parameter", "parameter_2"), self.correlation, "1", "correlation of the estimates"),
        }
        coords = {
            "rate_mA_per_g": xr.Variable(("series",), [s.rate_mA_per_g for s in series],
                                         {"units": "mA g-1", "long_name": "specific current"}),
            "particle": xr.Variable(("series",), np.array([s.particle for s in series], dtype=object)),
            "parameter": xr.Variable(("parameter",), np.array(names, dtype=object)),
            "parameter_2": xr.Variable(("parameter_2",), np.array(names, dtype=object)),
            "parameter_units": xr.Variable(("parameter",), np.array([FITTABLE[n].unit for n in names], dtype=object)),
        }
        if self.profile is not None:
            data_vars["profile_eta"] = var(("profile_point",), self.profile["eta"], "1", "eta along the profile")
            data_vars["profile_chi2"] = var(("profile_point",), self.profile["chi2"], "1", "chi2 along the profile")
        attrs = {"fluxsim_version": __version__, "fit_report": self.to_json(indent=None),
                 "title": "fluxsim fit: data against the fitted model"}
        return xr.Dataset(data_vars, coords, attrs)

    def write_zarr(self, path: str | Path) -> Path:
        """Write :meth:`to_dataset` to a zarr store (overwritten)."""
        path = Path(path)
        self.to_dataset().to_zarr(path, mode="w", consolidated=False)  # strings are object (vlen) arrays: zarr v3
        return path

    def plot(self, path: str | Path | None = None, dpi: int = 120):
        """Data against fit: d vs passed capacity per rate (+ core fraction, + chi2 profile). Returns the figure,
        or writes a PNG to ``path`` and returns the path."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        series = self.observations.series
        panels = 1 + self.observations.has_core_fraction + (self.profile is not None)
        fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
        axes = axes[0]
        colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(series)))
        for i, (s, c) in enumerate(zip(series, colours)):
            q_model = self.curves.t_s[i] * s.rate_mA_per_g / 3600.0
            keep = q_model <= s.capacity_mAh_per_g[-1] * HORIZON_MARGIN
            axes[0].errorbar(s.capacity_mAh_per_g, s.d_nm, yerr=s.d_sigma_nm, fmt="o", ms=3.5, color=c, alpha=0.8,
                             label=f"{s.particle} {s.rate_mA_per_g:g} mA/g")
            axes[0].plot(q_model[keep], self.curves.d_nm[i][keep], "-", color=c)
            if self.observations.has_core_fraction and s.core_fraction is not None:
                axes[1].errorbar(s.capacity_mAh_per_g, s.core_fraction, yerr=s.core_fraction_sigma, fmt="o", ms=3.5,
                                 color=c, alpha=0.8)
                axes[1].plot(q_model[keep], self.curves.core_fraction[i][keep], "-", color=c)
        axes[0].set_xlabel("passed capacity [mAh/g]")
        axes[0].set_ylabel("core offset d [nm]")
        fitted = ", ".join(f"{n} = {_fmt(self.values[n])} ± {_fmt(self.standard_errors[n])}" for n in self.names)
        axes[0].set_title(f"model {self.model}: {fitted}", fontsize=8)
        axes[0].legend(fontsize=7)
        if self.observations.has_core_fraction:
            axes[1].set_xlabel("passed capacity [mAh/g]")
            axes[1].set_ylabel("core area fraction")
        if self.profile is not None:
            ax = axes[-1]
            ax.plot(self.profile["eta"], np.asarray(self.profile["chi2"]) - self.chi2, "o-", ms=3)
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
            ax.axvline(self.values.get("eta", np.nan), color="k", lw=0.8)
            ax.set_xlabel("eta")
            ax.set_ylabel("chi2 - chi2_min")
            ax.set_title(f"profile ({self.profile['mode']})", fontsize=8)
        fig.tight_layout()
        if path is None:
            return fig
        path = Path(path)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        return path

    def save(self, out_dir: str | Path, stem: str = "fit") -> dict[str, Path]:
        """Write ``<stem>.json``, ``<stem>.zarr`` and ``<stem>.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / f"{stem}.json", "zarr": out / f"{stem}.zarr", "png": out / f"{stem}.png"}
        self.to_json(paths["json"])
        self.write_zarr(paths["zarr"])
        self.plot(paths["png"])
        return paths

    def summary(self) -> str:
        lines = [f"fluxsim fit (model {self.model}, {self.method}, {self.observations.n_points} measurements, "
                 f"{len(self.observations.series)} series): chi2 = {self.chi2:.4g}, dof = {self.dof}, "
                 f"reduced chi2 = {self.reduced_chi2:.3g}" + ("" if self.absolute_sigma else " (sigma rescaled)")]
        for n in self.names:
            lines.append(f"  {n:>18} = {_fmt(self.values[n])} ± {_fmt(self.standard_errors[n])} [{FITTABLE[n].unit}]")
        if len(self.names) > 1:
            lines.append("  correlation:\n" + "\n".join("    " + " ".join(f"{c:+.3f}" for c in row)
                                                      for row in self.correlation))
        lines += [f"  WARNING: {w}" for w in self.warnings]
        lines.append(f"  time: compile {self.timings['compile_s']:.1f} s, run {self.timings['run_s']:.1f} s")
        return "\n".join(lines)

    __str__ = summary


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


# ---------------------------------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------------------------------
def halton(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` points of the ``dim``-dimensional Halton sequence in [0, 1), shifted by a seeded random rotation."""
    primes = [2, 3, 5, 7, 11, 13, 17, 19][:dim]
    out = np.empty((n, dim))
    for j, b in enumerate(primes):
        for i in range(n):
            f, k, x = 1.0, i + 1, 0.0
            while k > 0:
                f /= b
                x += f * (k % b)
                k //= b
            out[i, j] = x
    shift = np.random.default_rng(seed).random(dim)
    return (out + shift) % 1.0


def _input_value(params: Params, name: str) -> float:
    if name in ("eta", "blocked_fraction", "arc_center_rad"):
        return float(getattr(params.blocking, name))
    if name == "radius_m":
        return float(params.radius_m)
    if name == "r_NMC_ohm_m2":
        return float(params.kinetics.r_NMC_ohm_m2)
    law = params.diffusivity
    while not hasattr(law, name) and hasattr(law, "base"):
        law = law.base
    return float(getattr(law, name))


def fixed_inputs(params: Params) -> dict[str, Any]:
    """The scalar inputs of ``params`` worth reporting (surface, size, core threshold, D law, model)."""
    out = {"surface_model": "B" if hasattr(params.kinetics, "r_NMC_ohm_m2") else "A"}
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


def _levenberg_marquardt(evaluate, u, mask, iterations: int, tol_chi2: float):
    """Levenberg-Marquardt on the weighted residuals (the fit is a least-squares problem and the compiled
    ``_evaluate`` already returns the residuals and their Jacobian, so no second program is compiled).

    Args:
        evaluate: ``u -> (chi2, r, J, curves)``.
        u: start (unconstrained).
        mask: 1 for free parameters, 0 for held ones.
        iterations: most accepted steps.
        tol_chi2: converged when the Gauss-Newton step predicts a chi2 decrease below this, or a step gains less.

    Returns:
        ``(u, chi2, accepted steps, converged, chi2 history)``.
    """
    free = np.asarray(mask, float) > 0
    u = np.asarray(u, float)
    chi2, r, jac, _ = evaluate(u)
    history = [chi2]
    damping = 1e-3
    converged = False
    steps = 0
    if not math.isfinite(chi2):
        return u, chi2, steps, converged, history
    while steps < iterations and not converged:
        jf = jac[:, free]
        g = jf.T @ r
        h = jf.T @ jf
        scale = np.maximum(np.diag(h), 1e-12 * max(float(np.max(np.diag(h), initial=0.0)), 1e-300))
        try:
            gn = np.linalg.lstsq(h, -g, rcond=None)[0]
        except np.linalg.LinAlgError:
            gn = np.zeros_like(g)
        if float(-g @ gn) <= 0.5 * tol_chi2:  # predicted chi2 decrease of the full Gauss-Newton step: 2 (-g . gn) / 2
            converged = True
            break
        accepted = False
        for _ in range(12):  # raise the damping until the step lowers chi2
            delta = np.zeros_like(u)
            delta[free] = np.linalg.solve(h + damping * np.diag(scale), -g)
            trial = u + delta
            c2, r_new, jac_new, _ = evaluate(trial)
            if math.isfinite(c2) and c2 < chi2:
                accepted = True
                break
            damping *= 4.0
        if not accepted:
            converged = True  # no descent direction left at this precision
            break
        steps += 1
        drop = chi2 - c2
        u, chi2, r, jac = trial, c2, r_new, jac_new
        history.append(chi2)
        damping = max(damping / 5.0, 1e-7)
        converged = drop <= tol_chi2
    return u, chi2, steps, converged, history


def fit(
    observations: obs_mod.Observations | str | Path,
    params: Sequence[str] | str = ("eta",),
    *,
    model: str | None = None,
    base: Params | None = None,
    start: Mapping[str, float] | None = None,
    numerics: Numerics | None = None,
    method: str = "lm",
    n_candidates: int = 6,
    n_starts: int | None = None,
    seed: int = 0,
    max_iterations: int | None = None,
    tolerance: float = 1e-4,
    learning_rate: float = 0.05,
    profile: str | None = "grid",
    profile_points: int = 9,
    profile_iterations: int = 6,
    verbose: bool = False,
    **inputs,
) -> FitResult:
    """Fit model inputs to the core-offset measurements of one particle.

    Args:
        observations: :class:`~fluxsim.io.observations.Observations` of one particle, or a CSV path.
        params: the inputs to fit, any of ``eta``, ``blocked_fraction``, ``arc_center_rad``, ``D_hi_m2_per_s``,
            ``radius_m``, ``r_NMC_ohm_m2`` (model B); a comma-separated string is accepted.
        model: surface model ``"A"`` (default) or ``"B"``; taken from ``base`` when given.
        base: the fixed inputs as :class:`~fluxsim.model.params.Params` (from :func:`fluxsim.api.make_params`); default:
            ``make_params(surface_model=model, radius_m=<from the data>, **inputs)``.
        start: start values of fitted inputs (default: ``inputs``, else ``eta`` = 0.5 and the base's values).
        numerics: discretisation of the model (default :data:`DEFAULT_NUMERICS`).
        method: ``"lm"`` (default: Levenberg-Marquardt on the weighted residuals, reusing the one compiled
            residual-and-Jacobian program; a few seconds per fit once compiled), ``"lbfgs"`` (optax L-BFGS with
            zoom line search; compiles a second, larger program) or ``"adam"`` (optax).
        n_candidates: multi-start candidates (the start plus a seeded Halton sample of the ranges in the module
            docstring); chi2 is evaluated at each.
        n_starts: optimiser runs, from the best candidates (default: 1 for one fitted input, whose candidates
            already sample its whole range; 2 otherwise).
        seed: seed of the candidate sample.
        max_iterations: per optimiser run (default 20 for lm, 40 for lbfgs, 150 for adam).
        tolerance: a run stops when chi2 / 2 falls by less than ``tolerance`` x (chi2 / dof) (lm: on one step or as
            predicted by the Gauss-Newton step; lbfgs/adam: on two consecutive steps), a change far below one
            standard error.
        learning_rate: adam step size in the unconstrained parameters.
        profile: ``"grid"`` (chi2 along eta, other inputs at the optimum), ``"reoptimise"`` (others re-fitted at
            every eta, warm-started; ``profile_iterations`` optimiser steps each) or None.
        profile_points: eta values of the profile (optimum +- 4 standard errors, at least +- 0.01).
        profile_iterations: optimiser steps per profile point with ``"reoptimise"``.
        verbose: print progress.
        **inputs: fixed inputs of :func:`fluxsim.api.make_params` (``blocked_fraction=0.25``, ...); for fitted
            inputs, the start value.

    Returns:
        A :class:`FitResult`.
    """
    t_begin = time.perf_counter()
    compile_before = sum(s for _, _, s in COMPILE_LOG)
    if isinstance(observations, str | Path):
        observations = obs_mod.read_csv(observations)
    if len(observations.particles) != 1:
        raise ValueError(f"fit() takes one particle; {observations.source or 'the data'} has "
                         f"{observations.particles}: use observations.select(particle) or fit_particles()")
    names = tuple(p.strip() for p in params.split(",")) if isinstance(params, str) else tuple(params)
    if not names:
        raise ValueError("no parameters to fit")
    for n in names:
        if n not in FITTABLE:
            raise ValueError(f"cannot fit {n!r}; fittable inputs: {sorted(FITTABLE)}")
    if len(set(names)) != len(names):
        raise ValueError(f"parameter listed twice: {names}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(map(repr, METHODS))}")
    numerics = numerics or DEFAULT_NUMERICS
    numerics = checks.check_numerics(numerics, prefix="numerics.")
    particle = observations.particles[0]

    # ---- base parameters and start values -------------------------------------------------------------------
    start = dict(start or {})
    if base is None:
        model = model or "A"
        kwargs = dict(inputs)
        for n in names:
            if n in kwargs:
                start.setdefault(n, kwargs[n])
            elif FITTABLE[n].fit.default_start is not None:
                kwargs[n] = FITTABLE[n].fit.default_start
        radius = observations.radius_m.get(particle)
        if radius is not None and "radius_m" not in kwargs:
            kwargs["radius_m"] = radius
        base = make_params(surface_model=model, **kwargs)
        checks.check_resolution(numerics, (Charge(),), [kwargs])  # as fluxsim.run and the command line
    else:
        if inputs:
            raise ValueError(f"give fixed inputs either through base= or as keywords, not both ({sorted(inputs)})")
        base_model = "B" if hasattr(base.kinetics, "r_NMC_ohm_m2") else "A"
        if model is not None and model != base_model:
            raise ValueError(f"model={model!r} but base has surface model {base_model}")
        model = base_model
    if "r_NMC_ohm_m2" in names and model != "B":
        raise ValueError("r_NMC_ohm_m2 is an input of surface model B; pass model='B'")
    if "eta" in names and "blocked_fraction" not in names and _input_value(base, "blocked_fraction") == 0:
        raise ValueError("eta has no effect with blocked_fraction = 0: give blocked_fraction=... or fit it too")
    for n in names:
        if n not in start:
            try:
                start[n] = _input_value(base, n)
            except AttributeError:
                raise ValueError(f"the base parameters have no input {n!r} (D law {type(base.diffusivity).__name__})"
                                 ) from None
    transforms = tuple(_transform(n, model) for n in names)
    problem = Problem(names, transforms, numerics)
    scales = np.array([start[n] if k == "log" else 1.0 for n, k in zip(names, transforms)], float)
    if not np.all(scales > 0):
        raise ValueError(f"log-parameterised inputs need positive start values, got {start}")
    data, absolute = make_data(observations)
    base = _as_float_tree(base)
    extra = Extra(base, _as_float_tree(data), scales, np.ones(len(names)))
    k = len(names)
    n_res = int(np.count_nonzero(data.w_mag) + 2 * np.count_nonzero(data.w_vec) + np.count_nonzero(data.w_f))
    dof = n_res - k
    if dof <= 0:
        raise ValueError(f"{n_res} residuals cannot determine {k} parameters")
    found_warnings: list[str] = []
    if "arc_center_rad" in names and not observations.has_direction:
        found_warnings.append("arc_center_rad is fitted but the data give no offset direction: |d| does not depend "
                              "on the arc angle (rotation invariance); add a direction column")

    def log(msg):
        if verbose:
            print(f"[fit {time.perf_counter() - t_begin:6.1f} s] {msg}", flush=True)

    u0 = to_unconstrained(start, scales, problem)
    evaluate = _compiled(_evaluate, (u0, extra), problem=problem)

    evaluated: dict[bytes, tuple] = {}  # u -> (chi2, r, J, curves): starts, optimum and profile revisit points

    def chi2_at(u):
        u = np.asarray(u, float)
        key = u.tobytes()
        if key not in evaluated:
            r, jac, curves = evaluate(u, extra)
            r = np.asarray(r)
            evaluated[key] = (float(r @ r), r, np.asarray(jac), curves)
        return evaluated[key]

    # ---- multi-start candidates -----------------------------------------------------------------------------
    sample = halton(max(n_candidates - 1, 0), k, seed)
    candidates = [u0]
    for row in sample:
        values = {}
        for j, n in enumerate(names):
            lo, hi = FITTABLE[n].fit.sample
            if n == "eta" and model == "B":
                lo, hi = 0.05, 1.0
            if FITTABLE[n].fit.relative_sample:
                values[n] = start[n] * math.exp(math.log(lo) + row[j] * (math.log(hi) - math.log(lo)))
            elif transforms[j] == "log":
                values[n] = math.exp(math.log(lo) + row[j] * (math.log(hi) - math.log(lo)))
            else:
                values[n] = lo + row[j] * (hi - lo)
        candidates.append(to_unconstrained(values, scales, problem))
    scored = []
    for u in candidates:
        c2, *_ = chi2_at(u)
        scored.append((c2 if math.isfinite(c2) else math.inf, u))
        log(f"candidate {_values_text(u, scales, problem)}: chi2 = {c2:.5g}")
    order = sorted(range(len(scored)), key=lambda i: scored[i][0])
    candidate_report = [{"start": _physical_dict(scored[i][1], scales, problem), "chi2": scored[i][0]} for i in order]

    # ---- optimiser runs -------------------------------------------------------------------------------------
    max_iterations = max_iterations or {"lm": 20, "lbfgs": 40, "adam": 150}[method]
    noise_scale = 1.0  # chi2 / dof in units of the weights: refined after the first run

    def run(u_init, mask, iterations):
        """One optimiser run: (best u, its chi2, iterations, converged, history of chi2)."""
        if method == "lm":
            return _levenberg_marquardt(chi2_at, u_init, mask, iterations, 2 * tolerance * noise_scale)
        spec = OptimiserSpec(method=method, learning_rate=learning_rate)
        optimiser = spec.build()
        ex = extra._replace(mask=np.asarray(mask, float))
        u = np.asarray(u_init, float)
        state = optimiser.init(u)
        step = _compiled(_step, (u, state, ex), problem=problem, spec=spec)
        history, best = [], (math.inf, u)
        small = 0
        converged = False
        n_iterations = 0
        while n_iterations < iterations and not converged:
            n_iterations += 1
            u_new, state, value, grad = step(u, state, ex)
            value = float(value)
            history.append(2 * value)
            if value < best[0]:
                best = (value, u)
            if not np.all(np.isfinite(np.asarray(u_new))):
                break
            u = np.asarray(u_new)
            if len(history) > 1:
                drop = 0.5 * (history[-2] - history[-1])
                small = small + 1 if abs(drop) <= tolerance * noise_scale else 0
                converged = small >= 2 or float(np.max(np.abs(np.asarray(grad)))) == 0.0
        final = float(np.asarray(optax.tree.get(state, "value"))) if method == "lbfgs" else math.nan
        if method == "lbfgs" and math.isfinite(final) and final < best[0]:
            best = (final, u)
        elif method != "lbfgs":
            c2, *_ = chi2_at(u)
            if 0.5 * c2 < best[0]:
                best = (0.5 * c2, u)
        return best[1], 2 * best[0], n_iterations, converged, history

    runs = []
    n_starts = (1 if k == 1 else 2) if n_starts is None else max(int(n_starts), 1)
    for rank, i in enumerate(order[:n_starts]):
        u_start = scored[i][1]
        u_best, c2, iterations, converged, history = run(u_start, np.ones(k), max_iterations)
        runs.append((c2, u_best))
        if rank == 0 and math.isfinite(c2):
            noise_scale = max(c2 / dof, 1e-12)
        log(f"start {rank}: {_values_text(u_start, scales, problem)} -> {_values_text(u_best, scales, problem)}, "
            f"chi2 = {c2:.6g} after {iterations} steps" + ("" if converged else " (not converged)"))
        if not converged:
            found_warnings.append(f"start {rank} did not converge in {iterations} steps")
        runs[-1] = (c2, u_best, {"start": _physical_dict(u_start, scales, problem),
                                 "end": _physical_dict(u_best, scales, problem), "chi2": c2,
                                 "iterations": iterations, "converged": converged,
                                 "history_chi2": list(history)})
    c2_best, u_best, _ = min(runs, key=lambda r: r[0])
    starts_report = [r[2] for r in runs]
    if sum(1 for r in runs if r[2]["converged"]) == 0:
        found_warnings.append("no optimiser run converged; raise max_iterations")

    # ---- statistics at the optimum ---------------------------------------------------------------------------
    chi2, r, jac_u, curves = chi2_at(u_best)
    values = _physical_dict(u_best, scales, problem)
    jac = jac_u / physical_jacobian(values, problem)[None, :]
    hessian = jac.T @ jac
    scale = 1.0 if absolute else chi2 / dof
    diag = np.sqrt(np.maximum(np.diag(hessian), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = hessian / np.outer(diag, diag)
    eig = np.linalg.eigvalsh(normalised) if np.all(diag > 0) else np.zeros(k)
    condition = float(eig[-1] / eig[0]) if eig[0] > 0 else math.inf
    if np.all(diag > 0) and condition < 1e16:
        covariance = np.linalg.inv(normalised) / np.outer(diag, diag) * scale
    else:
        covariance = np.full((k, k), np.nan)
        pinv = np.linalg.pinv(hessian) * scale
        covariance[np.ix_(diag > 0, diag > 0)] = pinv[np.ix_(diag > 0, diag > 0)]
        for i in np.flatnonzero(diag == 0):
            covariance[i, i] = math.inf
    se = np.sqrt(np.abs(np.diag(covariance)))
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = covariance / np.outer(se, se)
    standard_errors = {n: float(se[i]) for i, n in enumerate(names)}
    for i, n in enumerate(names):
        limit = UNIDENTIFIABLE_SE.get(n)
        too_big = (se[i] > limit) if limit is not None else (se[i] > UNIDENTIFIABLE_RELATIVE_SE * abs(values[n]))
        if not np.isfinite(se[i]) or too_big:
            found_warnings.append(f"{n} is not identifiable from these data: standard error {_fmt(float(se[i]))} "
                                  f"{FITTABLE[n].unit} at {_fmt(values[n])}")
    if condition > UNIDENTIFIABLE_CONDITION:
        v = np.linalg.eigh(normalised)[1][:, 0] if np.all(diag > 0) else np.eye(k)[int(np.argmin(diag))]
        combo = " + ".join(f"{c:+.2f} {n}" for c, n in zip(v, names) if abs(c) > 0.1)
        found_warnings.append(f"the Gauss-Newton Hessian is near-singular (condition {condition:.3g}): the data do "
                              f"not constrain the combination {combo} (in standardised units)")
    for w in found_warnings:
        warnings.warn(w, IdentifiabilityWarning, stacklevel=2)

    # ---- profile along eta ---------------------------------------------------------------------------------
    profile_report = None
    if profile is not None and "eta" in names:
        if profile not in ("grid", "reoptimise"):
            raise ValueError(f"profile must be 'grid', 'reoptimise' or None, got {profile!r}")
        ie = names.index("eta")
        eta_hat = values["eta"]
        se_eta = standard_errors["eta"]
        half = min(max(4 * se_eta, 0.01), 0.5) if math.isfinite(se_eta) else 0.25  # +- 4 SE: the 1-sigma band and more
        lo = max(eta_hat - half, 0.005)
        hi = min(eta_hat + half, 0.995) if model == "A" else eta_hat + half
        grid = np.linspace(lo, hi, profile_points)
        mode = profile if k > 1 else "grid"
        chi2s, others = np.empty(profile_points), {n: np.empty(profile_points) for n in names if n != "eta"}
        below = np.flatnonzero(grid <= eta_hat)
        above = np.flatnonzero(grid > eta_hat)
        mask = np.ones(k)
        mask[ie] = 0.0
        for side in (below[::-1], above):  # walk outwards from the optimum (warm starts)
            u_walk = np.array(u_best)
            for g in side:
                u_walk = np.array(u_walk)
                u_walk[ie] = to_unconstrained({**values, "eta": grid[g]}, scales, problem)[ie]
                if mode == "reoptimise":
                    u_walk, c2, *_ = run(u_walk, mask, profile_iterations)
                else:
                    c2, *_ = chi2_at(u_walk)
                chi2s[g] = c2
                for n, arr in others.items():
                    arr[g] = _physical_dict(u_walk, scales, problem)[n]
        profile_report = {"eta": grid, "chi2": chi2s, "mode": mode, "others": others}
        log(f"profile ({mode}): chi2 - min = {np.round(chi2s - chi2, 2)}")

    compile_s = sum(s for _, _, s in COMPILE_LOG) - compile_before
    total = time.perf_counter() - t_begin
    fitted_params = replace(base, **values)
    result = FitResult(
        names=names, model=model, method=method, numerics=numerics, values=values,
        standard_errors=standard_errors, covariance=covariance, correlation=correlation, chi2=chi2, dof=dof,
        n_residuals=n_res, absolute_sigma=absolute, hessian_condition=condition, starts=starts_report,
        candidates=candidate_report, profile=profile_report, warnings=found_warnings,
        timings={"compile_s": compile_s, "run_s": total - compile_s, "total_s": total},
        params=fitted_params, inputs=fixed_inputs(fitted_params), observations=observations,
        curves=Curves(*(np.asarray(c) for c in curves)),
        fitted=Curves(*(np.asarray(c) for c in _at_data(curves, data))),
    )
    log(f"done: {_values_text(u_best, scales, problem)}")
    return result


def _physical_dict(u, scales, problem) -> dict[str, float]:
    """Physical values of ``u``; angles wrapped into [-pi, pi] (the model is periodic in them)."""
    values = {n: float(v) for n, v in _to_physical(jnp.asarray(u), jnp.asarray(scales), problem).items()}
    for n in values:
        if FITTABLE[n].unit == "rad":
            values[n] = math.remainder(values[n], 2 * math.pi)
    return values


def _values_text(u, scales, problem) -> str:
    return ", ".join(f"{n}={_fmt(v)}" for n, v in _physical_dict(u, scales, problem).items())


def fit_particles(observations: obs_mod.Observations | str | Path, params=("eta",), **kwargs) -> dict[str, FitResult]:
    """:func:`fit` every particle of the observations separately (same settings); particle id -> result."""
    if isinstance(observations, str | Path):
        observations = obs_mod.read_csv(observations)
    return {p: fit(observations.select(p), params, **kwargs) for p in observations.particles}


def simulate_observations(
    params: Params,
    rates_mA_per_g: Sequence[float],
    times_s: Sequence[Sequence[float]] | np.ndarray,
    *,
    numerics: Numerics | None = None,
    noise_nm: float = 0.0,
    with_direction: bool = True,
    with_core_fraction: bool = False,
    core_fraction_noise: float = 0.0,
    seed: int = 0,
    particle: str = "synthetic",
    smooth: bool = True,
) -> obs_mod.Observations:
    """Synthetic measurements from the forward model (the fit's own time-rescaled batch): d(t) of every rate at
    ``times_s[k]``, with Gaussian noise of ``noise_nm`` on each Cartesian component of the offset vector (so d stays
    a distance and the direction gets noisy too).

    Args:
        params: model inputs (from :func:`fluxsim.api.make_params`).
        rates_mA_per_g: one rate per series.
        times_s: measurement times per series [s].
        numerics: discretisation (default :data:`DEFAULT_NUMERICS`).
        noise_nm: standard deviation of each offset component [nm]; also written as ``d_sigma_nm`` (if > 0).
        with_direction: include the direction column.
        with_core_fraction: include the core fraction (noise ``core_fraction_noise``).
        seed: noise seed.
        smooth: use the smooth core metrics (as the fit does) or the hard ones (as images do).
    """
    numerics = numerics or DEFAULT_NUMERICS
    times = [np.asarray(t, float) for t in times_s]
    pieces = [obs_mod.make_observations(r, t, np.zeros_like(t), particle=particle) for r, t in zip(rates_mA_per_g,
                                                                                                 times)]
    shell = obs_mod.combine(*pieces)
    data, _ = make_data(shell)
    problem = Problem((), (), numerics)
    fn = _compiled(_synthetic, (_as_float_tree(params), _as_float_tree(data)), problem=problem, smooth=smooth)
    at = jax.tree.map(np.asarray, fn(_as_float_tree(params), _as_float_tree(data)))
    rng = np.random.default_rng(seed)
    radius = float(params.radius_m)
    parts = []
    for i, (rate, t) in enumerate(zip(rates_mA_per_g, times)):
        m = t.shape[0]
        x, y, f = at.x_nm[i, :m], at.y_nm[i, :m], at.core_fraction[i, :m]
        if noise_nm > 0:
            x = x + rng.normal(0.0, noise_nm, m)
            y = y + rng.normal(0.0, noise_nm, m)
        d = np.hypot(x, y)
        kw: dict[str, Any] = {"radius_m": radius}
        if noise_nm > 0:
            kw["d_sigma_nm"] = noise_nm
        if with_direction:
            kw["direction_rad"] = np.arctan2(y, x)
        if with_core_fraction:
            if core_fraction_noise > 0:
                f = np.clip(f + rng.normal(0.0, core_fraction_noise, m), 0.0, 1.0)
                kw["core_fraction_sigma"] = core_fraction_noise
            kw["core_fraction"] = f
        parts.append(obs_mod.make_observations(rate, t, d, particle=particle, **kw))
    return obs_mod.combine(*parts, source=f"synthetic ({particle})")


def _synthetic(params, data, *, problem: Problem, smooth: bool):
    """Model offsets and core fraction at the data times (hard or smooth metrics)."""
    protocol = (Charge(max_duration_s=problem.horizon_s, until_cutoff=False),)

    def one(rate):
        s = simulate(time_rescaled(params, data.rate_sim, rate), protocol, problem.numerics)
        if smooth:
            return s.t_s * data.rate_sim / rate, s.smooth_core_x_nm, s.smooth_core_y_nm, s.smooth_core_fraction
        return s.t_s * data.rate_sim / rate, s.core_x_nm, s.core_y_nm, s.core_fraction

    t, x, y, f = jax.vmap(one)(data.rate)
    interp = jax.vmap(jnp.interp)
    return Curves(data.t, jnp.hypot(interp(data.t, t, x), interp(data.t, t, y)), interp(data.t, t, x),
                  interp(data.t, t, y), interp(data.t, t, f))


def compile_counts() -> collections.Counter:
    """How many times each compiled fit function was compiled in this process."""
    return collections.Counter(name for name, _, _ in COMPILE_LOG)

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

The model is the mesh core (:func:`fluxsim.core.solve.simulate`) on the particle's own outline (``outline=``, a
:mod:`fluxsim.core.outline` shape, default the disk; e.g. from :func:`fluxsim.imaging.segment.particles_from_stack`),
meshed once at ``numerics.spacing``. By default it compares the *hard* core metric (theta > theta_core, exact
clipping of the P1 field on the triangles), which is what a thresholded image measures and is continuous and
piecewise smooth in every input; ``metric="smooth"`` uses the sigmoid-weighted one (``core_smoothing``), smooth but
a few nm off the hard one (:data:`fluxsim.fit.model.METRICS`). After the model's core has vanished its offset is
held at its last value.

Uncertainty, two kinds side by side (:attr:`FitResult.intervals`):

* ``gauss_newton_68`` / ``gauss_newton_95``: estimate +- 1 / 1.96 standard errors of the Gauss-Newton covariance
  (the local, linearised answer: symmetric, and misleading where inputs are nearly interchangeable);
* ``profile_68`` / ``profile_95``: profile-likelihood intervals, the values where chi2 (with every other fitted
  input re-optimised) rises by 1 / 3.84 above its minimum (in units of the reduced chi2 where the file gives no
  sigma); asymmetric where the model is nonlinear, and open (``null`` bound) where chi2 never rises that far
  within the input's range.

Performance (all rates of a particle in one vmapped batch, every solver call jit-compiled once per problem shape):

* only the observation window is simulated: one charge step without cut-off to 1.05 x the last measurement;
* the series are *time-rescaled* so that every rate runs on the same static horizon: the solution at rate I with
  diffusivities D (and model-B film resistance r) at time t equals the solution at rate I' with D I' / I (and
  r I / I') at time t I / I' (divide the diffusion equation and the flux boundary condition by I / I'). fluxsim
  simulates every series at I' = 1.05 max(I_k t_last,k) / H with H = ``CANONICAL_HORIZON_S``, so the time steps cover
  each series' own window, the protocol is the same static object for every dataset, and the rates, windows and
  all fitted inputs are traced arrays: a second dataset of the same shape reuses the compiled code;
* the default optimiser, Levenberg-Marquardt (:func:`_levenberg_marquardt`), needs only the weighted residuals and
  their Jacobian, taken in *forward* mode (``jax.jacfwd`` through the adaptive RKL2 loops: one tangent per fitted
  input: 4.3x a forward run for two inputs, measured at spacing R_eq / 16, 4 rates, on this 2-core CPU; reverse
  mode would need one pass per residual) by one
  ahead-of-time compiled program (``_evaluate``) that also serves the covariance and the re-optimised profiles;
  where only chi2 is needed (the multi-start candidates, the grid profile, the profile-likelihood intervals of one
  fitted input) a forward-only program (``_chi2``) runs instead, 3-4x cheaper than the tangent-carrying one at the
  default numerics; with one fitted input the intervals start from the grid profile's points (it is already that
  input's profile likelihood). Evaluations are cached by parameter vector;
* with ``method="lbfgs"``/``"adam"`` the whole optax step (value, forward-mode gradient behind a
  ``jax.custom_vjp``, L-BFGS update with its zoom line search) is a second compiled program (about 30 s to compile
  on 2 CPU cores); :data:`COMPILE_LOG` records every compilation;
* default numerics (:data:`~fluxsim.fit.model.DEFAULT_NUMERICS`) chosen so that the discretisation bias of eta is
  below half a standard error against a refit at twice the resolution (half the spacing, rtol / 3) on 4 rates x 20
  points; ``benchmarks/bench_fit.py`` measures the bias and the fit time.

Example (notebook)::

    from fluxsim import fit
    from fluxsim.io import observations
    obs = observations.read_csv("particle_A.csv")
    result = fit.fit(obs, ["eta", "arc_center_rad"], blocked_fraction=0.25)   # outline=... for a non-disk
    print(result)                       # table of estimates, standard errors, correlations, warnings
    result.save("fit_A")                # fit.json, fit.zarr, fit.png
"""


from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from fluxsim.api import make_params, replace
from fluxsim.core.outline import Disk
from fluxsim.core.solve import Numerics
from fluxsim.fit.model import (
    DEFAULT_NUMERICS,
    FITTABLE,
    TRANSFORMS,
    Curves,
    Data,
    Extra,
    Problem,
    _as_float_tree,
    _at_data,
    _input_value,
    _to_physical,
    _transform,
    fit_mesh,
    fit_numerics,
    fixed_inputs,
    make_data,
    physical_jacobian,
    to_unconstrained,
)
from fluxsim.fit.optimisers import (
    COMPILE_LOG,
    METHODS,
    OptimiserSpec,
    _chi2,
    _compiled,
    _evaluate,
    _levenberg_marquardt,
    _step,
    halton,
)
from fluxsim.fit.report import INTERVAL_LEVELS, FitResult, _fmt
from fluxsim.io import observations as obs_mod
from fluxsim.model import checks
from fluxsim.model.params import Params

#: A parameter is reported as not identifiable above these standard errors (absolute for bounded/angle inputs,
#: relative for log-parameterised ones) or when the Gauss-Newton Hessian is this ill-conditioned.
UNIDENTIFIABLE_SE = {"eta": 0.25, "blocked_fraction": 0.25, "arc_center_rad": 0.5}
UNIDENTIFIABLE_RELATIVE_SE = 0.5
UNIDENTIFIABLE_CONDITION = 1e10
#: Standard-error multiples the profile walks out to before giving up on a bound.
_PROFILE_STEPS_SE = (1.0, 2.0, 3.0, 4.5, 7.0, 12.0)


class IdentifiabilityWarning(UserWarning):
    """The data cannot determine a fitted parameter (near-singular Gauss-Newton Hessian or huge standard error)."""


def fit(
    observations: obs_mod.Observations | str | Path,
    params: Sequence[str] | str = ("eta",),
    *,
    model: str | None = None,
    base: Params | None = None,
    start: Mapping[str, float] | None = None,
    numerics: Numerics | None = None,
    outline=None,
    buckets=None,
    metric: str = "hard",
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
    intervals: bool = True,
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
        numerics: :class:`fluxsim.core.solve.Numerics` of the model (default :data:`DEFAULT_NUMERICS`);
            ``integer_exponent`` is set where the power law's exponent is a fixed integer.
        outline: the particle's outline (a :mod:`fluxsim.core.outline` shape; default the disk); the radius is the
            equivalent radius (``radius_m=``, else the observations' ``radius_m``).
        buckets: mesh array sizes to pad to (:class:`fluxsim.core.mesh.MeshSizes`; default the mesh's own):
            fits of several particles padded to :func:`fluxsim.fit.model.common_buckets` compile once.
        metric: the model's core metric, ``"hard"`` (default: theta > theta_core by exact clipping, what a
            thresholded image measures) or ``"smooth"`` (:data:`fluxsim.fit.model.METRICS`).
        method: ``"lm"`` (default: Levenberg-Marquardt on the weighted residuals, reusing the compiled
            residual-and-Jacobian program; under a minute per fit of 4 rates x 20 points once compiled),
            ``"lbfgs"`` (optax L-BFGS with zoom line search; compiles a second, larger program) or ``"adam"``
            (optax).
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
        profile_iterations: optimiser steps per profile point with ``"reoptimise"`` and per point of the
            profile-likelihood intervals.
        intervals: compute the profile-likelihood intervals of every fitted input (:attr:`FitResult.intervals`).
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
    names = _fitted_names(observations, params, method)
    numerics = numerics or DEFAULT_NUMERICS
    if not isinstance(numerics, Numerics):
        raise ValueError(f"numerics must be a fluxsim.core.solve.Numerics, got {type(numerics).__name__}")

    def log(msg):
        if verbose:
            print(f"[fit {time.perf_counter() - t_begin:6.1f} s] {msg}", flush=True)

    setup = _problem(observations, names, model, base, start, numerics, (outline, buckets), metric, inputs)
    chi2_at = _Evaluations(setup)
    scored, candidate_report = _candidates(setup, chi2_at, n_candidates, seed, log)
    runner = _Runner(setup, chi2_at, method, tolerance, learning_rate)
    u_best, starts_report = _optimise(setup, runner, scored, n_starts, max_iterations, log)
    stats = _uncertainty(setup, chi2_at, u_best)
    for w in setup.warnings:
        warnings.warn(w, IdentifiabilityWarning, stacklevel=2)
    profile_report = _profile(setup, chi2_at, runner, u_best, stats, profile, profile_points, profile_iterations, log)
    interval_report = _intervals(setup, chi2_at, runner, u_best, stats, profile_iterations if intervals else 0, log,
                                 profile_report)

    compile_s = sum(s for _, _, s in COMPILE_LOG) - compile_before
    total = time.perf_counter() - t_begin
    fitted_params = replace(setup.base, **stats.values)
    result = FitResult(
        names=names, model=setup.model, method=method, numerics=setup.problem.numerics, values=stats.values,
        standard_errors=stats.standard_errors, covariance=stats.covariance, correlation=stats.correlation,
        chi2=stats.chi2, dof=setup.dof, n_residuals=setup.n_res, absolute_sigma=setup.absolute,
        hessian_condition=stats.condition, starts=starts_report, candidates=candidate_report, profile=profile_report,
        warnings=setup.warnings, timings={"compile_s": compile_s, "run_s": total - compile_s, "total_s": total,
                                        **{f"{k}_evaluations": n for k, n in chi2_at.counts.items()}},
        params=fitted_params, inputs=fixed_inputs(fitted_params), observations=observations,
        curves=Curves(*(np.asarray(c) for c in stats.curves)),
        fitted=Curves(*(np.asarray(c) for c in _at_data(stats.curves, setup.data))),
        outline=setup.outline, intervals=interval_report, metric=metric,
    )
    log(f"done: {_values_text(u_best, setup.scales, setup.problem)}")
    return result


def _fitted_names(observations: obs_mod.Observations, params: Sequence[str] | str, method: str) -> tuple[str, ...]:
    """The checked names of the fitted inputs (one particle, known inputs, each once, a known method)."""
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
    return names


@dataclasses.dataclass
class _Setup:
    """A fit problem, ready to evaluate: fitted names, base parameters, start values, scales and the traced data."""

    names: tuple[str, ...]
    model: str
    base: Params
    outline: object  # the particle's outline (fluxsim.core.outline)
    start: dict[str, float]
    problem: Problem
    scales: np.ndarray
    data: Data
    absolute: bool  # the file gives every sigma (no rescaling of the covariance by the reduced chi2)
    extra: Extra
    n_res: int
    dof: int
    warnings: list[str]  # found so far; every step appends

    @property
    def k(self) -> int:
        return len(self.names)


def _problem(observations, names, model, base, start, numerics, geometry, metric, inputs) -> _Setup:
    """Problem set-up: the base parameters, start values, transforms, scales and the data of ``observations``."""
    particle = observations.particles[0]
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
    else:
        if inputs:
            raise ValueError(f"give fixed inputs either through base= or as keywords, not both ({sorted(inputs)})")
        base_model = base.kinetics.model
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
    _check_arc_resolution(base, names, numerics)
    transforms = tuple(_transform(n, model) for n in names)
    problem = Problem(names, transforms, fit_numerics(numerics, base), metric=metric)
    outline, buckets = geometry
    outline = Disk() if outline is None else outline
    mesh = fit_mesh(outline, problem.numerics, buckets)
    scales = np.array([start[n] if TRANSFORMS[k].relative else 1.0 for n, k in zip(names, transforms)], float)
    if not np.all(scales > 0):
        raise ValueError(f"log-parameterised inputs need positive start values, got {start}")
    data, absolute = make_data(observations)
    base = _as_float_tree(base)
    extra = Extra(base, mesh, _as_float_tree(data), scales, np.ones(len(names)))
    k = len(names)
    n_res = int(np.count_nonzero(data.w_mag) + 2 * np.count_nonzero(data.w_vec) + np.count_nonzero(data.w_f))
    dof = n_res - k
    if dof <= 0:
        raise ValueError(f"{n_res} residuals cannot determine {k} parameters")
    found_warnings: list[str] = []
    if "arc_center_rad" in names and not observations.has_direction:
        found_warnings.append("arc_center_rad is fitted but the data give no offset direction: |d| does not depend "
                              "on the arc angle (rotation invariance); add a direction column")
    return _Setup(names, model, base, outline, start, problem, scales, data, absolute, extra, n_res, dof,
                  found_warnings)


def _check_arc_resolution(base: Params, names, numerics: Numerics) -> None:
    """Refuse a mesh too coarse for a fixed blocked arc: it must span at least ``checks.MIN_ARC_NODES`` rim node
    spacings (about ``2 pi spacing`` of the perimeter; a fitted fraction is free to move)."""
    if "blocked_fraction" in names:
        return
    fraction = _input_value(base, "blocked_fraction")
    nodes = fraction * 2 * math.pi / numerics.spacing
    if 0 < fraction and nodes < checks.MIN_ARC_NODES:
        raise ValueError(f"numerics.spacing = {numerics.spacing:.4g} is too coarse for blocked_fraction = "
                         f"{fraction:g}: the arc spans {nodes:.3g} rim node spacings, at least "
                         f"{checks.MIN_ARC_NODES:g} are needed (allowed: spacing <= "
                         f"{fraction * 2 * math.pi / checks.MIN_ARC_NODES:.4g})")


class _Evaluations:
    """``u -> (chi2, r, J, curves)`` by the one compiled residual-and-Jacobian program, and ``chi2(u)`` alone by a
    forward-only program (compiled on first use; a third to a quarter of the cost where no Jacobian is needed), both
    cached by ``u``: the starts, the optimum and the profile revisit points. ``counts`` tallies the runs of each."""

    def __init__(self, setup: _Setup):
        self.extra, self.problem = setup.extra, setup.problem
        self.evaluate = _compiled(_evaluate, (self.u0(setup), setup.extra), problem=setup.problem)
        self.evaluated: dict[bytes, tuple] = {}
        self.misfits: dict[bytes, float] = {}
        self.forward = None
        self.counts = {"jacobian": 0, "forward": 0}

    @staticmethod
    def u0(setup: _Setup) -> np.ndarray:
        return to_unconstrained(setup.start, setup.scales, setup.problem)

    def __call__(self, u):
        u = np.asarray(u, float)
        key = u.tobytes()
        if key not in self.evaluated:
            r, jac, curves = self.evaluate(u, self.extra)
            r = np.asarray(r)
            self.evaluated[key] = (float(r @ r), r, np.asarray(jac), curves)
            self.counts["jacobian"] += 1
        return self.evaluated[key]

    def chi2(self, u) -> float:
        """chi2 at ``u`` (from the residual-and-Jacobian cache where ``u`` was evaluated there)."""
        u = np.asarray(u, float)
        key = u.tobytes()
        if key in self.evaluated:
            return self.evaluated[key][0]
        if key not in self.misfits:
            if self.forward is None:
                self.forward = _compiled(_chi2, (u, self.extra), problem=self.problem)
            self.misfits[key] = float(self.forward(u, self.extra))
            self.counts["forward"] += 1
        return self.misfits[key]


def _candidates(setup: _Setup, chi2_at: _Evaluations, n_candidates: int, seed: int, log):
    """Multi-start candidates: the start plus a seeded Halton sample of the ranges, by increasing chi2.

    Returns ``(scored, report)``: ``[(chi2, u), ...]`` best first, and the candidates as physical values."""
    names, scales, problem = setup.names, setup.scales, setup.problem
    sample = halton(max(n_candidates - 1, 0), setup.k, seed)
    candidates = [_Evaluations.u0(setup)]
    for row in sample:
        values = {}
        for j, n in enumerate(names):
            lo, hi = FITTABLE[n].fit.sample
            if n == "eta" and setup.model == "B":
                lo, hi = 0.05, 1.0
            if FITTABLE[n].fit.relative_sample:
                values[n] = setup.start[n] * math.exp(math.log(lo) + row[j] * (math.log(hi) - math.log(lo)))
            elif TRANSFORMS[problem.transforms[j]].relative:  # log-uniform
                values[n] = math.exp(math.log(lo) + row[j] * (math.log(hi) - math.log(lo)))
            else:
                values[n] = lo + row[j] * (hi - lo)
        candidates.append(to_unconstrained(values, scales, problem))
    scored = []
    for u in candidates:
        c2 = chi2_at.chi2(u)
        scored.append((c2 if math.isfinite(c2) else math.inf, u))
        log(f"candidate {_values_text(u, scales, problem)}: chi2 = {c2:.5g}")
    order = sorted(range(len(scored)), key=lambda i: scored[i][0])
    report = [{"start": _physical_dict(scored[i][1], scales, problem), "chi2": scored[i][0]} for i in order]
    return [scored[i] for i in order], report


class _Runner:
    """One optimiser run at a time (``method``); ``noise_scale`` (chi2 / dof in units of the weights) scales the
    stopping tolerance and is refined after the first run."""

    def __init__(self, setup: _Setup, chi2_at: _Evaluations, method: str, tolerance: float, learning_rate: float):
        self.setup, self.chi2_at = setup, chi2_at
        self.method, self.tolerance, self.learning_rate = method, tolerance, learning_rate
        self.noise_scale = 1.0

    def __call__(self, u_init, mask, iterations):
        """One optimiser run: (best u, its chi2, iterations, converged, history of chi2)."""
        method, tolerance, chi2_at = self.method, self.tolerance, self.chi2_at
        if method == "lm":
            return _levenberg_marquardt(chi2_at, u_init, mask, iterations, 2 * tolerance * self.noise_scale)
        spec = OptimiserSpec(method=method, learning_rate=self.learning_rate)
        optimiser = spec.build()
        ex = self.setup.extra._replace(mask=np.asarray(mask, float))
        u = np.asarray(u_init, float)
        state = optimiser.init(u)
        step = _compiled(_step, (u, state, ex), problem=self.setup.problem, spec=spec)
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
                small = small + 1 if abs(drop) <= tolerance * self.noise_scale else 0
                converged = small >= 2 or float(np.max(np.abs(np.asarray(grad)))) == 0.0
        final = float(np.asarray(optax.tree.get(state, "value"))) if method == "lbfgs" else math.nan
        if method == "lbfgs" and math.isfinite(final) and final < best[0]:
            best = (final, u)
        elif method != "lbfgs":
            c2, *_ = chi2_at(u)
            if 0.5 * c2 < best[0]:
                best = (0.5 * c2, u)
        return best[1], 2 * best[0], n_iterations, converged, history


def _optimise(setup: _Setup, run: _Runner, scored, n_starts, max_iterations, log):
    """Optimisation: one run from each of the ``n_starts`` best candidates; ``(best u, report of every run)``."""
    scales, problem, k = setup.scales, setup.problem, setup.k
    max_iterations = max_iterations or {"lm": 20, "lbfgs": 40, "adam": 150}[run.method]
    runs = []
    n_starts = (1 if k == 1 else 2) if n_starts is None else max(int(n_starts), 1)
    for rank, (_, u_start) in enumerate(scored[:n_starts]):
        u_best, c2, iterations, converged, history = run(u_start, np.ones(k), max_iterations)
        if rank == 0 and math.isfinite(c2):
            run.noise_scale = max(c2 / setup.dof, 1e-12)
        log(f"start {rank}: {_values_text(u_start, scales, problem)} -> {_values_text(u_best, scales, problem)}, "
            f"chi2 = {c2:.6g} after {iterations} steps" + ("" if converged else " (not converged)"))
        if not converged:
            setup.warnings.append(f"start {rank} did not converge in {iterations} steps")
        runs.append((c2, u_best, {"start": _physical_dict(u_start, scales, problem),
                                  "end": _physical_dict(u_best, scales, problem), "chi2": c2,
                                  "iterations": iterations, "converged": converged,
                                  "history_chi2": list(history)}))
    _, u_best, _ = min(runs, key=lambda r: r[0])
    if sum(1 for r in runs if r[2]["converged"]) == 0:
        setup.warnings.append("no optimiser run converged; raise max_iterations")
    return u_best, [r[2] for r in runs]


class _Statistics(NamedTuple):
    """The optimum and its Gauss-Newton uncertainty."""

    chi2: float
    curves: Curves
    values: dict[str, float]
    standard_errors: dict[str, float]
    covariance: np.ndarray
    correlation: np.ndarray
    condition: float


def _uncertainty(setup: _Setup, chi2_at: _Evaluations, u_best) -> _Statistics:
    """Uncertainty: Gauss-Newton covariance and correlations at the optimum; identifiability warnings."""
    names, k = setup.names, setup.k
    chi2, r, jac_u, curves = chi2_at(u_best)
    values = _physical_dict(u_best, setup.scales, setup.problem)
    jac = jac_u / physical_jacobian(values, setup.problem)[None, :]
    hessian = jac.T @ jac
    scale = 1.0 if setup.absolute else chi2 / setup.dof
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
            setup.warnings.append(f"{n} is not identifiable from these data: standard error {_fmt(float(se[i]))} "
                                  f"{FITTABLE[n].unit} at {_fmt(values[n])}")
    if condition > UNIDENTIFIABLE_CONDITION:
        v = np.linalg.eigh(normalised)[1][:, 0] if np.all(diag > 0) else np.eye(k)[int(np.argmin(diag))]
        combo = " + ".join(f"{c:+.2f} {n}" for c, n in zip(v, names) if abs(c) > 0.1)
        setup.warnings.append(f"the Gauss-Newton Hessian is near-singular (condition {condition:.3g}): the data do "
                              f"not constrain the combination {combo} (in standardised units)")
    return _Statistics(chi2, curves, values, standard_errors, covariance, correlation, condition)


def _profile(setup: _Setup, chi2_at: _Evaluations, run: _Runner, u_best, stats: _Statistics, profile, points,
             iterations, log) -> dict | None:
    """Profile: chi2 along eta (others at the optimum, or re-fitted at every eta, warm-started); None without."""
    names, scales, problem, k = setup.names, setup.scales, setup.problem, setup.k
    if profile is None or "eta" not in names:
        return None
    if profile not in ("grid", "reoptimise"):
        raise ValueError(f"profile must be 'grid', 'reoptimise' or None, got {profile!r}")
    values = stats.values
    ie = names.index("eta")
    eta_hat = values["eta"]
    se_eta = stats.standard_errors["eta"]
    half = min(max(4 * se_eta, 0.01), 0.5) if math.isfinite(se_eta) else 0.25  # +- 4 SE: the 1-sigma band and more
    lo = max(eta_hat - half, 0.005)
    hi = min(eta_hat + half, 0.995) if setup.model == "A" else eta_hat + half
    grid = np.linspace(lo, hi, points)
    mode = profile if k > 1 else "grid"
    chi2s, others = np.empty(points), {n: np.empty(points) for n in names if n != "eta"}
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
                u_walk, c2, *_ = run(u_walk, mask, iterations)
            else:
                c2 = chi2_at.chi2(u_walk)
            chi2s[g] = c2
            for n, arr in others.items():
                arr[g] = _physical_dict(u_walk, scales, problem)[n]
    log(f"profile ({mode}): chi2 - min = {np.round(chi2s - stats.chi2, 2)}")
    return {"eta": grid, "chi2": chi2s, "mode": mode, "others": others}


def _intervals(setup: _Setup, chi2_at: _Evaluations, run: _Runner, u_best, stats: _Statistics, iterations: int,
               log, profile: dict | None = None) -> dict:
    """Gauss-Newton and profile-likelihood intervals of every fitted input (``iterations = 0``: Gauss-Newton only).

    The profile of input i is ``min over the others of chi2`` at fixed input i (warm-started Levenberg-Marquardt of
    ``iterations`` steps; with one fitted input it is chi2 itself). It is walked outwards from the optimum at the
    multiples ``_PROFILE_STEPS_SE`` of the standard error until it passes every level of :data:`INTERVAL_LEVELS`;
    each bound is then interpolated linearly in ``sqrt(delta chi2)`` (exact for a quadratic profile) and refined
    by one more profile point. With one fitted input the points of the chi2 ``profile`` along it (already the
    profile likelihood) stand in for the walk as far as they reach."""
    scale = 1.0 if setup.absolute else stats.chi2 / setup.dof
    out = {}
    for i, name in enumerate(setup.names):
        v_hat, se = stats.values[name], stats.standard_errors[name]
        entry = {}
        for level, z in INTERVAL_LEVELS.items():
            entry[f"gauss_newton_{level}"] = [v_hat - z * se, v_hat + z * se] if math.isfinite(se) else [None, None]
        if iterations > 0:
            known = list(zip(profile["eta"], profile["chi2"])) if profile and setup.names == ("eta",) else []
            bounds = _profile_bounds(setup, chi2_at, run, u_best, stats, i, scale, iterations, known)
            for level, pair in bounds.items():
                entry[f"profile_{level}"] = pair
            log(f"profile-likelihood intervals of {name}: " + ", ".join(f"{k} {v}" for k, v in bounds.items()))
        out[name] = entry
    return out


def _profile_bounds(setup: _Setup, chi2_at: _Evaluations, run: _Runner, u_best, stats: _Statistics, i: int,
                    scale: float, iterations: int, known=()) -> dict[str, list]:
    """Both profile-likelihood bounds of fitted input ``i`` at every level (None: open on that side); ``known``:
    ``(value, chi2)`` points of its profile already evaluated, walked before the multiples beyond them."""
    name, problem, scales = setup.names[i], setup.problem, setup.scales
    v_hat, se = stats.values[name], stats.standard_errors[name]
    kind = problem.transforms[i]
    lo_limit, hi_limit = {"logit": (1e-6, 1 - 1e-6), "log": (0.0, math.inf)}.get(kind, (-math.inf, math.inf))
    if not math.isfinite(se) or se <= 0:
        return {level: [None, None] for level in INTERVAL_LEVELS}
    mask = np.ones(setup.k)
    mask[i] = 0.0
    targets = sorted(z * z for z in INTERVAL_LEVELS.values())

    def profile_at(v, u_warm):
        u = np.array(u_warm)
        u[i] = to_unconstrained({**stats.values, name: v}, scales, problem)[i]
        if setup.k > 1:
            u, c2, *_ = run(u, mask, iterations)
        else:
            c2 = chi2_at.chi2(u)
        return max(c2 - stats.chi2, 0.0) / scale, u

    result = {level: [None, None] for level in INTERVAL_LEVELS}
    for side, slot in ((-1.0, 0), (1.0, 1)):
        walked = [(v_hat, 0.0, np.array(u_best))]  # (value, delta chi2, optimum of the others)
        for v, c2 in sorted((p for p in known if side * (p[0] - v_hat) > 1e-9 * se), key=lambda p: side * p[0]):
            walked.append((float(v), max(float(c2) - stats.chi2, 0.0) / scale, np.array(u_best)))
        reach = abs(walked[-1][0] - v_hat) / se
        for multiple in (m for m in _PROFILE_STEPS_SE if m > reach * (1 + 1e-9)):
            if walked[-1][1] >= targets[-1]:
                break
            v = v_hat + side * multiple * se
            at_limit = not lo_limit < v < hi_limit
            if at_limit:
                v = lo_limit if side < 0 else hi_limit
                if not math.isfinite(v) or (kind == "log" and v <= 0):
                    v = walked[-1][0] * (0.5 if side < 0 else 2.0)  # a log input: halve / double instead
                    at_limit = False
            delta, u = profile_at(v, walked[-1][2])
            walked.append((v, delta, u))
            if delta >= targets[-1] or at_limit:
                break
        for level, z in INTERVAL_LEVELS.items():
            target = z * z
            bracket = next((k for k in range(1, len(walked)) if walked[k][1] >= target), None)
            if bracket is None:
                continue  # open on this side
            bound = _cross(walked[bracket - 1], walked[bracket], target)
            delta, u = profile_at(bound, walked[bracket - 1][2])  # refine once inside the bracket
            pair = (walked[bracket - 1], (bound, delta, u)) if delta < target else ((bound, delta, u), walked[bracket])
            result[level][slot] = float(_cross(*pair, target))
    return result


def _cross(a, b, target: float) -> float:
    """Where ``sqrt(delta)`` crosses ``sqrt(target)`` on the segment between profile points ``a``, ``b``."""
    (va, da, _), (vb, db, _) = a, b
    sa, sb, st = math.sqrt(da), math.sqrt(db), math.sqrt(target)
    if sb == sa:
        return vb
    return va + (vb - va) * (st - sa) / (sb - sa)


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

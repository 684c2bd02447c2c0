"""The optimisers of a fit and the owner of its compiled executables: Levenberg-Marquardt on the residuals,
optax L-BFGS and adam on chi2, the seeded Halton sample of multi-start candidates (:mod:`fluxsim.fit`)."""

from __future__ import annotations

import collections
import dataclasses
import math

import jax
import numpy as np
import optax

from fluxsim.core.cache import CompileCache
from fluxsim.fit.model import Extra, Problem, _loss_function, residuals

#: Optimisers of :func:`fit`: Levenberg-Marquardt on the residuals (default), optax L-BFGS and adam on chi2.
METHODS = ("lm", "lbfgs", "adam")

#: The owner of the fit's compiled executables (by function, static settings and argument shapes).
EXECUTABLES = CompileCache("fit executables")
#: Every compilation the fit performed: (function, problem key, seconds). Tests use it to check for recompiles.
COMPILE_LOG = EXECUTABLES.log


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


def _chi2(u, extra: Extra, *, problem: Problem):
    """chi2 alone (no Jacobian): the points where only the misfit is needed (candidates, grid profile, the
    profile-likelihood intervals of one fitted input) cost a forward run instead of the tangent-carrying one."""
    r, _ = residuals(u, extra, problem)
    return r @ r


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


def compile_counts() -> collections.Counter:
    """How many times each compiled fit function was compiled in this process."""
    return collections.Counter(name for name, _, _ in COMPILE_LOG)

"""One RKL2 step (Meyer, Balsara & Aslam, J. Comput. Phys. 257, 2014, eqs. 16-17) and its discrete adjoint.

An ``s``-stage step of size ``h`` from ``Y_0 = y`` (``f0 = F(y)``)::

    Y_1 = Y_0 + mu~_1 h f0
    Y_j = mu_j Y_j-1 + nu_j Y_j-2 + (1 - mu_j - nu_j) Y_0 + mu~_j h F(Y_j-1) + gamma~_j h f0,   j = 2 .. s

is stable for ``h rho <= (s**2 + s - 2) / 2`` (``rho`` the spectral radius of ``dF/dy``, real negative spectrum).
The stages run in a ``while_loop`` to ``s`` (under ``vmap``: to the batch's largest ``s``, the others masked).

**Reverse mode** (:func:`rkl2_step` with ``adjoint=True``) is a ``jax.custom_vjp``: the forward pass is the same
while loop (the same numbers as a forward run) and keeps the step's inputs and its last two stages ``Y_s, Y_s-1``
(named :data:`STAGES` for a checkpoint policy); the backward pass is the exact adjoint of the recurrence above from
``j = s`` down to 1, one transposed Jacobian-vector product ``F'(Y_j-1)^T w`` per stage, with the stages recovered
on the way by running the recurrence backwards (``Y_j-2`` from ``Y_j, Y_j-1`` and ``F(Y_j-1)``): no stage is
stored and none is recomputed forwards. Letting JAX differentiate the stage loop instead needs a fixed trip count
(``max_stages`` masked stages) and stores every stage's residuals: a value-and-gradient took 17.1 / 9.3 forward
runs that way (integer / traced-exponent potential), 5.3 / 3.8 this way (``benchmarks/bench_core_v2_gradient.py``).

For a **semilinear** right-hand side, :class:`SemiLinear` ``F(y) = scale (L u(y) - r(y))`` with ``L`` linear and
self-adjoint (the P1 stiffness: :mod:`fluxsim.core.fv`) and ``(u, r)`` local in ``y``,
``F'(y)^T w = u'(y)^T L(scale w) - r'(y)^T (scale w)``: one application of ``L`` and the local part's VJP, with no
transpose of ``L``'s gathers (a scatter-add). Derivatives flow to whatever ``local`` closes over (the model's
parameters); ``L`` and ``scale`` (the mesh) are constants. Any other callable ``F`` gets ``jax.vjp(F)`` per stage
(its forward evaluated again: about twice the cost).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name


@dataclasses.dataclass(frozen=True)
class SemiLinear:
    """``F(y) = scale * (operator(u) - r)`` with ``(u, r) = local(y)``; ``operator`` linear and self-adjoint.

    Attributes:
        local: ``y -> (u, r)``, both shaped like ``y`` (pointwise or cheap: the potential and the sink).
        operator: ``u -> L u``, linear and self-adjoint (``<v, L u> = <L v, u>``; not checked here).
        scale: array shaped like ``y`` (the inverse lumped masses).
    """

    local: Callable
    operator: Callable
    scale: jax.Array

    def __call__(self, y):
        u, r = self.local(y)
        return self.scale * (self.operator(u) - r)


def stages_for(h_rho, max_stages: int):
    """Smallest stage count ``s >= 2`` with ``h rho <= (s**2 + s - 2) / 2``, clipped to ``max_stages``."""
    h_rho = jax.lax.stop_gradient(h_rho)
    s = jnp.ceil((-1.0 + jnp.sqrt(9.0 + 8.0 * h_rho)) / 2.0 - 1e-12)
    return jnp.clip(s, 2, max_stages).astype(jnp.int32)


def max_stable_step(rho, stages):
    """Largest step an ``s``-stage RKL2 step takes stably: ``(s**2 + s - 2) / (2 rho)``."""
    return (stages**2 + stages - 2) / (2.0 * rho)


def _b(j):
    """RKL2's ``b_j = (j**2 + j - 2) / (2 j (j + 1))`` for ``j >= 2``, ``b_0 = b_1 = 1/3`` (float ``j``)."""
    safe = jnp.maximum(j, 1.0)
    return jnp.where(j < 2, 1.0 / 3.0, (safe * safe + safe - 2) / (2 * safe * (safe + 1)))


def _first_weight(s, dtype):
    """``w_1 = 4 / (s**2 + s - 2)``; ``mu~_1 = b_1 w_1 = w_1 / 3`` (``s >= 2``; finite for ``s < 2``)."""
    sf = jnp.maximum(s, 2).astype(dtype)
    return 4.0 / (sf * sf + sf - 2.0)


def _coefficients(j, w1):
    """``(mu_j, nu_j, mu~_j, gamma~_j)`` of stage ``j >= 2``."""
    jf = jnp.asarray(j, w1.dtype)
    b_j, b_1, b_2 = _b(jf), _b(jf - 1), _b(jf - 2)
    mu = (2 * jf - 1) / jf * b_j / b_1
    nu = -(jf - 1) / jf * b_j / b_2
    mu_t = mu * w1
    return mu, nu, mu_t, -(1.0 - b_1) * mu_t


def _stage(rhs, j, w1, y, f0, h, y_prev, y_prev2):
    mu, nu, mu_t, gamma_t = _coefficients(j, w1)
    return mu * y_prev + nu * y_prev2 + (1 - mu - nu) * y + mu_t * h * rhs(y_prev) + gamma_t * h * f0


def _forward(rhs, y, f0, h, s):
    """``(Y_s, Y_s-1)`` by the while loop, two stages per iteration (the second one computed and dropped at the end
    of an even ``s``)."""
    w1 = _first_weight(s, y.dtype)
    y1 = y + (w1 / 3.0) * h * f0

    def body(c):
        j, a, b = c  # Y_j-1, Y_j-2
        c = _stage(rhs, j, w1, y, f0, h, a, b)
        d = _stage(rhs, j + 1, w1, y, f0, h, c, a)
        last = j + 1 > s
        return j + 2, jnp.where(last, c, d), jnp.where(last, a, c)

    _, y_s, y_prev = jax.lax.while_loop(lambda c: c[0] <= s, body, (jnp.asarray(2, jnp.int32), y1, y))
    return y_s, y_prev


def rkl2_step(rhs, y, f0, h, s, adjoint: bool = False):
    """One RKL2 step of size ``h`` with ``s >= 2`` stages from ``y`` (``f0 = F(y)``): ``Y_s``.

    ``s <= 1`` takes no step and no stage: ``y`` itself (what a finished simulation of a batch or a scan does).

    ``adjoint=False``: the while loop, differentiable in forward mode (``jax.jvp``) only. ``adjoint=True``: the same
    numbers with the hand-written reverse mode of the module docstring (``jax.vjp``/``jax.grad``; not ``jax.jvp``).
    ``rhs`` is a callable ``F`` or a :class:`SemiLinear`; what it closes over may be traced and is differentiated.
    """
    h = jnp.where(s >= 2, h, 0.0)  # s < 2: no step (Y_s = y)
    if not adjoint:
        return _forward(rhs, y, f0, h, s)[0]
    if isinstance(rhs, SemiLinear):
        local, operator, local_consts, fixed = _converted(rhs, y)
        return _semilinear_step(local, operator, y, f0, h, s, local_consts, fixed)
    fn, consts, others = hoisted(rhs, y)
    return _generic_step(fn, y, f0, h, s, consts, others)


def evaluate(rhs, y, adjoint: bool = False):
    """``F(y)``. With ``adjoint=True`` and a :class:`SemiLinear` ``rhs``: a ``jax.custom_vjp`` whose reverse mode
    is ``u'(y)^T L(scale w) - r'(y)^T (scale w)`` (no transposed gathers; not ``jax.jvp``)."""
    if not (adjoint and isinstance(rhs, SemiLinear)):
        return rhs(y)
    local, operator, local_consts, fixed = _converted(rhs, y)
    return _semilinear_evaluate(local, operator, y, local_consts, fixed)


def hoisted(fn, *example):
    """``fn`` as a closed function of explicit arrays, what a ``custom_vjp`` needs: ``(g, floats, others)`` with
    ``g(*args, floats, others) == fn(*args)``, ``floats`` the inexact arrays ``fn`` closes over (differentiated) and
    ``others`` the rest (integer and boolean: the mesh's neighbour indices and masks). ``jax.closure_convert`` keeps
    integer arrays closed over, which leaks them as constants when they are tracers (a mesh passed to ``jit``)."""
    closed, shape = jax.make_jaxpr(fn, return_shape=True)(*example)
    inexact = tuple(bool(jnp.issubdtype(jnp.result_type(c), jnp.inexact)) for c in closed.consts)
    floats = tuple(c for c, f in zip(closed.consts, inexact) if f)
    others = tuple(c for c, f in zip(closed.consts, inexact) if not f)
    jaxpr, tree = closed.jaxpr, jax.tree.structure(shape)

    def g(*args):
        *args, floats, others = args
        fs, os = iter(floats), iter(others)
        consts = [next(fs) if f else next(os) for f in inexact]
        return jax.tree.unflatten(tree, jax.core.eval_jaxpr(jaxpr, consts, *jax.tree.leaves(args)))

    return g, floats, others


def _converted(rhs: SemiLinear, y):
    """``(local, operator, local_consts, fixed)``: the parts as closed functions of explicit arguments (what a
    ``custom_vjp`` needs), ``local(y, local_consts, local_others)`` and ``operator(u, operator_floats,
    operator_others)``; ``fixed = (local_others, operator_floats, operator_others, scale)`` the mesh's arrays,
    constants (no derivative)."""
    local, local_consts, local_others = hoisted(rhs.local, y)
    operator, operator_floats, operator_others = hoisted(rhs.operator, y)
    return local, operator, local_consts, jax.lax.stop_gradient((local_others, operator_floats, operator_others,
                                                                 rhs.scale))


# ----------------------------------------------------------------------------------------------- the adjoint
def _adjoint(pull_back, y, f0, h, s, y_s, y_prev, bar_s, zero_consts):
    """Cotangents ``(y, f0, h, consts)`` of ``Y_s`` given its cotangent ``bar_s``.

    ``pull_back(Y, w) -> (F(Y), F'(Y)^T w, d<w, F(Y)>/d consts)``. The loop runs ``j = s .. 2`` carrying
    ``Y_j, Y_j-1``, the complete cotangent of ``Y_j`` (``a``) and the part of ``Y_j-1``'s that stage ``j + 1`` gave
    (``b``). It needs no stored stages: the recurrence runs backwards, ``Y_j-2`` from ``Y_j``, ``Y_j-1`` and
    ``F(Y_j-1)`` (which the cotangent needs anyway). In the stable range the recurrence's characteristic roots are
    a complex pair of modulus ``|nu_j|**(1/2) <= 1`` (Legendre's recurrence), so running it backwards amplifies rounding
    at most polynomially in ``s`` (measured: ``tests/core/test_rkl2.py``).
    """
    w1 = _first_weight(s, y.dtype)
    zero = jnp.zeros_like(y)

    def body(c):
        j, y_j, y_j1, a, b, bar_y, bar_f0, bar_h, bar_c = c
        mu, nu, mu_t, gamma_t = _coefficients(j, w1)
        f_j1, jac_t_w, bar_c_j = pull_back(y_j1, mu_t * h * a)
        y_j2 = (y_j - mu * y_j1 - (1 - mu - nu) * y - mu_t * h * f_j1 - gamma_t * h * f0) / nu
        return (j - 1, y_j1, y_j2, b + mu * a + jac_t_w, nu * a, bar_y + (1 - mu - nu) * a,
                bar_f0 + gamma_t * h * a, bar_h + jnp.vdot(a, mu_t * f_j1 + gamma_t * f0),
                jax.tree.map(jnp.add, bar_c, bar_c_j))

    init = (s, y_s, y_prev, bar_s, zero, zero, zero, jnp.zeros((), y.dtype), zero_consts)
    _, _, _, a, b, bar_y, bar_f0, bar_h, bar_c = jax.lax.while_loop(lambda c: c[0] >= 2, body, init)
    # Y_1 = Y_0 + mu~_1 h f0; b is stage 2's share of Y_0's cotangent, a the complete one of Y_1.
    mu1 = w1 / 3.0
    return bar_y + b + a, bar_f0 + mu1 * h * a, bar_h + mu1 * jnp.vdot(a, f0), bar_c


#: Name (``jax.ad_checkpoint.checkpoint_name``) of the two last stages a reverse-mode step keeps: a checkpointed
#: loop that saves them (policy ``save_only_these_names(STAGES)``) recomputes the rest of a step, not its stages.
STAGES = "rkl2_stages"


def _named(stages):
    return tuple(checkpoint_name(x, STAGES) for x in stages)


def _zeros_like(tree):
    return jax.tree.map(jnp.zeros_like, tree)


def _no_cotangent(tree):
    """Zero cotangents of constants (``None`` per leaf: also right for integer and boolean arrays)."""
    return jax.tree.map(lambda _: None, tree)


def _bind(local, operator, local_consts, fixed):
    local_others, operator_floats, operator_others, scale = fixed
    return SemiLinear(lambda v: local(v, local_consts, local_others),
                      lambda u: operator(u, operator_floats, operator_others), scale)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _semilinear_step(local, operator, y, f0, h, s, local_consts, fixed):
    return _forward(_bind(local, operator, local_consts, fixed), y, f0, h, s)[0]


def _semilinear_fwd(local, operator, y, f0, h, s, local_consts, fixed):
    y_s, y_prev = _named(_forward(_bind(local, operator, local_consts, fixed), y, f0, h, s))
    return y_s, (y, f0, h, s, local_consts, fixed, y_s, y_prev)


def _semilinear_pull_back(local, operator, consts, fixed):
    """``(Y, w) -> (F(Y), F'(Y)^T w, d<w, F(Y)>/d consts)`` of a :class:`SemiLinear` system (self-adjoint operator)."""
    local_others, operator_floats, operator_others, scale = fixed

    def pull_back(stage, w):
        (u, r), vjp = jax.vjp(lambda v, c: local(v, c, local_others), stage, consts)
        f = scale * (operator(u, operator_floats, operator_others) - r)
        scaled = scale * w
        bar_stage, bar_consts = vjp((operator(scaled, operator_floats, operator_others), -scaled))
        return f, bar_stage, bar_consts

    return pull_back


def _semilinear_bwd(local, operator, res, bar_s):
    y, f0, h, s, consts, fixed, y_s, y_prev = res
    pull_back = _semilinear_pull_back(local, operator, consts, fixed)
    bar_y, bar_f0, bar_h, bar_consts = _adjoint(pull_back, y, f0, h, s, y_s, y_prev, bar_s, _zeros_like(consts))
    return bar_y, bar_f0, bar_h, None, bar_consts, _no_cotangent(fixed)


_semilinear_step.defvjp(_semilinear_fwd, _semilinear_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _semilinear_evaluate(local, operator, y, local_consts, fixed):
    return _bind(local, operator, local_consts, fixed)(y)


def _semilinear_evaluate_fwd(local, operator, y, local_consts, fixed):
    return _semilinear_evaluate(local, operator, y, local_consts, fixed), (y, local_consts, fixed)


def _semilinear_evaluate_bwd(local, operator, res, w):
    y, consts, fixed = res
    _, bar_y, bar_consts = _semilinear_pull_back(local, operator, consts, fixed)(y, w)
    return bar_y, bar_consts, _no_cotangent(fixed)


_semilinear_evaluate.defvjp(_semilinear_evaluate_fwd, _semilinear_evaluate_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _generic_step(fn, y, f0, h, s, consts, others):
    return _forward(lambda v: fn(v, consts, others), y, f0, h, s)[0]


def _generic_fwd(fn, y, f0, h, s, consts, others):
    y_s, y_prev = _named(_forward(lambda v: fn(v, consts, others), y, f0, h, s))
    return y_s, (y, f0, h, s, consts, others, y_s, y_prev)


def _generic_bwd(fn, res, bar_s):
    y, f0, h, s, consts, others, y_s, y_prev = res

    def pull_back(stage, w):
        value, vjp = jax.vjp(lambda v, c: fn(v, c, others), stage, consts)
        return (value,) + vjp(w)

    bar_y, bar_f0, bar_h, bar_consts = _adjoint(pull_back, y, f0, h, s, y_s, y_prev, bar_s, _zeros_like(consts))
    return bar_y, bar_f0, bar_h, None, bar_consts, _no_cotangent(others)


_generic_step.defvjp(_generic_fwd, _generic_bwd)

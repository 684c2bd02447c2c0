"""Cost and memory of a value-and-gradient of the solver core v2 against its forward run (one simulation).

Case (c) at 100 mA/g to cut-off on the disk; the scalar is d(10 min) + the extracted capacity. The forward run uses
the while loops (``differentiable=False``); value-and-gradient uses the checkpointed scan (``differentiable=True``)
and reverse mode with respect to (rate, eta, radius); forward mode (``jax.jacfwd`` of the while-loop run: the
primal and three tangents in one pass) is timed beside it. Memory is XLA's ``memory_analysis`` of the compiled
programs (temporary buffers): for reverse mode what per-step checkpointing leaves, one integrator carry per step of
``max_steps``; forward mode keeps no history.

    python benchmarks/bench_core_v2_gradient.py [--spacing 0.06] [--max-steps 600]

Measured on this project's shared 2-core CPU (1,039 nodes, 126 steps; gradients of the two modes agree to 1.5e-12):
forward 96 ms, 0.7 MiB temporaries; forward mode 3.6x (345 ms), 2.5 MiB; reverse mode 11.8x (1,128 ms), 31.2 MiB.
Across runs under load the ratios moved between 2.0-5.7x (forward mode) and 5-17x (reverse mode).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from bench_core_v2 import _timed  # the same median-of-3 timing as the forward benchmark

import fluxsim
from fluxsim.api import make_params, replace
from fluxsim.core import solve
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import Disk
from fluxsim.core.rkl import RKLSettings

fluxsim.enable_float64()  # the validated float64 (fluxsim.precision)

TIMES_S = np.arange(0.0, 4201.0, 60.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacing", type=float, default=0.06)
    parser.add_argument("--max-steps", type=int, default=600)
    args = parser.parse_args(argv)
    mesh = mesh_outline(Disk(), args.spacing)
    numerics = solve.Numerics(integrator=RKLSettings(max_steps=args.max_steps))
    base = make_params(eta=0.3, blocked_fraction=0.25)

    def scalar(x, differentiable):
        p = replace(base, rate_mA_per_g=x[0], eta=x[1], radius_m=x[2] * 1e-6)
        s = solve.simulate(p, mesh, numerics=numerics, save_times_s=TIMES_S, differentiable=differentiable)
        d = jnp.hypot(s.core_x_nm[10], s.core_y_nm[10])
        return d + s.passed_capacity_mAh_per_g[-1], (s.n_steps, s.complete)

    def value_and_jacfwd(x):
        value = lambda x: scalar(x, False)  # noqa: E731
        return value(x), jax.jacfwd(lambda x: value(x)[0])(x)

    x0 = jnp.asarray([100.0, 0.3, 1.2])
    forward = jax.jit(lambda x: scalar(x, False)).lower(x0).compile()
    reverse = jax.jit(jax.value_and_grad(lambda x: scalar(x, True), has_aux=True)).lower(x0).compile()
    tangent = jax.jit(value_and_jacfwd).lower(x0).compile()
    (_, (steps, complete)) = forward(x0)
    grad_reverse, grad_forward = np.asarray(reverse(x0)[1]), np.asarray(tangent(x0)[1])
    print(f"{int(np.asarray(mesh.node_mask).sum())} nodes, {int(steps)} steps (complete: {bool(complete)}), "
          f"max_steps {args.max_steps}; gradients agree to {np.max(np.abs(grad_reverse / grad_forward - 1)):.1e}")
    t_forward = _timed(forward, x0)[0]
    for name, program in (("forward", forward), ("value-and-gradient, reverse (checkpointed scan)", reverse),
                          ("value-and-gradient, forward mode (jacfwd, while loops)", tangent)):
        seconds = t_forward if program is forward else _timed(program, x0)[0]
        memory = program.memory_analysis().temp_size_in_bytes / 2**20
        print(f"{name}: {seconds * 1e3:.0f} ms ({seconds / t_forward:.2f}x the forward), temporary memory "
              f"{memory:.1f} MiB")


if __name__ == "__main__":
    main()

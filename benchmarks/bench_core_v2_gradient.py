"""Cost and memory of a value-and-gradient of the solver core v2 against its forward run (one simulation).

Case (c) at 100 mA/g to cut-off on the disk, outputs every minute; the scalar is d(10 min) + the capacity at the
end. The forward run uses the while loops (``differentiable=False``); value-and-gradient uses reverse mode with
respect to (rate, eta, radius) through the checkpointed scan (``differentiable=True``: one carry and the step's
last two stages per step; the stages run again backwards inside the step's hand-written adjoint,
:mod:`fluxsim.core.rkl2`); forward mode (``jax.jacfwd`` of the while-loop run: the primal and three tangents in one
pass) is timed beside it. The programs run interleaved, ``--rounds`` times each; the figures are the medians and
the ratios are taken round by round (then their median), so machine noise moves the ratios less than the times.
Memory is XLA's ``memory_analysis`` of the compiled programs (temporary buffers).

``--potential`` picks the Kirchhoff potential's arithmetic: ``integer`` (the front doors' default for the default
exponent 3, ``numerics.integer_exponent``: a few multiplications per node, so a right-hand side is nearly all
gathers) or ``traced`` (an exp and a log per node).

    python benchmarks/bench_core_v2_gradient.py [--spacing 0.06] [--max-steps 600] [--potential integer|traced]

Measured figures: the README's Performance section.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import fluxsim
from fluxsim.api import make_params, replace
from fluxsim.core import solve
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import Disk
from fluxsim.core.rkl import RKLSettings

fluxsim.enable_float64()  # the validated float64 (fluxsim.precision)

TIMES_S = np.arange(0.0, 4201.0, 60.0)


def interleaved(programs: dict, x, rounds: int) -> dict:
    """Median seconds of each program and the median over rounds of its ratio to the first one."""
    for program in programs.values():
        jax.block_until_ready(program(x))
    seconds = {name: [] for name in programs}
    for _ in range(rounds):
        for name, program in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(program(x))
            seconds[name].append(time.perf_counter() - start)
    first = np.asarray(seconds[next(iter(programs))])
    return {name: (float(np.median(s)), float(np.median(np.asarray(s) / first))) for name, s in seconds.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacing", type=float, default=0.06)
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--potential", choices=("integer", "traced"), default="integer")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    mesh = mesh_outline(Disk(), args.spacing)
    base = make_params(eta=0.3, blocked_fraction=0.25)
    numerics = solve.Numerics(integrator=RKLSettings(max_steps=args.max_steps))
    if args.potential == "integer":
        numerics = solve.with_integer_exponent(numerics, base.diffusivity)

    def scalar(x, differentiable):
        p = replace(base, rate_mA_per_g=x[0], eta=x[1], radius_m=x[2] * 1e-6)
        s = solve.simulate(p, mesh, numerics=numerics, save_times_s=TIMES_S, differentiable=differentiable)
        d = jnp.hypot(s.core_x_nm[10], s.core_y_nm[10])
        return d + s.passed_capacity_mAh_per_g[-1], (s.n_steps, s.complete)

    def value_and_jacfwd(x):
        value = lambda x: scalar(x, False)  # noqa: E731
        return value(x), jax.jacfwd(lambda x: value(x)[0])(x)

    x0 = jnp.asarray([100.0, 0.3, 1.2])
    functions = {
        "forward": lambda x: scalar(x, False),
        "value-and-gradient, reverse mode (checkpointed scan)":
            jax.value_and_grad(lambda x: scalar(x, True), has_aux=True),
        "value-and-gradient, forward mode (jacfwd, while loops)": value_and_jacfwd,
    }
    programs, compile_s = {}, {}
    for name, function in functions.items():
        start = time.perf_counter()
        programs[name] = jax.jit(function).lower(x0).compile()
        compile_s[name] = time.perf_counter() - start
    forward, reverse, tangent = programs.values()
    (_, (steps, complete)) = forward(x0)
    grad_reverse, grad_forward = np.asarray(reverse(x0)[1]), np.asarray(tangent(x0)[1])
    print(f"{int(np.asarray(mesh.node_mask).sum())} nodes, {int(steps)} steps (complete: {bool(complete)}), "
          f"max_steps {args.max_steps}, potential {args.potential} (integer_exponent "
          f"{numerics.integer_exponent}); gradients of the two modes agree to "
          f"{np.max(np.abs(grad_reverse / grad_forward - 1)):.1e}")
    for name, (seconds, ratio) in interleaved(programs, x0, args.rounds).items():
        memory = programs[name].memory_analysis().temp_size_in_bytes / 2**20
        print(f"{name}: {seconds * 1e3:.0f} ms ({ratio:.2f}x the forward), temporary memory {memory:.1f} MiB, "
              f"compile {compile_s[name]:.1f} s")


if __name__ == "__main__":
    main()

"""Cost and memory of a value-and-gradient of the solver core v2 against its forward run (one simulation).

Case (c) at 100 mA/g to cut-off on the disk; the scalar is d(10 min) + the extracted capacity. The forward run uses
the while loops (``differentiable=False``); value-and-gradient uses the checkpointed scan (``differentiable=True``)
and reverse mode with respect to (rate, eta, radius). Memory is XLA's ``memory_analysis`` of the compiled programs
(temporary buffers), i.e. what per-step checkpointing leaves: one integrator carry per step of ``max_steps``.

    python benchmarks/bench_core_v2_gradient.py [--spacing 0.06] [--max-steps 600]
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

    x0 = jnp.asarray([100.0, 0.3, 1.2])
    forward = jax.jit(lambda x: scalar(x, False)).lower(x0).compile()
    both = jax.jit(jax.value_and_grad(lambda x: scalar(x, True), has_aux=True)).lower(x0).compile()
    (_, (steps, complete)) = forward(x0)
    t_forward = _timed(forward, x0)[0]
    t_both = _timed(both, x0)[0]
    mem_f = forward.memory_analysis()
    mem_b = both.memory_analysis()
    print(f"{int(np.asarray(mesh.node_mask).sum())} nodes, {int(steps)} steps (complete: {bool(complete)}), "
          f"max_steps {args.max_steps}")
    print(f"forward {t_forward * 1e3:.0f} ms; value-and-gradient {t_both * 1e3:.0f} ms "
          f"({t_both / t_forward:.2f}x the forward)")
    print(f"temporary memory: forward {mem_f.temp_size_in_bytes / 2**20:.1f} MiB, value-and-gradient "
          f"{mem_b.temp_size_in_bytes / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

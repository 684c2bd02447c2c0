"""Roofline: XLA's cost analysis of the solver's work per simulation, the throughput it implies on this CPU and on an
H100, and the measured CPU throughput.

Work per simulation = n_steps x (Newton updates per step x one Newton update + one saved-metrics evaluation), where
an update is the residual, the factorised Newton Jacobian and one solve. XLA counts a loop body once, so the ray
scans of the block solver are unrolled for the analysis (``blocksolve.UNROLL_FOR_COST_ANALYSIS``); the Newton
count per step is measured. "bytes accessed" is XLA's count of operand and result bytes per operation, an upper bound
on memory traffic for fused kernels. Machine figures: this CPU's sustained float64 matmul rate and copy bandwidth
are measured here; H100 SXM: 34 TFLOP/s float64 (vector; 67 with tensor cores), 67 TFLOP/s float32, 3.35 TB/s.

    python benchmarks/bench_roofline.py [--nr 32 --nphi 128 --n-steps 200] [--batch 4] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import fluxsim
from fluxsim.api import make_params, replace
from fluxsim.core.polar import blocksolve, stepper
from fluxsim.core.polar.solver import Numerics, _Context, _save, simulate  # noqa: F401  (internal pieces, analysed separately)
from fluxsim.model.constants import FARADAY_C_PER_MOL
from fluxsim.model.protocol import Charge
from fluxsim.precision import enable_float64

enable_float64()  # the solver's validated float64 (fluxsim.precision)

H100 = dict(name="H100 SXM", flops64=34e12, flops32=67e12, bandwidth=3.35e12)


def _cost(fn, *args):
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def measure_cpu():
    """Sustained float64 matmul rate [flop/s] and copy bandwidth [byte/s] of this machine (medians of 5)."""
    a = jnp.ones((1024, 1024))
    mm = jax.jit(lambda x: x @ x)
    jax.block_until_ready(mm(a))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(mm(a))
        times.append(time.perf_counter() - start)
    flops = 2 * 1024**3 / np.median(times)
    big = np.ones(32 * 1024**2 // 8 * 8)  # 256 MiB
    out = np.empty_like(big)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(out, big)
        times.append(time.perf_counter() - start)
    bandwidth = 2 * big.nbytes / np.median(times)
    return flops, bandwidth


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nr", type=int, default=32)
    parser.add_argument("--nphi", type=int, default=128)
    parser.add_argument("--n-steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    numerics = Numerics(nr=args.nr, nphi=args.nphi, n_steps=args.n_steps)
    grid = numerics.grid
    params = make_params(eta=0.3, blocked_fraction=0.25)
    d_ref = params.diffusivity.reference
    drive = stepper.Drive(
        jnp.asarray(100.0 * params.material.density_kg_per_m3 * params.radius_m / 2),
        params.radius_m / (FARADAY_C_PER_MOL * params.material.c_max_mol_per_m3 * d_ref),
        params.blocking.node_weights(*(jnp.asarray(a) for a in grid.boundary_arcs)),
        d_ref,
    )
    theta = jnp.asarray(np.random.default_rng(0).uniform(0.8, 1.0, (grid.nr + 1, grid.nphi)))
    theta = theta.at[0].set(theta[0, 0])
    inputs = stepper.StepInputs(params, drive, theta, theta, jnp.asarray(0.01), jnp.asarray(0.01))

    def newton_update(x):
        g, slope = stepper._residual(grid, inputs, x)
        op, d = stepper._newton_operator(grid, inputs, x, slope)
        return x - fluxsim.core.polar.operators.solve_operator(op, g) / d

    ctx = _Context(grid, params, numerics, None, None, drive.weights, None, None, tuple(map(jnp.asarray, grid.xy)))

    def save(x):
        return _save(ctx, x, jnp.zeros(()), jnp.zeros(()), drive)

    blocksolve.UNROLL_FOR_COST_ANALYSIS = True
    try:
        update_flops, update_bytes = _cost(newton_update, theta)
        save_flops, save_bytes = _cost(save, theta)
    finally:
        blocksolve.UNROLL_FOR_COST_ANALYSIS = False

    # Measured Newton updates per step and CPU time per simulation (vmapped batch, early exit as in sweeps).
    stacked = jax.tree.map(lambda *x: np.stack(x), *[replace(params, rate_mA_per_g=100.0 * (1 + 1e-9 * k))
                                                     for k in range(args.batch)])
    run = jax.jit(jax.vmap(lambda p: simulate(p, (Charge(),), numerics, early_exit=True))).lower(stacked).compile()
    jax.block_until_ready(run(stacked))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = jax.block_until_ready(run(stacked))
        times.append(time.perf_counter() - start)
    measured = float(np.median(times)) / args.batch
    updates_per_step = float(np.mean(np.asarray(out.newton_total))) / numerics.n_steps
    # Per step: the Newton updates, the polish (a solve and a residual: counted as one more update, an upper
    # bound) and one save.
    flops = numerics.n_steps * ((updates_per_step + 1) * update_flops + save_flops)
    traffic = numerics.n_steps * ((updates_per_step + 1) * update_bytes + save_bytes)

    cpu_flops, cpu_bandwidth = measure_cpu()
    cpu_roofline = max(flops / cpu_flops, traffic / cpu_bandwidth)
    h100_64 = max(flops / H100["flops64"], traffic / H100["bandwidth"])
    h100_32 = max(flops / H100["flops32"], traffic / (H100["bandwidth"]) / 2)
    figures = dict(
        numerics=dict(nr=numerics.nr, nphi=numerics.nphi, n_steps=numerics.n_steps),
        newton_update=dict(flops=update_flops, bytes=update_bytes),
        save=dict(flops=save_flops, bytes=save_bytes),
        newton_updates_per_step=updates_per_step,
        per_simulation=dict(flops=flops, bytes=traffic, intensity=flops / traffic),
        cpu=dict(matmul_flops_per_s=cpu_flops, copy_bytes_per_s=cpu_bandwidth, roofline_s=cpu_roofline,
                 measured_s=measured, fraction_of_roofline=cpu_roofline / measured),
        h100=dict(roofline_s_float64=h100_64, roofline_s_float32=h100_32,
                  study_12800_s_float64=12800 * h100_64, study_12800_s_float32=12800 * h100_32),
    )
    print(f"numerics: {numerics.nr} x {numerics.nphi}, {numerics.n_steps} steps; "
          f"{updates_per_step:.2f} Newton updates per step (measured)")
    print(f"one Newton update: {update_flops:.3g} flop, {update_bytes:.3g} byte; one save: {save_flops:.3g} flop, "
          f"{save_bytes:.3g} byte")
    print(f"per simulation: {flops:.3g} flop, {traffic:.3g} byte (intensity {flops / traffic:.2f} flop/byte)")
    print(f"this CPU: {cpu_flops / 1e9:.1f} GFLOP/s (float64 matmul), {cpu_bandwidth / 1e9:.1f} GB/s (copy) -> "
          f"roofline {cpu_roofline:.3f} s/sim, measured {measured:.3f} s/sim "
          f"({100 * cpu_roofline / measured:.0f} % of roofline)")
    print(f"H100 roofline: {h100_64 * 1e3:.2f} ms/sim float64 ({1 / h100_64:.0f} sim/s), "
          f"{h100_32 * 1e3:.2f} ms/sim float32; 12,800-point study: {12800 * h100_64:.1f} s float64, "
          f"{12800 * h100_32:.1f} s float32")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

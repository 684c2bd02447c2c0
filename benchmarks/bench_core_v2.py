"""Solver core v2 (RKL2 on a triangulated outline) against today's polar solver (BDF2 + block solves), in one run.

Case (c) of the paper (eta 0.3, a quarter of the rim blocked, 100 mA/g, to cut-off), batched (vmap), forward runs
with early exit in both. Printed side by side:

* ms per simulation (median of 3 warm runs) and compile time;
* accuracy: d at 10 min and the core-vanish time against the independent 2D P1 finite-element reference
  (tests/reference/fem2d.py, refine 5, dt <= 1 s);
* work per simulation from XLA's cost analysis: flops and bytes of one right-hand-side evaluation (batched over
  the benchmark's batch with a shared mesh, divided by the batch) times the measured evaluations, plus one
  observables evaluation per saved time; the dependent chain length (evaluations of the slowest simulation);
* the implied H100 time of the 12,800-point ``large_study`` by the roofline of benchmarks/bench_roofline.py
  (3.35 TB/s, 34 TFLOP/s float64, 67 TFLOP/s float32; float32 halves the bytes), with the chain-latency floor
  (chain x kernels per evaluation x 5 us launch latency, for one batch of all 12,800) beside it.

The polar solver's figures come from benchmarks/bench_roofline.py run in the same process.

    python benchmarks/bench_core_v2.py [--batch 8] [--spacing 0.03] [--rtol 3e-3] [--json FILE]

Measured on this project's shared 2-core CPU (about seven jobs at once, so ms figures move by 2x between runs),
batch 4, float64, core defaults rtol 3e-3 / 256 stages (FEM: d(10 min) 186.6 nm, core vanishes 1125.0 s):

| solver | nodes | steps / evaluations | ms / sim | d(10 min) error | vanish error | H100 study f64 / f32 |
|---|---|---|---|---|---|---|
| polar BDF2, default | 4,097 | 200 / 2.19 Newton per step | 3,087 | +1.5 nm | -1.36 % | 279 s / 140 s |
| core v2, spacing 0.03 | 4,104 | 241 / 21,773 | 6,749 | +0.2 nm | +0.07 % | 144 s / 72 s |
| core v2, spacing 0.045 | 1,819 | 155 / 7,077 | 621 (other run) | +1.2 nm | -0.12 % | 17 s / 8.4 s |

One evaluation at 4,104 nodes: 2.7e5 flop and 1.4e6 byte per simulation by XLA's (CPU, unfused) count; timed,
153 us per simulation of which the Kirchhoff potential (a traced-exponent power: exp + log per node) is 50 us and
the ELL gather 68 us. Compile 13.7 s (batched forward).

After the slot-wise ELL sum (looped on CPU) and the integer-exponent promise (fluxsim.core.fv), one run, batch 4,
spacing 0.03 (4,093 nodes), --no-reference: polar 2,037 ms, core v2 647 ms per simulation (3.2x; 219 steps, 13,123
evaluations, compile 5.1 s). Caveat: XLA's cost analysis counts the CPU loop over the 8 ELL slots once, so the
per-evaluation flop/byte figures (and the H100 estimates built on them) now undercount the gather part; the GPU
lowering unrolls the slots.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import fluxsim
from fluxsim.api import make_params, replace
from fluxsim.core import observables, outputs, solve
from fluxsim.core.fv import kirchhoff_rhs
from fluxsim.core.mesh import DEFAULT_SPACING, mesh_outline
from fluxsim.core.outline import Disk
from fluxsim.core.polar import solver as polar_solver
from fluxsim.core.rim import make_drive
from fluxsim.core.rkl import RKLSettings

fluxsim.enable_float64()  # the validated float64 (fluxsim.precision)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import bench_roofline  # noqa: E402
from reference.fem2d import solve_fem2d  # noqa: E402

H100 = bench_roofline.H100
STUDY_POINTS = 12_800
#: Launch latency per fused kernel on a GPU [s] and kernels per right-hand-side evaluation (K, gather + row sum,
#: rim update; XLA fuses the elementwise work around them).
KERNEL_LATENCY_S = 5e-6
KERNELS_PER_EVALUATION = 3
RATE = 100.0
SAVE_TIMES_S = np.arange(0.0, 4201.0, 10.0)


def _timed(run, *args):
    jax.block_until_ready(run(*args))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = jax.block_until_ready(run(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def _cost(fn, *args):
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def _vanish_from_series(t, fraction):
    """First time a core-fraction series reaches 0 (linear between samples)."""
    gone = np.flatnonzero(fraction <= 0)
    if not gone.size:
        return float("nan")
    k = gone[0]
    return float(np.interp(0.0, [fraction[k], fraction[k - 1]], [t[k], t[k - 1]]))


def reference():
    t_out = np.arange(0.0, 1400.0, 0.5)
    fem = solve_fem2d(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=RATE, t_out_s=t_out, refine=5, dt_max_s=1.0)
    return dict(d_600_nm=float(np.interp(600.0, t_out, fem["d_nm"])),
                vanish_s=_vanish_from_series(t_out, np.asarray(fem["core_fraction"])),
                nodes=fem["info"]["n_nodes"])


def polar(batch):
    """Today's solver: bench_roofline's figures, and its accuracy on case (c)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "roofline.json"
        bench_roofline.main(["--batch", str(batch), "--json", str(path)])
        figures = json.loads(path.read_text())
    params = make_params(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=RATE)
    s = jax.jit(lambda p: polar_solver.simulate(p, early_exit=True))(params)
    d = outputs.offset_nm(s)
    return dict(ms=figures["cpu"]["measured_s"] * 1e3, flops=figures["per_simulation"]["flops"],
                bytes=figures["per_simulation"]["bytes"],
                study64=figures["h100"]["study_12800_s_float64"], study32=figures["h100"]["study_12800_s_float32"],
                d_600_nm=float(jnp.interp(600.0, s.t_s, jnp.where(jnp.isnan(d), 0.0, d))),
                vanish_s=float(s.core_vanish_s), chain="~1e6 small operations (block-Thomas scans)")


def core(batch, spacing, rtol, max_stages):
    mesh = mesh_outline(Disk(), spacing)
    base = make_params(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=RATE)
    # Case (c) has the default power-law exponent 3: promise it (multiplications instead of exp + log per node).
    numerics = solve.Numerics(integrator=RKLSettings(rtol=rtol, atol=rtol * 1e-2, max_steps=4000,
                                                     max_stages=max_stages),
                              integer_exponent=int(base.diffusivity.exponent))
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[replace(base, rate_mA_per_g=RATE * (1 + 1e-9 * k))
                                                      for k in range(batch)])
    run = jax.jit(jax.vmap(lambda p: solve.simulate(p, mesh, numerics=numerics, save_times_s=SAVE_TIMES_S)))
    start = time.perf_counter()
    compiled = run.lower(stacked).compile()
    compile_s = time.perf_counter() - start
    seconds, s = _timed(compiled, stacked)
    evaluations = np.asarray(s.n_evaluations)
    d = np.hypot(np.asarray(s.core_x_nm[0]), np.asarray(s.core_y_nm[0]))

    # XLA cost of one evaluation and of one observables call, for a batch sharing the mesh, per simulation.
    drive = make_drive(mesh, base, RATE)
    theta = jnp.asarray(np.random.default_rng(0).uniform(0.8, 1.0, (batch,) + mesh.mass.shape))
    eval_flops, eval_bytes = _cost(jax.vmap(lambda y: kirchhoff_rhs(mesh, base, y, drive,
                                                                    numerics.integer_exponent)[0]), theta)
    stencil = observables.line_cut_stencil(mesh, jnp.pi)
    obs_flops, obs_bytes = _cost(jax.vmap(lambda y: observables.observe(mesh, y, 0.97, 0.005, stencil)), theta)
    # Per step besides the stages: the error estimate and the Hermite/event work, ~ 4 evaluations' worth of
    # elementwise traffic is bounded by counting one more evaluation per step.
    n_eval = float(np.mean(evaluations)) + float(np.mean(np.asarray(s.n_steps)))
    n_obs = float(np.mean(np.asarray(s.reached).sum(axis=-1)))
    flops = (n_eval * eval_flops + n_obs * obs_flops) / batch
    traffic = (n_eval * eval_bytes + n_obs * obs_bytes) / batch
    chain = int(evaluations.max())
    latency = chain * KERNELS_PER_EVALUATION * KERNEL_LATENCY_S
    h100_64 = max(flops / H100["flops64"], traffic / H100["bandwidth"])
    h100_32 = max(flops / H100["flops32"], traffic / H100["bandwidth"] / 2)
    return dict(ms=seconds / batch * 1e3, compile_s=compile_s, nodes=int(np.asarray(mesh.node_mask).sum()),
                steps=float(np.mean(np.asarray(s.n_steps))), evaluations=float(np.mean(evaluations)),
                eval_flops=eval_flops / batch, eval_bytes=eval_bytes / batch, flops=flops, bytes=traffic,
                chain=chain, latency_s=latency, study64=STUDY_POINTS * h100_64, study32=STUDY_POINTS * h100_32,
                d_600_nm=float(np.interp(600.0, SAVE_TIMES_S, d)), vanish_s=float(s.core_vanish_s[0]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--spacing", type=float, default=DEFAULT_SPACING)
    parser.add_argument("--rtol", type=float, default=RKLSettings().rtol)
    parser.add_argument("--max-stages", type=int, default=RKLSettings().max_stages)
    parser.add_argument("--no-reference", action="store_true", help="skip the finite-element reference")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    ref = None if args.no_reference else reference()
    old = polar(args.batch)
    new = core(args.batch, args.spacing, args.rtol, args.max_stages)
    print(f"\ncase (c), {RATE:g} mA/g to cut-off, batch {args.batch}, float64, this CPU")
    if ref:
        print(f"reference (2D P1 FEM, {ref['nodes']} nodes): d(10 min) {ref['d_600_nm']:.1f} nm, "
              f"core vanishes {ref['vanish_s']:.1f} s")
    rows = [("ms / simulation", "ms", "{:.0f}"), ("d(10 min) [nm]", "d_600_nm", "{:.1f}"),
            ("core vanish [s]", "vanish_s", "{:.1f}"), ("flop / simulation", "flops", "{:.3g}"),
            ("byte / simulation", "bytes", "{:.3g}"), ("H100 large_study f64 [s]", "study64", "{:.2f}"),
            ("H100 large_study f32 [s]", "study32", "{:.2f}")]
    print(f"{'':28s}{'polar (BDF2)':>16s}{'core v2 (RKL2)':>16s}")
    for label, key, fmt in rows:
        print(f"{label:28s}{fmt.format(old[key]):>16s}{fmt.format(new[key]):>16s}")
    if ref:
        for label, key in (("d(10 min) error [nm]", "d_600_nm"), ("vanish error [%]", "vanish_s")):
            scale = 1.0 if key == "d_600_nm" else 100.0 / ref[key]
            print(f"{label:28s}{(old[key] - ref[key]) * scale:16.2f}{(new[key] - ref[key]) * scale:16.2f}")
    print(f"speed-up on this CPU: {old['ms'] / new['ms']:.1f}x; core v2: {new['nodes']} nodes, {new['steps']:.0f} "
          f"steps, {new['evaluations']:.0f} evaluations / simulation, compile {new['compile_s']:.1f} s")
    print(f"one evaluation: {new['eval_flops']:.3g} flop, {new['eval_bytes']:.3g} byte per simulation; dependent "
          f"chain {new['chain']} evaluations (polar: {old['chain']}); chain-latency floor of one 12,800 batch on a "
          f"GPU ~{new['latency_s']:.2f} s")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(reference=ref, polar=old, core=new), indent=2))


if __name__ == "__main__":
    main()

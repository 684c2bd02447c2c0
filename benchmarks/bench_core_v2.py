"""Solver core v2 (RKL2 on a triangulated outline) against today's polar solver (BDF2 + block solves), in one run.

Case (c) of the paper (eta 0.3, a quarter of the rim blocked, 100 mA/g, to cut-off), batched (vmap), forward runs
with early exit in both. Printed side by side:

* ms per simulation (median of 3 warm runs) and compile time;
* accuracy: d at 10 min and the core-vanish time against the independent 2D P1 finite-element reference
  (tests/reference/fem2d.py, refine 5, dt <= 1 s);
* work per simulation on the GPU shape: XLA's flops and bytes of one RKL2 stage (the right-hand side with the ELL
  slots unrolled, as the GPU lowering has them, plus the stage recurrence), compiled for a batch of 256 sharing the
  mesh and divided by it, times the measured evaluations plus one stage's worth per step attempt, plus one
  observables call per filled output time; in float64 and float32 (lowered in each); the irreducible traffic beside
  it (5 state arrays per stage); the dependent chain length (evaluations of the slowest simulation);
* the implied H100 time of the 12,800-point ``large_study`` by the roofline of benchmarks/bench_roofline.py
  (3.35 TB/s, 34 TFLOP/s float64, 67 TFLOP/s float32), with the chain-latency floor (chain x kernels per
  evaluation x 5 us launch latency, for one batch of all 12,800) beside it;
* the scikit-fem P1 + scipy BDF (sparse LU) solver of tests/reference/fem_outline.py on the disk at the core's
  spacing and rtol 1e-4 (one simulation, not batched: it is a host code), its accuracy beside the others.

The polar solver's figures come from benchmarks/bench_roofline.py run in the same process.

    python benchmarks/bench_core_v2.py [--batch 8] [--spacing 0.03] [--rtol 3e-3] [--no-reference] [--no-peer]
        [--peer-spacing-nm 36] [--peer-rtol 1e-4] [--json FILE]

Measured on this project's shared 2-core CPU (other jobs running, so ms figures move by up to 2x between runs; the
ratios are within one run), ``--batch 4 --spacing 0.03 --no-reference``, float64, outputs every minute; errors
against the FEM reference of an earlier run (d(10 min) 186.6 nm, core vanishes 1125.0 s):

| solver | nodes | work | ms / sim | d(10 min) error | vanish error | H100 study f64 / f32 |
|---|---|---|---|---|---|---|
| polar BDF2, default | 4,097 | 200 steps, 2.19 Newton per step | 2,082 | +1.5 nm | -1.36 % | 265 s / 133 s |
| core v2, spacing 0.03 | 4,093 | 217 steps, 11,717 evaluations | 410 (5.1x) | +1.0 nm | +0.09 % | 10.2 s / 5.1 s |
| scikit-fem P1 + BDF, rtol 1e-4 | 4,111 | 1,013 evaluations, 219 LU | 3,903 | +0.9 nm | +0.06 % | - |

Core v2 is 9.5x the scikit-fem peer; compile 6.3 s. One stage: 2.1e5 flop, 1.9e5 byte per simulation (float64;
irreducible 1.8e5); one observables call 6.4e6 flop and 6.5e6 byte; per simulation 3.0e9 flop and 2.7e9 byte;
chain 11,717 evaluations, latency floor 0.18 s. At the default spacing (``--spacing`` omitted: 1/32, 3,775 nodes
in 3,840 slots), the large_study's: 10,354 evaluations, H100 study 7.9 s float64 / 4.0 s float32. Before this
run's integrator changes (same command, an earlier run): polar 2,037 ms, core 647 ms with outputs every 10 s
(13,123 evaluations; the 10 s grid alone costs ~140 ms).
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
from reference import fem_outline  # noqa: E402
from reference.fem2d import solve_fem2d  # noqa: E402

H100 = bench_roofline.H100
STUDY_POINTS = 12_800
#: Launch latency per fused kernel on a GPU [s] and kernels per right-hand-side evaluation (K, gather + row sum,
#: rim update; XLA fuses the elementwise work around them).
KERNEL_LATENCY_S = 5e-6
KERNELS_PER_EVALUATION = 3
RATE = 100.0
#: Batch of the cost analyses (compiled, not run): large enough that the mesh arrays, which the batch shares, add
#: little per simulation, as in a 12,800-point study.
COST_BATCH = 256
#: Output grid [s]: every minute (the core's default spacing of outputs) to past the cut-off.
SAVE_TIMES_S = np.arange(0.0, 4201.0, 60.0)


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


def _cast(tree, dtype):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a,
                        tree)


def observe_cost(mesh, batch, dtype):
    """XLA's flops and bytes of one observables call (all outputs of one saved time) for the batch, in ``dtype``."""
    mesh = _cast(mesh, dtype)
    theta = jnp.asarray(np.random.default_rng(0).uniform(0.8, 1.0, (batch,) + mesh.mass.shape), dtype)
    stencil = observables.line_cut_stencil(mesh, jnp.pi)
    return _cost(jax.vmap(lambda y: observables.observe(mesh, y, 0.97, 0.005, stencil)), theta)


def stage_cost(mesh, params, drive, batch, integer_exponent, dtype):
    """XLA's flops and bytes per simulation of one RKL2 stage (the right-hand side with the ELL slots unrolled, as
    the GPU lowering has them, and the stage recurrence) for a batch sharing the mesh, lowered in ``dtype``; and
    the irreducible traffic of the stage: 4 state arrays read (y_j-1, y_j-2, y_0, F_0) and 1 written per node slot
    (the mesh arrays are shared by the batch; the gathered neighbour values come from cache)."""
    mesh, params, drive = _cast(mesh, dtype), _cast(params, dtype), _cast(drive, dtype)
    rng = np.random.default_rng(0)
    states = [jnp.asarray(rng.uniform(0.8, 1.0, (batch,) + mesh.mass.shape), dtype) for _ in range(4)]
    coefficients = jnp.asarray(rng.uniform(0.1, 0.5, (batch, 5)), dtype)

    def stage(y_prev, y_prev2, y0, f0, c):
        f = kirchhoff_rhs(mesh, params, y_prev, drive, integer_exponent, loop=False)[0]
        return c[0] * y_prev + c[1] * y_prev2 + c[2] * y0 + c[3] * f + c[4] * f0

    flops, traffic = _cost(jax.vmap(stage), *states, coefficients)
    return flops / batch, traffic / batch, 5 * mesh.mass.shape[0] * jnp.dtype(dtype).itemsize


def peer(spacing_m, rtol, atol):
    """The scikit-fem P1 + adaptive BDF (scipy, sparse LU) solver of tests/reference/fem_outline.py on the disk,
    case (c): wall time of one simulation (it is not batched) and its accuracy figures."""
    start = time.perf_counter()
    out = fem_outline.solve_outline(fem_outline.Ellipse(1.0), spacing_m=spacing_m, rate_mA_per_g=RATE,
                                    t_out_s=SAVE_TIMES_S, rtol=rtol, atol=atol)
    seconds = time.perf_counter() - start
    return dict(ms=seconds * 1e3, nodes=out["info"]["n_nodes"], nfev=out["info"]["nfev"], nlu=out["info"]["nlu"],
                d_600_nm=float(np.interp(600.0, out["t_s"], np.nan_to_num(out["d_nm"]))),
                vanish_s=float(out["core_vanish_s"]))


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

    # Work per simulation on the GPU shape (ELL slots unrolled), float64 and float32: every stage evaluation, one
    # more stage's worth per step attempt (error estimate, Hermite and event work: a bound) and one observables
    # call per filled output time; the dependent chain is the slowest simulation's evaluations.
    drive = make_drive(mesh, base, RATE)
    n_eval = float(np.mean(evaluations)) + float(np.mean(np.asarray(s.n_steps) + np.asarray(s.n_rejected)))
    n_obs = float(np.mean(np.asarray(s.reached).sum(axis=-1)))
    chain = int(evaluations.max())
    latency = chain * KERNELS_PER_EVALUATION * KERNEL_LATENCY_S
    gpu = {}
    for name, dtype, peak in (("f64", jnp.float64, H100["flops64"]), ("f32", jnp.float32, H100["flops32"])):
        stage_flops, stage_bytes, floor_bytes = stage_cost(mesh, base, drive, COST_BATCH, numerics.integer_exponent,
                                                           dtype)
        obs_flops, obs_bytes = (x / COST_BATCH for x in observe_cost(mesh, COST_BATCH, dtype))
        flops = n_eval * stage_flops + n_obs * obs_flops
        traffic = n_eval * stage_bytes + n_obs * obs_bytes
        floor = n_eval * floor_bytes + n_obs * obs_bytes
        gpu[name] = dict(stage_flops=stage_flops, stage_bytes=stage_bytes, stage_floor_bytes=floor_bytes,
                         flops=flops, bytes=traffic,
                         study_s=STUDY_POINTS * max(flops / peak, traffic / H100["bandwidth"]),
                         study_floor_s=STUDY_POINTS * max(flops / peak, floor / H100["bandwidth"]))
    return dict(ms=seconds / batch * 1e3, compile_s=compile_s, nodes=int(np.asarray(mesh.node_mask).sum()),
                node_slots=int(mesh.mass.shape[0]), steps=float(np.mean(np.asarray(s.n_steps))),
                rejected=float(np.mean(np.asarray(s.n_rejected))), evaluations=float(np.mean(evaluations)),
                eval_flops=gpu["f64"]["stage_flops"], eval_bytes=gpu["f64"]["stage_bytes"],
                flops=gpu["f64"]["flops"], bytes=gpu["f64"]["bytes"], gpu=gpu,
                chain=chain, latency_s=latency, study64=gpu["f64"]["study_s"], study32=gpu["f32"]["study_s"],
                d_600_nm=float(np.interp(600.0, SAVE_TIMES_S, d)), vanish_s=float(s.core_vanish_s[0]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--spacing", type=float, default=DEFAULT_SPACING)
    parser.add_argument("--rtol", type=float, default=RKLSettings().rtol)
    parser.add_argument("--max-stages", type=int, default=RKLSettings().max_stages)
    parser.add_argument("--no-reference", action="store_true", help="skip the finite-element reference")
    parser.add_argument("--peer-spacing-nm", type=float, default=None,
                        help="mesh spacing of the scikit-fem + BDF peer (default: the core's spacing x 1.2 um)")
    parser.add_argument("--peer-rtol", type=float, default=1e-4, help="BDF rtol of the peer (atol = rtol / 100)")
    parser.add_argument("--no-peer", action="store_true", help="skip the scikit-fem + BDF peer")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    ref = None if args.no_reference else reference()
    old = polar(args.batch)
    new = core(args.batch, args.spacing, args.rtol, args.max_stages)
    spacing_nm = args.peer_spacing_nm or args.spacing * 1200.0
    fem = None if args.no_peer else peer(spacing_nm * 1e-9, args.peer_rtol, args.peer_rtol * 1e-2)
    print(f"\ncase (c), {RATE:g} mA/g to cut-off, batch {args.batch}, float64, this CPU")
    if ref:
        print(f"reference (2D P1 FEM, {ref['nodes']} nodes): d(10 min) {ref['d_600_nm']:.1f} nm, "
              f"core vanishes {ref['vanish_s']:.1f} s")
    rows = [("ms / simulation", "ms", "{:.0f}"), ("d(10 min) [nm]", "d_600_nm", "{:.1f}"),
            ("core vanish [s]", "vanish_s", "{:.1f}"), ("flop / simulation", "flops", "{:.3g}"),
            ("byte / simulation", "bytes", "{:.3g}"), ("H100 large_study f64 [s]", "study64", "{:.2f}"),
            ("H100 large_study f32 [s]", "study32", "{:.2f}")]
    columns = [("polar (BDF2)", old), ("core v2 (RKL2)", new)] + ([("skfem P1 + BDF", fem)] if fem else [])
    print("".join([f"{'':28s}"] + [f"{name:>16s}" for name, _ in columns]))
    for label, key, fmt in rows:
        print("".join([f"{label:28s}"] + [f"{fmt.format(c[key]) if key in c else '-':>16s}" for _, c in columns]))
    if ref:
        for label, key in (("d(10 min) error [nm]", "d_600_nm"), ("vanish error [%]", "vanish_s")):
            scale = 1.0 if key == "d_600_nm" else 100.0 / ref[key]
            print("".join([f"{label:28s}"] + [f"{(c[key] - ref[key]) * scale:16.2f}" for _, c in columns]))
    print(f"speed-up on this CPU: {old['ms'] / new['ms']:.1f}x the polar solver"
          + (f", {fem['ms'] / new['ms']:.1f}x the scikit-fem + BDF peer ({fem['nodes']} nodes, {spacing_nm:g} nm, "
             f"rtol {args.peer_rtol:g}: {fem['nfev']} evaluations, {fem['nlu']} LU)" if fem else ""))
    print(f"core v2: {new['nodes']} nodes ({new['node_slots']} slots), {new['steps']:.0f} steps "
          f"({new['rejected']:.0f} rejected), {new['evaluations']:.0f} evaluations / simulation, "
          f"compile {new['compile_s']:.1f} s")
    for name, g in new["gpu"].items():
        print(f"GPU shape, {name}: one stage {g['stage_flops']:.3g} flop, {g['stage_bytes']:.3g} byte per simulation "
              f"by XLA (slots unrolled; irreducible {g['stage_floor_bytes']:.3g}); per simulation {g['flops']:.3g} "
              f"flop, {g['bytes']:.3g} byte; H100 large_study {g['study_s']:.1f} s ({g['study_floor_s']:.1f} s at "
              f"the irreducible traffic)")
    print(f"dependent chain {new['chain']} evaluations (polar: {old['chain']}); chain-latency floor of one 12,800 "
          f"batch on a GPU ~{new['latency_s']:.2f} s")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(reference=ref, polar=old, core=new, peer=fem), indent=2))


if __name__ == "__main__":
    main()

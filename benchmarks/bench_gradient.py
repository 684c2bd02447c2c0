"""Gradient cost: value-and-gradient of a scalar output with respect to every input, over the forward run.

Fig. 4 case (c) (eta 0.3, quarter blocked, 100 mA/g) charged to cut-off. The scalar is the extracted capacity plus
the core offset along the arc axis at 10 min (so both the cut-off event and the saved metrics are differentiated);
the inputs are the seven of model A: eta, blocked fraction, arc angle, radius, rate, D_hi and theta0. Timed:

* forward: ``jit(f)``;
* reverse: ``jit(value_and_grad(f))`` with ``Numerics.checkpoint`` True (default: each saved block is recomputed in
  the backward pass, memory O(saves)) and False (every step kept: faster, memory O(steps));
* forward mode: ``jit(jacfwd(f))`` (seven tangents in one pass).

Each is compiled once, then run ``--repeats`` times; the median is reported, with the ratio to the forward median
and XLA's memory analysis of the compiled program (temporary buffers). Target (issue 6): reverse / forward <= 3.

    python benchmarks/bench_gradient.py [--nr 32 --nphi 128 --n-steps 200] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fluxsim import outputs
from fluxsim.api import make_params
from fluxsim.core.polar.solver import Numerics, simulate
from fluxsim.model.protocol import Charge
from fluxsim.precision import enable_float64

enable_float64()  # the solver's validated float64 (fluxsim.precision)

INPUTS = ["eta", "blocked_fraction", "arc_center_rad", "radius_um", "rate_mA_per_g", "D_hi_1e-14", "theta0"]
X0 = np.array([0.3, 0.25, 0.0, 1.2, 100.0, 1.0, 0.995])
BASE = make_params(eta=0.3, blocked_fraction=0.25)


def scalar(numerics: Numerics):
    def f(x):
        eta, fraction, angle, radius_um, rate, d_hi, theta0 = (x[i] for i in range(7))
        blocking = dataclasses.replace(BASE.blocking, eta=eta, blocked_fraction=fraction, arc_center_rad=angle)
        law = dataclasses.replace(BASE.diffusivity, D_hi_m2_per_s=d_hi * 1e-14)
        p = dataclasses.replace(BASE, blocking=blocking, diffusivity=law, radius_m=radius_um * 1e-6,
                                rate_mA_per_g=rate, theta0=theta0)
        s = simulate(p, (Charge(),), numerics)
        d_axis = s.core_x_nm * jnp.cos(angle) + s.core_y_nm * jnp.sin(angle)
        return outputs.capacity_at_cutoff(s) + 1e-2 * outputs.at_times(s, d_axis, 600.0)

    return f


def timed(fn, x, repeats):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(x).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(x))  # first call (allocations)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(x))
        runs.append(time.perf_counter() - start)
    memory = compiled.memory_analysis()
    temp = getattr(memory, "temp_size_in_bytes", float("nan")) if memory is not None else float("nan")
    return dict(compile_s=compile_s, median_s=statistics.median(runs), runs_s=runs, temp_bytes=temp), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nr", type=int, default=32)
    parser.add_argument("--nphi", type=int, default=128)
    parser.add_argument("--n-steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    x = jnp.asarray(X0)
    rows = {}
    for label, checkpoint, make in (
        ("forward", True, lambda f: f),
        ("value_and_grad, checkpoint", True, jax.value_and_grad),
        ("value_and_grad, no checkpoint", False, jax.value_and_grad),
        ("jacfwd (7 tangents)", True, jax.jacfwd),
    ):
        numerics = Numerics(nr=args.nr, nphi=args.nphi, n_steps=args.n_steps, checkpoint=checkpoint)
        rows[label], out = timed(make(scalar(numerics)), x, args.repeats)
        if label.startswith("value_and_grad"):
            rows[label]["gradient"] = np.asarray(out[1]).tolist()
        if label.startswith("jacfwd"):
            rows[label]["gradient"] = np.asarray(out).tolist()
    forward = rows["forward"]["median_s"]
    for row in rows.values():
        row["ratio_to_forward"] = row["median_s"] / forward
    reverse, tangent = (np.asarray(rows[k]["gradient"]) for k in ("value_and_grad, checkpoint", "jacfwd (7 tangents)"))
    agreement = float(np.max(np.abs(reverse - tangent) / np.maximum(np.abs(tangent), 1e-12 * np.abs(tangent).max())))

    print(f"gradient cost, {args.nr} x {args.nphi}, {args.n_steps} steps, {len(INPUTS)} inputs "
          f"({jax.default_backend()}, median of {args.repeats})")
    print(f"{'':32s} {'compile [s]':>11s} {'run [s]':>9s} {'/ forward':>9s} {'temp [MB]':>10s}")
    for label, row in rows.items():
        print(f"{label:32s} {row['compile_s']:11.1f} {row['median_s']:9.3f} {row['ratio_to_forward']:9.2f} "
              f"{row['temp_bytes'] / 1e6:10.1f}")
    print(f"reverse vs forward-mode gradient: max relative difference {agreement:.1e}")
    with_cp, without = (rows[f"value_and_grad, {k}"]["ratio_to_forward"] for k in ("checkpoint", "no checkpoint"))
    print(f"target: value_and_grad / forward <= 3: checkpoint {with_cp:.2f}, no checkpoint {without:.2f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(
            resolution=dict(nr=args.nr, nphi=args.nphi, n_steps=args.n_steps), inputs=INPUTS, rows=rows,
            reverse_vs_forward_mode=agreement, backend=jax.default_backend()), indent=2))


if __name__ == "__main__":
    main()

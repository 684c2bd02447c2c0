"""``fluxsim fit OBS.csv ...``: fit surface-blocking inputs to microscopy core-offset measurements.

    fluxsim fit particle_A.csv                                   # eta, with blocked_fraction = 0.25
    fluxsim fit particle_A.csv --params eta,arc_center_rad --blocked-fraction 0.3 --out fits/A
    fluxsim fit particle_A.csv --model B --params eta,r_NMC_ohm_m2 blocked_fraction=0.25 arc_center_rad=0
    fluxsim fit data.csv --particle A --numerics 12,48,48       # one particle of a multi-particle file

A plain argparse sub-command (not a hydra app): a fit is one job on one file, so the options are few; fixed
physical inputs are given as ``NAME=VALUE`` arguments with the names of :func:`fluxsim.api.make_params` (the same
names as the hydra config's inputs, e.g. ``blocked_fraction=0.25 D_hi_m2_per_s=2e-14``). Writes ``fit.json``,
``fit.zarr`` and ``fit.png`` into ``--out`` (default ``outputs/fit/<csv stem>``; one sub-folder per particle when the
file holds several and ``--particle`` is not given), prints the summary, and the output folder as the last line.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def parse_inputs(items: list[str]) -> dict:
    """``["blocked_fraction=0.25", "surface_model=B"]`` -> ``{"blocked_fraction": 0.25, "surface_model": "B"}``."""
    from fluxsim.api import MAKE_PARAMS_NAMES
    from fluxsim.model.checks import check_names

    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"expected NAME=VALUE for a fixed input, got {item!r}")
        name, value = item.split("=", 1)
        out[name.strip().lstrip("+")] = _value(value.strip())
    check_names(out, MAKE_PARAMS_NAMES, "fluxsim fit")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fluxsim fit", description=__doc__.split("\n\n")[0].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Column format of OBS.csv: docs/fit.md (or fluxsim.io.observations).")
    p.add_argument("observations", help="measurements CSV (docs/fit.md)")
    p.add_argument("inputs", nargs="*", metavar="NAME=VALUE",
                   help="fixed inputs of fluxsim.api.make_params, e.g. blocked_fraction=0.25 D_hi_m2_per_s=2e-14; "
                        "for a fitted input: its start value")
    p.add_argument("--params", default="eta", help="comma-separated inputs to fit (default: eta); any of eta, "
                   "blocked_fraction, arc_center_rad, D_hi_m2_per_s, radius_m, r_NMC_ohm_m2")
    p.add_argument("--model", choices=("A", "B"), default="A", help="surface model (default A)")
    p.add_argument("--blocked-fraction", type=float, default=None,
                   help="blocked fraction of the perimeter (default 0.25 unless fitted or given as NAME=VALUE)")
    p.add_argument("--arc-center-rad", type=float, default=None, help="blocked-arc centre [rad] (default 0)")
    p.add_argument("--particle", default=None, help="fit only this particle of the file")
    p.add_argument("--out", default=None, help="output folder (default outputs/fit/<csv stem>)")
    p.add_argument("--method", choices=("lm", "lbfgs", "adam"), default="lm", help="optimiser (default lm)")
    p.add_argument("--candidates", type=int, default=6, help="multi-start candidates (default 6)")
    p.add_argument("--starts", type=int, default=None,
                   help="optimiser runs from the best candidates (default 1 for one fitted input, else 2)")
    p.add_argument("--profile", choices=("grid", "reoptimise", "none"), default="grid",
                   help="chi2 profile along eta (default grid)")
    p.add_argument("--numerics", default=None, metavar="NR,NPHI,NSTEPS",
                   help="model discretisation (default 16,64,64)")
    p.add_argument("--negative-d", choices=("noise", "drop", "refuse"), default="noise",
                   help="rows with negative d: keep them as noise around 0 when within 3 standard uncertainties "
                        "(default), drop them, or refuse them (docs/fit.md)")
    p.add_argument("--seed", type=int, default=0, help="seed of the multi-start sample")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fluxsim fit`` (``argv`` without the ``fit`` word); computes in float64."""
    from fluxsim.precision import enable_float64

    enable_float64()
    args = build_parser().parse_intermixed_args(sys.argv[1:] if argv is None else argv)

    from fluxsim import fit as fit_mod
    from fluxsim.core.polar.solver import Numerics
    from fluxsim.io import observations as obs_mod
    from fluxsim.model.checks import check_numerics

    try:
        inputs = parse_inputs(args.inputs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", obs_mod.ObservationWarning)
            obs = obs_mod.read_csv(args.observations, negative_d=args.negative_d)
    except (ValueError, OSError) as err:  # ObservationError, unknown NAME=VALUE, missing or unreadable file
        print(f"fluxsim fit: {err}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"fluxsim fit: warning: {warning.message}", file=sys.stderr)
    names = [n.strip() for n in args.params.split(",") if n.strip()]
    if args.blocked_fraction is not None:
        inputs["blocked_fraction"] = args.blocked_fraction
    if args.arc_center_rad is not None:
        inputs["arc_center_rad"] = args.arc_center_rad
    if "blocked_fraction" not in names:
        inputs.setdefault("blocked_fraction", 0.25)
    if "arc_center_rad" not in names:
        inputs.setdefault("arc_center_rad", 0.0)
    inputs.pop("surface_model", None)
    numerics = None
    if args.numerics:
        try:
            nr, nphi, n_steps = (int(v) for v in args.numerics.split(","))
        except ValueError:
            print(f"fluxsim fit: --numerics expects NR,NPHI,NSTEPS, got {args.numerics!r}", file=sys.stderr)
            return 2
        numerics = Numerics(nr=nr, nphi=nphi, n_steps=n_steps)
        try:
            check_numerics(numerics, prefix="--numerics ")
        except ValueError as err:
            print(f"fluxsim fit: {err}", file=sys.stderr)
            return 2
    particles = [args.particle] if args.particle is not None else obs.particles
    out = Path(args.out) if args.out else Path("outputs") / "fit" / Path(args.observations).stem
    for particle in particles:
        try:
            data = obs.select(particle)
        except KeyError as err:
            print(f"fluxsim fit: {err.args[0]}", file=sys.stderr)
            return 2
        try:
            result = fit_mod.fit(data, names, model=args.model, numerics=numerics, method=args.method,
                                 n_candidates=args.candidates, n_starts=args.starts, seed=args.seed,
                                 profile=None if args.profile == "none" else args.profile, verbose=not args.quiet,
                                 **inputs)
        except ValueError as err:
            print(f"fluxsim fit: {err}", file=sys.stderr)
            return 2
        folder = out if len(particles) == 1 else out / particle
        paths = result.save(folder)
        print(result.summary())
        for path in paths.values():
            print(f"wrote {path}")
    print(out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

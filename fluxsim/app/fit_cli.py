"""``fluxsim fit OBS.csv ...`` / ``fluxsim fit --stack FIELD.npz ...``: fit surface-blocking inputs to microscopy
core-offset measurements, on each particle's own outline.

    fluxsim fit particle_A.csv                                   # eta, with blocked_fraction = 0.25, a disk
    fluxsim fit particle_A.csv --params eta,arc_center_rad --blocked-fraction 0.3 --out fits/A
    fluxsim fit particle_A.csv --model B --params eta,r_NMC_ohm_m2 blocked_fraction=0.25 arc_center_rad=0
    fluxsim fit data.csv --particle A --spacing 0.0625          # one particle of a multi-particle file
    fluxsim fit particle_A.csv --mask A_mask.npy --pixel-size-m 5e-8   # the particle's outline from its mask
    fluxsim fit --stack field_100mAg.npz --d-sigma-nm 20         # every particle of a field of view

With ``--stack`` (one ``.npz`` per rate of the same field of view: ``frames``, ``times_s``, ``pixel_size_m``,
``rate_mA_per_g``; :mod:`fluxsim.imaging.segment`) the particles are segmented from the first stack's mean frame
(or taken from ``--mask``, a boolean or integer-label ``.npy``), each particle's d(t) is measured on its own sub-stack
and fitted on its own outline and equivalent radius: one report per particle in ``--out/<particle>/`` and a summary
over particles in ``--out/summary.zarr``.

A plain argparse sub-command (not a hydra app): a fit is one job on one file, so the options are few; fixed
physical inputs are given as ``NAME=VALUE`` arguments with the names of :func:`fluxsim.api.make_params` (the same
names as the hydra config's inputs, e.g. ``blocked_fraction=0.25 D_hi_m2_per_s=2e-14``). Writes ``fit.json``,
``fit.zarr`` and ``fit.png`` into ``--out`` (default ``outputs/fit/<csv or first stack stem>``; one sub-folder per
particle when the data hold several and ``--particle`` is not given), prints the summary, and the output folder as
the last line.
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
    p.add_argument("observations", nargs="?", default=None, help="measurements CSV (docs/fit.md); or give --stack")
    p.add_argument("--stack", action="append", default=None, metavar="FIELD.npz",
                   help="field-of-view image stack at one rate (repeat for more rates of the same field); every "
                        "particle is segmented and fitted on its own outline")
    p.add_argument("--mask", default=None, metavar="MASK.npy",
                   help="with --stack: the segmentation (boolean or integer labels); with a CSV: the particle's mask "
                        "(its outline; needs --pixel-size-m)")
    p.add_argument("--pixel-size-m", type=float, default=None, help="pixel edge of --mask with a CSV [m]")
    p.add_argument("--d-sigma-nm", type=float, default=None,
                   help="with --stack: uncertainty of each offset component [nm] (default: from the scatter)")
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
    p.add_argument("--spacing", type=float, default=None,
                   help="mesh node spacing in units of the equivalent radius (default: fluxsim.fit.DEFAULT_NUMERICS)")
    p.add_argument("--rtol", type=float, default=None, help="time-step error tolerance (default: the fit's)")
    p.add_argument("--negative-d", choices=("noise", "drop", "refuse"), default="noise",
                   help="rows with negative d: keep them as noise around 0 when within 3 standard uncertainties "
                        "(default), drop them, or refuse them (docs/fit.md)")
    p.add_argument("--seed", type=int, default=0, help="seed of the multi-start sample")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _numerics(args):
    """The fit's numerics with ``--spacing`` / ``--rtol`` applied (ValueError naming the option)."""
    import dataclasses

    from fluxsim.fit import DEFAULT_NUMERICS

    numerics = DEFAULT_NUMERICS
    if args.spacing is not None:
        from fluxsim.core.outline import check_spacing

        try:
            check_spacing(args.spacing)
        except ValueError as err:
            raise ValueError(f"--spacing: {err}") from None
        numerics = dataclasses.replace(numerics, spacing=args.spacing)
    if args.rtol is not None:
        if not 0 < args.rtol < 1:
            raise ValueError(f"--rtol must be in (0, 1), got {args.rtol}")
        integrator = dataclasses.replace(numerics.integrator, rtol=args.rtol, atol=args.rtol * 1e-2)
        numerics = dataclasses.replace(numerics, integrator=integrator)
    return numerics


def _fit_options(args, inputs, numerics) -> dict:
    return dict(model=args.model, numerics=numerics, method=args.method, n_candidates=args.candidates,
                n_starts=args.starts, seed=args.seed, profile=None if args.profile == "none" else args.profile,
                **inputs)


def _fit_stacks(args, names, inputs, numerics) -> int:
    """``--stack``: every particle of the field of view; one report each and the summary."""
    import numpy as np

    from fluxsim.imaging import segment

    try:
        stacks = [segment.load_field_stack(path) for path in args.stack]
        mask = np.load(args.mask) if args.mask else None
    except (ValueError, OSError) as err:
        print(f"fluxsim fit: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("outputs") / "fit" / Path(args.stack[0]).stem
    log = None if args.quiet else (lambda msg: print(f"[fit] {msg}", flush=True))
    try:
        particles, results, summary = segment.fit_field_of_view(
            stacks, names, mask=mask, d_sigma_nm=args.d_sigma_nm, log=log, verbose=not args.quiet,
            **_fit_options(args, inputs, numerics))
    except ValueError as err:
        print(f"fluxsim fit: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for particle in particles:
        result = results[particle.name]
        if isinstance(result, str):
            print(f"fluxsim fit: particle {particle.name}: {result}", file=sys.stderr)
            continue
        paths = result.save(out / particle.name)
        print(f"particle {particle.name} ({particle.radius_m * 1e9:.0f} nm equivalent radius):")
        print(result.summary())
        for path in paths.values():
            print(f"wrote {path}")
    summary.to_zarr(out / "summary.zarr", mode="w", consolidated=False)
    print(f"wrote {out / 'summary.zarr'} ({len(particles)} particles)")
    print(out, flush=True)
    return 0 if any(not isinstance(r, str) for r in results.values()) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fluxsim fit`` (``argv`` without the ``fit`` word); computes in float64."""
    from fluxsim.precision import enable_float64

    enable_float64()
    args = build_parser().parse_intermixed_args(sys.argv[1:] if argv is None else argv)

    from fluxsim import fit as fit_mod
    from fluxsim.io import observations as obs_mod

    if (args.observations is None) == (args.stack is None):
        print("fluxsim fit: give either a measurements CSV or --stack FIELD.npz (not both)", file=sys.stderr)
        return 2
    try:
        inputs = parse_inputs(args.inputs)
        numerics = _numerics(args)
    except ValueError as err:
        print(f"fluxsim fit: {err}", file=sys.stderr)
        return 2
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
    if args.stack is not None:
        return _fit_stacks(args, names, inputs, numerics)
    outline = None
    try:
        if args.mask is not None:
            import numpy as np

            from fluxsim.core.outline import outline_from_mask

            if args.pixel_size_m is None:
                raise ValueError("--mask with a CSV needs --pixel-size-m (the mask's pixel edge [m])")
            outline, radius_m = outline_from_mask(np.load(args.mask).astype(bool), args.pixel_size_m)
            inputs.setdefault("radius_m", radius_m)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", obs_mod.ObservationWarning)
            obs = obs_mod.read_csv(args.observations, negative_d=args.negative_d)
    except (ValueError, OSError) as err:  # ObservationError, unknown NAME=VALUE, missing or unreadable file
        print(f"fluxsim fit: {err}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"fluxsim fit: warning: {warning.message}", file=sys.stderr)
    particles = [args.particle] if args.particle is not None else obs.particles
    out = Path(args.out) if args.out else Path("outputs") / "fit" / Path(args.observations).stem
    for particle in particles:
        try:
            data = obs.select(particle)
        except KeyError as err:
            print(f"fluxsim fit: {err.args[0]}", file=sys.stderr)
            return 2
        try:
            result = fit_mod.fit(data, names, outline=outline, verbose=not args.quiet,
                                 **_fit_options(args, inputs, numerics))
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

"""Make the example image stacks of docs/fit.md: one non-disk particle charged at 100 and 400 mA/g.

A lobed particle (equivalent radius 1.2 um; outline r(phi) = 1 + 0.18 cos 2(phi - 0.5) + 0.07 cos(3 phi + 1)) with
a quarter of its perimeter blocked at eta = 0.35, centred at 2.5 rad, simulated with the mesh core at the solver's
default numerics and rendered (fluxsim.imaging.synthetic_field) as a 64 x 64 pixel field (60 nm pixels), 16 frames
per rate over 0-20 mAh/g, with a Gaussian blur of 0.8 pixel, a background gradient, 1 % noise, and quantised to
16-bit camera counts. Writes docs/data/example_{100,400}mAg.npz (about 100 kB each).

    python examples/make_example_stack.py
"""

import math
from pathlib import Path

import numpy as np

from fluxsim.api import make_params
from fluxsim.core.outline import Curve
from fluxsim.imaging import segment, synthetic_field
from fluxsim.precision import enable_float64

TRUTH = {"eta": 0.35, "blocked_fraction": 0.25, "arc_center_rad": 2.5}
RATES_MA_PER_G = (100.0, 400.0)
CAPACITIES_MAH_PER_G = np.linspace(0.0, 20.0, 16)
OUT = Path(__file__).resolve().parents[1] / "docs" / "data"
COUNTS = 20000.0  # camera counts of the particle's initial intensity


def outline() -> Curve:
    phi = np.linspace(0.0, 2 * math.pi, 400, endpoint=False)
    r = 1.0 + 0.18 * np.cos(2 * (phi - 0.5)) + 0.07 * np.cos(3 * phi + 1.0)
    return Curve(np.c_[r * np.cos(phi), r * np.sin(phi)])


def main():
    enable_float64()
    particle = synthetic_field.PlacedParticle(outline(), 1.2e-6, (31.5, 32.0), make_params(**TRUTH))
    OUT.mkdir(parents=True, exist_ok=True)
    for k, rate in enumerate(RATES_MA_PER_G):
        times = CAPACITIES_MAH_PER_G * 3600.0 / rate
        stack = synthetic_field.render_field([particle], (64, 64), 60e-9, rate, times, gradient=(0.08, 0.12),
                                             blur_px=0.8, noise=0.01, seed=k)
        counts = np.clip(np.round(stack.frames * COUNTS), 0, 65535).astype(np.uint16)
        path = OUT / f"example_{rate:g}mAg.npz"
        np.savez_compressed(path, frames=counts, times_s=stack.times_s, pixel_size_m=stack.pixel_size_m,
                            rate_mA_per_g=stack.rate_mA_per_g)
        check = segment.load_field_stack(path)
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, {check.frames.shape})")


if __name__ == "__main__":
    main()

"""float32 mode (for GPUs): every output in float32, and its accuracy loss against float64 is small.

Measured at 16 x 64 nodes, 200 steps, case (c): capacity 7e-6 relative, d within 0.011 nm, core fraction within
2e-5, fields within 1.4e-5, Li balance within 4e-6. Bounds below are ~10x those (float32 rounding accumulates over
the 200 steps; the exact figures depend on the CPU's instruction set).
"""

import dataclasses

import numpy as np
from conftest import POLAR_COARSE as COARSE
from helpers import polar_batched as batched
from helpers import stack, unbatch

from fluxsim import outputs
from fluxsim.api import make_params
from fluxsim.core.polar import solver as polar

TIMES = np.array([300.0, 600.0, 900.0])


def test_float32_matches_float64():
    p = make_params(eta=0.3, blocked_fraction=0.25)
    runs = {}
    for dtype in ("float64", "float32"):
        numerics = dataclasses.replace(polar.Numerics(**COARSE), dtype=dtype)
        runs[dtype] = unbatch(batched(numerics, snapshot_times_s=(600.0,))(stack([p])), 0)
    a, b = runs["float64"], runs["float32"]
    for name, value in b._asdict().items():
        if np.asarray(value).dtype.kind == "f":
            assert np.asarray(value).dtype == np.float32, name
    cap_a, cap_b = float(outputs.capacity_at_cutoff(a)), float(outputs.capacity_at_cutoff(b))
    assert abs(cap_a - cap_b) < 1e-4 * cap_a
    d_a = np.asarray(outputs.at_times(a, outputs.offset_nm(a), TIMES))
    d_b = np.asarray(outputs.at_times(b, outputs.offset_nm(b), TIMES))
    assert np.max(np.abs(d_a - d_b)) < 0.1
    core_a = np.asarray(outputs.at_times(a, a.core_fraction, TIMES))
    core_b = np.asarray(outputs.at_times(b, b.core_fraction, TIMES))
    assert np.max(np.abs(core_a - core_b)) < 2e-4
    assert np.max(np.abs(np.asarray(a.snapshots) - np.asarray(b.snapshots))) < 1e-4
    assert np.max(np.abs(np.asarray(a.mean_theta) - np.asarray(b.mean_theta))) < 4e-5

"""Precision is an explicit choice (fluxsim.precision): importing fluxsim leaves JAX's float32 default alone, the
solver refuses float64 numerics while x64 is off (saying how to switch it on), and fluxsim.run switches it on."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CODE = """
import jax, fluxsim
print("after import:", jax.config.jax_enable_x64)
try:
    fluxsim.simulate(fluxsim.make_params(), fluxsim.mesh_outline(fluxsim.Disk(), 0.25), (fluxsim.Charge(),),
                     fluxsim.Numerics(spacing=0.25), save_times_s=(0.0, 60.0))
except ValueError as err:
    print("refused:", err)
r = fluxsim.run(numerics=fluxsim.Numerics(spacing=0.25, integrator=fluxsim.RKLSettings(rtol=3e-2)),
                save_times_s=(0.0, 60.0), protocol=[fluxsim.Charge(max_duration_s=60.0)])
print("after run:", jax.config.jax_enable_x64, r.capacity_at_cutoff_mAh_per_g.dtype if hasattr(
    r.capacity_at_cutoff_mAh_per_g, "dtype") else type(r.capacity_at_cutoff_mAh_per_g).__name__)
"""


def test_import_leaves_precision_alone_and_the_solver_says_how():
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=env).stdout
    assert "after import: False" in out
    assert "refused: numerics.dtype = 'float64' needs 64-bit floats in JAX" in out
    assert "fluxsim.enable_float64()" in out
    assert "after run: True" in out

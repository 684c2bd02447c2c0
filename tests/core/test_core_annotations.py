"""The jaxtyping shape annotations of the core's public functions are checked (issue 10, "shapes in types").

A fresh interpreter imports ``fluxsim.core`` under jaxtyping's import hook with beartype, so every annotated
function checks its arguments' and results' shapes and dtypes at call (and trace) time, then runs one small polar
simulation with its outputs and one state of the mesh core (operator, drive, observables). A wrong-rank call must be
refused, which shows the hook is active.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jaxtyping")
pytest.importorskip("beartype")

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from jaxtyping import TypeCheckError, install_import_hook

with install_import_hook("fluxsim.core", "beartype.beartype"):
    import fluxsim
    from fluxsim.core import clipping, fv, observables, outputs, rim
    from fluxsim.core.mesh import mesh_outline
    from fluxsim.core.polar.solver import Numerics, simulate

import jax
import jax.numpy as jnp

from fluxsim.api import make_params
from fluxsim.model.protocol import Charge

fluxsim.enable_float64()
params = make_params(blocked_fraction=0.25, eta=0.3)
solution = simulate(params, (Charge(),), Numerics(nr=8, nphi=32, n_steps=40))
d = outputs.offset_nm(solution)
assert d.shape == solution.t_s.shape
for value in (outputs.capacity_at_cutoff(solution), outputs.time_to_cutoff(solution),
              outputs.offset_at_core_fraction(solution, 0.25), outputs.core_vanish_capacity(solution)):
    assert value.shape == ()
assert outputs.at_times(solution, d, jnp.array([10.0, 20.0])).shape == (2,)
assert outputs.spread(solution).shape == solution.t_s.shape

mesh = mesh_outline(spacing=0.25)
theta = 0.9 - 0.1 * jnp.tanh(mesh.xy[:, 0])
drive = rim.make_drive(mesh, params, 50.0)
dtheta, voltage = jax.jit(fv.kirchhoff_rhs)(mesh, params, theta, drive)
assert dtheta.shape == theta.shape and voltage.shape == ()
outflow, slope, _ = rim.rim_outflow(params, theta[: mesh.n_rim], drive)
assert outflow.shape == slope.shape == (mesh.n_rim,)
stencil = observables.line_cut_stencil(mesh, 0.0)
seen = observables.observe(mesh, theta, 0.95, 0.02, stencil)
assert seen.line_cut.shape == stencil.position.shape

try:
    fv.net_inflow(mesh, theta[:, None])
except TypeCheckError:
    pass
else:
    raise AssertionError("a (n, 1) potential passed the (n,) annotation: the hook is not checking")
try:
    clipping.clip_moments(jnp.zeros((4, 3)), jnp.zeros((4, 3)), jnp.zeros((5, 3)), jnp.zeros(4), jnp.zeros(2))
except TypeCheckError:
    pass
else:
    raise AssertionError("triangles of different counts passed clip_moments' annotation")
print("checked")
"""


def test_core_runs_under_the_shape_checking_import_hook():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().endswith("checked")

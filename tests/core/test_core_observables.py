"""Observables on any outline: exact clipping, d from the area centroid, line cut, resampling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shapes import OUTLINES

from fluxsim.core import observables as ob
from fluxsim.core import raster
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import polygon_area_centroid

SPACING = 0.06


@pytest.fixture(scope="module", params=sorted(OUTLINES))
def mesh(request):
    return mesh_outline(OUTLINES[request.param], SPACING)


def _rim_polygon(mesh):
    n = int(np.asarray(mesh.node_mask[: mesh.n_rim]).sum())
    return np.asarray(mesh.xy[:n])


def _clip_half_plane(poly, normal, level):
    """Sutherland-Hodgman: the part of ``poly`` where ``x . normal > level``."""
    out = []
    for p, q in zip(poly, np.roll(poly, -1, axis=0)):
        fp, fq = p @ normal - level, q @ normal - level
        if fp > 0:
            out.append(p)
        if fp * fq < 0:
            out.append(p + fp / (fp - fq) * (q - p))
    return np.asarray(out)


def _linear(mesh, normal, offset=0.5):
    return offset + mesh.xy @ jnp.asarray(normal)


core = jax.jit(ob.core)
cores = jax.jit(ob.cores)


def test_core_of_a_linear_field_is_the_exact_half_plane(mesh):
    """A linear field's super-level set is a half plane: fraction and centroid equal the exact polygon clip."""
    poly = _rim_polygon(mesh)
    for normal, level in (((0.3, -0.1), 0.05), ((-0.2, -0.25), -0.1), ((0.0, 0.4), 0.3)):
        normal = np.asarray(normal)
        got = core(mesh, _linear(mesh, normal), 0.5 + level)
        area, centroid = polygon_area_centroid(_clip_half_plane(poly, normal, level))
        assert float(got.fraction) == pytest.approx(area / math.pi, rel=1e-11)
        assert float(got.x) == pytest.approx(centroid[0], abs=1e-11)
        assert float(got.y) == pytest.approx(centroid[1], abs=1e-11)


def test_no_core_and_all_core(mesh):
    theta = jnp.full(mesh.xy.shape[0], 0.9)
    none, every = core(mesh, theta, 0.95), core(mesh, theta, 0.5)
    assert float(none.fraction) == 0 and float(none.x) == 0 and float(none.y) == 0
    assert float(every.fraction) == pytest.approx(1.0, rel=1e-13)
    assert abs(float(every.x)) < 1e-12 and abs(float(every.y)) < 1e-12


def test_smooth_core_tends_to_the_hard_core(mesh):
    theta = 0.9 + 0.05 * jnp.tanh(2 * mesh.xy[:, 0] + mesh.xy[:, 1])
    hard = core(mesh, theta, 0.92)
    gaps = [abs(float(cores(mesh, theta, 0.92, w)[1].x - hard.x)) for w in (1e-2, 1e-3)]
    assert gaps[1] < gaps[0] / 5 and gaps[1] < 1e-3


def test_line_cut_runs_rim_to_rim_and_interpolates_exactly(mesh):
    angle = 2.4
    stencil = jax.jit(ob.line_cut_stencil)(mesh, angle)
    direction = np.array([math.cos(angle), math.sin(angle)])
    ends = np.asarray(mesh.centroid) + np.asarray(stencil.position)[[0, -1], None] * direction
    poly = _rim_polygon(mesh)
    a, d = poly, np.roll(poly, -1, axis=0) - poly
    for p in ends:  # both ends on the rim
        t = np.clip(((p - a) * d).sum(1) / (d * d).sum(1), 0, 1)
        assert np.min(np.linalg.norm(p - (a + t[:, None] * d), axis=1)) < 1e-12
    assert float(stencil.position[0]) < 0 < float(stencil.position[-1])
    normal = np.array([0.2, -0.7])
    values = np.asarray(ob.line_cut(stencil, _linear(mesh, normal)))
    points = np.asarray(mesh.centroid) + np.asarray(stencil.position)[:, None] * direction
    assert np.allclose(values, 0.5 + points @ normal, atol=1e-12)
    assert np.allclose(np.asarray(stencil.weights).sum(axis=1), 1.0)
    assert np.all(np.asarray(stencil.weights) > -1e-12)


def test_gradients_of_observables():
    """d(core x)/d(field) and d(line cut)/d(angle) against central differences."""
    mesh = mesh_outline(OUTLINES["irregular"], SPACING)
    base = 0.9 + 0.05 * jnp.tanh(2 * mesh.xy[:, 0] + mesh.xy[:, 1])
    direction = jnp.sin(3 * mesh.xy[:, 1])

    def core_x(eps):
        hard, smooth = ob.cores(mesh, base + eps * direction, 0.92, 0.005)
        return hard.x + smooth.fraction

    def cut(angle):
        return jnp.sum(ob.line_cut(ob.line_cut_stencil(mesh, angle), base) * jnp.linspace(0, 1, 65))

    for f, x in ((core_x, 0.0), (cut, 2.0)):
        g = float(jax.jit(jax.grad(f))(x))
        fj = jax.jit(f)
        fd = float((fj(x + 1e-6) - fj(x - 1e-6)) / 2e-6)
        assert g == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_ranges_and_mean_ignore_padding(mesh):
    theta = _linear(mesh, (0.1, 0.05))
    poisoned = jnp.where(mesh.node_mask, theta, 7.0)
    real = np.asarray(theta)[np.asarray(mesh.node_mask)]
    assert float(ob.theta_range(mesh, poisoned)[1]) == pytest.approx(real.max())
    rim_real = np.asarray(theta)[: mesh.n_rim][np.asarray(mesh.node_mask)[: mesh.n_rim]]
    assert [float(v) for v in ob.surface_range(mesh, poisoned)] == pytest.approx([rim_real.min(), rim_real.max()])
    # lumped masses integrate P1 fields exactly: the mean of a linear field is its value at the area centroid (0)
    assert float(ob.mean_theta(mesh, poisoned)) == pytest.approx(0.5, abs=1e-13)


def test_resample_on_a_pixel_grid(mesh):
    """The grid stencil reproduces a linear field exactly inside the particle and is NaN outside."""
    normal = np.array([0.3, 0.2])
    grid = np.linspace(-2, 2, 41)
    stencil = raster.grid_stencil(np.asarray(mesh.xy), raster.triangles_on_host(mesh), grid, grid)
    values = raster.apply_stencil(stencil, np.asarray(_linear(mesh, normal)))
    x, y = np.meshgrid(grid, grid)
    inside = np.isfinite(values)
    assert 0.5 * math.pi < inside.sum() * 0.1**2 < 1.5 * math.pi
    assert np.allclose(values[inside], 0.5 + x[inside] * normal[0] + y[inside] * normal[1], atol=1e-12)
    assert np.isnan(values[0, 0])


def test_uniform_flux_on_the_disk_keeps_the_core_centred():
    """eta = 1 on the disk: a radially symmetric state stays symmetric under the operator, d = 0 to rounding."""
    from fluxsim.core import fv, rim
    from fluxsim.core.outline import Disk
    from fluxsim.model.params import Params

    disk = mesh_outline(Disk())
    params = Params()
    theta = 0.99 - 0.1 * jnp.sum(disk.xy**2, axis=1) ** 1.5
    rhs = jax.jit(fv.kirchhoff_rhs)(disk, params, theta, rim.make_drive(disk, params, 100.0))[0]
    hard, smooth = cores(disk, theta + 0.05 * rhs, 0.97, 0.005)
    assert 0.05 < float(hard.fraction) < 0.95
    assert max(abs(float(v)) for v in (hard.x, hard.y, smooth.x, smooth.y)) < 1e-12

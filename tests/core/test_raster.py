"""core.raster: exact point location and P1 weights on a pixel grid, against matplotlib's triangulation
interpolator (tests/reference/mpl_resample.py), on an ellipse mesh."""

import numpy as np
from reference.mpl_resample import resample

from fluxsim.core import raster
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import Ellipse


def test_grid_values_are_the_p1_interpolant():
    mesh = mesh_outline(Ellipse(1.8, 0.4), 0.125)
    xy, area = np.asarray(mesh.xy), np.asarray(mesh.triangle_area)
    triangles = np.asarray(mesh.triangles)[area > 0]
    field = np.random.default_rng(0).uniform(0.5, 1.0, len(xy))
    x, y = np.linspace(-1.5, 1.5, 97), np.linspace(-1.3, 1.3, 83)
    stencil = raster.grid_stencil(xy, triangles, x, y)
    ours = raster.apply_stencil(stencil, field)
    theirs = resample(mesh, field, *np.meshgrid(x, y))
    both = np.isfinite(ours) & np.isfinite(theirs)
    assert both.sum() > 0.3 * ours.size
    np.testing.assert_allclose(ours[both], theirs[both], rtol=0, atol=1e-12)
    assert np.sum(np.isfinite(ours) != np.isfinite(theirs)) <= 2  # at most points exactly on the rim differ
    np.testing.assert_allclose(stencil.weights.sum(axis=-1)[stencil.inside], 1.0, atol=1e-12)
    pixel = (x[1] - x[0]) * (y[1] - y[0])
    assert abs(stencil.inside.sum() * pixel / np.pi - 1) < 0.03  # the outline's area (pi, unit R_eq)
    stacked = raster.apply_stencil(stencil, np.stack([field, 2 * field]))  # several fields, one gather
    np.testing.assert_allclose(stacked[1][both], 2 * ours[both], atol=1e-12)

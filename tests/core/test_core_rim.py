"""Rim transfer weights: arcs by perimeter length from the area centroid, exact over each node's share."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shapes import OUTLINES

from fluxsim.core import rim
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import Disk, Ellipse
from fluxsim.surface import make_blocking

weights = jax.jit(rim.rim_weights)
crossing = jax.jit(rim.ray_rim_crossing)


def _rim(mesh):
    n = int(np.asarray(mesh.node_mask[: mesh.n_rim]).sum())
    return n, np.asarray(mesh.xy[:n]), np.asarray(mesh.rim_s_lo[:n]), np.asarray(mesh.rim_s_hi[:n])


def _point_at(mesh, s):
    """The rim point at arclength s (numpy, by walking the rim polygon)."""
    n, xy, _, _ = _rim(mesh)
    edges = np.linalg.norm(np.roll(xy, -1, axis=0) - xy, axis=1)
    start = np.concatenate([[0.0], np.cumsum(edges)[:-1]])
    i = np.searchsorted(start, s, side="right") - 1
    return xy[i] + (s - start[i]) / edges[i] * (np.roll(xy, -1, axis=0)[i] - xy[i])


def _expected_cover(lo, hi, centre, length, perimeter):
    """Length of each share [lo, hi] covered by the periodic interval centred at ``centre``."""
    total = np.zeros_like(lo)
    for shift in (-perimeter, 0.0, perimeter):
        a, b = centre - length / 2 + shift, centre + length / 2 + shift
        total += np.maximum(0.0, np.minimum(hi, b) - np.maximum(lo, a))
    return total


@pytest.mark.parametrize("name, angle", [("ellipse2", math.pi / 2), ("irregular", 0.7), ("mask", 4.0),
                                         ("disk", math.pi)])
def test_arc_is_centred_on_the_ray_and_integrated_exactly(name, angle):
    mesh = mesh_outline(OUTLINES[name], 0.05)
    n, xy, lo, hi = _rim(mesh)
    s_c, reach = (float(v) for v in crossing(mesh, angle))
    point = _point_at(mesh, s_c)
    assert np.arctan2(point[1], point[0]) == pytest.approx(math.remainder(angle, 2 * math.pi), abs=1e-12)
    assert np.hypot(*point) == pytest.approx(reach, rel=1e-12)
    eta, f = 0.3, 0.25
    w = np.asarray(weights(mesh, make_blocking(eta=eta, blocked_fraction=f, arc_center_rad=angle)))[:n]
    covered = (hi - lo - w) / (1 - eta)
    perimeter = float(mesh.perimeter)
    assert covered.sum() == pytest.approx(f * perimeter, rel=1e-12)
    assert np.allclose(covered, _expected_cover(lo, hi, s_c, f * perimeter, perimeter), atol=1e-12)


def test_ellipse_arc_sits_at_the_top():
    """On an ellipse (long axis along x) the arc at pi/2 is centred on the top vertex (0, b)."""
    mesh = mesh_outline(Ellipse(2.0, 0.0), 0.04)
    s_c, reach = (float(v) for v in crossing(mesh, math.pi / 2))
    point = _point_at(mesh, s_c)
    assert point[0] == pytest.approx(0.0, abs=1e-12)
    assert point[1] == pytest.approx(1 / math.sqrt(2), rel=2e-3)


def test_shares_sum_to_the_perimeter_and_several_arcs_add_up():
    mesh = mesh_outline(OUTLINES["irregular"], 0.05)
    n, _, lo, hi = _rim(mesh)
    open_w = np.asarray(weights(mesh, make_blocking()))
    assert open_w.sum() == pytest.approx(float(mesh.perimeter), rel=1e-13)
    assert np.all(open_w[n:] == 0)
    arcs = [[0.5, 0.1, 0.6], [4.0, 0.05, 0.0]]
    w = np.asarray(weights(mesh, make_blocking(eta=0.2, blocked_fraction=0.2, arc_center_rad=2.2, extra_arcs=arcs)))
    lost = (1 - 0.2) * 0.2 + (1 - 0.6) * 0.1 + 1.0 * 0.05
    assert w.sum() == pytest.approx(float(mesh.perimeter) * (1 - lost), rel=1e-12)


def test_eta_profile_runs_along_the_rim_angle():
    """A profile is sampled evenly in u = 2 pi s / P from the +x ray: its integral is P x the samples' mean."""
    mesh = mesh_outline(OUTLINES["ellipse2"], 0.05)
    profile = 0.6 + 0.4 * np.cos(np.arange(16) * 2 * np.pi / 16)
    w = np.asarray(weights(mesh, make_blocking(eta_profile=profile)))
    assert w.sum() == pytest.approx(float(mesh.perimeter) * profile.mean(), rel=1e-12)
    half = np.asarray(weights(mesh, make_blocking(eta_profile=np.full(7, 0.5))))
    assert np.allclose(half, 0.5 * np.asarray(mesh.rim_share), atol=1e-15)
    # the profile's maximum (u = 0) lies at the +x crossing: the weight per share is largest there
    n, _, lo, hi = _rim(mesh)
    s0 = float(crossing(mesh, 0.0)[0])
    density = w[:n] / (hi - lo)
    assert abs(math.remainder(0.5 * (lo + hi)[np.argmax(density)] - s0, float(mesh.perimeter))) < 0.1


def test_weights_are_differentiable_in_the_arc():
    mesh = mesh_outline(Disk(), 0.05)
    probe = jnp.asarray(mesh.xy[: mesh.n_rim, 1])  # weight the rim by y: an "asymmetry" of the transfer

    def f(x):
        eta, fraction, centre = x
        return jnp.sum(probe * rim.rim_weights(mesh, make_blocking(eta=eta, blocked_fraction=fraction,
                                                                   arc_center_rad=centre)))

    x = jnp.array([0.3, 0.25, 2.0])
    grad = jax.jit(jax.grad(f))(x)
    f_jit = jax.jit(f)
    for i in range(3):
        step = 1e-6 * jnp.eye(3)[i]
        fd = (f_jit(x + step) - f_jit(x - step)) / 2e-6
        assert float(grad[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)

"""fluxsim.run on the mesh core: any outline in, a Result with series, scalars, the mesh and node fields out."""

import numpy as np
import pytest
from app_support import assert_figure
from conftest import COARSE

import fluxsim

RADIUS_M = 1.2e-6
RATE = 100.0


@pytest.fixture(scope="module")
def ellipse_run():
    """Case (c) (eta 0.3, a quarter of the rim blocked around -x) on an ellipse of aspect 1.8 (long axis along x)."""
    return fluxsim.run(outline=fluxsim.Ellipse(1.8), eta=0.3, blocked_fraction=0.25, radius_m=RADIUS_M,
                       rate_mA_per_g=RATE, numerics=fluxsim.Numerics(**COARSE), snapshot_times_s=[300.0, 900.0])


def test_the_core_moves_towards_the_blocked_arc_and_the_capacity_is_the_current_integral(ellipse_run):
    r = ellipse_run
    assert r.reached_cutoff and r.complete and r.numerics.integer_exponent == 3
    assert r.t_s[-1] > r.time_to_cutoff_s  # the default grid covers the whole charge
    d = r.offset_at([60.0, 300.0, 600.0])
    assert 0 < d[0] < d[1] < d[2]  # d grows while the core shrinks
    core = r.series("core_fraction") > 0.01
    np.testing.assert_allclose(np.mod(r.offset_direction_rad[core][1:], 2 * np.pi), np.pi, atol=1e-9)  # mirror y
    assert r.capacity_at_cutoff_mAh_per_g == pytest.approx(RATE * r.time_to_cutoff_s / 3600.0, rel=1e-10)
    assert r.core_vanish_position_nm > 0 and np.isfinite(r.core_vanish_capacity_mAh_per_g)


def test_mesh_views_are_the_real_nodes_and_triangles(ellipse_run):
    r = ellipse_run
    xy, tri, snaps = r.node_xy_nm, r.triangles, r.snapshots
    assert snaps.shape == (2, len(xy)) and np.isfinite(snaps).all() and tri.max() == len(xy) - 1
    p = xy[tri]
    area = 0.5 * ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                  - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
    assert area.min() > 0  # counter-clockwise, none degenerate
    assert area.sum() == pytest.approx(np.pi * (RADIUS_M * 1e9) ** 2, rel=1e-9)  # radius_m is the equivalent radius
    centroid = (area[:, None] * p.mean(axis=1)).sum(axis=0) / area.sum()
    np.testing.assert_allclose(centroid, 0.0, atol=1e-9 * RADIUS_M * 1e9)  # relative to the area centroid
    assert np.ptp(xy[:, 0]) / np.ptp(xy[:, 1]) == pytest.approx(1.8, rel=0.02)  # long axis along x
    lc = r.line_cut_position_nm
    assert lc[0] < 0 < lc[-1] and lc[-1] == pytest.approx(RADIUS_M * 1e9 * 1.8**0.5, rel=0.01)  # rim at the arc


def test_field_on_grid_resamples_a_snapshot(ellipse_run):
    r = ellipse_run
    g = r.field_on_grid(1, n_pixels=64)
    assert g.theta.shape == (64, 64) and g.x_nm.shape == g.y_nm.shape == (64,)
    inside = np.isfinite(g.theta)
    pixel = (g.x_nm[1] - g.x_nm[0]) * (g.y_nm[1] - g.y_nm[0])
    assert inside.sum() * pixel == pytest.approx(np.pi * (RADIUS_M * 1e9) ** 2, rel=0.05)
    snap = r.snapshots[1]
    assert snap.min() - 1e-12 <= np.nanmin(g.theta) and np.nanmax(g.theta) <= snap.max() + 1e-12  # P1: no overshoot


def test_a_result_on_an_ellipse_plots(ellipse_run, tmp_path):
    from fluxsim.app import plots

    assert_figure(plots.result_snapshots(ellipse_run, tmp_path / "ellipse.png", dpi=60), min_size_px=(150, 250))


def test_default_time_grid_covers_the_protocol_and_is_shared_by_nearby_inputs():
    base = fluxsim.make_params(rate_mA_per_g=100.0)
    grid = fluxsim.api.default_save_times(base, (fluxsim.Charge(),))
    assert len(grid) == fluxsim.api.DEFAULT_SAVES and grid[0] == 0.0
    near = fluxsim.api.default_save_times(fluxsim.make_params(rate_mA_per_g=90.0), (fluxsim.Charge(),))
    assert near == grid  # the same compiled program
    rest = fluxsim.api.default_save_times(base, (fluxsim.Charge(max_duration_s=600.0), fluxsim.Rest(300.0)))
    assert rest[-1] >= 900.0

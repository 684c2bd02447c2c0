"""Non-disk outlines through the ``fluxsim`` command (tiny numerics): an aspect sweep meshes each outline once and
stores each point's mesh; its aspect-1 points are the disk run exactly; polygon and mask outlines run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from app_support import TINY, load_job, printed_folder, run_fluxsim

from fluxsim.app.cli import run_job
from fluxsim.io import store

#: The aspect sweep of conf/sweep/aspect.yaml for one eta (a quarter blocked), series and snapshots, no figures.
ASPECT = ["geometry=ellipse", "sweep=aspect", "sweep.grid.eta=[0.3]", "surface.blocked_fraction=0.25",
          "output.plots=false"]

#: Results of a point: series, scalars and its nodal snapshots.
COMPARED = ("passed_capacity_mAh_per_g", "mean_theta", "core_fraction", "offset_nm", "line_cut",
            "capacity_at_cutoff_mAh_per_g", "time_to_cutoff_s", "core_vanish_time_s", "n_evaluations")


def test_aspect_sweep_stores_each_mesh_and_its_disk_point_equals_a_disk_run(tmp_path):
    swept = store.open_store(tmp_path / printed_folder(run_fluxsim(*TINY, *ASPECT, cwd=tmp_path)) / "results.zarr")
    assert bool(swept["done"].all()) and int(swept["status"].max()) == 0
    assert swept["node_x_m"].dims == ("aspect", "node") and swept["triangles"].dims == ("aspect", "triangle", "corner")
    assert swept["line_cut_position_m"].dims == ("aspect", "position")
    assert swept["theta"].dims == ("aspect", "eta", "snapshot_time", "node")
    assert json.loads(swept.attrs["outline"]) == {"kind": "ellipse", "aspect": 1.8, "orientation_rad": 0.0,
                                                  "swept": ["aspect"]}
    # the long semi-axis grows as sqrt(aspect) x R_eq (area fixed), the short one shrinks
    reach = np.nanmax(np.abs(swept["node_x_m"].values), axis=1)
    np.testing.assert_allclose(reach, 1.2e-6 * np.sqrt([1.0, 1.5, 2.0]), rtol=0.02)
    tall = np.nanmax(np.abs(swept["node_y_m"].values), axis=1)
    np.testing.assert_allclose(tall, 1.2e-6 / np.sqrt([1.0, 1.5, 2.0]), rtol=0.02)
    cut = swept["line_cut_position_m"].values  # along the arc axis (pi): the long axis
    np.testing.assert_allclose(cut[:, -1] - cut[:, 0], 2.4e-6 * np.sqrt([1.0, 1.5, 2.0]), rtol=0.02)
    # the shape matters: a longer particle along the blocked axis takes longer to reach cut-off
    assert np.all(np.diff(swept["time_to_cutoff_s"].values[:, 0]) != 0)

    disk_overrides = ["sweep=single", "surface.eta=0.3", "surface.blocked_fraction=0.25", "output.plots=false"]
    disk = store.open_store(tmp_path / printed_folder(run_fluxsim(*TINY, *disk_overrides, cwd=tmp_path))
                            / "results.zarr").isel(point=0)
    first = swept.isel(aspect=0, eta=0)
    for name in COMPARED:
        np.testing.assert_allclose(first[name].values, disk[name].values, rtol=1e-10, atol=1e-12, equal_nan=True,
                                   err_msg=name)
    mine, theirs = first["node_mask"].values, disk["node_mask"].values  # same mesh, maybe other padding
    assert mine.sum() == theirs.sum()
    for name in ("node_x_m", "node_y_m"):
        np.testing.assert_array_equal(first[name].values[mine], disk[name].values[theirs])
    np.testing.assert_allclose(first["theta"].values[:, mine], disk["theta"].values[:, theirs], rtol=1e-10)


@pytest.mark.parametrize("outline", ["polygon", "mask"])
def test_polygon_and_mask_outlines_run(tmp_path, outline):
    """A pentagon (geometry=polygon) and a particle traced from a mask with a pixel size (which fixes its radius)
    run end to end: every point done, Li balance (capacity = current x time) and the core offset towards the arc."""
    overrides = [*TINY, "sweep=single", "surface.eta=0.3", "surface.blocked_fraction=0.25", "output.plots=false",
                 f"geometry={outline}", f"output.store={tmp_path / 's.zarr'}"]
    if outline == "mask":
        y, x = np.mgrid[:48, :48]
        blob = (x - 24) ** 2 / 20.0**2 + (y - 24) ** 2 / 12.0**2 <= 1  # an elliptic particle, 20 x 12 pixels
        np.save(tmp_path / "mask.npy", blob)
        overrides += [f"geometry.mask_file={tmp_path / 'mask.npy'}", "geometry.pixel_size_m=5e-8"]
    job = load_job(overrides)
    outcome = run_job(job, tmp_path / "run")
    assert outcome.n_failed == 0
    ds = store.open_store(outcome.store_path).isel(point=0)
    assert json.loads(ds.attrs["outline"])["kind"] == outline and bool(ds["done"])
    radius = job.params[0].radius_m
    if outline == "mask":
        assert radius == pytest.approx(np.sqrt(blob.sum() / np.pi) * 5e-8, rel=1e-12)
    area = 0.0  # the mesh's area in m2 (triangles on the stored nodes) is pi R_eq**2
    tri = ds["triangles"].values
    tri = tri[(tri >= 0).all(axis=1)]
    x, y = ds["node_x_m"].values, ds["node_y_m"].values
    area = 0.5 * np.abs((x[tri[:, 1]] - x[tri[:, 0]]) * (y[tri[:, 2]] - y[tri[:, 0]])
                        - (x[tri[:, 2]] - x[tri[:, 0]]) * (y[tri[:, 1]] - y[tri[:, 0]])).sum()
    assert area == pytest.approx(np.pi * radius**2, rel=1e-9)
    cap, t = ds["passed_capacity_mAh_per_g"].values, ds["time"].values
    ok = np.isfinite(cap)
    np.testing.assert_allclose(cap[ok], 100.0 * t[ok] / 3600.0, rtol=1e-9, atol=1e-9)
    direction = ds["offset_direction_rad"].sel(time=600.0).values  # the core shifts towards the arc at pi
    assert float(ds["offset_nm"].sel(time=600.0)) > 10 and np.cos(direction) < -0.9

"""Figures from stores (synthetic data, no solver): which figures a study gets, the capacity-loss arithmetic, and
that every figure has labelled axes with units."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from app_support import load_job

from fluxsim.app import plots
from fluxsim.core.mesh import stack_meshes
from fluxsim.core.outline import Disk, Ellipse
from fluxsim.io import store
from fluxsim.study import plan as plan_mod

GRID = ["sweep=single", "+sweep.grid.eta=[0.3,0.65,1.0]", "+sweep.grid.blocked_fraction=[0.1,0.25,0.5]",
        "+sweep.grid.rate_mA_per_g=[100,400]", "sweep.chunk_size=6"]


def _synthetic_store(tmp_path, overrides, name="s.zarr"):
    """A complete store whose outputs follow simple closed forms of the inputs (capacity = 200 - 40 f (1 - eta)
    rate / 100; a shrinking core whose boundary moves across the line cut)."""
    job = load_job(overrides)
    path = tmp_path / name
    writer = store.StoreWriter(path, job)
    t = job.output.times_s
    for block in plan_mod.blocks(job.sweep.shape, job.sweep.chunk_shape):
        out = {}
        for name_, var in ((n, store.VARIABLES[n]) for n in store.variable_names(job)):
            out[name_] = np.zeros(block.shape + store._extra_shape(job, var.dims), var.dtype)
        for k, flat in enumerate(block.flat):
            idx = np.unravel_index(k, block.shape)
            p = job.sweep.inputs[flat]
            eta, f, rate = p.get("eta", 1.0), p.get("blocked_fraction", 0.0), p.get("rate_mA_per_g", 100.0)
            q = rate * t / 3600
            out["passed_capacity_mAh_per_g"][idx] = q
            out["capacity_at_cutoff_mAh_per_g"][idx] = 200 - 40 * f * (1 - eta) * rate / 100
            vanish = 20 + 0.05 * rate
            out["core_vanish_capacity_mAh_per_g"][idx] = vanish
            out["core_vanish_position_nm"][idx] = 300 * (1 - eta)
            out["offset_nm"][idx] = np.where(q < vanish, 500 * f * (1 - eta) * q / vanish, np.nan)
            out["core_fraction"][idx] = np.clip(1 - q / vanish, 0, 1)
            if "line_cut" in out:
                pos = np.linspace(-1.0, 1.0, out["line_cut"].shape[-1])  # units of the radius
                front = np.clip(1 - q / vanish, 0, 1)[:, None]
                out["line_cut"][idx] = np.where(np.abs(pos)[None, :] < front, 1.0, 0.9 - 0.003 * q[:, None])
        out["status"] = np.zeros(block.shape, np.int8)
        writer.write(block, out)
    return job, store.open_store(path)


def test_capacity_loss_is_uniform_minus_blocked(tmp_path):
    _, ds = _synthetic_store(tmp_path, [*GRID, "output=series_only"])
    loss = plots.capacity_loss(ds)
    expected = 40 * ds["blocked_fraction"] * (1 - ds["eta"]) * ds["rate_mA_per_g"] / 100
    np.testing.assert_allclose(loss.transpose(*expected.dims).values, expected.values, atol=1e-12)
    assert loss.attrs["units"] == "mA h g-1" and "eta" in loss.attrs["reference"]
    assert float(loss.sel(eta=1.0).max()) == 0.0 and float(loss.sel(eta=0.3, rate_mA_per_g=400).min()) > 0


def test_a_grid_study_gets_every_summary_figure(tmp_path):
    """eta x blocked fraction x rate with line cuts: capacity vs rate (9 lines), capacity-loss heat maps; d per rate
    (9 rows > 4) and kymographs (18 panels > 12) are skipped. A rate sweep of one case gets d per rate and
    kymographs."""
    _, ds = _synthetic_store(tmp_path, [*GRID, "output=series_only", "output.line_cut=true"])
    (tmp_path / "figs").mkdir()
    made = {p.name for p in plots.plot_store(ds, tmp_path / "figs", dpi=60)}
    assert made == {"capacity_vs_rate.png", "capacity_loss.png"}
    small = ["sweep=single", "surface.eta=0.3", "surface.blocked_fraction=0.25", "+sweep.grid.rate_mA_per_g=[50,400]",
             "output=series_only", "output.line_cut=true", "sweep.chunk_size=2"]
    _, ds = _synthetic_store(tmp_path, small, "fig5d.zarr")
    made = {p.name for p in plots.plot_store(ds, tmp_path / "figs", dpi=60)}
    assert made == {"series.png", "capacity_vs_rate.png", "offset_vs_rate.png", "kymograph.png"}
    assert not list((tmp_path / "figs").glob(".*.tmp.png"))  # written under a temporary name, then renamed


@pytest.mark.parametrize("figure", ["offset_vs_rate.png", "kymograph.png", "capacity_loss.png"])
def test_axes_are_labelled_with_units(tmp_path, figure, monkeypatch):
    grid = ["sweep=single", "+sweep.grid.eta=[0.3,1.0]", "+sweep.grid.blocked_fraction=[0.25]",
            "+sweep.grid.rate_mA_per_g=[100,400]", "output=series_only", "output.line_cut=true", "sweep.chunk_size=4"]
    _, ds = _synthetic_store(tmp_path, grid)
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, dpi: figs.append(fig) or path)
    assert plots.FIGURES[figure](ds, tmp_path / figure) is not None
    (fig,) = figs
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_xlabel() or ax.get_ylabel()]
    assert labels
    units = {"offset_vs_rate.png": ("[min]", "[nm]", "[mAh/g]"), "kymograph.png": ("[nm]", "[mAh/g]"),
             "capacity_loss.png": ("blocked fraction f", "$\\eta$", "[mAh/g]")}[figure]
    text = " ".join(x + " " + y for x, y in labels)
    assert all(u in text for u in units), text


def _mesh_store(aspects=(1.0, 1.8), radius_m=1.2e-6, times_s=(300.0, 900.0)):
    """A store in the mesh layout (the integration contract) with the ellipse aspect swept: per aspect its own mesh
    (``node_x_m``, ``node_y_m``, ``node_mask`` over (aspect, node), ``triangles`` with -1 padding), and a field with
    a Li-rich core shifted towards the blocked arc at +x that shrinks in time."""
    import yaml

    meshes = stack_meshes([Disk() if a == 1.0 else Ellipse(a) for a in aspects], 0.25)
    mask = np.asarray(meshes.node_mask)
    xy = np.asarray(meshes.xy) - np.asarray(meshes.centroid)[:, None, :]
    triangles = np.where((np.asarray(meshes.triangle_area) > 0)[..., None], np.asarray(meshes.triangles), -1)
    width = np.array([0.9, 0.5])[None, :, None]
    r2 = (xy[:, None, :, 0] - 0.3) ** 2 + xy[:, None, :, 1] ** 2
    theta = np.where(mask[:, None, :], 0.5 + 0.5 * np.exp(-r2 / width**2), np.nan)
    m = dict(units="m")
    ds = xr.Dataset(
        {"done": (("aspect",), np.ones(len(aspects), bool)),
         "theta": (("aspect", store.SNAPSHOT_TIME, "node"), theta, dict(units="1")),
         "node_x_m": (("aspect", "node"), np.where(mask, xy[..., 0] * radius_m, np.nan), m),
         "node_y_m": (("aspect", "node"), np.where(mask, xy[..., 1] * radius_m, np.nan), m),
         "node_mask": (("aspect", "node"), mask),
         "triangles": (("aspect", "triangle", "corner"), triangles.astype(np.int32))},
        coords={"aspect": list(aspects), store.SNAPSHOT_TIME: list(times_s)},
        attrs={"config": yaml.safe_dump({"surface": {"eta": 0.3, "blocked_fraction": 0.25, "arc_center_rad": 0.0}})},
    )
    return ds, mask, triangles


def test_snapshot_panels_draw_each_swept_shape_on_its_own_mesh(tmp_path, monkeypatch):
    """Two aspects x two times: four tripcolor panels, each on its case's real triangles only (no padded node or
    triangle drawn), axes in um, the blocked arc drawn next to the +x rim; the PNG is a drawn figure."""
    from app_support import assert_figure

    ds, mask, triangles = _mesh_store()
    figs = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path, dpi: figs.append(fig) or save(fig, path, dpi))
    assert_figure(plots.snapshot_panels(ds, tmp_path / "snapshots.png", dpi=60), min_size_px=(200, 250))
    (fig,) = figs
    panels = [ax for ax in fig.axes if ax.collections and ax.get_xlabel()]
    assert len(panels) == 4
    assert all(ax.get_xlabel() == "x [$\\mu$m]" and ax.get_ylabel().endswith("y [$\\mu$m]") for ax in panels)
    assert panels[2].get_ylabel().startswith("aspect 1.8")  # the case of the row, on its first panel
    for row, ax in zip([0, 0, 1, 1], panels, strict=True):
        drawn = ax.collections[0]  # the tripcolor
        n_real = int((triangles[row] >= 0).all(axis=1).sum())
        assert drawn.get_array().size in (n_real, int(mask[row].sum()))  # per triangle or per node (Gouraud)
        x_um = np.concatenate([line.get_xdata() for line in ax.lines])
        assert 1.0 < np.max(x_um) < 1.12 * 1.2 * 1.8**0.5 * 1.07  # the arc band beyond the +x rim, in um
    wide = [ax.get_xlim()[1] for ax in panels]
    assert wide[2] > 1.2 * wide[0]  # the ellipse (aspect 1.8) reaches further along x than the disk


def test_rim_loop_walks_the_boundary():
    ds, mask, triangles = _mesh_store()
    m, xy, tri = plots.store_mesh(ds, {"aspect": 1})
    loop = plots.rim_loop(tri)
    assert len(set(loop.tolist())) == len(loop)
    r = np.hypot(xy[loop, 0], xy[loop, 1] * 1.8)  # every rim node on one ellipse of aspect 1.8 (the sampled polygon
    assert np.ptp(r) < 1e-5 * r.mean()  # is scaled to area pi R_eq^2, so slightly outside the exact ellipse)
    area = 0.5 * abs(np.sum(xy[loop, 0] * np.roll(xy[loop, 1], -1) - np.roll(xy[loop, 0], -1) * xy[loop, 1]))
    assert area == pytest.approx(np.pi * 1.2**2, rel=1e-9)  # the mesh's outline has area pi R_eq^2

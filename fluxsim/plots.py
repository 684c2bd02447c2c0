"""PNG figures from a results store (matplotlib, Agg backend; reads only the store).

* ``snapshots.png``: Fig. 4 style panels, one row per case, one column per snapshot time; the occupancy field on the
  disk, the Li-rich core boundary (``theta = theta_core``) as a contour and the blocked arc(s) drawn on the rim.
* ``series.png``: core offset d, core area fraction and minimum surface occupancy against time, one line per case.
* ``capacity_vs_rate.png``: extracted capacity at cut-off against rate (Fig. 5b) when the rate is a sweep dimension.

A *case* is one point of the sweep; studies with more than :data:`MAX_CASES` points get only the figures that
summarise them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import xarray as xr

from fluxsim.config import POINT_DIM
from fluxsim.store import PHI, SNAPSHOT_TIME, TIME, R, stored_config

log = logging.getLogger(__name__)

MAX_CASES = 12
CMAP = "RdYlBu"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sweep_dims(ds: xr.Dataset) -> list[str]:
    return [d for d in ds["done"].dims]


def cases(ds: xr.Dataset) -> list[dict]:
    """One ``{index: {dim: i}, label: str}`` per sweep point, in C order."""
    dims = _sweep_dims(ds)
    shape = [ds.sizes[d] for d in dims]
    out = []
    for index in np.ndindex(*shape):
        sel = dict(zip(dims, index, strict=True))
        point = ds["done"].isel(sel)
        if "label" in point.coords:
            label = str(point.coords["label"].values)
        else:
            parts = []
            for name, coord in point.coords.items():
                if name == POINT_DIM or coord.ndim or name in ("protocol_step",):
                    continue
                if np.issubdtype(coord.dtype, np.number):
                    parts.append(f"{name}={float(coord):g}")
            label = ", ".join(parts)
        out.append({"index": sel, "label": label})
    return out


def _input(ds: xr.Dataset, sel: dict, name: str, section: str, default=None):
    """A make_params input of one case: its sweep coordinate, else the stored config."""
    point = ds["done"].isel(sel)
    if name in point.coords:
        return float(point.coords[name])
    cfg = stored_config(ds)
    return cfg.get(section, {}).get(name, default)


def _arcs(ds: xr.Dataset, sel: dict) -> list[tuple[float, float, float]]:
    """Blocked arcs ``(centre_rad, fraction, eta)`` of a case."""
    arcs = [(
        float(_input(ds, sel, "arc_center_rad", "surface", math.pi)),
        float(_input(ds, sel, "blocked_fraction", "surface", 0.0)),
        float(_input(ds, sel, "eta", "surface", 1.0)),
    )]
    for row in stored_config(ds).get("surface", {}).get("extra_arcs") or []:
        arcs.append(tuple(float(x) for x in row))
    return [a for a in arcs if a[1] > 0 and a[2] != 1.0]


def snapshot_panels(ds: xr.Dataset, path: Path) -> Path | None:
    """Fig. 4 style panels: rows = cases, columns = snapshot times."""
    if "theta" not in ds:
        return None
    items = cases(ds)
    if len(items) > MAX_CASES:
        log.info("snapshot panels skipped: %d cases (at most %d are drawn)", len(items), MAX_CASES)
        return None
    plt = _pyplot()
    times = ds[SNAPSHOT_TIME].values
    r = ds[R].values
    phi = np.append(ds[PHI].values, 2 * np.pi)
    cfg = stored_config(ds)
    theta_core = float(cfg.get("output", {}).get("theta_core", 0.97))
    fields = [ds["theta"].isel(c["index"]).values for c in items]
    finite = np.concatenate([f[np.isfinite(f)] for f in fields] + [np.array([1.0])])
    vmin, vmax = float(finite.min()), 1.0
    nrows, ncols = len(items), len(times)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols + 1.6, 1.9 * nrows + 0.4), squeeze=False)
    mesh = None
    for row, (case, field) in enumerate(zip(items, fields, strict=True)):
        radius_um = float(_input(ds, case["index"], "radius_m", "geometry", 1.2e-6)) * 1e6
        x = radius_um * r[:, None] * np.cos(phi)[None, :]
        y = radius_um * r[:, None] * np.sin(phi)[None, :]
        arcs = _arcs(ds, case["index"])
        for col, t in enumerate(times):
            ax = axes[row, col]
            ax.set_aspect("equal")
            ax.set_axis_off()
            values = np.concatenate([field[col], field[col][:, :1]], axis=1)
            if not np.isfinite(values).all():
                ax.text(0.5, 0.5, "not reached", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                continue
            mesh = ax.pcolormesh(x, y, values, shading="gouraud", cmap=CMAP, vmin=vmin, vmax=vmax)
            if values.max() > theta_core > values.min():
                ax.contour(x, y, values, levels=[theta_core], colors="k", linewidths=0.7)
            ax.plot(radius_um * np.cos(phi), radius_um * np.sin(phi), color="0.3", lw=0.5)
            for centre, fraction, _eta in arcs:
                a = np.linspace(centre - np.pi * fraction, centre + np.pi * fraction, 64)
                ax.plot(1.07 * radius_um * np.cos(a), 1.07 * radius_um * np.sin(a), color="k", lw=3,
                        solid_capstyle="butt")
            ax.plot([0], [0], marker="+", color="k", ms=5, mew=0.8)
            lim = 1.12 * radius_um
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            if row == 0:
                ax.set_title(f"{t / 60:g} min", fontsize=10)
        axes[row, 0].text(-0.08, 0.5, case["label"], transform=axes[row, 0].transAxes, rotation=90, ha="right",
                          va="center", fontsize=8)
    if mesh is not None:
        cbar = fig.colorbar(mesh, ax=axes, fraction=0.03, pad=0.02)
        cbar.set_label("Li occupancy $\\theta$")
    fig.suptitle(f"Li occupancy (black: core boundary $\\theta$ = {theta_core:g}; thick arc: blocked surface)",
                 fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def series_panels(ds: xr.Dataset, path: Path) -> Path | None:
    """Core offset d, core area fraction and minimum surface occupancy against time, one line per case."""
    items = cases(ds)
    if len(items) > MAX_CASES:
        return None
    plt = _pyplot()
    t_min = ds[TIME].values / 60
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("offset_nm", "core offset d [nm]"), ("core_fraction", "core area fraction"),
              ("surface_min_theta", "min surface occupancy")]
    for case in items:
        for ax, (name, _) in zip(axes, panels, strict=True):
            ax.plot(t_min, ds[name].isel(case["index"]).values, label=case["label"])
    core = ds["core_fraction"].values.reshape(-1, ds.sizes[TIME])
    alive = np.flatnonzero(np.nanmax(np.where(np.isfinite(core), core, 0.0), axis=0) > 0)
    if alive.size and alive[-1] + 1 < t_min.size:  # the core panels end a little after the last core vanishes
        for ax in axes[:2]:
            ax.set_xlim(0, 1.15 * t_min[min(alive[-1] + 1, t_min.size - 1)])
    for ax, (_, ylabel) in zip(axes, panels, strict=True):
        ax.set_xlabel("time [min]")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def capacity_vs_rate(ds: xr.Dataset, path: Path) -> Path | None:
    """Extracted capacity at cut-off against rate (Fig. 5b), one line per combination of the other inputs."""
    if "rate_mA_per_g" not in ds.dims:
        return None
    cap = ds["capacity_at_cutoff_mAh_per_g"]
    others = [d for d in cap.dims if d != "rate_mA_per_g"]
    lines = cap.stack(case=others) if others else cap.expand_dims(case=[0])
    if lines.sizes["case"] > MAX_CASES:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    rates = ds["rate_mA_per_g"].values
    for k in range(lines.sizes["case"]):
        line = lines.isel(case=k)
        label = ", ".join(f"{d}={float(line[d]):g}" for d in others if d != POINT_DIM) or None
        if POINT_DIM in others and "label" in line.coords:
            label = str(line["label"].values)
        ax.plot(rates, line.transpose("rate_mA_per_g").values, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("rate [mA/g]")
    ax.set_ylabel("capacity at cut-off [mAh/g]")
    ax.grid(alpha=0.3)
    if lines.sizes["case"] > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_store(ds: xr.Dataset, out_dir: str | Path) -> list[Path]:
    """Write every figure that applies to ``ds`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    made = [
        snapshot_panels(ds, out_dir / "snapshots.png"),
        series_panels(ds, out_dir / "series.png"),
        capacity_vs_rate(ds, out_dir / "capacity_vs_rate.png"),
    ]
    return [p for p in made if p is not None]

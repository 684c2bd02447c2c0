"""PNG figures from a results store (matplotlib, Agg backend; reads only the store).

* ``snapshots.png``: Fig. 4 style panels, one row per case, one column per snapshot time; the occupancy field on the
  case's mesh (``tripcolor`` of the node field ``theta`` on ``triangles`` at ``node_x_m``, ``node_y_m``; padded
  nodes and triangles masked out; with a swept shape, each case on its own mesh), the Li-rich core boundary
  (``theta = theta_core``) as a contour and the blocked arc(s) drawn along the rim. :func:`result_snapshots` draws
  the same panels for a :class:`fluxsim.api.Result`.
* ``series.png``: core offset d, core area fraction and minimum surface occupancy against time, one line per case.
* ``capacity_vs_rate.png``: extracted capacity at cut-off against rate (Fig. 5b) when the rate is a sweep dimension.
* ``offset_vs_rate.png``: core offset d against time and against passed capacity, one line per rate (Fig. 5d), when
  the rate is a sweep dimension; one row per combination of the other swept inputs.
* ``kymograph.png``: the line cut through the centre along the blocked-arc axis (Fig. 5c): position [nm] across,
  passed capacity [mAh/g] up, occupancy as colour, the core boundary as a contour and a cross where the last of
  the core disappears; one panel per case (per rate for a rate sweep). Needs ``output.line_cut``.
* ``capacity_loss.png``: heat maps of the capacity lost to blocking over (blocked fraction, eta), one panel per rate,
  when eta and the blocked fraction are both grid dimensions: the capacity at cut-off with uniform flux (eta = 1,
  else blocked fraction 0) minus the blocked one (:func:`capacity_loss`).

A *case* is one point of the sweep; studies with more than :data:`MAX_CASES` points get only the figures that
summarise them. Figures are written to a temporary name and renamed into place, so shards of one study that finish
together never leave a half-written PNG.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import xarray as xr

from fluxsim.app.config import POINT_DIM
from fluxsim.io.store import SNAPSHOT_TIME, TIME, case_input, stored_config, stored_input

log = logging.getLogger(__name__)

MAX_CASES = 12
CMAP = "RdYlBu"
#: Resolution of the PNGs (``plot_store(..., dpi=...)``; the README figures use less).
DPI = 130
RATE = "rate_mA_per_g"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sweep_dims(ds: xr.Dataset) -> list[str]:
    return [d for d in ds["done"].dims]


def _save(fig, path: Path, dpi: int) -> Path:
    """Write atomically (temporary file, then rename) and close the figure."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    _pyplot().close(fig)
    return path


#: How sweep inputs are shown in titles and legends: (symbol, scale, unit).
_PRETTY = {
    RATE: ("", 1.0, " mA/g"),
    "eta": ("$\\eta$ = ", 1.0, ""),
    "blocked_fraction": ("f = ", 1.0, ""),
    "radius_m": ("R = ", 1e6, " $\\mu$m"),
    "arc_center_rad": ("arc at ", 1.0, " rad"),
    "aspect": ("aspect ", 1.0, ""),
    "orientation_rad": ("long axis at ", 1.0, " rad"),
}


def pretty(name: str, value) -> str:
    """``rate_mA_per_g, 200`` -> ``200 mA/g``; ``eta, 0.3`` -> ``eta = 0.3``; other inputs as ``name=value``."""
    if name in _PRETTY:
        prefix, scale, unit = _PRETTY[name]
        return f"{prefix}{float(value) * scale:.3g}{unit}"
    return f"{name}={float(value):g}"


def _fixed(ds: xr.Dataset, da: xr.DataArray, keep: tuple[str, ...]) -> tuple[xr.DataArray, list[str]]:
    """Select one value of every sweep dimension not in ``keep``: the one nearest the stored config's own value
    (e.g. the 1.2 um radius), else the middle one. Returns the selection and a description of it."""
    cfg = stored_config(ds)
    base = {}
    for section in cfg.values():
        if isinstance(section, dict):
            base.update({k: v for k, v in section.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    sel, notes = {}, []
    for d in da.dims:
        if d in keep or d not in _sweep_dims(ds) or d == POINT_DIM:
            continue
        values = ds[d].values
        i = int(np.argmin(np.abs(values - base[d]))) if d in base else len(values) // 2
        sel[d] = i
        if len(values) > 1:
            notes.append(pretty(d, values[i]))
    return da.isel(sel), notes


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
                    parts.append(pretty(name, coord.values))
            label = ", ".join(parts)
        out.append({"index": sel, "label": label})
    return out


def _arcs(ds: xr.Dataset, sel: dict) -> list[tuple[float, float, float]]:
    """Blocked arcs ``(centre_rad, fraction, eta)`` of a case."""
    arcs = [(
        float(case_input(ds, sel, "arc_center_rad")),
        float(case_input(ds, sel, "blocked_fraction")),
        float(case_input(ds, sel, "eta")),
    )]
    for row in stored_config(ds).get("surface", {}).get("extra_arcs") or []:
        arcs.append(tuple(float(x) for x in row))
    return [a for a in arcs if a[1] > 0 and a[2] != 1.0]


# ---- occupancy fields on the mesh --------------------------------------------------------------------------------
def _pick(ds: xr.Dataset, name: str, sel: dict) -> np.ndarray:
    """Variable ``name`` of one case: the case's index along each of its sweep dims that the variable has (mesh
    variables have only the shape-swept ones)."""
    da = ds[name]
    return da.isel({d: i for d, i in sel.items() if d in da.dims}).values


def store_mesh(ds: xr.Dataset, sel: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mesh of one case of a store: ``(node_mask (node,), node xy [um] (real nodes, 2), triangles)``, the
    triangles indexing the real nodes (padded triangles, -1, dropped)."""
    mask = _pick(ds, "node_mask", sel).astype(bool)
    xy = np.stack([_pick(ds, "node_x_m", sel), _pick(ds, "node_y_m", sel)], axis=-1)[mask] * 1e6
    triangles = _pick(ds, "triangles", sel)
    triangles = triangles[(triangles >= 0).all(axis=1)]
    triangles = triangles[mask[triangles].all(axis=1)]
    return mask, xy, (np.cumsum(mask) - 1)[triangles]


def rim_loop(triangles: np.ndarray) -> np.ndarray:
    """The boundary nodes of a triangulated simple outline in order around it (edges used by one triangle)."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    unique, count = np.unique(edges, axis=0, return_counts=True)
    boundary = unique[count == 1]
    neighbours: dict[int, list[int]] = {}
    for a, b in boundary.tolist():
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    loop = [int(boundary[0, 0])]
    previous = None
    while True:
        options = [n for n in neighbours[loop[-1]] if n != previous]
        previous = loop[-1]
        if options[0] == loop[0] or len(loop) > len(boundary):
            return np.asarray(loop)
        loop.append(options[0])


def _arc_points(rim: np.ndarray, centre: float, fraction: float) -> np.ndarray:
    """Rim points ``(k, 2)`` of a blocked arc: the fraction ``fraction`` of the perimeter length centred on the rim
    point in direction ``centre`` [rad] from the area centroid (the origin)."""
    closed = np.vstack([rim, rim[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    angle = np.angle(np.exp(1j * (np.arctan2(rim[:, 1], rim[:, 0]) - centre)))
    s_c = s[int(np.argmin(np.abs(angle)))]
    si = s_c + np.linspace(-0.5, 0.5, 64) * fraction * s[-1]
    si = np.mod(si, s[-1])
    return np.stack([np.interp(si, s, closed[:, 0]), np.interp(si, s, closed[:, 1])], axis=1)


def draw_field(ax, xy_um: np.ndarray, triangles: np.ndarray, values: np.ndarray, *, theta_core: float,
               arcs=(), vmin: float = 0.0, vmax: float = 1.0):
    """One occupancy panel: ``tripcolor`` of the node field on the triangles (Gouraud), the core boundary
    ``theta = theta_core`` as a contour, the outline, the blocked arcs as thick bands just outside the rim, and
    the area centroid (+); axes in um. Returns the colour mappable."""
    import matplotlib.tri as mtri

    tri = mtri.Triangulation(xy_um[:, 0], xy_um[:, 1], triangles)
    mappable = ax.tripcolor(tri, values, shading="gouraud", cmap=CMAP, vmin=vmin, vmax=vmax)
    if np.nanmax(values) > theta_core > np.nanmin(values):
        ax.tricontour(tri, values, levels=[theta_core], colors="k", linewidths=0.7)
    rim = xy_um[rim_loop(triangles)]
    ax.plot(*np.vstack([rim, rim[:1]]).T, color="0.3", lw=0.5)
    for centre, fraction, _eta in arcs:
        band = 1.07 * _arc_points(rim, centre, fraction)
        ax.plot(band[:, 0], band[:, 1], color="k", lw=3, solid_capstyle="butt")
    ax.plot([0], [0], marker="+", color="k", ms=5, mew=0.8)
    ax.set_aspect("equal")
    lim = 1.12 * float(np.abs(xy_um).max())
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("x [$\\mu$m]", fontsize=7)
    ax.set_ylabel("y [$\\mu$m]", fontsize=7)
    ax.tick_params(labelsize=6)
    return mappable


def _field_figure(plt, panels, titles, row_labels, theta_core: float, vmin: float):
    """Rows of occupancy panels: ``panels[row][col] = (xy_um, triangles, values or None, arcs)``."""
    nrows, ncols = len(panels), len(titles)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols + 1.6, 2.2 * nrows + 0.5), squeeze=False,
                             layout="constrained")
    mappable = None
    for row, cells in enumerate(panels):
        for col, (xy, triangles, values, arcs) in enumerate(cells):
            ax = axes[row, col]
            if values is None or not np.isfinite(values).all():
                ax.set_axis_off()
                ax.text(0.5, 0.5, "not reached", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                continue
            mappable = draw_field(ax, xy, triangles, values, theta_core=theta_core, arcs=arcs, vmin=vmin)
            if row == 0:
                ax.set_title(titles[col], fontsize=10)
        if row_labels[row]:  # the case, above the first panel's y label (inside the constrained layout)
            axes[row, 0].set_ylabel(f"{row_labels[row]}\ny [$\\mu$m]", fontsize=7)
    if mappable is not None:
        cbar = fig.colorbar(mappable, ax=axes, fraction=0.03, pad=0.02)
        cbar.set_label("Li occupancy $\\theta$")
    fig.suptitle(f"Li occupancy (black: core boundary $\\theta$ = {theta_core:g}; thick arc: blocked surface)",
                 fontsize=9)
    return fig


def snapshot_panels(ds: xr.Dataset, path: Path, dpi: int = DPI) -> Path | None:
    """Fig. 4 style panels: rows = cases, columns = snapshot times; each case on its own mesh (a swept shape)."""
    if "theta" not in ds:
        return None
    items = cases(ds)
    if len(items) > MAX_CASES:
        log.info("snapshot panels skipped: %d cases (at most %d are drawn)", len(items), MAX_CASES)
        return None
    plt = _pyplot()
    times = ds[SNAPSHOT_TIME].values
    theta_core = float(stored_input(ds, "theta_core"))
    panels, finite = [], [np.array([1.0])]
    for case in items:
        mask, xy, triangles = store_mesh(ds, case["index"])
        field = ds["theta"].isel(case["index"]).values[:, mask]
        finite += [f[np.isfinite(f)] for f in field]
        arcs = _arcs(ds, case["index"])
        panels.append([(xy, triangles, field[k], arcs) for k in range(len(times))])
    fig = _field_figure(plt, panels, [f"{t / 60:g} min" for t in times], [c["label"] for c in items], theta_core,
                        float(np.concatenate(finite).min()))
    return _save(fig, path, dpi)


def result_snapshots(result, path: Path, dpi: int = DPI) -> Path:
    """The snapshots of a :class:`fluxsim.api.Result` on its mesh, one panel per snapshot time (any outline)."""
    plt = _pyplot()
    blocking = result.params.blocking
    arcs = [(float(blocking.arc_center_rad), float(blocking.blocked_fraction), float(blocking.eta))]
    arcs += [tuple(float(v) for v in row) for row in np.asarray(blocking.extra_arcs)]
    arcs = [a for a in arcs if a[1] > 0 and a[2] != 1.0]
    xy, triangles, snaps = result.node_xy_nm / 1e3, result.triangles, result.snapshots
    theta_core = float(result.params.theta_core)
    fig = _field_figure(plt, [[(xy, triangles, snap, arcs) for snap in snaps]],
                        [f"{t / 60:g} min" for t in result.snapshot_times_s], [""], theta_core,
                        float(min(np.nanmin(snaps), 1.0)) if snaps.size else 0.0)
    return _save(fig, path, dpi)


def series_panels(ds: xr.Dataset, path: Path, dpi: int = DPI) -> Path | None:
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
    return _save(fig, path, dpi)


def capacity_vs_rate(ds: xr.Dataset, path: Path, dpi: int = DPI) -> Path | None:
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
    return _save(fig, path, dpi)


def _other_dims(ds: xr.Dataset, but: str) -> list[str]:
    return [d for d in _sweep_dims(ds) if d != but]


def _row_label(sub: xr.DataArray, dims: list[str]) -> str:
    if POINT_DIM in dims and "label" in sub.coords:
        return str(sub["label"].values)
    return ", ".join(pretty(d, sub[d].values) for d in dims if d != POINT_DIM)


def offset_vs_rate(ds: xr.Dataset, path: Path, dpi: int = DPI) -> Path | None:
    """Fig. 5d: core offset d against time and against passed capacity, one line per rate; one row of panels per
    combination of the other swept inputs (at most 4 rows)."""
    if RATE not in ds.dims or "offset_nm" not in ds:
        return None
    others = _other_dims(ds, RATE)
    d = ds["offset_nm"]
    q = ds["passed_capacity_mAh_per_g"]
    rows = d.stack(row=others) if others else d.expand_dims(row=[0])
    qrows = q.stack(row=others) if others else q.expand_dims(row=[0])
    if rows.sizes["row"] > 4:
        log.info("d(t) per rate skipped: %d combinations of the other inputs (at most 4 are drawn)",
                 rows.sizes["row"])
        return None
    plt = _pyplot()
    n = rows.sizes["row"]
    fig, axes = plt.subplots(n, 2, figsize=(9, 2.9 * n + 0.3), squeeze=False)
    t_min = ds[TIME].values / 60
    rates = ds[RATE].values
    colors = plt.get_cmap("plasma")(np.linspace(0.0, 0.85, len(rates)))
    for k in range(n):
        row, qrow = rows.isel(row=k), qrows.isel(row=k)
        last_t = last_q = 0.0
        for j, rate in enumerate(rates):
            dj = row.sel({RATE: rate}).values
            qj = qrow.sel({RATE: rate}).values
            alive = np.isfinite(dj)
            if alive.any():
                last_t = max(last_t, t_min[alive][-1])
                last_q = max(last_q, np.nanmax(qj[alive]))
            label = pretty(RATE, rate)
            axes[k, 0].plot(t_min, dj, color=colors[j], label=label)
            axes[k, 1].plot(qj, dj, color=colors[j], label=label)
        if last_t > 0:
            axes[k, 0].set_xlim(0, 1.05 * last_t)
            axes[k, 1].set_xlim(0, 1.05 * last_q)
        title = _row_label(row, others) if others else ""
        for ax, xlabel in zip(axes[k], ("time [min]", "passed capacity [mAh/g]"), strict=True):
            ax.set_xlabel(xlabel)
            ax.set_ylabel("core offset d [nm]")
            ax.set_ylim(0, max(ax.get_ylim()[1], 1.0))  # d ~ 1e-12 nm (roundoff) at eta = 1 shows as 0
            ax.grid(alpha=0.3)
            if title:
                ax.set_title(title, fontsize=9)
    axes[0, 0].legend(fontsize=7, title="rate", title_fontsize=7)
    fig.suptitle("Core offset d per rate (until the core disappears)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


def kymograph_panels(ds: xr.Dataset, path: Path, dpi: int = DPI) -> Path | None:
    """Fig. 5c: the line cut (position along the blocked-arc axis [nm]) against passed capacity [mAh/g], coloured
    by occupancy, one panel per case; the core boundary as a contour, a cross where the last of the core vanishes.

    Only the part of the series where the passed capacity still rises is drawn (the charge; a rest or a discharge
    would fold the capacity axis back), up to twice the largest capacity at which a core vanishes: the rest of the
    charge has no core and no front to show.
    """
    if "line_cut" not in ds:
        return None
    items = cases(ds)
    if len(items) > MAX_CASES:
        log.info("kymographs skipped: %d cases (at most %d are drawn)", len(items), MAX_CASES)
        return None
    plt = _pyplot()
    theta_core = float(stored_input(ds, "theta_core"))
    ncols = min(4, len(items))
    nrows = math.ceil(len(items) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols + 1.2, 3.1 * nrows + 0.5), squeeze=False,
                             sharey=True, layout="constrained")
    vanish = ds["core_vanish_capacity_mAh_per_g"].values
    top = 2.0 * float(np.nanmax(vanish)) if np.isfinite(vanish).any() else np.inf
    panels = []
    for case in items:
        point = ds.isel(case["index"])
        q = point["passed_capacity_mAh_per_g"].values
        cut = point["line_cut"].values
        rising = np.flatnonzero(np.isfinite(q) & np.isfinite(cut).all(axis=1))
        if rising.size:  # the prefix over which the capacity keeps rising
            stop = np.flatnonzero(np.diff(q[rising]) <= 0)
            rising = rising[: (stop[0] + 1) if stop.size else rising.size]
        if "line_cut_position_m" in ds:  # the mesh layout: positions [m] per (swept) shape
            x = _pick(ds, "line_cut_position_m", case["index"]) * 1e9
        else:  # the polar layout: positions in units of the radius
            x = ds["position"].values * float(case_input(ds, case["index"], "radius_m")) * 1e9
        panels.append((case, point, x, q[rising], cut[rising]))
    shown = [cut[q <= top] for *_, q, cut in panels if q.size > 1]
    shown = np.concatenate([v.ravel() for v in shown]) if shown else np.array([0.0])
    vmin = float(np.floor(20 * min(shown.min(), theta_core - 0.05)) / 20) if shown.size else 0.0
    mesh = None
    for k, (case, point, x, q, cut) in enumerate(panels):
        ax = axes[k // ncols, k % ncols]
        ax.set_title(case["label"], fontsize=9)
        if q.size < 2:
            ax.text(0.5, 0.5, "no charge", ha="center", va="center", transform=ax.transAxes)
            continue
        mesh = ax.pcolormesh(x, q, cut, shading="gouraud", cmap=CMAP, vmin=vmin, vmax=1.0)
        if cut.max() > theta_core > cut.min():
            ax.contour(x, q, cut, levels=[theta_core], colors="k", linewidths=0.7)
        vq = float(point["core_vanish_capacity_mAh_per_g"])
        vx = float(point["core_vanish_position_nm"])
        if np.isfinite(vq) and np.isfinite(vx):
            ax.axhline(vq, color="k", lw=0.6, ls="--")
            ax.plot([vx], [vq], marker="x", color="k", ms=7, mew=1.5)
            ax.annotate(f"core gone\n{vq:.0f} mAh/g", (vx, vq), textcoords="offset points", xytext=(6, 4),
                        fontsize=7)
        ax.set_xlabel("position along the arc axis [nm]")
        ax.set_ylim(0, min(top, float(q[-1])))
        if k % ncols == 0:
            ax.set_ylabel("passed capacity [mAh/g]")
    for k in range(len(items), nrows * ncols):
        axes[k // ncols, k % ncols].set_axis_off()
    if mesh is not None:
        cbar = fig.colorbar(mesh, ax=axes, fraction=0.05, pad=0.02)
        cbar.set_label("Li occupancy $\\theta$")
    fig.suptitle("Line cut through the centre (blocked arc at the right; black: core boundary; x: core vanishes)",
                 fontsize=9)
    return _save(fig, path, dpi)


def capacity_loss(ds: xr.Dataset) -> xr.DataArray | None:
    """Capacity at cut-off lost to blocking [mAh/g]: uniform minus blocked, over the sweep grid.

    The uniform reference is the point with eta = 1 (same blocked fraction and other inputs) when eta = 1 is on
    the grid, else the one with blocked fraction 0. None when the study has no such reference or does not grid
    both eta and the blocked fraction.
    """
    dims = _sweep_dims(ds)
    if not {"eta", "blocked_fraction"} <= set(dims):
        return None
    cap = ds["capacity_at_cutoff_mAh_per_g"]
    if np.isclose(ds["eta"].values, 1.0).any():
        ref = cap.isel(eta=int(np.argmin(np.abs(ds["eta"].values - 1.0))), drop=True)
        reference = "uniform flux ($\\eta$ = 1)"
    elif np.isclose(ds["blocked_fraction"].values, 0.0).any():
        ref = cap.isel(blocked_fraction=int(np.argmin(np.abs(ds["blocked_fraction"].values))), drop=True)
        reference = "no blocking (f = 0)"
    else:
        return None
    loss = (ref - cap).where(ds["done"])
    loss.attrs = {"units": "mA h g-1", "long_name": f"capacity at cut-off lost to blocking, vs {reference}",
                  "reference": reference}
    return loss


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted coordinate values (for pcolormesh)."""
    values = np.asarray(values, float)
    if values.size == 1:
        half = 0.05 * max(abs(values[0]), 1.0)
        return np.array([values[0] - half, values[0] + half])
    mid = 0.5 * (values[1:] + values[:-1])
    return np.concatenate([[2 * values[0] - mid[0]], mid, [2 * values[-1] - mid[-1]]])


def capacity_loss_maps(ds: xr.Dataset, path: Path, dpi: int = DPI) -> Path | None:
    """Heat maps of :func:`capacity_loss` over (blocked fraction, eta), one panel per rate (other swept inputs are
    held at the value nearest the config's own, e.g. the 1.2 um radius)."""
    loss = capacity_loss(ds)
    if loss is None:
        return None
    loss, notes = _fixed(ds, loss, ("eta", "blocked_fraction", RATE))
    rates = ds[RATE].values if RATE in loss.dims else [None]
    plt = _pyplot()
    ncols = min(4, len(rates))
    nrows = math.ceil(len(rates) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.1 * ncols + 1.3, 2.9 * nrows + 0.6), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    finite = loss.values[np.isfinite(loss.values)]
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    f, eta = ds["blocked_fraction"].values, ds["eta"].values
    mesh = None
    for k, rate in enumerate(rates):
        ax = axes[k // ncols, k % ncols]
        panel = loss if rate is None else loss.sel({RATE: rate})
        mesh = ax.pcolormesh(_edges(f), _edges(eta), panel.transpose("eta", "blocked_fraction").values,
                             cmap="magma_r", vmin=vmin, vmax=vmax)
        if rate is not None:
            ax.set_title(pretty(RATE, rate), fontsize=9)
        if k // ncols == nrows - 1:
            ax.set_xlabel("blocked fraction f")
        if k % ncols == 0:
            ax.set_ylabel("flux ratio $\\eta$")
    for k in range(len(rates), nrows * ncols):
        axes[k // ncols, k % ncols].set_axis_off()
    cbar = fig.colorbar(mesh, ax=axes, fraction=0.05, pad=0.02)
    cbar.set_label("capacity loss [mAh/g]")
    title = f"Capacity at cut-off lost to blocking, vs {loss.attrs['reference']}"
    if notes:
        title += " at " + ", ".join(notes)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path, dpi)


#: File name -> figure function, in the order :func:`plot_store` draws them.
FIGURES = {
    "snapshots.png": snapshot_panels,
    "series.png": series_panels,
    "capacity_vs_rate.png": capacity_vs_rate,
    "offset_vs_rate.png": offset_vs_rate,
    "kymograph.png": kymograph_panels,
    "capacity_loss.png": capacity_loss_maps,
}


def plot_store(ds: xr.Dataset, out_dir: str | Path, dpi: int = DPI) -> list[Path]:
    """Write every figure that applies to ``ds`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    made = [draw(ds, out_dir / name, dpi) for name, draw in FIGURES.items()]
    return [p for p in made if p is not None]

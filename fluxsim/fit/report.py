"""The result of a fit: :class:`FitResult` (dict, JSON, xarray / zarr, figure, summary table)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from fluxsim._version import __version__
from fluxsim.core.solve import Numerics
from fluxsim.fit.model import FITTABLE, HORIZON_MARGIN, Curves, fit_mesh, simulate_jit
from fluxsim.io import observations as obs_mod
from fluxsim.model.params import Params

#: Confidence levels of the reported intervals: name -> z (coverage erf(z / sqrt 2); Gauss-Newton: estimate +- z SE;
#: profile: chi2 rises by z**2 above its minimum).
INTERVAL_LEVELS = {"68": 1.0, "95": 1.959964}
#: What each kind of interval in :attr:`FitResult.intervals` is (written into the report).
INTERVAL_KINDS = {
    "gauss_newton": "estimate +- z standard errors of the Gauss-Newton covariance (local, linearised, symmetric)",
    "profile": "profile likelihood: where chi2, other fitted inputs re-optimised, rises by 1 (68 %) or 3.84 (95 %) "
               "above its minimum (scaled by the reduced chi2 without given sigmas); null bound: open interval",
}

def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


@dataclasses.dataclass
class FitResult:
    """Everything a fit found. ``print(result)`` shows a summary; :meth:`save` writes JSON, zarr and PNG.

    Attributes:
        names: fitted inputs, in order.
        values: best estimates (physical units, unit-suffixed names).
        standard_errors: from the Gauss-Newton covariance (NaN where the Hessian is singular).
        covariance, correlation: ``(k, k)`` matrices in physical units.
        chi2: sum of squared weighted residuals at the optimum; ``dof`` = residuals - parameters.
        absolute_sigma: True when every uncertainty came from the data (else the covariance is scaled by
            ``chi2 / dof``).
        starts: each optimiser run (start, end, chi2, iterations, converged).
        candidates: the multi-start candidates and their chi2.
        profile: chi2 along eta (``{"eta": [...], "chi2": [...], "mode": ...}``) or None.
        warnings: identifiability and convergence warnings.
        timings: ``compile_s`` (ahead-of-time compilations), ``run_s`` (everything else) and ``total_s``;
            ``jacobian_evaluations`` and ``forward_evaluations``: model runs with and without the Jacobian.
        params: the fitted :class:`~fluxsim.model.params.Params` (base inputs with the estimates).
        inputs: the fixed inputs of the model, for the report.
        observations: the data.
        curves: the model series at the optimum (numpy :class:`Curves`), ``(S, T)``.
        fitted: the model at the data times (numpy :class:`Curves`), ``(S, N)``.
        outline: the particle's outline (:mod:`fluxsim.core.outline`) the model was solved on.
        metric: the core metric compared (:data:`fluxsim.fit.model.METRICS`).
        intervals: per fitted input, ``gauss_newton_68/95`` and ``profile_68/95`` ``[low, high]`` (None: open or
            not computed); :data:`INTERVAL_KINDS` says which is which.
    """

    names: tuple[str, ...]
    model: str
    method: str
    numerics: Numerics
    values: dict[str, float]
    standard_errors: dict[str, float]
    covariance: np.ndarray
    correlation: np.ndarray
    chi2: float
    dof: int
    n_residuals: int
    absolute_sigma: bool
    hessian_condition: float
    starts: list[dict]
    candidates: list[dict]
    profile: dict | None
    warnings: list[str]
    timings: dict[str, float]
    params: Params
    inputs: dict[str, Any]
    observations: obs_mod.Observations
    curves: Curves
    fitted: Curves
    outline: Any = None
    intervals: dict = dataclasses.field(default_factory=dict)
    metric: str = "hard"

    @property
    def reduced_chi2(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else float("nan")

    @property
    def converged(self) -> bool:
        return any(s["converged"] for s in self.starts)

    def to_dict(self) -> dict:
        """The report as plain Python (what :meth:`to_json` writes)."""
        return _json_ready({
            "fluxsim_version": __version__,
            "observations": self.observations.source,
            "particles": self.observations.particles,
            "rates_mA_per_g": self.observations.rates_mA_per_g,
            "n_measurements": self.observations.n_points,
            "model": self.model,
            "method": self.method,
            "numerics": dataclasses.asdict(self.numerics),
            "core_metric": self.metric,
            "fitted": list(self.names),
            "units": {n: FITTABLE[n].unit for n in self.names},
            "values": self.values,
            "standard_errors": self.standard_errors,
            "correlation": self.correlation,
            "covariance": self.covariance,
            "chi2": self.chi2,
            "dof": self.dof,
            "reduced_chi2": self.reduced_chi2,
            "absolute_sigma": self.absolute_sigma,
            "hessian_condition": self.hessian_condition,
            "converged": self.converged,
            "warnings": self.warnings,
            "fixed_inputs": self.inputs,
            "starts": self.starts,
            "candidates": self.candidates,
            "profile": self.profile,
            "intervals": self.intervals,
            "interval_kinds": INTERVAL_KINDS,
            "outline": self.outline_record(),
            "timings": self.timings,
        })

    def outline_xy_nm(self) -> np.ndarray:
        """The outline's vertices as meshed ``(m, 2)`` [nm], relative to its area centroid (x right, y up)."""
        from fluxsim.core.outline import Disk

        outline = Disk() if self.outline is None else self.outline
        return outline.boundary(self.numerics.spacing) * float(self.params.radius_m) * 1e9

    def outline_record(self) -> dict:
        """The outline for the report: its kind, parameters (not the dense points of a traced mask) and vertices."""
        from fluxsim.core.outline import Disk

        outline = Disk() if self.outline is None else self.outline
        fields = {f.name: getattr(outline, f.name) for f in dataclasses.fields(outline)
                  if f.name not in ("points", "vertices")}
        return {"kind": type(outline).__name__, **fields, "equivalent_radius_m": float(self.params.radius_m),
                "vertices_nm": np.round(self.outline_xy_nm(), 2)}

    def field_snapshot(self, series: int | None = None, fraction: float = 0.5):
        """The fitted model's occupancy field on the mesh at ``fraction`` of the last measurement time of a series
        (default: the fastest rate): ``(x_nm (n,), y_nm (n,), triangles (t, 3), theta (n,), time_s, rate)``."""
        from fluxsim.api import real_triangles
        from fluxsim.model.protocol import Charge

        rates = [s.rate_mA_per_g for s in self.observations.series]
        series = int(np.argmax(rates)) if series is None else series
        s = self.observations.series[series]
        t = float(fraction * s.time_s[-1])
        mesh = fit_mesh(self.outline, self.numerics)
        params = dataclasses.replace(self.params, rate_mA_per_g=s.rate_mA_per_g)
        protocol = (Charge(max_duration_s=max(t, 1e-6), until_cutoff=False),)
        theta = np.asarray(simulate_jit(params, mesh, protocol, self.numerics, (t,), (t,)).snapshots[0])
        real = np.asarray(mesh.node_mask)
        xy = (np.asarray(mesh.xy) - np.asarray(mesh.centroid)) * float(self.params.radius_m) * 1e9
        return xy[real, 0], xy[real, 1], real_triangles(mesh), theta[real], t, s.rate_mA_per_g

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_dataset(self):
        """Data, fitted curves, estimates and profile as an ``xarray.Dataset`` (write with ``.to_zarr``)."""
        import xarray as xr

        series = self.observations.series
        n_max = self.fitted.t_s.shape[1]

        def padded(attr, transform=None):
            out = np.full((len(series), n_max), np.nan)
            for i, s in enumerate(series):
                v = getattr(s, attr)
                if v is not None:
                    out[i, : len(s)] = v
            return out

        def var(dims, values, units, long_name):
            return xr.Variable(dims, np.asarray(values, float), {"units": units, "long_name": long_name})

        lengths = np.array([len(s) for s in series])
        valid = np.arange(n_max)[None, :] < lengths[:, None]
        fitted_d = np.where(valid, np.asarray(self.fitted.d_nm), np.nan)
        names = list(self.names)
        data_vars = {
            "model_time": var(("series", "time"), self.curves.t_s, "s", "time of the model series"),
            "model_d": var(("series", "time"), self.curves.d_nm, "nm", f"model core offset d ({self.metric} metric)"),
            "model_core_x": var(("series", "time"), self.curves.x_nm, "nm", "model core centroid x"),
            "model_core_y": var(("series", "time"), self.curves.y_nm, "nm", "model core centroid y"),
            "model_core_fraction": var(("series", "time"), self.curves.core_fraction, "1", "model core area fraction"),
            "obs_time": var(("series", "point"), padded("time_s"), "s", "measurement time"),
            "obs_d": var(("series", "point"), padded("d_nm"), "nm", "measured core offset d"),
            "obs_d_sigma": var(("series", "point"), padded("d_sigma_nm"), "nm", "uncertainty of d"),
            "obs_direction": var(("series", "point"), padded("direction_rad"), "rad", "measured offset direction"),
            "obs_core_fraction": var(("series", "point"), padded("core_fraction"), "1", "measured core fraction"),
            "fit_d": var(("series", "point"), fitted_d, "nm", "model d at the measurement times"),
            "fit_core_fraction": var(("series", "point"), np.where(valid, self.fitted.core_fraction, np.nan), "1",
                                     "model core fraction at the measurement times"),
            "estimate": var(("parameter",), [self.values[n] for n in names], "", "best-fit value (units: attrs)"),
            "standard_error": var(("parameter",), [self.standard_errors[n] for n in names], "",
                                  "Gauss-Newton standard error"),
            "correlation": var(("parameter", "parameter_2"), self.correlation, "1", "correlation of the estimates"),
        }
        coords = {
            "rate_mA_per_g": xr.Variable(("series",), [s.rate_mA_per_g for s in series],
                                         {"units": "mA g-1", "long_name": "specific current"}),
            "particle": xr.Variable(("series",), np.array([s.particle for s in series], dtype=object)),
            "parameter": xr.Variable(("parameter",), np.array(names, dtype=object)),
            "parameter_2": xr.Variable(("parameter_2",), np.array(names, dtype=object)),
            "bound": xr.Variable(("bound",), np.array(["low", "high"], dtype=object)),
            "parameter_units": xr.Variable(("parameter",), np.array([FITTABLE[n].unit for n in names], dtype=object)),
        }
        for level in INTERVAL_LEVELS:
            for kind in INTERVAL_KINDS:
                key = f"{kind}_{level}"
                bounds = [[np.nan if v is None else v for v in self.intervals.get(n, {}).get(key, [None, None])]
                          for n in names]
                data_vars[f"interval_{key}"] = var(("parameter", "bound"), bounds, "",
                                                   f"{level} % interval: {INTERVAL_KINDS[kind]}")
        xy = self.outline_xy_nm()
        data_vars["outline_x"] = var(("outline_vertex",), xy[:, 0], "nm", "outline vertex x (from the area centroid)")
        data_vars["outline_y"] = var(("outline_vertex",), xy[:, 1], "nm", "outline vertex y (up)")
        if self.profile is not None:
            data_vars["profile_eta"] = var(("profile_point",), self.profile["eta"], "1", "eta along the profile")
            data_vars["profile_chi2"] = var(("profile_point",), self.profile["chi2"], "1", "chi2 along the profile")
        attrs = {"fluxsim_version": __version__, "fit_report": self.to_json(indent=None),
                 "title": "fluxsim fit: data against the fitted model"}
        return xr.Dataset(data_vars, coords, attrs)

    def write_zarr(self, path: str | Path) -> Path:
        """Write :meth:`to_dataset` to a zarr store (overwritten)."""
        path = Path(path)
        self.to_dataset().to_zarr(path, mode="w", consolidated=False)  # strings are object (vlen) arrays: zarr v3
        return path

    def plot(self, path: str | Path | None = None, dpi: int = 120):
        """Data against fit: d vs passed capacity per rate (+ core fraction, + chi2 profile). Returns the figure,
        or writes a PNG to ``path`` and returns the path."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        series = self.observations.series
        panels = 2 + self.observations.has_core_fraction + (self.profile is not None)
        fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
        axes = axes[0]
        colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(series)))
        for i, (s, c) in enumerate(zip(series, colours)):
            q_model = self.curves.t_s[i] * s.rate_mA_per_g / 3600.0
            keep = q_model <= s.capacity_mAh_per_g[-1] * HORIZON_MARGIN
            axes[0].errorbar(s.capacity_mAh_per_g, s.d_nm, yerr=s.d_sigma_nm, fmt="o", ms=3.5, color=c, alpha=0.8,
                             label=f"{s.particle} {s.rate_mA_per_g:g} mA/g")
            axes[0].plot(q_model[keep], self.curves.d_nm[i][keep], "-", color=c)
            if self.observations.has_core_fraction and s.core_fraction is not None:
                axes[1].errorbar(s.capacity_mAh_per_g, s.core_fraction, yerr=s.core_fraction_sigma, fmt="o", ms=3.5,
                                 color=c, alpha=0.8)
                axes[1].plot(q_model[keep], self.curves.core_fraction[i][keep], "-", color=c)
        axes[0].set_xlabel("passed capacity [mAh/g]")
        axes[0].set_ylabel("core offset d [nm]")
        fitted = ", ".join(f"{n} = {_fmt(self.values[n])} ± {_fmt(self.standard_errors[n])}" for n in self.names)
        axes[0].set_title(f"model {self.model}: {fitted}", fontsize=8)
        axes[0].legend(fontsize=7)
        if self.observations.has_core_fraction:
            axes[1].set_xlabel("passed capacity [mAh/g]")
            axes[1].set_ylabel("core area fraction")
        if self.profile is not None:
            ax = axes[-1]
            ax.plot(self.profile["eta"], np.asarray(self.profile["chi2"]) - self.chi2, "o-", ms=3)
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
            ax.axvline(self.values.get("eta", np.nan), color="k", lw=0.8)
            ax.set_xlabel("eta")
            ax.set_ylabel("chi2 - chi2_min")
            ax.set_title(f"profile ({self.profile['mode']})", fontsize=8)
        self._plot_field(axes[-2] if self.profile is not None else axes[-1])
        fig.tight_layout()
        if path is None:
            return fig
        path = Path(path)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        return path

    def _plot_field(self, ax):
        """The fitted field on the particle's outline (tripcolor of a snapshot on the mesh) and its outline."""
        x, y, tri, theta, t, rate = self.field_snapshot()
        art = ax.tripcolor(x, y, tri, theta, shading="gouraud", cmap="viridis", vmin=min(float(theta.min()), 0.8),
                           vmax=1.0)
        xy = self.outline_xy_nm()
        ax.plot(np.r_[xy[:, 0], xy[0, 0]], np.r_[xy[:, 1], xy[0, 1]], "k-", lw=0.8)
        ax.set_aspect("equal")
        ax.set_xlabel("x [nm]")
        ax.set_ylabel("y [nm]")
        kind = type(self.outline).__name__ if self.outline is not None else "Disk"
        ax.set_title(f"fitted theta at {t:.0f} s, {rate:g} mA/g ({kind})", fontsize=8)
        ax.figure.colorbar(art, ax=ax, shrink=0.8, label="occupancy theta")

    def save(self, out_dir: str | Path, stem: str = "fit") -> dict[str, Path]:
        """Write ``<stem>.json``, ``<stem>.zarr`` and ``<stem>.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / f"{stem}.json", "zarr": out / f"{stem}.zarr", "png": out / f"{stem}.png"}
        self.to_json(paths["json"])
        self.write_zarr(paths["zarr"])
        self.plot(paths["png"])
        return paths

    def summary(self) -> str:
        lines = [f"fluxsim fit (model {self.model}, {self.method}, {self.observations.n_points} measurements, "
                 f"{len(self.observations.series)} series): chi2 = {self.chi2:.4g}, dof = {self.dof}, "
                 f"reduced chi2 = {self.reduced_chi2:.3g}" + ("" if self.absolute_sigma else " (sigma rescaled)")]
        for n in self.names:
            lines.append(f"  {n:>18} = {_fmt(self.values[n])} ± {_fmt(self.standard_errors[n])} [{FITTABLE[n].unit}]")
        if len(self.names) > 1:
            lines.append("  correlation:\n" + "\n".join("    " + " ".join(f"{c:+.3f}" for c in row)
                                                      for row in self.correlation))
        for n, entry in self.intervals.items():
            for kind in ("gauss_newton_95", "profile_95"):
                if kind in entry:
                    lo, hi = (_fmt(v) if v is not None else "open" for v in entry[kind])
                    lines.append(f"  {n:>18} {kind.replace('_95', '').replace('_', '-')} 95 % interval: [{lo}, {hi}]")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        lines.append(f"  time: compile {self.timings['compile_s']:.1f} s, run {self.timings['run_s']:.1f} s")
        return "\n".join(lines)

    __str__ = summary


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)

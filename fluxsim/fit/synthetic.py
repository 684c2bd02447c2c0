"""Synthetic measurements from the fit's own forward model (tests, benchmarks, examples)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fluxsim.core.solve import Numerics
from fluxsim.fit.model import (
    DEFAULT_NUMERICS,
    Curves,
    Problem,
    _as_float_tree,
    core_series,
    fit_mesh,
    fit_numerics,
    make_data,
    simulate_series,
)
from fluxsim.fit.optimisers import _compiled
from fluxsim.io import observations as obs_mod
from fluxsim.model.params import Params


def simulate_observations(
    params: Params,
    rates_mA_per_g: Sequence[float],
    times_s: Sequence[Sequence[float]] | np.ndarray,
    *,
    numerics: Numerics | None = None,
    outline=None,
    noise_nm: float = 0.0,
    with_direction: bool = True,
    with_core_fraction: bool = False,
    core_fraction_noise: float = 0.0,
    seed: int = 0,
    particle: str = "synthetic",
    metric: str = "hard",
) -> obs_mod.Observations:
    """Synthetic measurements from the forward model (the fit's own time-rescaled batch): d(t) of every rate at
    ``times_s[k]``, with Gaussian noise of ``noise_nm`` on each Cartesian component of the offset vector (so d stays
    a distance and the direction gets noisy too).

    Args:
        params: model inputs (from :func:`fluxsim.api.make_params`).
        rates_mA_per_g: one rate per series.
        times_s: measurement times per series [s].
        numerics: discretisation (default :data:`DEFAULT_NUMERICS`).
        outline: the particle's outline (:mod:`fluxsim.core.outline`; default the disk), meshed at
            ``numerics.spacing``; ``params.radius_m`` is its equivalent radius.
        noise_nm: standard deviation of each offset component [nm]; also written as ``d_sigma_nm`` (if > 0).
        with_direction: include the direction column.
        with_core_fraction: include the core fraction (noise ``core_fraction_noise``).
        seed: noise seed.
        metric: core metric, ``"hard"`` (as images and the fit's default) or ``"smooth"``
            (:data:`fluxsim.fit.model.METRICS`).
    """
    numerics = fit_numerics(numerics or DEFAULT_NUMERICS, params)
    mesh = fit_mesh(outline, numerics)
    times = [np.asarray(t, float) for t in times_s]
    pieces = [obs_mod.make_observations(r, t, np.zeros_like(t), particle=particle) for r, t in zip(rates_mA_per_g,
                                                                                                 times)]
    shell = obs_mod.combine(*pieces)
    data, _ = make_data(shell)
    problem = Problem((), (), numerics, metric=metric)
    args = (_as_float_tree(params), mesh, _as_float_tree(data))
    fn = _compiled(_synthetic, args, problem=problem)
    at = jax.tree.map(np.asarray, fn(*args))
    rng = np.random.default_rng(seed)
    radius = float(params.radius_m)
    parts = []
    for i, (rate, t) in enumerate(zip(rates_mA_per_g, times)):
        m = t.shape[0]
        x, y, f = at.x_nm[i, :m], at.y_nm[i, :m], at.core_fraction[i, :m]
        if noise_nm > 0:
            x = x + rng.normal(0.0, noise_nm, m)
            y = y + rng.normal(0.0, noise_nm, m)
        d = np.hypot(x, y)
        kw: dict[str, Any] = {"radius_m": radius}
        if noise_nm > 0:
            kw["d_sigma_nm"] = noise_nm
        if with_direction:
            kw["direction_rad"] = np.arctan2(y, x)
        if with_core_fraction:
            if core_fraction_noise > 0:
                f = np.clip(f + rng.normal(0.0, core_fraction_noise, m), 0.0, 1.0)
                kw["core_fraction_sigma"] = core_fraction_noise
            kw["core_fraction"] = f
        parts.append(obs_mod.make_observations(rate, t, d, particle=particle, **kw))
    return obs_mod.combine(*parts, source=f"synthetic ({particle})")


def _synthetic(params, mesh, data, *, problem: Problem):
    """Model offsets and core fraction at the data times (``problem.metric``)."""
    s, factor = simulate_series(params, mesh, data, problem)
    t = s.t_s * factor[:, None]
    f, x, y = core_series(s, problem.metric)
    interp = jax.vmap(jnp.interp)
    return Curves(data.t, jnp.hypot(interp(data.t, t, x), interp(data.t, t, y)), interp(data.t, t, x),
                  interp(data.t, t, y), interp(data.t, t, f))

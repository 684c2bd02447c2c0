"""The paper presets of sweeps/ run end to end at reduced resolution (numerics=tiny) and draw their figures.

fig5b runs in tests/app/test_launchers.py, once as one job and once as two shards through submitit. Compiling
dominates (20-60 s per configuration on a cold cache), so tests that share a compiled program share an xdist group
(one worker, one after another: the first compiles, the others load it from the persistent cache): fig4 at tiny
numerics is the default job of tests/app/test_cli.py; fig5d's program is also fig5b's in tests/app/test_launchers.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from app_support import TINY, assert_figure, printed_folder, run_fluxsim

from fluxsim.io import store


@pytest.mark.parametrize(
    ("preset", "figures"),
    [
        pytest.param("fig4", {"snapshots.png", "series.png", "kymograph.png"},
                     marks=pytest.mark.xdist_group("fig4_tiny")),
        pytest.param("fig5d", {"series.png", "capacity_vs_rate.png", "offset_vs_rate.png", "kymograph.png"},
                     marks=pytest.mark.xdist_group("rate_sweep_tiny")),
    ],
)
def test_preset_runs_and_draws_its_figures(tmp_path, preset, figures):
    folder = printed_folder(run_fluxsim(f"preset={preset}", *TINY, cwd=tmp_path))
    out = tmp_path / folder
    assert folder.startswith(f"outputs/{preset}/")
    made = {p.name for p in out.glob("*.png")}
    assert made == figures
    for figure in figures:
        assert_figure(out / figure)
    ds = store.open_store(out / "results.zarr")
    assert bool(ds["done"].all()) and int(ds["status"].max()) == 0
    vanish = ds["core_vanish_capacity_mAh_per_g"].values
    assert np.isfinite(vanish).all() and (vanish > 0).all()  # the kymographs' marks
    if preset == "fig5d":
        assert ds["line_cut"].dims == ("rate_mA_per_g", "time", "position") and "theta" not in ds
        assert np.all(np.diff(vanish) > 0)  # the core survives to higher capacity at higher rate (behaviour 5)

"""The ``fluxsim`` command end to end (subprocesses, tiny numerics)."""

from __future__ import annotations

import pytest
from app_support import TINY, assert_figure, load_job
from app_support import run_fluxsim as _fluxsim

from fluxsim.app.cli import _overridden_by_sweep
from fluxsim.io import store


@pytest.mark.xdist_group("fig4_tiny")  # shares its compiled program with tests/app/test_presets.py (fig4)
def test_default_job_end_to_end(tmp_path):
    """``fluxsim`` (tiny numerics): store + PNGs in the printed folder; the same command again resumes there
    without compiling; ``fluxsim plot`` redraws the figures from the store."""
    proc = _fluxsim(*TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = proc.stdout.strip().splitlines()[-1]  # the last line is the output folder
    assert folder.startswith("outputs/fig4/")
    out = tmp_path / folder
    for figure in ("snapshots.png", "series.png"):
        assert_figure(out / figure)
    assert (out / ".hydra" / "config.yaml").exists()
    ds = store.open_store(out / "results.zarr")
    assert bool(ds["done"].all()) and int(ds["status"].max()) == 0
    assert ds["theta"].shape == (4, 4, 288)  # 4 points, 4 snapshots, the tiny disk mesh's node bucket
    d10 = ds["offset_nm"].sel(time=600.0).values
    assert d10[0] < 1e-6 < d10[1] < d10[2] < d10[3]  # Fig. 4 ordering (a) < (b) < (c) < (d)

    again = _fluxsim(*TINY, "output.plots=false", cwd=tmp_path)  # plots do not count: same folder
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == folder
    assert "0 points left" in again.stdout + again.stderr and "compiling" not in again.stdout + again.stderr

    figures = tmp_path / "figures"
    res = _fluxsim("plot", str(out / "results.zarr"), str(figures), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(p.name for p in figures.glob("*.png")) == ["kymograph.png", "series.png", "snapshots.png"]


def test_invalid_config_fails_fast(tmp_path):
    proc = _fluxsim(*TINY, "sweep=single", "surface.eta=1.5", cwd=tmp_path)
    assert proc.returncode == 2
    assert "eta = 1.5 is outside the allowed range [0, 1]" in proc.stdout + proc.stderr
    assert not list(tmp_path.rglob("*.zarr"))


def test_overriding_a_swept_input_warns():
    job = load_job(["surface.eta=0.5"])
    hits = _overridden_by_sweep(job, ["surface.eta=0.5", "protocol.rate_mA_per_g=200", "numerics=tiny"])
    assert hits == ["surface.eta=0.5 (the sweep sets eta for every point)"]

"""Hydra launchers: a sharded study through submitit's local executor fills one shared store.

The SLURM launcher (conf/hydra/launcher/slurm.yaml) differs from submitit's local executor only in where the jobs
run; its config is checked in tests/app/test_config.py.
"""

from __future__ import annotations

import pytest
import xarray as xr
from app_support import TINY, printed_folder, run_fluxsim

from fluxsim.io import store

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'fluxsim[cluster]'")


#: fig5b with fig5d's output settings (line cuts every 15 s): the same compiled program as tests/app/test_presets.py's
#: fig5d run, so the two share one compile (xdist group); the study itself is the fig5b preset's.
FIG5B = ["preset=fig5b", *TINY, "output.line_cut=true", "output.times_s.step=15"]


@pytest.mark.xdist_group("rate_sweep_tiny")
def test_fig5b_sharded_through_submitit_equals_one_job(tmp_path):
    """``fluxsim preset=fig5b`` (numerics=tiny) as one job draws Fig. 5b, d per rate, the kymographs and the heat
    maps; then ``fluxsim -m hydra/launcher=submitit_local preset=fig5b sweep.shard=0/2,1/2`` runs two concurrent
    submitit jobs (blocks 0, 2 and block 1 of three) that create and fill one store in their shared folder: it
    equals the single job's store, and the job that completes it draws the figures."""
    folder = printed_folder(run_fluxsim(*FIG5B, cwd=tmp_path))
    single = tmp_path / folder
    assert {p.name for p in single.glob("*.png")} == {"series.png", "capacity_vs_rate.png", "offset_vs_rate.png",
                                                      "kymograph.png", "capacity_loss.png"}
    ds = store.open_store(single / "results.zarr")
    cap = ds["capacity_at_cutoff_mAh_per_g"].sel(blocked_fraction=0.25)
    assert bool((cap.sel(eta=1.0) > cap.sel(eta=0.3)).all())  # uniform flux extracts more (behaviour 6)

    proc = run_fluxsim("-m", "hydra/launcher=submitit_local", *FIG5B, "sweep.shard=0/2,1/2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shared = tmp_path / "outputs" / "multirun" / "fig5b" / single.name  # the shards share the study's hash
    logs = sorted(p.name for p in shared.glob("fluxsim-shard*.log"))
    assert logs == ["fluxsim-shard0of2.log", "fluxsim-shard1of2.log"]
    assert (shared / ".hydra-shard0of2" / "overrides.yaml").exists()
    text = "".join((shared / name).read_text() for name in logs)
    assert "shard 0/2: 2 of the chunks" in text and "shard 1/2: 1 of the chunks" in text
    assert text.count("new store") == 1  # one shard created the store, the other joined it
    assert (shared / "capacity_vs_rate.png").exists()

    a, b = store.open_store(shared / "results.zarr").load(), store.open_store(single / "results.zarr").load()
    for key in ("created", "config"):  # creation time; the full config names the shard
        assert a.attrs.pop(key) and b.attrs.pop(key)
    xr.testing.assert_identical(a, b)

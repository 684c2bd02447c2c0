"""Errors that escaped the command (issue 9), and where a run's files go.

Each refusal exits 2 with one message on standard error naming the parameter and what is allowed, no traceback,
nothing compiled and nothing left behind (no run folder, ``.hydra/`` record or log). ``hydra.run.dir=PATH`` puts a
whole run (store, record, log, figures) at PATH. Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import signal
import subprocess

import jax
import pytest
from app_support import FLUXSIM, TINY, run_fluxsim

REFUSALS = [
    ("shard", ["sweep.shard=3/2"], "sweep.shard = '3/2' must be 'i/n' with 0 <= i < n (job i of n jobs), or null"),
    ("devices", ["runtime.devices=5"],
     f"runtime.devices = 5 but this machine has {len(jax.local_devices())} cpu device(s)"),
    ("platform", ["runtime.platform=gpu"], "runtime.platform = 'gpu' is not available on this machine"),
    ("budget", ["runtime.memory_budget_gb=0.001"],
     "sweep.chunk_size = 4 needs ~0.0012 GB per device (4 simulations x 0.3 MB / 1 device(s), estimated), over "
     "the budget runtime.memory_budget_gb = 0.001"),
    ("aspect", ["geometry.aspect=0.5"], "geometry.aspect = 0.5 is outside the allowed range [1, 20]"),
    ("pixel_size", ["geometry.outline=ellipse", "geometry.pixel_size_m=1e-8"],
     "geometry.pixel_size_m = 1e-08 has no effect with geometry.outline = ellipse"),
    ("polygon", ["geometry.outline=polygon", "geometry.vertices=[[0,0],[1,1],[1,0],[0,1]]"],
     "geometry.vertices: Polygon edges cross: the vertices must trace a simple (non-self-intersecting) outline"),
]


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_refusal_exits_2_on_stderr_and_leaves_nothing(tmp_path, overrides, message):
    if "runtime.platform=gpu" in overrides and any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this machine has a GPU")
    proc = run_fluxsim(*TINY, *overrides, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == "" and "compiling" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no outputs/, no .hydra, no log


def test_refused_multirun_job_removes_its_record(tmp_path):
    """In a multirun hydra creates a job's folder before the job can validate: a refused job removes that folder
    (its .hydra record and empty log), and only that."""
    keep = tmp_path / "outputs" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("a user's file")
    proc = run_fluxsim("-m", *TINY, "runtime.devices=5", cwd=tmp_path)
    assert proc.returncode == 2 and "runtime.devices = 5" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob(".hydra*")) and not list(tmp_path.rglob("*.log"))
    assert keep.read_text() == "a user's file"


def test_hydra_run_dir_puts_the_whole_run_there(tmp_path):
    """``hydra.run.dir=PATH``: store, .hydra record, log and figures all land in PATH (nothing under ./outputs),
    PATH is printed last; a swept eta without a blocked arc is warned about on stderr."""
    place = tmp_path / "my" / "study"
    points = "[{eta:0.2},{eta:0.4},{eta:0.6},{eta:0.8}]"  # blocked_fraction = 0: eta has no effect
    proc = run_fluxsim(*TINY, f"sweep.points={points}", f"hydra.run.dir={place}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / proc.stdout.strip().splitlines()[-1]).resolve() == place
    assert "sweep.points[*].eta has no effect: blocked_fraction = 0 at every point" in proc.stderr
    assert "no effect" not in proc.stdout  # warnings go to stderr only
    names = {p.name for p in place.iterdir()}
    assert {"results.zarr", ".hydra", "fluxsim.log", "series.png"} <= names
    assert not (tmp_path / "outputs").exists()
    assert "plan: 4 of 4 points" in (place / "fluxsim.log").read_text()


@pytest.mark.parametrize("line", ["plan:", "compiling the vmapped solver"])
def test_ctrl_c_exits_130_without_traceback(tmp_path, line):
    """SIGINT once the run has planned (before the store exists) or while it compiles: exit 130, a message on
    stderr, no traceback."""
    proc = subprocess.Popen([FLUXSIM, *TINY, "sweep.chunk_size=2"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for text in proc.stdout:
        if line in text:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err and "interrupted: finished chunks" in err

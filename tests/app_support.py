"""Shared helpers of the application-layer tests (config, sweep, store, CLI); not a test module.

Every test job uses the ``tiny`` numerics and the same protocol, snapshot times and batch size (4), so the
vmapped solver compiles to the same program everywhere and the persistent XLA cache (``CACHE_DIR``, shared with
``make run``) serves it after the first compile, across test workers and subprocesses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

import fluxsim
from fluxsim.app import config, hydra_glue
from fluxsim.io import store

fluxsim.enable_float64()  # test jobs run in float64, like the app (also in the subprocesses that import this)

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = str(REPO / "conf")
CACHE_DIR = str(REPO / "outputs" / ".jax_cache")
FLUXSIM = shutil.which("fluxsim", path=str(Path(sys.executable).parent)) or "fluxsim"

#: Overrides shared by every test job (tiny numerics, no progress bar, the shared compilation cache).
TINY = ["numerics=tiny", "runtime.progress=false", f"runtime.compilation_cache_dir={CACHE_DIR}"]

#: Ten cases at 100 mA/g (same time grid as fig4), chunks of 4: blocks of 4, 4 and a padded 2.
TEN_POINTS = "[" + ",".join(
    f"{{eta:{eta},blocked_fraction:{f}}}" for eta, f in
    [(1.0, 0.0), (0.7, 0.25), (0.3, 0.25), (0.3, 0.5), (0.5, 0.1), (0.9, 0.3), (0.2, 0.2), (0.6, 0.4),
     (0.4, 0.15), (0.8, 0.05)]
) + "]"


def compose_cfg(overrides=(), return_hydra_config=False):
    """The composed DictConfig for ``overrides`` (hydra compose API)."""
    hydra_glue.register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)


def load_job(overrides=()):
    """A validated JobConfig with the tiny test settings plus ``overrides``."""
    return config.load(compose_cfg([*TINY, *overrides]))


def run_python(code: str, *, env=None, cwd=None, timeout=600, check=True):
    """Run ``code`` in a fresh Python (own JAX runtime); returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def run_fluxsim(*args, cwd, timeout=600):
    """Run the ``fluxsim`` command in ``cwd``; returns the CompletedProcess (stdout and stderr as text)."""
    return subprocess.run([FLUXSIM, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def printed_folder(proc) -> str:
    """The run folder ``fluxsim`` prints as its last line."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def block_outputs(job, block):
    """Synthetic outputs of one block for the store tests (no solver run): every value is its point's flat index."""
    out = {}
    for name in store.variable_names(job):
        var = store.VARIABLES[name]
        extra = store._extra_shape(job, var.dims)
        flat = block.flat.reshape(block.shape + (1,) * len(extra))
        out[name] = np.broadcast_to(flat, block.shape + extra).astype(var.dtype)
    out["status"] = np.zeros(block.shape, np.int8)
    return out


def assert_figure(path, min_size_px=(300, 400)) -> None:
    """``path`` is a drawn figure, not a blank or broken PNG: it decodes, is at least ``min_size_px`` (height, width),
    has ink on between 2 % and 98 % of its pixels (axes, lines, labels on a white page) and many distinct colours
    (a colour map or several line colours, not only text)."""
    import matplotlib.image as mpimg

    image = mpimg.imread(path)
    height, width = image.shape[:2]
    assert height >= min_size_px[0] and width >= min_size_px[1], f"{path}: {height} x {width} px"
    rgb = np.asarray(image[..., :3] * 255, dtype=np.uint8)
    inked = float(np.mean(np.any(rgb < 230, axis=-1)))
    assert 0.02 < inked < 0.98, f"{path}: ink on {inked:.1%} of the pixels"
    colours = len(np.unique(rgb.reshape(-1, 3), axis=0))
    assert colours > 50, f"{path}: only {colours} distinct colours"

"""conf/ and sweeps/ compose in every option, and app.config validates it into typed objects before any compute."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
from app_support import CONF_DIR, TINY, compose_cfg, load_job
from omegaconf import OmegaConf

from fluxsim.api import make_diffusivity, make_params
from fluxsim.app import config, hydra_glue
from fluxsim.core.outline import Curve, Disk, Ellipse, Polygon
from fluxsim.core.solve import Numerics
from fluxsim.model.protocol import Charge, Rest
from fluxsim.study.shapes import ShapeSpec

#: Config group -> its folder: the groups of conf/, and the preset studies of sweeps/ (group ``preset``).
GROUP_DIRS = {p.name: p for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "hydra"}
GROUP_DIRS.update({p.name: p for p in hydra_glue.SWEEPS_DIR.iterdir() if p.is_dir()})
GROUPS = sorted(GROUP_DIRS)


def _options(group):
    return sorted(p.stem for p in GROUP_DIRS[group].glob("*.yaml"))


def _disk_mask(folder, n=40, radius=15.0, name="mask.npy") -> Path:
    """A .npy segmentation mask of a disk of ``radius`` pixels (a test particle)."""
    y, x = np.mgrid[:n, :n]
    path = folder / name
    np.save(path, np.hypot(x - n / 2 + 0.5, y - n / 2 + 0.5) <= radius)
    return path


def test_presets_live_in_sweeps():
    """The paper presets are the ``preset`` group, found in sweeps/ through the primary config's search path."""
    assert _options("preset") == ["charge_rest", "ellipse_aspect", "fig4", "fig5b", "fig5d", "large_study"]
    assert not (Path(CONF_DIR) / "preset").exists()  # one home, no copies
    job = load_job(["preset=fig5d"])
    assert job.sweep.name == "fig5d" and job.sweep.dims == ("rate_mA_per_g",)
    assert job.output.line_cut and not job.output.snapshot_times_s
    large = compose_cfg(["preset=large_study"])  # validated in test_every_option_composes_and_validates
    assert [large.sweep.grid[k].num for k in ("eta", "blocked_fraction", "radius_m", "rate_mA_per_g")] == \
        [20, 10, 8, 8] and large.numerics.spacing == 0.0625


@pytest.mark.parametrize(
    "override", [f"{g}={o}" for g in GROUPS for o in _options(g)],
)
def test_every_option_composes_and_validates(override, tmp_path):
    overrides = [*TINY, override]
    if override == "sweep=rate_blocking":
        overrides.append("output=series_only")
    if override == "sweep=aspect":
        overrides.append("geometry=ellipse")
    if override == "geometry=mask":
        overrides.append(f"geometry.mask_file={_disk_mask(tmp_path)}")
    cfg = compose_cfg(overrides, return_hydra_config=True)
    job = config.load(cfg)
    assert job.sweep.size == len(job.params) >= 1
    assert cfg.hydra.run.dir == f"outputs/{job.sweep.name}/{job.config_hash}"


def test_every_make_params_input_is_a_config_key():
    keywords = set(inspect.signature(make_params).parameters) | set(inspect.signature(make_diffusivity).parameters)
    keywords -= {"diffusivity", "law"}
    keywords |= {"diffusivity"}  # make_params(diffusivity=...) selects the law
    assert keywords <= set(config.CONFIG_INPUTS.values()) | {"law"}
    assert set(config.INPUTS) <= set(config.CONFIG_INPUTS.values())


def test_cli_overrides_reach_params():
    job = load_job(["sweep=single", "surface.eta=0.3", "surface.blocked_fraction=0.25",
                    "protocol.rate_mA_per_g=200", "geometry.radius_m=1.5e-6", "diffusivity.D_hi_m2_per_s=2e-14"])
    (p,) = job.params
    assert (p.blocking.eta, p.blocking.blocked_fraction, p.rate_mA_per_g, p.radius_m) == (0.3, 0.25, 200.0, 1.5e-6)
    assert p.diffusivity.D_hi_m2_per_s == 2e-14
    expected = make_params(eta=0.3, blocked_fraction=0.25, rate_mA_per_g=200.0, radius_m=1.5e-6, D_hi_m2_per_s=2e-14)
    assert str(p) == str(expected)
    assert job.protocol == (Charge(),)


def test_default_job_is_fig4():
    job = config.load(compose_cfg())
    assert job.sweep.dims == ("point",) and job.sweep.shape == (4,)
    cases = [(p.blocking.eta, p.blocking.blocked_fraction, p.rate_mA_per_g) for p in job.params]
    assert cases == [(1.0, 0.0, 100.0), (0.7, 0.25, 100.0), (0.3, 0.25, 100.0), (0.3, 0.5, 100.0)]
    assert all(p.blocking.arc_center_rad == math.pi for p in job.params)
    assert job.output.snapshot_times_s == (300.0, 600.0, 900.0, 1200.0)
    assert job.numerics == Numerics(integer_exponent=3)  # the power law's default exponent, at every point
    assert job.shape == ShapeSpec() and job.shape.build() == Disk()
    assert job.output.times_s[-1] >= 0.8 * 3600 * 275 / 100  # covers the whole charge


def test_protocol_and_models():
    job = load_job(["protocol=charge_rest", "surface=model_b", "diffusivity=power_law_dip"])
    assert job.protocol == (Charge(max_duration_s=1200.0), Rest(duration_s=900.0))
    p = job.params[0]
    assert type(p.kinetics).__name__ == "FilmResistance" and p.theta0 == 1 - 1e-4
    assert type(p.diffusivity).__name__ == "LowThetaDip"
    assert job.output.times_s[-1] == 2100.0


def test_grid_layout_and_ranges():
    job = load_job(["sweep=fig5b", "sweep.chunk_size=3"])
    assert job.sweep.dims == ("blocked_fraction", "eta", "rate_mA_per_g")
    assert job.sweep.shape == (1, 3, 4) and job.sweep.chunk_shape == (1, 1, 3)
    np.testing.assert_array_equal(job.sweep.coords["rate_mA_per_g"], [50, 100, 200, 400])
    i = np.ravel_multi_index((0, 2, 1), job.sweep.shape)  # eta 0.3, 100 mA/g
    assert (job.params[i].blocking.eta, job.params[i].rate_mA_per_g) == (0.3, 100.0)
    job = load_job(["sweep=single", "+sweep.grid.radius_m={start:1e-6,stop:4e-6,num:3,log:true}"])
    np.testing.assert_allclose(job.sweep.coords["radius_m"], [1e-6, 2e-6, 4e-6])


def test_points_crossed_with_grid():
    job = load_job(["+sweep.grid.rate_mA_per_g=[100,200]"])
    assert job.sweep.dims == ("point", "rate_mA_per_g") and job.sweep.shape == (4, 2)
    assert list(job.sweep.point_coords) == ["eta", "blocked_fraction", "label"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["sweep=single", "surface.eta=1.5"], "surface.eta = 1.5 is outside the allowed range [0, 1]"),
        (["surface.eta=1.5"], "eta = 1.5"),  # checked even where the sweep replaces it
        (["surface.eta=abc"], "surface.eta = 'abc' must be a number"),
        (["geometry.radius_m=-1e-6"], "geometry.radius_m = -1e-06 m is outside the allowed range (0, inf)"),
        (["sweep=fig5b", "sweep.grid.rate_mA_per_g=[100,-5]"], "sweep point 1 (blocked_fraction=0.25, eta=1, "
                                                               "rate_mA_per_g=-5): rate_mA_per_g = -5.0"),
        (["+sweep.grid.theta_ref=[0.7]", "diffusivity=constant"], "theta_ref has no effect with diffusivity law"),
        (["+sweep.grid.r_NMC_ohm_m2=[0.05]"], "r_NMC_ohm_m2 has no effect with surface model 'A'"),
        (["+sweep.grid.surface_model=[1]"], "'surface_model' cannot be swept"),
        (["+sweep.grid.eta=[0.5]"], "'eta' is both a grid dimension and set by sweep.points[0]"),
        (["sweep=single", "+sweep.grid.eta=[0.5,0.5]"], "repeated values"),
        (["numerics.spacing=0.5"], "numerics.spacing must be a number in [0.004, 0.25]"),
        (["numerics.rtol=2"], "numerics.rtol must be in (0, 1), got 2.0"),
        (["numerics.max_steps=1.5"], "numerics.max_steps = 1.5 must be an integer"),
        (["+numerics.nr=32"], "numerics has unknown keys ['nr']"),
        (["sweep=single", "surface.blocked_fraction=0.01"], "numerics.spacing = 0.125 is too coarse for "
                                                             "blocked_fraction = 0.01"),
        (["geometry.aspect=0.5"], "geometry.aspect = 0.5 is outside the allowed range [1, 20]"),
        (["geometry.aspect=2"], "geometry.aspect = 2 has no effect with geometry.outline = disk (it is an input of "
                                "the ellipse outline: geometry.outline=ellipse)"),
        (["geometry=ellipse", "geometry.aspect=0.5"], "geometry.aspect = 0.5 is outside the allowed range [1, 20]"),
        (["geometry=ellipse", "geometry.aspect=30"], "geometry.aspect = 30.0 is outside the allowed range [1, 20]"),
        (["geometry.outline=ellipse", "geometry.pixel_size_m=1e-8"], "geometry.pixel_size_m = 1e-08 has no effect "
                                                                     "with geometry.outline = ellipse"),
        (["geometry.outline=triangle"], "geometry.outline = 'triangle' is not an outline; allowed: disk, ellipse, "
                                        "polygon, mask"),
        (["geometry.outline=polygon", "geometry.vertices=[[0,0],[1,1],[1,0],[0,1]]"],
         "geometry.vertices: Polygon edges cross"),
        (["geometry.outline=polygon"], "geometry.vertices is null: geometry.outline = polygon needs the corners"),
        (["geometry=mask"], "geometry.mask_file = None: geometry.outline = mask needs the mask's file"),
        (["geometry=mask", "geometry.mask_file=/nonexistent/mask.npy"], "geometry.mask_file = '/nonexistent/mask.npy':"
                                                                         " no such file"),
        (["+geometry.size=3"], "geometry has unknown keys ['size']"),
        (["sweep=single", "+sweep.grid.aspect=[1,2]"], "sweep.grid.aspect: aspect has no effect with "
                                                       "geometry.outline = disk"),
        (["geometry=ellipse", "sweep=aspect", "sweep.grid.aspect=[1,25]"], "sweep.grid.aspect = 25.0 is outside the "
                                                                          "allowed range [1, 20]"),
        (["protocol.steps=[{kind:rest}]"], "protocol.steps[0] (rest) needs duration_s"),
        (["protocol.steps=[{kind:charge,rate:5}]"], "unknown keys ['rate']"),
        (["output.times_s.step=0"], "output.times_s needs start >= 0 and step > 0"),
        (["output.zarr_format=4"], "output.zarr_format = 4 must be 2 or 3"),
        (["sweep.chunk_size=0"], "sweep.chunk_size = 0 must be >= 1"),
        (["sweep.chunk_size=big"], "sweep.chunk_size = 'big' must be an integer"),
        (["sweep.shard=2/2"], "sweep.shard = '2/2' must be 'i/n' with 0 <= i < n"),
        (["sweep.shard=half"], "sweep.shard = 'half' must be 'i/n'"),
        (["sweep.shard=0/2", "output.overwrite=true"], "output.overwrite=true cannot be combined with sweep.shard"),
        (["runtime.memory_budget_gb=0"], "runtime.memory_budget_gb = 0.0 must be > 0"),
        (["runtime.devices=0"], "runtime.devices = 0 must be >= 1"),
    ],
)
def test_invalid_configs_name_the_parameter(overrides, message):
    with pytest.raises(config.ConfigError) as err:
        load_job(overrides)
    assert message in str(err.value)


def test_hash_tracks_results_not_runtime():
    base = hydra_glue.config_hash(compose_cfg(TINY))
    assert hydra_glue.config_hash(compose_cfg([*TINY, "runtime.progress=true", "output.plots=false"])) == base
    assert hydra_glue.config_hash(compose_cfg([*TINY, "output.store=/tmp/x.zarr"])) == base
    assert hydra_glue.config_hash(compose_cfg([*TINY, "surface.arc_center_rad=1.0"])) != base
    assert hydra_glue.config_hash(compose_cfg([*TINY, "numerics.rtol=0.005"])) != base
    assert hydra_glue.config_hash(compose_cfg([*TINY, "geometry=ellipse"])) != base
    job = load_job()
    assert "runtime" not in job.identity_yaml and "runtime" in job.config_yaml


def test_outlines_from_the_geometry_group(tmp_path):
    """geometry=ellipse / polygon / mask give the core's outline objects; an aspect sweep varies the outline per
    point (aspect 1 is the disk itself); a mask with a pixel size fixes the equivalent radius, without one its shape
    is scaled to geometry.radius_m."""
    ellipse = load_job(["sweep=single", "geometry=ellipse"])
    assert ellipse.outline_spec(0).build() == Ellipse(1.8, 0.0)
    polygon = load_job(["sweep=single", "geometry=polygon"]).outline_spec(0).build()
    assert isinstance(polygon, Polygon) and len(polygon.vertices) == 5
    swept = load_job(["geometry=ellipse", "sweep=aspect", "geometry.orientation_rad=0.5"])
    assert swept.sweep.dims == ("aspect", "eta") and swept.sweep.shape == (3, 3)
    assert [swept.outline_spec(i).build() for i in (0, 3, 8)] == [Disk(), Ellipse(1.5, 0.5), Ellipse(2.0, 0.5)]
    assert "aspect" not in swept.sweep.inputs[4] and swept.sweep.inputs.shape_of(4) == {"aspect": 1.5}
    assert swept.numerics.integer_exponent == 3

    mask = _disk_mask(tmp_path, radius=15.0)
    fixed = load_job(["sweep=single", "geometry=mask", f"geometry.mask_file={mask}", "geometry.pixel_size_m=1e-8"])
    pixels = int(np.load(mask).sum())
    assert fixed.params[0].radius_m == pytest.approx(np.sqrt(pixels / np.pi) * 1e-8, rel=1e-12)
    assert isinstance(fixed.outline_spec(0).build(), Curve)
    scaled = load_job(["sweep=single", "geometry=mask", f"geometry.mask_file={mask}", "geometry.pixel_size_m=null",
                       "geometry.radius_m=2e-6"])
    assert scaled.params[0].radius_m == 2e-6
    with pytest.raises(config.ConfigError, match="geometry.pixel_size_m = 1e-08 m fixes the particle's radius"):
        load_job(["sweep=single", "geometry=mask", f"geometry.mask_file={mask}", "geometry.radius_m=1e-6",
                  "geometry.pixel_size_m=1e-8"])
    with pytest.raises(config.ConfigError, match="radius_m cannot be swept while geometry.pixel_size_m"):
        load_job(["sweep=single", "geometry=mask", f"geometry.mask_file={mask}", "+sweep.grid.radius_m=[1e-6,2e-6]"])
    np.save(tmp_path / "grey.npy", np.full((20, 20), 0.5))
    with pytest.raises(config.ConfigError, match="cannot be used as a mask: a .npy mask must hold bools or"):
        load_job(["sweep=single", "geometry=mask", f"geometry.mask_file={tmp_path / 'grey.npy'}"])


def test_shape_inputs_are_in_the_catalogue():
    """Each shape input is stated once (catalogue): its config key, its range where the core checks one."""
    from fluxsim.core import outline
    from fluxsim.model import catalogue

    assert {e.config_key for e in catalogue.SHAPE_INPUTS.values()} == {f"geometry.{k}" for k in catalogue.SHAPE_INPUTS}
    aspect = catalogue.SHAPE_INPUTS["aspect"].range
    assert (aspect.lo, aspect.hi) == outline.ASPECT_RANGE
    defaults = OmegaConf.to_container(compose_cfg().geometry)
    assert {k: defaults[k] for k in catalogue.SHAPE_INPUTS} == {k: e.default for k, e in catalogue.SHAPE_INPUTS.items()}
    assert set(config.SHAPE_INPUTS) == set(catalogue.SHAPE_SWEEPABLE)


def test_shards_and_auto_chunks():
    """``sweep.shard`` picks a job's blocks but not its results: every shard has the study's hash (one folder, one
    store); ``chunk_size: auto`` is resolved at run time (fluxsim.study.plan.auto_chunk_size)."""
    job = load_job(["sweep=fig5b", "sweep.shard=1/3"])
    assert job.sweep.shard == (1, 3) and job.sweep.chunk_size == 4
    base = hydra_glue.config_hash(compose_cfg([*TINY, "sweep=fig5b"]))
    assert hydra_glue.config_hash(compose_cfg([*TINY, "sweep=fig5b", "sweep.shard=1/3"])) == job.config_hash == base
    assert load_job(["sweep.shard=0/1"]).sweep.shard is None
    cfg = compose_cfg([*TINY, "sweep=fig5b", "sweep.shard=1/3"], return_hydra_config=True)
    assert cfg.hydra.output_subdir == ".hydra-shard1of3"  # each shard's own record in the shared folder
    log_file = OmegaConf.to_container(cfg.hydra.job_logging, resolve=False)["handlers"]["file"]["filename"]
    assert log_file.endswith("${fluxsim_shard_suffix:}.log")
    assert compose_cfg(TINY, return_hydra_config=True).hydra.output_subdir == ".hydra"

    auto = load_job(["sweep=fig5b", "sweep.chunk_size=auto", "runtime.memory_budget_gb=2"])
    assert auto.sweep.chunk_size is None and auto.sweep.chunk_shape is None and auto.runtime.memory_budget_gb == 2.0
    resolved = auto.sweep.with_chunk_size(6)
    assert resolved.chunk_shape == (1, 1, 4) and resolved.chunk_size == 6
    assert auto.sweep.with_chunk_shape([1, 3, 2]).chunk_size == 6
    assert hydra_glue.config_hash(compose_cfg([*TINY, "sweep.chunk_size=auto", "runtime.memory_budget_gb=8"])) == \
        hydra_glue.config_hash(compose_cfg([*TINY, "sweep.chunk_size=auto"]))  # the budget is runtime


@pytest.mark.parametrize(
    ("launcher", "expected"),
    [
        ("slurm", {"partition": None, "timeout_min": 240, "gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 32,
                   "_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}),
        ("parallel", {"n_jobs": 2, "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}),
        ("submitit_local", {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"}),
        ("joblib", {"n_jobs": -1}),
    ],
)
def test_launcher_configs_compose(launcher, expected):
    """conf/hydra/launcher/{slurm,parallel}.yaml extend the plugins' own configs; overrides reach them."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    cfg = compose_cfg([*TINY, f"hydra/launcher={launcher}"], return_hydra_config=True)
    for key, value in expected.items():
        assert cfg.hydra.launcher[key] == value, key
    if launcher == "slurm":
        cfg = compose_cfg([*TINY, "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                           "hydra.launcher.timeout_min=30", "hydra.launcher.mem_gb=64"], return_hydra_config=True)
        assert (cfg.hydra.launcher.partition, cfg.hydra.launcher.timeout_min, cfg.hydra.launcher.mem_gb) == \
            ("gpu", 30, 64)

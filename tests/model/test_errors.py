"""Bad input through the Python API (``fluxsim.run``, ``fluxsim.fit.fit``) and ``fluxsim fit`` (issue 9).

Every refusal names the parameter and the allowed values or range, comes from the one format of
:mod:`fluxsim.model.checks`, and happens before any XLA compilation. The command line (``fluxsim fit``) exits with 2 and
prints the message on stderr, without a traceback.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from app_support import load_job

import fluxsim
from fluxsim import api
from fluxsim import fit as fit_mod
from fluxsim.app import config, fit_cli
from fluxsim.core.polar.solver import Numerics
from fluxsim.io import observations as obs
from fluxsim.model import checks

COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *args, **kw: COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
)


@pytest.fixture
def no_compilation():
    """Asserts that the test body compiled nothing (after warming up make_params' small eager ops)."""
    api.make_params(blocked_fraction=0.25, eta=0.5)
    COMPILES.clear()
    yield
    assert COMPILES == []


#: Mesh-core numerics small enough for the refusal tests (refusals happen before anything compiles).
COARSE_MESH = fluxsim.Numerics(spacing=0.125)

API_REFUSALS = [
    ("nr replaced", dict(nr=16), TypeError,
     "nr is no longer an input of fluxsim.run (the polar grid is gone): use numerics=fluxsim.Numerics(spacing=...)"),
    ("nphi replaced", dict(nphi=64), TypeError, "nphi is no longer an input of fluxsim.run"),
    ("n_steps replaced", dict(n_steps=200), TypeError,
     "n_steps is no longer an input of fluxsim.run (the polar grid is gone): use error-controlled time steps: "
     "numerics=fluxsim.Numerics(integrator=fluxsim.RKLSettings(rtol=...))"),
    ("numerics not Numerics", dict(numerics="fine"), TypeError, "numerics = 'fine' must be a fluxsim.Numerics"),
    ("polar numerics", dict(numerics=Numerics()), TypeError, "numerics = Numerics(nr=32"),
    ("outline not an outline", dict(outline="ellipse"), ValueError,
     "outline = 'ellipse' must be a fluxsim outline: Disk(), Ellipse(aspect, orientation_rad), Polygon(vertices)"),
    ("save times unsorted", dict(save_times_s=[0, 60, 30]), ValueError,
     "save_times_s = [0.0, 60.0, 30.0] must be sorted (non-decreasing) [s]"),
    ("save time negative", dict(save_times_s=[-1, 60]), ValueError,
     "save_times_s[0] = -1.0 s is outside the allowed range [0, inf)"),
    ("unknown name", dict(etaa=0.3), TypeError, "etaa is not an input of fluxsim.run (did you mean 'eta'?); allowed: "),
    ("eta text", dict(eta="abc"), ValueError, "eta = 'abc' must be a number in the allowed range [0, 1]"),
    ("eta array", dict(eta=np.array([0.3, 0.5])), ValueError,
     "eta = array of shape (2,) must be a number in the allowed range [0, 1]"),
    ("eta list", dict(eta=[0.3, 0.5]), ValueError, "eta = [0.3, 0.5] must be a number in the allowed range [0, 1]"),
    ("eta bool", dict(eta=True), ValueError, "eta = True must be a number in the allowed range [0, 1]"),
    ("eta nan", dict(eta=math.nan), ValueError, "eta = nan is outside the allowed range [0, 1]"),
    ("radius inf", dict(radius_m=math.inf), ValueError, "radius_m = inf m is outside the allowed range (0, inf)"),
    ("rate bool", dict(rate_mA_per_g=False), ValueError,
     "rate_mA_per_g = False must be a number in the allowed range (0, inf)"),
    ("voltage cut -inf", dict(surface_model="B", voltage_cut_V=-math.inf), ValueError,
     "voltage_cut_V = -inf V is outside the allowed range (-inf, inf]"),
    ("snapshot time text", dict(snapshot_times_s=[60, "x"]), ValueError,
     "snapshot_times_s[1] = 'x' must be a number in the allowed range [0, inf)"),
    ("unknown diffusivity keyword", dict(D_hi_m2_per_sec=1e-14), TypeError,
     "D_hi_m2_per_sec is not an input of fluxsim.run (did you mean 'D_hi_m2_per_s'?)"),
    ("extra arcs ragged", dict(blocked_fraction=0.2, extra_arcs=[[1, 0.1]]), ValueError,
     "extra_arcs = [[1.0, 0.1]] must be rows of [center_rad, fraction, eta]"),
    ("eta profile text", dict(eta_profile="abc"), ValueError, "eta_profile = 'abc' must be a sequence of numbers"),
    ("too coarse", dict(blocked_fraction=0.01, numerics=COARSE_MESH), ValueError,
     "numerics.spacing = 0.125 is too coarse for blocked_fraction = 0.01: the arc spans 0.5 rim node spacings, at "
     "least 1 are needed (allowed: a fraction of 0 or >= 0.02, or spacing <= 0.0625)"),
]


@pytest.mark.parametrize(("kwargs", "kind", "message"), [c[1:] for c in API_REFUSALS], ids=[c[0] for c in API_REFUSALS])
def test_run_refuses_bad_input_naming_the_parameter(kwargs, kind, message, no_compilation):
    with pytest.raises(kind) as err:
        fluxsim.run(**kwargs)
    assert message in str(err.value)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(TypeError) as err:
        api.make_params(blocked_fractoin=0.3)
    text = str(err.value)
    assert "blocked_fractoin is not an input of fluxsim.make_params (did you mean 'blocked_fraction'?)" in text
    assert all(name in text for name in ("eta", "radius_m", "D_hi_m2_per_s", "theta_dip"))
    assert "make_diffusivity" not in text


@pytest.mark.parametrize(
    ("api", "overrides"),
    [
        (dict(blocked_fraction=0.01, numerics=COARSE_MESH),
         ["surface.blocked_fraction=0.01", "numerics.spacing=0.125"]),
    ],
    ids=["arc below one rim node"],
)
def test_one_numerics_validation_behind_both_front_doors(api, overrides, no_compilation):
    """The API and the command line refuse the same numerics with the same message (naming the config's key)."""
    with pytest.raises(ValueError) as from_api:
        fluxsim.run(**api)
    with pytest.raises(config.ConfigError) as from_config:
        load_job(["sweep=single", *overrides])
    assert str(from_config.value) == str(from_api.value)


@pytest.mark.parametrize(
    ("kwargs", "override", "key"),
    [
        (dict(eta=math.nan), "surface.eta=nan", "surface.eta"),
        (dict(eta=-1.0), "surface.eta=-1.0", "surface.eta"),
        (dict(radius_m=math.inf), "geometry.radius_m=inf", "geometry.radius_m"),
        (dict(theta_cut=1.0), "protocol.theta_cut=1.0", "protocol.theta_cut"),
        (dict(eta="abc"), "surface.eta=abc", "surface.eta"),
    ],
)
def test_config_messages_are_the_api_messages_under_the_config_key(kwargs, override, key, no_compilation):
    with pytest.raises(ValueError) as from_api:
        api.make_params(**kwargs)
    name = next(iter(kwargs))
    with pytest.raises(config.ConfigError) as from_config:
        load_job(["sweep=single", override])
    assert str(from_api.value).startswith(f"{name} = ")
    assert str(from_config.value) == key + str(from_api.value)[len(name):]


def test_printed_ranges_are_the_enforced_ranges():
    """Each bracket of a printed range says whether that end is accepted: infinity only with a closed inf]."""
    cases = [  # (bounds, printed, accepted, refused)
        (dict(lo=0, lo_open=True), "(0, inf)", [1e-300, 1e300], [0.0, math.inf, math.nan]),
        (dict(lo=0, hi=1), "[0, 1]", [0.0, 1.0], [-1e-12, 1.0 + 1e-12, math.nan]),
        (dict(lo=0, hi=1, lo_open=True, hi_open=True), "(0, 1)", [0.5], [0.0, 1.0]),
        (dict(hi=math.inf), "(-inf, inf]", [math.inf, -1e300], [-math.inf, math.nan]),
        (dict(), "(-inf, inf)", [0.0], [math.inf, -math.inf, math.nan]),
    ]
    for bounds, printed, accepted, refused in cases:
        assert checks.format_range(**bounds) == printed
        for v in accepted:
            assert checks.check_range("x", v, **bounds) == v
        for v in refused:
            with pytest.raises(checks.InputError) as err:
                checks.check_range("x", v, **bounds)
            assert str(err.value) == f"x = {v!r} is outside the allowed range {printed}"


# ---------------------------------------------------------------------------------------------------------------
# fluxsim fit and negative d
# ---------------------------------------------------------------------------------------------------------------
def _csv(tmp_path, rows, header="rate_mA_per_g,time_s,d_nm"):
    path = tmp_path / "obs.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{csv}", "blocked_fractoin=0.3"], "blocked_fractoin is not an input of fluxsim fit (did you mean "
                                            "'blocked_fraction'?); allowed: D_floor_m2_per_s"),
        (["{dir}"], "is a directory or not a regular file: give the CSV file itself"),
        (["{csv}", "eta=abc"], "eta = 'abc' must be a number in the allowed range [0, 1]"),
        (["{csv}", "eta=True"], "eta = 'True' must be a number in the allowed range [0, 1]"),
        (["{csv}", "--spacing", "1"], "--spacing: spacing must be a number in [0.004, 0.25] (units of the "
                                      "equivalent radius), got 1.0"),
        (["{csv}", "blocked_fraction=0.001", "--spacing", "0.125"],
         "numerics.spacing = 0.125 is too coarse for blocked_fraction = 0.001"),
        (["{csv}", "--negative-d", "refuse"], "line 2, column 'd_nm': '-2.83' must be >= 0 (a distance) in"),
        (["{csv}", "eta"], "expected NAME=VALUE for a fixed input, got 'eta'"),
    ],
    ids=["unknown name", "directory", "text value", "bool text", "numerics", "too coarse", "negative d", "no ="],
)
def test_fit_cli_refuses_with_exit_2_on_stderr(tmp_path, capsys, args, message, no_compilation):
    csv = _csv(tmp_path, ["100,60,-2.83", "100,120,30", "100,240,60"])
    argv = [a.format(csv=csv, dir=tmp_path) for a in args]
    assert fit_cli.main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_fit_api_refuses_numerics_too_coarse(no_compilation):
    data = obs.make_observations(100, [60.0, 120.0], [5.0, 10.0])
    with pytest.raises(ValueError, match=r"numerics.spacing = 0.125 is too coarse for blocked_fraction = 0.001: the "
                                         r"arc spans 0.0503 rim node spacings, at least 1 are needed"):
        fit_mod.fit(data, ["eta"], numerics=COARSE_MESH, blocked_fraction=0.001)
    with pytest.raises(ValueError, match=r"numerics must be a fluxsim.core.solve.Numerics, got Numerics"):
        fit_mod.fit(data, ["eta"], numerics=Numerics(nr=8, nphi=16, n_steps=16))


def test_negative_d_within_the_noise_is_kept_unchanged_with_a_warning(tmp_path):
    path = _csv(tmp_path, ["100,60,-2.83", "100,120,-29.9", "100,240,60"])  # default sigma 10 nm: -30 is the edge
    with pytest.warns(obs.ObservationWarning, match=r"kept 2 row\(s\) with negative d .*line 2 \(d_nm = '-2.83'\), "
                                                    r"line 3 \(d_nm = '-29.9'\)"):
        data = obs.read_csv(path)
    assert data.series[0].d_nm.tolist() == [-2.83, -29.9, 60.0]  # signed noise: not clipped, not dropped


def test_negative_d_beyond_the_noise_is_refused_naming_the_lines_and_the_option(tmp_path):
    path = _csv(tmp_path, ["100,60,-2,4", "100,120,-13,4", "100,240,60,4"],
                header="rate_mA_per_g,time_s,d_nm,d_sigma_nm")
    with pytest.raises(obs.ObservationError) as err:  # sigma 4 nm from the file: -13 < -12
        obs.read_csv(path)
    text = str(err.value)
    assert "line 3, column 'd_nm': '-13' must be >= 0 (a distance), or >= -3 sigma = -12 nm as noise around 0" in text
    assert "refused: line 3 (d_nm = '-13')." in text and "'drop'" in text and "--negative-d" in text


def test_negative_d_drop_and_refuse(tmp_path):
    path = _csv(tmp_path, ["100,60,-2.83", "100,120,30", "100,240,-1"])
    with pytest.warns(obs.ObservationWarning, match=r"dropped 2 row\(s\) .*line 2 \(d_nm = '-2.83'\), line 4"):
        data = obs.read_csv(path, negative_d="drop")
    assert data.series[0].d_nm.tolist() == [30.0] and data.series[0].lines.tolist() == [3]
    with pytest.raises(obs.ObservationError, match=r"'-2.83' must be >= 0 \(a distance\)"):
        obs.read_csv(path, negative_d="refuse")
    with pytest.raises(obs.ObservationError, match=r"negative_d = 'clip' must be one of 'noise', 'drop', 'refuse'"):
        obs.read_csv(path, negative_d="clip")

"""fluxsim.model.catalogue agrees with every table that today states a fact about an input (issue 10).

Until validation, config, store attributes, fits and the README read the catalogue, these tests hold the scattered
copies to it: the defaults of ``make_params`` / ``make_diffusivity`` and of the ``Params`` pytree classes, the config
keys and the conf/ YAML defaults, ``config.INPUTS`` (the store's units and long names), the law / model membership of
the config checks, ``api._INPUT_LOCATION`` and ``api.replace``, ``fit.FITTABLE``, the ranges ``make_params``
enforces, and the README inputs table. Disagreements known today are ``xfail(strict=True)``: fixing one makes its
test pass, which then fails until it is taken off :data:`KNOWN` (or :data:`KNOWN_BEFORE_CHECKS`).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fluxsim import api, fit
from fluxsim.app import config
from fluxsim.core.polar import solver
from fluxsim.imaging import images
from fluxsim.model import catalogue
from fluxsim.model.catalogue import CONSTANT, DIP, INPUTS, MODEL_A, MODEL_B, POWER_LAW, TABULATED

ROOT = Path(__file__).resolve().parents[2]

#: Known disagreements between the catalogue and today's code (see the report of issue 10).
KNOWN: dict[str, str] = {}
#: Disagreements that issue 9's validation module (model/checks.py) removes: make_params checks no range for these,
#: so NaN (and +-inf) pass silently. Expected failures exactly while that module is absent.
KNOWN_BEFORE_CHECKS = {
    "range:U0_V": "make_params does not check U0_V (README: finite)",
    "range:k_V": "make_params does not check k_V (README: finite)",
    "range:theta_dip": "make_params does not check theta_dip (NaN / inf accepted)",
    "range:voltage_cut_V": "make_params does not check voltage_cut_V (NaN accepted: the cut-off silently never fires)",
}
_HAVE_CHECKS = importlib.util.find_spec("fluxsim.model.checks") is not None


def _xfail_known(key):
    if key in KNOWN:
        return [pytest.mark.xfail(reason=KNOWN[key], strict=True)]
    if key in KNOWN_BEFORE_CHECKS:
        return [pytest.mark.xfail(not _HAVE_CHECKS, reason=KNOWN_BEFORE_CHECKS[key], strict=True)]
    return []


def _context(entry: catalogue.Input, surface_model: str = "A") -> dict:
    """make_params keywords under which ``entry`` has an effect."""
    kw = {"surface_model": "B"} if entry.applies == MODEL_B or surface_model == "B" else {}
    if entry.applies == CONSTANT:
        kw["diffusivity"] = "constant"
    elif entry.applies == DIP:
        kw["low_theta_dip"] = True
    elif entry.applies == TABULATED:
        kw.update(diffusivity="tabulated", table_theta=[0.0, 1.0], table_D_m2_per_s=[1e-14, 1e-20])
    return kw


def _at(tree, path: str):
    for part in path.split("."):
        tree = getattr(tree, part)
    return tree


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str) or isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)


def _models(entry):
    return ("A", "B") if entry.applies in (catalogue.ALWAYS,) else (("B",) if entry.applies == MODEL_B else ("A",))


# ---------------------------------------------------------------------------------------------------------------
# the catalogue itself
# ---------------------------------------------------------------------------------------------------------------
def test_import_is_pure_python():
    """The catalogue imports only the standard library (no jax, numpy, hydra or xarray): every layer reads it."""
    tree = ast.parse((ROOT / "fluxsim" / "model" / "catalogue.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


@pytest.mark.parametrize("name", list(INPUTS))
def test_default_is_allowed(name):
    entry = INPUTS[name]
    for model in _models(entry):
        rng, default = entry.range_for(model), entry.default_for(model)
        if entry.kind == "scalar":
            assert rng.contains(default, {"theta_cut": INPUTS["theta_cut"].default}), (model, default, rng)
        elif entry.kind == "choice":
            assert default in entry.choices
        elif entry.kind == "bool":
            assert isinstance(default, bool)
        else:
            assert default is None


def test_range_text_and_contains():
    r = catalogue.Range(0, 1, lo_open=True)
    assert r.text() == "(0, 1]" and not r.contains(0) and r.contains(1) and not r.contains(math.nan)
    assert catalogue.Range(0, None, lo_open=True).text() == "> 0"
    assert catalogue.Range().text() == "finite" and not catalogue.Range().contains(math.inf)
    assert catalogue.Range(inf_allowed=True).contains(math.inf)
    assert not catalogue.Range(inf_allowed=True).contains(-math.inf)
    assert catalogue.Range("theta_cut", 1, lo_open=True).contains(0.5, {"theta_cut": 0.2})
    assert not catalogue.Range("theta_cut", 1, lo_open=True).contains(0.2, {"theta_cut": 0.2})


# ---------------------------------------------------------------------------------------------------------------
# config: INPUTS (store units / long names), CONFIG_INPUTS, law / model membership, conf/*.yaml
# ---------------------------------------------------------------------------------------------------------------
def test_sweepable_inputs_units_and_long_names_match_config():
    """``config.INPUTS`` (what the store writes as ``units`` / ``long_name``) is the catalogue's scalars."""
    assert set(catalogue.SWEEPABLE) == set(config.INPUTS)
    for name, (unit, long_name) in config.INPUTS.items():
        assert (INPUTS[name].unit, INPUTS[name].long_name) == (unit, long_name), name


def test_config_keys_match():
    assert catalogue.BY_CONFIG_KEY == config.CONFIG_INPUTS


def test_law_and_model_membership_match_config_checks():
    assert set(catalogue.applying_to(POWER_LAW)) == config._LAW_INPUTS["power_law"]
    assert set(catalogue.applying_to(CONSTANT)) == config._LAW_INPUTS["constant"]
    assert set(catalogue.applying_to(TABULATED)) == config._LAW_INPUTS["tabulated"]
    assert set(catalogue.applying_to(DIP)) == config._DIP_INPUTS
    assert set(catalogue.applying_to(MODEL_B)) == config._MODEL_B_INPUTS
    assert catalogue.applying_to(MODEL_A) == ("flux_normalisation",)


def _default_group_files() -> dict[str, dict]:
    """The option of each group that conf/config.yaml selects by default, loaded (``.inf`` as inf)."""
    primary = OmegaConf.load(ROOT / "conf" / "config.yaml")
    chosen = {}
    for item in primary.defaults:
        if not isinstance(item, str):
            ((group, option),) = OmegaConf.to_container(item).items()
            if option is not None and (ROOT / "conf" / group / f"{option}.yaml").exists():
                chosen[group] = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / group / f"{option}.yaml"))
    return chosen


def _yaml(group: str, option: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / group / f"{option}.yaml"))


def _yaml_value(name, value):
    entry = INPUTS[name]
    if name == "theta0" and value is None:
        return entry.default  # null: the surface model's default
    if entry.kind == "array" and value == []:
        return None
    return value


def test_conf_default_groups_hold_the_catalogue_defaults():
    groups = _default_group_files()
    assert {"geometry", "material", "diffusivity", "surface", "protocol", "output"} <= set(groups)
    files = {  # option files whose values must equal the defaults (the default choice, plus each law / model's)
        POWER_LAW: groups["diffusivity"], DIP: groups["diffusivity"], CONSTANT: _yaml("diffusivity", "constant"),
        MODEL_B: _yaml("surface", "model_b"),
    }
    checked = set()
    for entry in INPUTS.values():
        group, key = entry.config_key.split(".")
        section = files.get(entry.applies, groups[group])
        if entry.applies == TABULATED:  # example data, no default
            assert key in _yaml("diffusivity", "tabulated"), entry.config_key
            continue
        assert key in section, f"conf/{group}: missing {key}"
        value = _yaml_value(entry.name, section[key])
        assert _same(value, entry.default), (entry.config_key, value, entry.default)
        checked.add(entry.name)
    assert checked >= set(INPUTS) - set(catalogue.applying_to(TABULATED))


def test_conf_options_share_the_defaults_of_what_they_do_not_change():
    """Every D-law file repeats the dip's defaults; model_b.yaml the blocking defaults (with model B's default)."""
    for option in ("power_law", "constant", "tabulated"):
        section = _yaml("diffusivity", option)
        for name in catalogue.applying_to(DIP) + ("low_theta_dip",):
            assert _same(section[INPUTS[name].config_key.split(".")[1]], INPUTS[name].default), (option, name)
    model_b = _yaml("surface", "model_b")
    for name in ("eta", "blocked_fraction", "arc_center_rad", "extra_arcs", "eta_profile"):
        assert _same(_yaml_value(name, model_b[name]), INPUTS[name].default_for("B")), name
    assert model_b["model"] == "B"


# ---------------------------------------------------------------------------------------------------------------
# api: make_params defaults and ranges, the Params pytree, _INPUT_LOCATION / replace
# ---------------------------------------------------------------------------------------------------------------
def test_make_params_signature_defaults():
    signature = {**inspect.signature(api.make_params).parameters, **inspect.signature(api.make_diffusivity).parameters}
    signature["diffusivity"] = signature.pop("law")
    for entry in INPUTS.values():
        default = signature[entry.name].default
        if entry.name == "theta0":
            assert default is None  # the surface model's default, resolved inside make_params
            continue
        assert _same(default, entry.default), (entry.name, default, entry.default)
    assert api.THETA0_MODEL_B == catalogue.THETA0_MODEL_B


@pytest.mark.parametrize("name", [n for n, e in INPUTS.items() if not e.params_path.startswith("type(")])
def test_params_pytree_holds_the_default_at_its_path(name):
    """``make_params()`` puts the default where the catalogue says, and the pytree class's own default agrees."""
    entry = INPUTS[name]
    for model in _models(entry):
        params = api.make_params(**_context(entry, model))
        value = _at(params, entry.params_path)
        if entry.applies == TABULATED:
            continue  # user data
        if entry.kind == "array":
            assert np.size(value) == 0, name  # empty: none
            continue
        assert _same(value, entry.default_for(model)), (name, model, value)
        holder = _at(params, entry.params_path.rpartition(".")[0]) if entry.group else params
        field = {f.name: f for f in dataclasses.fields(type(holder))}[entry.field]
        if field.default is not dataclasses.MISSING:
            assert _same(field.default, entry.default), (name, type(holder).__name__, field.default)


def test_structural_choices_pick_the_pytree_classes():
    assert type(api.make_params().kinetics).__name__ == "FluxRatio"
    assert type(api.make_params(surface_model="B").kinetics).__name__ == "FilmResistance"
    assert type(api.make_params(diffusivity="constant").diffusivity).__name__ == "ConstantDiffusivity"
    assert type(api.make_params(low_theta_dip=True).diffusivity).__name__ == "LowThetaDip"
    assert [f.name for f in dataclasses.fields(solver.Params)] == [
        "radius_m", "rate_mA_per_g", "theta0", "theta_cut", "theta_upper", "theta_core", "core_smoothing",
        "voltage_cut_V", "blocking", "diffusivity", "kinetics", "material"]


def test_replace_refuses_array_inputs():
    params = api.make_params(extra_arcs=[[0.0, 0.1, 0.5]])
    with pytest.raises(ValueError, match="'extra_arcs' .* cannot be replaced"):
        api.replace(params, extra_arcs=[[0.0, 0.2, 0.5]])


def test_replace_knows_the_dip_width_by_both_names():
    params = api.make_params(low_theta_dip=True)
    assert api.replace(params, dip_width=0.07).diffusivity.width == api.replace(params, width=0.07).diffusivity.width


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=_xfail_known(f"replace:{n}")) for n, e in INPUTS.items() if e.kind == "scalar"])
def test_replace_accepts_every_scalar_by_its_name(name):
    entry = INPUTS[name]
    params = api.make_params(**_context(entry))
    value = 0.123 if entry.name != "voltage_cut_V" else 4.3
    replaced = api.replace(params, **{name: value})
    assert _same(_at(replaced, entry.params_path), value)


def _probes(entry, model):
    """Values at, just inside and just outside every bound, plus NaN and +-inf."""
    rng = entry.range_for(model)
    values = [math.nan, math.inf, -math.inf]
    for bound in (rng.lo, rng.hi):
        if bound is None:
            continue
        b = INPUTS[bound].default if isinstance(bound, str) else float(bound)
        values += [b, math.nextafter(b, -math.inf), math.nextafter(b, math.inf)]
    return values


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=_xfail_known(f"range:{n}")) for n, e in INPUTS.items() if e.kind == "scalar"])
def test_make_params_enforces_the_range(name):
    entry = INPUTS[name]
    models = ("A",) if name == "theta_cut" else _models(entry)  # theta0 < 1 under B leaves no room above theta_cut
    for model in models:
        kw = _context(entry, model)
        rng = entry.range_for(model)
        for value in _probes(entry, model):
            allowed = rng.contains(value, {"theta_cut": INPUTS["theta_cut"].default})
            try:
                api.make_params(**kw, **{name: value})
                accepted = True
            except ValueError as err:
                accepted = False
                assert name in str(err), err
            assert accepted == allowed, (name, model, value, "accepted" if accepted else "refused")


def test_inf_is_a_value_only_where_the_catalogue_says():
    assert [n for n, e in INPUTS.items() if e.range is not None and e.range.inf_allowed] == ["voltage_cut_V"]
    assert [n for n in config.INPUTS if n == "voltage_cut_V"] == ["voltage_cut_V"]


# ---------------------------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------------------------
def test_fit_transforms_match():
    assert fit.FITTABLE is catalogue.FITTABLE
    assert {n: fit.model._transform(n, "B") for n in fit.FITTABLE}["eta"] == "log"  # model B: eta may exceed 1
    assert {n: fit.model._transform(n, "A") for n in fit.FITTABLE} == {
        "radius_m": "log", "eta": "logit", "blocked_fraction": "logit", "arc_center_rad": "identity",
        "r_NMC_ohm_m2": "log", "D_hi_m2_per_s": "log"}


def test_other_copies_of_theta_core():
    for fn in (images.matched_gain, images.hard_offsets):
        assert inspect.signature(fn).parameters["theta_core"].default == INPUTS["theta_core"].default


# ---------------------------------------------------------------------------------------------------------------
# README inputs table
# ---------------------------------------------------------------------------------------------------------------
def _split_top(cell: str) -> list[str]:
    """Split a table cell at commas outside brackets and quotes."""
    parts, depth, current = [], 0, ""
    for ch in cell:
        depth += ch in "([" and 1 or 0
        depth -= ch in ")]" and 1 or 0
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return parts + [current.strip()]


def _readme_rows():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Inputs", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    out = []
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        names = re.findall(r"`([^`]+)`", cells[0])
        out.append((names, *cells[1:5]))
    return out


def _per_name(cell, names):
    parts = _split_top(cell)
    return dict(zip(names, parts)) if len(parts) == len(names) > 1 else {n: cell for n in names}


def _unit(text):
    text = text.strip().replace("Ohm", "ohm")  # the README writes "Ohm m2", the store (UDUNITS) "ohm m2"
    text = re.sub(r"^\((.*)\) rows$", r"\1", text)
    return ", ".join("1" if u.strip() == "-" else u.strip() for u in text.split(","))


def _readme_value(text):
    text = text.strip()
    if text in ("none", "-"):
        return None
    if text in ("False", "True"):
        return text == "True"
    if text.startswith('"'):
        return text.strip('"')
    if not re.fullmatch(r"[0-9.e+\- pinf]+", text):
        raise ValueError(f"cannot read README value {text!r}")
    return eval(text, {"__builtins__": {}}, {"pi": math.pi, "inf": math.inf})  # digits, pi, inf, + - only


def test_readme_table_lists_every_input_once():
    names = [n for row in _readme_rows() for n in row[0]]
    assert sorted(names) == sorted(INPUTS)


@pytest.mark.parametrize("row", _readme_rows(), ids=lambda row: ",".join(row[0]))
def test_readme_row_matches(row):
    names, units, defaults, allowed, _ = row
    units, defaults, allowed = (_per_name(c, names) for c in (units, defaults, allowed))
    for name in names:
        entry = INPUTS[name]
        if entry.kind in ("choice", "bool"):
            assert _unit(units[name]) == "1", name
        else:
            assert _unit(units[name]) == entry.unit, (name, units[name])
        cell = defaults[name]
        tagged = dict(re.findall(r"(.+?) \((A|B)\)(?:, |$)", cell))
        if tagged:  # "1.0 (A), 1 - 1e-4 (B)"
            for value, model in tagged.items():
                assert _same(_readme_value(value), entry.default_for(model)), name
        elif entry.applies != TABULATED:
            assert _same(_readme_value(cell), entry.default), (name, cell)
        cell = allowed[name]
        if f"readme:{name}" in KNOWN:
            continue  # test_readme_known_disagreement
        if entry.kind == "scalar":
            for model in ("A", "B") if entry.range_model_b else ("A",):
                assert entry.range_for(model).text() in cell, (name, model, cell)
        elif entry.kind == "choice":
            assert _split_top(cell) == [f'"{c}"' for c in entry.choices], (name, cell)
        elif entry.kind == "bool":
            assert cell == "bool"


# ---------------------------------------------------------------------------------------------------------------
# store attributes and the inputs a store's reader returns
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [["sweep=fig5b"], ["preset=fig5d"]])
def test_store_coordinates_carry_the_catalogue_units_and_long_names(overrides):
    from app_support import load_job

    from fluxsim.io import store

    job = load_job(overrides)
    coords = store.coordinates(job)
    swept = [n for n in coords if n in INPUTS]
    assert swept, coords.keys()
    for name in swept:
        assert (coords[name].attrs["units"], coords[name].attrs["long_name"]) == (
            INPUTS[name].unit, INPUTS[name].long_name), name


def test_store_reader_returns_the_config_value_else_the_catalogue_default():
    import xarray as xr
    from app_support import load_job

    from fluxsim.io import store

    job = load_job(["surface.eta=0.3", "output.theta_core=0.95"])
    ds = xr.Dataset(attrs={"config": job.config_yaml})
    assert store.stored_input(ds, "eta") == 0.3
    assert store.stored_input(ds, "theta_core") == 0.95
    for name, entry in INPUTS.items():
        if entry.kind == "scalar":
            given = job.base_inputs.get(name)
            expected = entry.default if given is None else given
            assert store.stored_input(ds, name) == pytest.approx(expected), name

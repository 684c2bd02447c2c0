"""The hydra / OmegaConf glue of the app: where conf/ and sweeps/ lie, the resolvers the config files use, the
identity and hash of a config (which name the run folder and guard resumed stores), YAML text of a config.

The config loader (:mod:`fluxsim.app.config`) validates a composed config into a job; this module knows OmegaConf.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from fluxsim.study.spec import ConfigError, parse_shard

#: Parts of the config that do not change results: left out of the hash that names the run folder and guards
#: resumed stores.
#: ``sweep.shard`` only says which blocks a job computes: all shards of a study share its folder and its store.
NOT_IN_IDENTITY = ("hydra", "runtime", "sweep.shard", "output.store", "output.plots", "output.overwrite")


#: The checkout: ``conf/`` (config groups) and ``sweeps/`` (the preset studies, group ``preset``) lie beside the
#: package. ``conf/config.yaml`` puts ``sweeps/`` on hydra's search path through ``${fluxsim_root:}``.
ROOT = Path(__file__).resolve().parents[2]


CONF_DIR = ROOT / "conf"


SWEEPS_DIR = ROOT / "sweeps"


def _drop(container: dict, path: str) -> None:
    head, _, tail = path.partition(".")
    if head in container:
        if tail:
            if isinstance(container[head], dict):
                _drop(container[head], tail)
        else:
            del container[head]


def to_container(cfg) -> dict:
    """The resolved config as plain Python containers (without the hydra node)."""
    if isinstance(cfg, DictConfig):
        # Section by section, so that the hydra node (whose runtime values may be unset) is never resolved.
        cfg = {key: as_plain(cfg[key]) for key in cfg if key != "hydra"}
    cfg = json.loads(json.dumps(cfg, default=float))  # deep copy, plain types
    cfg.pop("hydra", None)
    return cfg


def as_plain(value):
    """OmegaConf containers to Python (for values read from a DictConfig node)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def identity(cfg) -> dict:
    """The part of the config that determines the results (see :data:`NOT_IN_IDENTITY`)."""
    container = to_container(cfg)
    for path in NOT_IN_IDENTITY:
        _drop(container, path)
    return container


def config_hash(cfg) -> str:
    """Short stable hash of :func:`identity` (names the run folder)."""
    text = json.dumps(identity(cfg), sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _hash_resolver(*, _root_):
    root = OmegaConf.to_container(_root_, resolve=False)
    root.pop("hydra", None)
    return config_hash(OmegaConf.create(root))


def _shard_suffix_resolver(*, _root_):
    try:
        shard = parse_shard(OmegaConf.select(_root_, "sweep.shard", default=None))
    except ConfigError:  # refused with its message (exit 2) by the validation that runs before the job starts
        return "-invalid-shard"
    return "" if shard is None else f"-shard{shard[0]}of{shard[1]}"


def register_resolvers() -> None:
    """Register the resolvers the config files use.

    ``${fluxsim_config_hash:}`` names the run folder (``conf/hydra/default.yaml``); ``${fluxsim_root:}`` is the
    checkout, so that ``conf/config.yaml`` can put ``sweeps/`` on the search path from any working directory;
    ``${fluxsim_shard_suffix:}`` is ``-shard<i>of<n>`` for a sharded job (its own log and ``.hydra`` record in the
    study folder that all shards share), else empty.
    """
    if not OmegaConf.has_resolver("fluxsim_config_hash"):
        OmegaConf.register_new_resolver("fluxsim_config_hash", _hash_resolver)
    if not OmegaConf.has_resolver("fluxsim_root"):
        OmegaConf.register_new_resolver("fluxsim_root", lambda: str(ROOT))
    if not OmegaConf.has_resolver("fluxsim_shard_suffix"):
        OmegaConf.register_new_resolver("fluxsim_shard_suffix", _shard_suffix_resolver)


def dump_yaml(container) -> str:
    """YAML text of a plain container (OmegaConf's dumper: ``.inf`` for infinity, key order kept)."""
    return OmegaConf.to_yaml(OmegaConf.create(container))

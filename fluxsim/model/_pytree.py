"""Frozen dataclasses that are JAX pytrees.

Numbers a user may sweep, fit or differentiate are *data* fields (pytree leaves, traced under jit/vmap/grad); fields
that change the structure of the computation (choices, counts) are declared with ``static_field()`` and become pytree
metadata, so changing them recompiles.
"""

from __future__ import annotations

import dataclasses

import jax


def static_field(**kwargs):
    """A dataclass field stored as pytree metadata (hashable, never traced)."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def pytree_dataclass(cls):
    """Make ``cls`` a frozen dataclass registered as a pytree (data fields are leaves)."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data = [f.name for f in fields if not f.metadata.get("static", False)]
    meta = [f.name for f in fields if f.metadata.get("static", False)]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)

"""Frozen dataclasses that are JAX pytrees.

Numbers a user may sweep, fit or differentiate are *data* fields (pytree leaves, traced under jit/vmap/grad); fields
that change the structure of the computation (choices, counts) are declared with ``static_field()`` and become pytree
metadata, so changing them recompiles.
"""

from __future__ import annotations

import abc
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


class Interface(abc.ABC):  # noqa: B024 (a marker: the interfaces below it declare the methods)
    """Base of the model's small interfaces (a diffusivity law, a surface model, a protocol step).

    A class is either *abstract* (an interface: it declares what every implementation provides) or *final* (a
    concrete pytree that implements it): subclassing a concrete class raises, so a new law, surface model or step is
    one new class beside the others, never a tweak of an existing one.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            if issubclass(base, Interface) and base is not Interface and not getattr(base, "__abstractmethods__", ()):
                raise TypeError(f"{base.__name__} is final (a concrete implementation); subclass the interface it "
                                f"implements instead of {base.__name__}")

"""Input validation shared by every front door (``fluxsim.run``, the hydra config loader, ``fluxsim fit``).

One message format for a refused value, from :class:`InputError`::

    NAME = VALUE[ UNIT] is outside the allowed range RANGE
    NAME = VALUE must be a number in the allowed range RANGE

``NAME`` is the keyword of the Python API (``eta``, ``spacing``); the config loader puts the config key in its place
(``surface.eta``, ``numerics.spacing``, see :meth:`InputError.renamed`). ``RANGE`` is the range the check enforces:
``(0, inf)`` refuses infinity, ``(-inf, inf]`` accepts it. Unknown keyword names are refused with the closest valid
name and the list of valid ones (:func:`check_names`). The resolution check (:func:`check_rim_resolution`) refuses
a mesh too coarse for the blocked arcs, for the API and the command line alike.

Only numpy and the standard library: importing this module never imports hydra or JAX.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

#: "Too coarse for the run" (:func:`check_rim_resolution`): every blocked arc with 0 < fraction, and the open rest
#: of the perimeter when there is one, must span at least this many rim node spacings (perimeter / rim nodes). A
#: narrower arc falls inside one node's share of the rim: its total current is still exact, but not where it goes, so
#: the core offset it causes is not resolved.
MIN_ARC_NODES = 1.0


class ConfigError(ValueError):
    """A config value is missing, of the wrong type or outside its allowed range."""


class InputError(ValueError):
    """A value outside its allowed range or of the wrong type; ``name`` is the parameter, ``detail`` the rest."""

    def __init__(self, name: str, detail: str):
        super().__init__(f"{name}{detail}")
        self.name = name
        self.detail = detail

    def renamed(self, name: str) -> str:
        """The same message naming the parameter ``name`` (e.g. its config key)."""
        return f"{name}{self.detail}"


class UnknownInputError(InputError, TypeError):
    """A keyword that is no input (a ``TypeError`` like Python's own unexpected-keyword error)."""


def format_range(lo=None, hi=None, lo_open=False, hi_open=False) -> str:
    """The interval a check enforces; an absent bound is infinite and excluded (``(0, inf)``)."""
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else _show(lo)}, {'inf' if hi is None else _show(hi)}{right}"


def _show(value) -> str:
    """A value as messages print it: a real scalar as Python's float/int repr, anything else as its repr."""
    if isinstance(value, bool | np.bool_ | str | bytes):
        return repr(value)
    if isinstance(value, int | np.integer):
        return repr(int(value))
    if np.ndim(value) == 0:
        try:
            return repr(float(value))
        except (TypeError, ValueError):
            return repr(value)
    return f"array of shape {np.shape(value)}" if isinstance(value, np.ndarray) else repr(value)


def real(name: str, value, rng: str = "(-inf, inf)", *, integer: bool = False) -> float | int:
    """``value`` as a Python float (int with ``integer``); refuses bools, text, None, arrays and complex numbers."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool | np.bool_ | str | bytes) or value is None or np.ndim(value) != 0:
        raise InputError(name, f" = {_show(value)} must be {kind} in the allowed range {rng}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(name, f" = {_show(value)} must be {kind} in the allowed range {rng}") from None
    if integer:
        if not (math.isfinite(v) and v.is_integer()):
            raise InputError(name, f" = {_show(value)} must be {kind} in the allowed range {rng}")
        return int(v)
    return v


def numbers(name: str, value) -> np.ndarray:
    """``value`` (a sequence or array of numbers) as a float array; refuses text, bools, None and ragged rows."""
    try:
        raw = np.asarray(value)
        if raw.dtype.kind not in "iuf":  # bools, text, objects (None, ragged lists)
            raise TypeError
        return raw.astype(float)
    except (TypeError, ValueError):
        raise InputError(name, f" = {value!r} must be a sequence of numbers") from None


def check_range(name: str, value, lo=None, hi=None, lo_open=False, hi_open=False, unit="", *, integer=False):
    """Return ``value`` as a number after checking it lies in the range; else raise :class:`InputError`.

    ``lo`` / ``hi`` None: no bound, infinity excluded; ``hi=math.inf`` (closed): infinity allowed. NaN is always
    refused. The message shows the value as read (a float, or an int with ``integer``: ``0`` and ``0.0`` alike).
    """
    rng = format_range(lo, hi, lo_open, hi_open)
    v = real(name, value, rng, integer=integer)
    bad = math.isnan(v)
    bad |= v < lo or (lo_open and v == lo) if lo is not None else v == -math.inf
    bad |= v > hi or (hi_open and v == hi) if hi is not None else v == math.inf
    if bad:
        raise InputError(name, f" = {_show(v)}{' ' + unit if unit else ''} is outside the allowed range {rng}")
    return v


def check_names(given: Iterable[str], allowed: Iterable[str], where: str, listed: Iterable[str] | None = None) -> None:
    """Refuse keyword names not in ``allowed``, suggesting the closest valid name and listing them all.

    ``listed``: the names the message offers (default ``allowed``; e.g. all keywords of the function called).
    """
    allowed = set(allowed)
    listed = sorted(allowed if listed is None else set(listed))
    for name in given:
        if name not in allowed:
            close = difflib.get_close_matches(name, listed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownInputError(name, f" is not an input of {where}{hint}; allowed: {', '.join(listed)}")


def check_rim_resolution(n_rim: int | None, inputs: Iterable[Mapping], *, spacing: float,
                         describe: Callable[[int], str] | None = None, prefix: str = "numerics.",
                         indices: Sequence[int] | None = None) -> None:
    """Refuse a mesh too coarse for the blocked arcs (before any compute; the mesh core's resolution check).

    With ``n_rim`` rim nodes (the outline's mesh at ``spacing``), every blocked arc of every point of ``inputs``
    with a nonzero fraction, and the open rest of the perimeter when there is one, must span at least
    :data:`MIN_ARC_NODES` rim node spacings (perimeter / ``n_rim``).

    ``n_rim=None`` (what every front door passes, so that they refuse alike): the mesh-free lower bound
    ``floor(2 pi / spacing)``: the rim of any outline meshed at ``spacing`` (units of the equivalent radius) has at
    least as many nodes, since the disk has the shortest perimeter of all outlines of its area.

    Raises:
        InputError: naming ``prefix + "spacing"``, the arc it cannot resolve and a spacing that would do.
    """
    n_rim = math.floor(2 * math.pi / spacing) if n_rim is None else n_rim
    _check_arcs(n_rim, "rim node spacings", prefix + "spacing",
                lambda needed: f"spacing <= {spacing * n_rim / float(needed):.3g}", inputs, describe, indices, spacing)


def _check_arcs(n_nodes: int, unit: str, key: str, advice: Callable[[int | str], str], inputs: Iterable[Mapping],
                describe, indices, value=None) -> None:
    """Every arc with 0 < fraction (and the open rest) must span at least :data:`MIN_ARC_NODES` of ``n_nodes``."""
    value = n_nodes if value is None else value
    min_fraction = MIN_ARC_NODES / n_nodes
    for i, point in enumerate(inputs):
        arcs = [("blocked_fraction", float(point.get("blocked_fraction", 0.0)))]
        arcs += [(f"extra_arcs[{k}] fraction", float(row[1])) for k, row in enumerate(point.get("extra_arcs") or ())]
        rest = 1.0 - sum(f for _, f in arcs)
        arcs.append(("open rest of the perimeter (1 - blocked fractions)", rest))
        k = i if indices is None else indices[i]
        where = "" if describe is None else f" (sweep point {k}: {describe(k)})"
        for name, fraction in arcs:
            if fraction <= 0 or fraction >= min_fraction:
                continue
            needed = MIN_ARC_NODES / fraction
            needed = math.ceil(needed - 1e-9) if needed < 1e12 else f"{needed:.3g}"  # a subnormal fraction: inf
            raise InputError(key, (
                f" = {value} is too coarse for {name} = {fraction:.6g}{where}: the arc spans "
                f"{fraction * n_nodes:.3g} {unit}, at least {MIN_ARC_NODES:g} are needed (allowed: a "
                f"fraction of 0 or >= {min_fraction:.6g}, or {advice(needed)})"))

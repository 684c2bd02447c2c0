"""The particle's outline from the ``geometry`` inputs of a job (docs/model.md section 8).

:class:`ShapeSpec` holds the shape inputs of the catalogue (:data:`fluxsim.model.catalogue.SHAPE_INPUTS`: outline,
aspect, orientation_rad, vertices, mask_file, pixel_size_m) as validated plain data; :func:`check_shape` validates
the config's ``geometry`` section into one, naming the key and its allowed range on any problem, before any
compute. :meth:`ShapeSpec.build` gives the :mod:`fluxsim.core.outline` object the mesh is built on:

* ``disk``: :class:`~fluxsim.core.outline.Disk`;
* ``ellipse``: :class:`~fluxsim.core.outline.Ellipse` ``(aspect, orientation_rad)``; aspect 1 is the disk itself
  (the same mesh, so an aspect sweep's first value reproduces a disk run exactly);
* ``polygon``: :class:`~fluxsim.core.outline.Polygon` ``(vertices)`` (shape only: scaled to ``geometry.radius_m``);
* ``mask``: the :class:`~fluxsim.core.outline.Curve` traced from a segmentation mask (``.npy`` of bools or 0/1, or
  an image whose bright pixels are the particle); with ``pixel_size_m`` the mask also fixes the equivalent radius
  (``geometry.radius_m`` must then be null), without it the mask's shape is scaled to ``geometry.radius_m``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping

import numpy as np

from fluxsim.core.mesh import DISK
from fluxsim.core.outline import Curve, Ellipse, Polygon, outline_from_mask
from fluxsim.model import catalogue, checks
from fluxsim.model.checks import ConfigError

#: The catalogue's shape inputs (the keys of ``geometry`` besides ``radius_m``).
NAMES = tuple(catalogue.SHAPE_INPUTS)


@dataclasses.dataclass(frozen=True)
class ShapeSpec:
    """The validated shape inputs of a job (defaults: the catalogue's)."""

    outline: str = catalogue.SHAPE_INPUTS["outline"].default
    aspect: float = catalogue.SHAPE_INPUTS["aspect"].default
    orientation_rad: float = catalogue.SHAPE_INPUTS["orientation_rad"].default
    vertices: tuple | None = None
    mask_file: str | None = None
    pixel_size_m: float | None = None
    curve: Curve | None = dataclasses.field(default=None, repr=False)  # the mask's traced outline

    def with_values(self, values: Mapping) -> ShapeSpec:
        """The spec with swept shape inputs (``aspect``, ``orientation_rad``) replaced."""
        return dataclasses.replace(self, **{k: float(v) for k, v in values.items()}) if values else self

    def build(self):
        """The :mod:`fluxsim.core.outline` object (hashable, so its mesh is cached per outline)."""
        if self.outline == "ellipse" and self.aspect != 1.0:
            return Ellipse(self.aspect, self.orientation_rad)
        if self.outline == "polygon":
            return Polygon(self.vertices)
        if self.outline == "mask":
            return self.curve
        return DISK

    def describe(self) -> str:
        """A short JSON description of the outline kind and its parameters (the store's ``outline`` attribute)."""
        keep = {"disk": (), "ellipse": ("aspect", "orientation_rad"), "polygon": ("vertices",),
                "mask": ("mask_file", "pixel_size_m")}[self.outline]
        data = {"kind": self.outline, **{k: getattr(self, k) for k in keep}}
        if self.vertices is not None and "vertices" in keep:
            data["vertices"] = [list(v) for v in self.vertices]
        return json.dumps(data)


def check_value(key: str, name: str, value) -> float:
    """A swept or given scalar shape input against its catalogue range (``key``: the name messages use)."""
    entry = catalogue.SHAPE_INPUTS[name]
    rng = entry.range
    try:
        return checks.check_range(key, value, rng.lo, rng.hi, rng.lo_open, rng.hi_open,
                                  unit="" if entry.unit == "1" else entry.unit)
    except checks.InputError as err:
        raise ConfigError(str(err)) from None


def _fail(key: str, detail: str) -> ConfigError:
    return ConfigError(f"geometry.{key}{detail}")


def check_shape(section: Mapping, read_mask: Callable[[str], np.ndarray]) -> tuple[ShapeSpec, float | None]:
    """Validate the shape keys of the config's ``geometry`` section.

    ``read_mask``: mask file -> 2-D bool array (:func:`fluxsim.io.masks.read_mask`).

    Returns:
        ``(spec, radius_m)``: the :class:`ShapeSpec`, and the equivalent radius [m] a mask with a pixel size fixes
        (None otherwise).

    Raises:
        ConfigError: naming ``geometry.<key>``, its value and what is allowed (an input of another outline than the
            chosen one, a polygon whose edges cross, an unreadable mask, ...).
    """
    allowed = {"radius_m", *NAMES}
    unknown = set(section) - allowed
    if unknown:
        raise ConfigError(f"geometry has unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
    entries = catalogue.SHAPE_INPUTS
    outline = section.get("outline", entries["outline"].default)
    if outline not in catalogue.OUTLINES:
        raise _fail("outline", f" = {outline!r} is not an outline; allowed: {', '.join(catalogue.OUTLINES)}")
    values = {}  # ranges first: geometry.aspect=0.5 is out of range whatever the outline
    for name in ("aspect", "orientation_rad"):
        values[name] = check_value(f"geometry.{name}", name, section.get(name, entries[name].default))
    applies = {"ellipse": catalogue.ELLIPSE, "polygon": catalogue.POLYGON, "mask": catalogue.MASK}.get(outline)
    for name in NAMES[1:]:
        entry = entries[name]
        value = section.get(name, entry.default)
        if entry.applies != applies and value != entry.default:
            kind = entry.applies.split()[-1]
            raise _fail(name, f" = {value!r} has no effect with geometry.outline = {outline} (it is an input of "
                        f"the {kind} outline: geometry.outline={kind}); leave it at {entry.default!r}")
    spec = ShapeSpec(outline, values["aspect"], values["orientation_rad"])
    radius = None
    if outline == "polygon":
        vertices = section.get("vertices")
        if vertices is None:
            raise _fail("vertices", " is null: geometry.outline = polygon needs the corners, [[x, y], ...] (>= 3)")
        try:
            rows = checks.numbers("geometry.vertices", vertices)
            polygon = Polygon(rows)
        except checks.InputError as err:
            raise ConfigError(str(err)) from None
        except ValueError as err:
            raise _fail("vertices", f": {err}") from None
        spec = dataclasses.replace(spec, vertices=polygon.vertices)
    elif outline == "mask":
        path = section.get("mask_file")
        if not isinstance(path, str) or not path:
            raise _fail("mask_file", f" = {path!r}: geometry.outline = mask needs the mask's file (.npy or image)")
        pixel = section.get("pixel_size_m")
        if pixel is not None:
            pixel = check_value("geometry.pixel_size_m", "pixel_size_m", pixel)
            if section.get("radius_m") is not None:
                raise _fail("pixel_size_m", f" = {pixel:g} m fixes the particle's radius from the mask, so "
                            f"geometry.radius_m = {section.get('radius_m')!r} must be null (give one of the two)")
        try:
            curve, radius = outline_from_mask(read_mask(path), 1.0 if pixel is None else pixel)
        except FileNotFoundError:
            raise _fail("mask_file", f" = {path!r}: no such file") from None
        except (OSError, ValueError, SyntaxError) as err:
            raise _fail("mask_file", f" = {path!r} cannot be used as a mask: {err}") from None
        spec = dataclasses.replace(spec, mask_file=path, pixel_size_m=pixel, curve=curve)
        radius = radius if pixel is not None else None
    if radius is not None and not (math.isfinite(radius) and radius > 0):
        raise _fail("pixel_size_m", f" gives an equivalent radius of {radius} m")
    return spec, radius

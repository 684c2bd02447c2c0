"""Segment the particles of a microscopy field of view: one mask, outline and sub-stack per particle.

Pipeline (:func:`segment_particles`, :func:`particles_from_stack`):

1. the image segmented is the mean of the frames (or the first frame, ``image="first"``): the particles are bright
   against a darker matrix in every raw frame, and the mean has the least noise;
2. background-gradient removal: a quadratic surface ``a + b x + c y + d x^2 + e xy + f y^2`` is fitted by least
   squares to the pixels classed as background (first every pixel, then twice more the pixels below the current
   threshold) and subtracted, so an illumination gradient across the field does not move the threshold;
3. Otsu's threshold of the corrected image (``skimage.filters.threshold_otsu``), a binary opening with a disk of
   radius 1 pixel (single noisy pixels), holes filled;
4. connected components (``skimage.measure.label``, 8-connected); components smaller than ``min_area_px`` or
   touching the image border (a cut particle has the wrong outline; ``keep_border=True`` keeps them) are dropped;
5. per particle: its mask -> :func:`fluxsim.core.outline.outline_from_mask` -> ``(outline, radius_m)``, and its own
   sub-stack: the frames cropped to the particle's bounding box plus ``margin_px``, with the particle's mask in the
   crop (pixels of neighbouring particles are outside it), ready for
   :func:`fluxsim.imaging.images.analyse_frames` (``mask=``).

The scikit-image dependency is imported only here (the ``images`` extra: ``pip install 'fluxsim[images]'``).
Coordinates: rows down, columns right; outlines and offsets use x = column, y up (as :mod:`fluxsim.imaging.images`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Components smaller than this [pixels] are noise, not particles.
DEFAULT_MIN_AREA_PX = 50
#: Pixels of context kept around each particle's bounding box in its sub-stack.
DEFAULT_MARGIN_PX = 3
#: Background-fit refinements (each refits the quadratic to the pixels below the current threshold).
_BACKGROUND_PASSES = 3


def _skimage():
    try:
        import skimage.filters
        import skimage.measure
        import skimage.morphology
    except ImportError:
        raise ImportError("segmenting image stacks needs scikit-image: pip install 'fluxsim[images]'") from None
    return skimage


@dataclasses.dataclass(frozen=True)
class Particle:
    """One segmented particle of a field of view.

    Attributes:
        label: its index in the field of view (1, 2, ... in order of the segmentation's labels).
        mask: ``(rows, cols)`` boolean mask in the whole field of view.
        crop: ``(row slice, column slice)`` of its sub-stack in the field of view.
        outline: its outline (:class:`fluxsim.core.outline.Curve`, normalised).
        radius_m: its equivalent radius ``sqrt(area / pi)`` [m].
        pixel_size_m: pixel edge [m].
        centre_px: its centre of mass (row, column) in the field of view [pixels].
    """

    label: int
    mask: np.ndarray
    crop: tuple[slice, slice]
    outline: object
    radius_m: float
    pixel_size_m: float
    centre_px: tuple[float, float]

    @property
    def name(self) -> str:
        """Particle id for observations and reports: ``p1``, ``p2``, ..."""
        return f"p{self.label}"

    @property
    def crop_mask(self) -> np.ndarray:
        """The mask inside the crop."""
        return self.mask[self.crop]

    def sub_stack(self, frames: np.ndarray) -> np.ndarray:
        """The particle's frames ``(n, crop rows, crop cols)`` of a field-of-view stack ``(n, rows, cols)``."""
        frames = np.asarray(frames)
        if frames.shape[-2:] != self.mask.shape:
            raise ValueError(f"frames of shape {frames.shape[-2:]} differ from the segmented field {self.mask.shape}")
        return frames[(Ellipsis, *self.crop)]

    def record(self) -> dict:
        """The particle for a report: label, centre, equivalent radius, area and crop (JSON-ready)."""
        return {"particle": self.name, "centre_row_px": self.centre_px[0], "centre_col_px": self.centre_px[1],
                "radius_m": self.radius_m, "area_px": int(self.mask.sum()), "pixel_size_m": self.pixel_size_m,
                "crop_rows": [self.crop[0].start, self.crop[0].stop],
                "crop_cols": [self.crop[1].start, self.crop[1].stop]}


def remove_background(image: np.ndarray, passes: int = _BACKGROUND_PASSES) -> np.ndarray:
    """``image`` minus a quadratic background surface fitted to its background pixels (see the module docstring)."""
    image = np.asarray(image, float)
    rows, cols = np.indices(image.shape)
    x = (cols.ravel() - image.shape[1] / 2) / image.shape[1]
    y = (rows.ravel() - image.shape[0] / 2) / image.shape[0]
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    values = image.ravel()
    background = np.ones(values.size, bool)
    corrected = image
    for _ in range(max(int(passes), 1)):
        coef = np.linalg.lstsq(basis[background], values[background], rcond=None)[0]
        corrected = (values - basis @ coef).reshape(image.shape)
        background = corrected.ravel() < _skimage().filters.threshold_otsu(corrected)
    return corrected


def segment_particles(image: np.ndarray, *, min_area_px: int = DEFAULT_MIN_AREA_PX, keep_border: bool = False,
                      threshold: float | None = None) -> list[np.ndarray]:
    """Boolean masks of the particles of one raw image (bright particles on a darker matrix), largest first.

    Args:
        image: ``(rows, cols)`` raw intensities.
        min_area_px: smallest particle [pixels] (>= 12, what an outline needs).
        keep_border: keep particles touching the image border (their outline is cut by the border).
        threshold: on the background-corrected image (default: Otsu's).
    """
    sk = _skimage()
    from scipy.ndimage import binary_fill_holes, binary_opening  # scikit-image depends on scipy

    image = np.asarray(image, float)
    if image.ndim != 2 or min(image.shape) < 8:
        raise ValueError(f"image must be 2-D with at least 8 x 8 pixels, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or inf")
    if not (isinstance(min_area_px, int | np.integer) and min_area_px >= 12):
        raise ValueError(f"min_area_px must be an integer >= 12 (pixels), got {min_area_px!r}")
    corrected = remove_background(image)
    level = sk.filters.threshold_otsu(corrected) if threshold is None else float(threshold)
    bright = binary_opening(corrected > level, sk.morphology.disk(1))
    labels = sk.measure.label(bright, connectivity=2)
    masks = []
    for region in sk.measure.regionprops(labels):
        if region.area < min_area_px:
            continue
        r0, c0, r1, c1 = region.bbox
        if not keep_border and (r0 == 0 or c0 == 0 or r1 == image.shape[0] or c1 == image.shape[1]):
            continue
        mask = labels == region.label
        masks.append(binary_fill_holes(mask))
    masks.sort(key=lambda m: -int(m.sum()))
    return masks


def particles_from_masks(masks: Sequence[np.ndarray], pixel_size_m: float, *,
                         margin_px: int = DEFAULT_MARGIN_PX) -> list[Particle]:
    """:class:`Particle` of each mask (outline, equivalent radius, crop), labelled 1, 2, ... in reading order
    (top to bottom, then left to right, by centre of mass)."""
    from fluxsim.core.outline import outline_from_mask

    if not (isinstance(pixel_size_m, int | float) and math.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise ValueError(f"pixel_size_m must be a finite number > 0 [m], got {pixel_size_m!r}")
    found = []
    for mask in masks:
        mask = np.asarray(mask, bool)
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            raise ValueError("a particle mask is empty")
        centre = (float(rows.mean()), float(cols.mean()))
        crop = (slice(max(int(rows.min()) - margin_px, 0), min(int(rows.max()) + 1 + margin_px, mask.shape[0])),
                slice(max(int(cols.min()) - margin_px, 0), min(int(cols.max()) + 1 + margin_px, mask.shape[1])))
        outline, radius_m = outline_from_mask(mask[crop], float(pixel_size_m))
        found.append((centre, mask, crop, outline, radius_m))
    found.sort(key=lambda f: (round(f[0][0] / 10), f[0][1]))  # reading order, robust to a few pixels of jitter
    return [Particle(i + 1, mask, crop, outline, radius_m, float(pixel_size_m), centre)
            for i, (centre, mask, crop, outline, radius_m) in enumerate(found)]


def particles_from_stack(frames: np.ndarray, pixel_size_m: float, *, image: str = "mean",
                         mask: np.ndarray | None = None, **kwargs) -> list[Particle]:
    """The particles of a field-of-view stack ``(n, rows, cols)``: segmented from its mean (or ``image="first"``)
    frame, or from ``mask`` (boolean: its connected regions; integer labels: one particle per label > 0);
    ``kwargs`` go to :func:`segment_particles` (``min_area_px``, ``keep_border``, ``threshold``) and ``margin_px``
    to :func:`particles_from_masks`."""
    frames = np.asarray(frames, float)
    if frames.ndim != 3:
        raise ValueError(f"frames must be a (frames, rows, columns) stack, got shape {frames.shape}")
    margin = {"margin_px": kwargs.pop("margin_px")} if "margin_px" in kwargs else {}
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != frames.shape[1:]:
            raise ValueError(f"mask shape {mask.shape} differs from the frame shape {frames.shape[1:]}")
        if mask.dtype == bool:
            labels = _skimage().measure.label(mask, connectivity=2)
        else:
            labels = mask.astype(int)
        masks = [labels == k for k in np.unique(labels) if k > 0]
    else:
        if image not in ("mean", "first"):
            raise ValueError(f"image must be 'mean' or 'first', got {image!r}")
        masks = segment_particles(frames.mean(axis=0) if image == "mean" else frames[0], **kwargs)
    if not masks:
        raise ValueError("no particle found in the stack (none above the threshold, larger than min_area_px and "
                         "clear of the border); give mask= or keep_border=True")
    return particles_from_masks(masks, pixel_size_m, **margin)


# ---------------------------------------------------------------------------------------------------------------------
# stack files: one field of view at one rate
# ---------------------------------------------------------------------------------------------------------------------
#: Arrays of a field-of-view stack file (``.npz``): frames, frame times [s], pixel size [m], rate [mA g-1].
STACK_KEYS = ("frames", "times_s", "pixel_size_m", "rate_mA_per_g")


@dataclasses.dataclass(frozen=True)
class FieldStack:
    """A field-of-view image stack at one charging rate (what :func:`load_field_stack` reads)."""

    frames: np.ndarray  # (n, rows, cols) raw intensities
    times_s: np.ndarray  # (n,) since the start of the charge [s]
    pixel_size_m: float
    rate_mA_per_g: float

    def __post_init__(self):
        if self.frames.ndim != 3:
            raise ValueError(f"frames must be (frames, rows, columns), got shape {self.frames.shape}")
        if self.times_s.shape != (self.frames.shape[0],):
            raise ValueError(f"{self.frames.shape[0]} frames but {self.times_s.size} frame times")
        for name in ("pixel_size_m", "rate_mA_per_g"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")


def save_field_stack(stack: FieldStack, path: str | Path) -> Path:
    """Write a :class:`FieldStack` as a compressed ``.npz`` (frames as float32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, frames=np.asarray(stack.frames, np.float32), times_s=stack.times_s,
                        pixel_size_m=stack.pixel_size_m, rate_mA_per_g=stack.rate_mA_per_g)
    return path


def load_field_stack(path: str | Path) -> FieldStack:
    """Read a field-of-view stack ``.npz`` with the arrays :data:`STACK_KEYS`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"stack file {str(path)!r} does not exist")
    with np.load(path) as z:
        missing = [k for k in STACK_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing} (a stack .npz holds {list(STACK_KEYS)})")
        return FieldStack(np.asarray(z["frames"], float), np.asarray(z["times_s"], float).reshape(-1),
                          float(z["pixel_size_m"]), float(z["rate_mA_per_g"]))


def observations_of(particle: Particle, stacks: Sequence[FieldStack], *, d_sigma_nm: float | None = None,
                    with_core_fraction: bool = False, threshold: float | None = None):
    """The particle's d(t) observations from its own sub-stack at every rate (one series per stack), measured with
    :func:`fluxsim.imaging.images.analyse_frames` on the particle's mask."""
    from fluxsim.imaging import images
    from fluxsim.io import observations as obs_mod

    kw = {} if threshold is None else {"threshold": threshold}
    parts = []
    for stack in stacks:
        metrics = images.analyse_frames(particle.sub_stack(stack.frames), stack.pixel_size_m * 1e9, stack.times_s,
                                        rate_mA_per_g=stack.rate_mA_per_g, mask=particle.crop_mask,
                                        particle=particle.name, **kw)
        parts.append(metrics.to_observations(d_sigma_nm=d_sigma_nm, with_core_fraction=with_core_fraction))
    return obs_mod.combine(*parts, source=f"image stacks, particle {particle.name}")


# ---------------------------------------------------------------------------------------------------------------------
# a field of view: every particle fitted on its own outline
# ---------------------------------------------------------------------------------------------------------------------
def fit_field_of_view(stacks: Sequence[FieldStack] | FieldStack, params=("eta",), *, mask: np.ndarray | None = None,
                      d_sigma_nm: float | None = None, segment: dict | None = None, on_error: str = "record",
                      log=None, **fit_kwargs):
    """Segment a field of view (from the first stack; the masks serve every rate), measure each particle's d(t) on
    its own sub-stack and fit it with :func:`fluxsim.fit.fit` on its own outline and equivalent radius.

    The particles' meshes are padded to common buckets (:func:`fluxsim.fit.model.common_buckets`; the mesh is a
    traced input), so the second and later particles of a field compile nothing.

    Args:
        stacks: one :class:`FieldStack` per rate, all of the same field of view (same frame shape).
        params: the fitted inputs (as :func:`fluxsim.fit.fit`).
        mask: a given segmentation (boolean or integer labels) instead of :func:`segment_particles`.
        d_sigma_nm: uncertainty of each offset component [nm] (default: unknown, scaled by the reduced chi2).
        segment: options of :func:`segment_particles` (``min_area_px``, ``keep_border``, ``threshold``).
        on_error: ``"record"`` (a particle whose measurement or fit fails is reported in the summary with its
            error and the others go on) or ``"raise"``.
        log: optional ``print``-like callable for progress.
        **fit_kwargs: options and fixed inputs of :func:`fluxsim.fit.fit` (``blocked_fraction=0.25``, ...).

    Returns:
        ``(particles, results, summary)``: the :class:`Particle` list, ``{name: FitResult or the error text}`` and
        the summary ``xarray.Dataset`` over particles (:func:`summary_dataset`).
    """
    from fluxsim import fit as fit_mod

    if on_error not in ("record", "raise"):
        raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
    stacks = [stacks] if isinstance(stacks, FieldStack) else list(stacks)
    if not stacks:
        raise ValueError("no stack given")
    shapes = {s.frames.shape[1:] for s in stacks}
    if len(shapes) > 1:
        raise ValueError(f"the stacks of one field of view must have one frame shape, got {sorted(shapes)}")
    pixel = {s.pixel_size_m for s in stacks}
    if len(pixel) > 1:
        raise ValueError(f"the stacks of one field of view must have one pixel size, got {sorted(pixel)}")
    particles = particles_from_stack(stacks[0].frames, stacks[0].pixel_size_m, mask=mask, **(segment or {}))
    numerics = fit_kwargs.get("numerics") or fit_mod.DEFAULT_NUMERICS
    fit_kwargs.setdefault("buckets", fit_mod.common_buckets([p.outline for p in particles], numerics.spacing))
    results = {}
    for particle in particles:
        if log:
            log(f"particle {particle.name}: {particle.mask.sum()} px, R_eq = {particle.radius_m * 1e9:.0f} nm")
        try:
            obs = observations_of(particle, stacks, d_sigma_nm=d_sigma_nm)
            fit_inputs = dict(fit_kwargs)
            fit_inputs.setdefault("radius_m", particle.radius_m)
            results[particle.name] = fit_mod.fit(obs, params, outline=particle.outline, **fit_inputs)
        except (ValueError, FloatingPointError) as err:
            if on_error == "raise":
                raise
            results[particle.name] = f"{type(err).__name__}: {err}"
    return particles, results, summary_dataset(particles, results)


def summary_dataset(particles: Sequence[Particle], results: dict):
    """Estimates, standard errors and intervals of every particle of a field of view (an ``xarray.Dataset`` over
    ``particle`` and ``parameter``; NaN and an ``error`` text where a particle's fit failed)."""
    import xarray as xr

    from fluxsim.fit import FITTABLE, INTERVAL_KINDS, INTERVAL_LEVELS

    fitted = [r for r in results.values() if not isinstance(r, str)]
    names = list(fitted[0].names) if fitted else []
    n, k = len(particles), len(names)
    est, se = np.full((n, k), np.nan), np.full((n, k), np.nan)
    bounds = {f"{kind}_{lv}": np.full((n, k, 2), np.nan) for kind in INTERVAL_KINDS for lv in INTERVAL_LEVELS}
    chi2, red = np.full(n, np.nan), np.full(n, np.nan)
    errors = []
    for i, p in enumerate(particles):
        r = results.get(p.name)
        errors.append(r if isinstance(r, str) else "")
        if r is None or isinstance(r, str):
            continue
        for j, name in enumerate(names):
            est[i, j], se[i, j] = r.values[name], r.standard_errors[name]
            for key, arr in bounds.items():
                pair = r.intervals.get(name, {}).get(key, [None, None])
                arr[i, j] = [np.nan if v is None else v for v in pair]
        chi2[i], red[i] = r.chi2, r.reduced_chi2

    def var(dims, values, units, long_name):
        return xr.Variable(dims, np.asarray(values, float), {"units": units, "long_name": long_name})

    data_vars = {
        "estimate": var(("particle", "parameter"), est, "", "best-fit value (units: parameter_units)"),
        "standard_error": var(("particle", "parameter"), se, "", "Gauss-Newton standard error"),
        "radius_m": var(("particle",), [p.radius_m for p in particles], "m", "equivalent radius sqrt(A / pi)"),
        "area_px": var(("particle",), [p.mask.sum() for p in particles], "1", "particle area in pixels"),
        "centre_row_px": var(("particle",), [p.centre_px[0] for p in particles], "px", "centre of mass, row"),
        "centre_col_px": var(("particle",), [p.centre_px[1] for p in particles], "px", "centre of mass, column"),
        "chi2": var(("particle",), chi2, "1", "chi2 at the optimum"),
        "reduced_chi2": var(("particle",), red, "1", "chi2 / degrees of freedom"),
        "error": xr.Variable(("particle",), np.array(errors, dtype=object), {"long_name": "why the fit failed"}),
    }
    for key, arr in bounds.items():
        kind, level = key.rsplit("_", 1)
        data_vars[f"interval_{key}"] = var(("particle", "parameter", "bound"), arr, "",
                                           f"{level} % interval: {INTERVAL_KINDS[kind]}")
    coords = {
        "particle": xr.Variable(("particle",), np.array([p.name for p in particles], dtype=object)),
        "parameter": xr.Variable(("parameter",), np.array(names, dtype=object)),
        "parameter_units": xr.Variable(("parameter",), np.array([FITTABLE[m].unit for m in names], dtype=object)),
        "bound": xr.Variable(("bound",), np.array(["low", "high"], dtype=object)),
    }
    return xr.Dataset(data_vars, coords, {"title": "fluxsim fit: every particle of a field of view"})

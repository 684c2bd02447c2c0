"""Operando microscopy image stacks: simulated frames (forward) and the paper's core-offset metrics (analysis).

Convention of Lun et al. 2025 (Fig. 2, Fig. 5d; docs/model.md section 6): the optical intensity of NMC rises
monotonically as Li is removed. Each frame is turned into a *differential intensity* image normalised with respect
to the first frame,

    dI(t) = (I(t) - I(0)) / I(0)        (per pixel),

and the "unreacted" Li-rich core is the part of the particle where ``dI < threshold`` (0.05 by default). The core
offset ``d`` is the distance between the centre of mass of the particle (its mask, every pixel weighted equally)
and that of the unreacted region; its direction is counter-clockwise from +x, with image x to the right (columns)
and **y up** (towards row 0; image rows run downwards). The core area fraction is core pixels / particle pixels.

Forward direction (:func:`render_frames`, :func:`simulate_frames`): nodal occupancy snapshots of the mesh core, on
any outline, are sampled onto a square pixel grid (P1 on the triangles, ``supersample`` x ``supersample`` samples
per pixel so edge pixels mix particle and background; outside the outline is background), mapped to intensity by a
monotone map of theta (default :func:`linear_intensity`: ``I = 1 + gain (theta0 - theta)`` inside the particle,
``background`` outside), optionally blurred (Gaussian, ``blur_px``) and made noisy (Gaussian, ``noise`` in units of
the particle's initial intensity). The default ``gain = 0.05 / (1 - 0.97)`` makes the paper's ``dI < 0.05`` select
exactly the model's Li-rich core ``theta > theta_core = 0.97`` (see :func:`matched_gain`).

Analysis (:func:`analyse_frames`, :func:`analyse_file`): the particle mask is given, or segmented from the first
raw frame (Otsu threshold between the bright particle and the darker matrix, largest connected region, holes
filled); per frame the metrics above; :meth:`FrameMetrics.to_observations` gives the rows of the observations CSV
(:mod:`fluxsim.io.observations`), with the particle's equivalent radius ``sqrt(area / pi)``.

Stacks are ``(frames, rows, columns)`` arrays: ``.npy`` always works; TIFF stacks need the optional ``tifffile``
package (``pip install fluxsim[images]``), imported only when a TIFF is read or written.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fluxsim.core import raster
from fluxsim.core.mesh import TriMesh
from fluxsim.io import observations as obs_mod
from fluxsim.model.catalogue import DEFAULTS

#: Differential intensity below which a pixel counts as unreacted (Li-rich), as in Lun et al. 2025, Fig. 5d.
DEFAULT_THRESHOLD = 0.05


def matched_gain(theta_core: float = DEFAULTS["theta_core"], theta0: float = DEFAULTS["theta0"],
                 threshold: float = DEFAULT_THRESHOLD) -> float:
    """Gain of :func:`linear_intensity` for which ``dI < threshold`` is the same region as ``theta > theta_core``."""
    if not theta0 > theta_core:
        raise ValueError(f"theta0 ({theta0}) must exceed theta_core ({theta_core})")
    return threshold / (theta0 - theta_core)


def linear_intensity(gain: float | None = None, theta0: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """Monotone intensity map ``I(theta) = 1 + gain (theta0 - theta)`` (decreasing in theta: brighter when
    delithiated); ``gain`` defaults to :func:`matched_gain` for the default core threshold."""
    g = matched_gain(theta0=theta0) if gain is None else float(gain)
    if not g > 0:
        raise ValueError(f"gain must be > 0 (intensity rises as Li is removed), got {gain}")
    return lambda theta: 1.0 + g * (theta0 - np.asarray(theta))


@dataclasses.dataclass(frozen=True)
class ImageStack:
    """Frames of one particle.

    Attributes:
        frames: ``(n, rows, cols)`` raw intensity.
        pixel_size_nm: edge length of a pixel [nm].
        times_s: frame times since the start of the charge [s], ``(n,)``.
        coverage: fraction of each pixel inside the particle (rendered stacks), ``(rows, cols)``, or None.
        centre_px: the particle centre (row, column) in pixel units (rendered stacks), or None.
    """

    frames: np.ndarray
    pixel_size_nm: float
    times_s: np.ndarray
    coverage: np.ndarray | None = None
    centre_px: tuple[float, float] | None = None

    @property
    def mask(self) -> np.ndarray | None:
        """Pixels at least half inside the particle (rendered stacks)."""
        return None if self.coverage is None else self.coverage >= 0.5

    def differential(self, reference: int = 0) -> np.ndarray:
        return differential_intensity(self.frames, reference)


def differential_intensity(frames: np.ndarray, reference: int = 0) -> np.ndarray:
    """``(I - I_ref) / I_ref`` per pixel, with ``I_ref`` the frame ``reference`` (the paper's normalisation)."""
    frames = np.asarray(frames, float)
    ref = frames[reference]
    if np.any(ref <= 0):
        raise ValueError("the reference frame must be positive everywhere to normalise by it (raw intensities?)")
    return (frames - ref[None]) / ref[None]


# ---------------------------------------------------------------------------------------------------------------------
# forward: snapshots -> frames
# ---------------------------------------------------------------------------------------------------------------------
def _gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur of the last two axes (edge-replicating borders)."""
    half = max(int(math.ceil(4 * sigma_px)), 1)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_px) ** 2)
    k /= k.sum()
    pad = [(0, 0)] * (image.ndim - 2) + [(half, half), (half, half)]
    p = np.pad(image, pad, mode="edge")
    rows = sum(k[i] * p[..., i: i + image.shape[-2], :] for i in range(k.size))
    return sum(k[i] * rows[..., :, i: i + image.shape[-1]] for i in range(k.size))


def _host(mesh: TriMesh):
    """Node coordinates relative to the area centroid and the real triangles of an unbatched mesh (numpy)."""
    xy = np.asarray(mesh.xy) - np.asarray(mesh.centroid)[None, :]
    return xy, raster.triangles_on_host(mesh), np.asarray(mesh.node_mask)


def render_frames(
    snapshots: np.ndarray,
    mesh: TriMesh,
    radius_m: float,
    pixel_size_nm: float,
    times_s: Sequence[float],
    *,
    intensity: Callable[[np.ndarray], np.ndarray] | None = None,
    background: float = 0.3,
    margin_px: int = 4,
    centre_offset_px: tuple[float, float] = (0.0, 0.0),
    supersample: int = 4,
    blur_px: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> ImageStack:
    """Synthetic microscopy frames of nodal occupancy snapshots on any outline (raw intensity;
    :meth:`ImageStack.differential` gives the paper's differential images).

    Every sub-pixel sample takes the P1 interpolant of the node field in the triangle containing it (exact point
    location, :mod:`fluxsim.core.raster`); samples outside the particle are background.

    Args:
        snapshots: ``(n, n_nodes)`` nodal occupancies on ``mesh``'s nodes (``Solution.snapshots`` of
            :mod:`fluxsim.core.solve`).
        mesh: the :class:`~fluxsim.core.mesh.TriMesh` they live on (unbatched; lengths in units of ``radius_m``).
        radius_m: the particle's equivalent radius [m].
        pixel_size_nm: pixel edge [nm].
        times_s: frame times [s], ``(n,)``.
        intensity: monotone map theta -> intensity inside the particle (default :func:`linear_intensity`).
        background: intensity of the surrounding matrix (darker than the particle).
        margin_px: pixels of background around the particle.
        centre_offset_px: sub-pixel shift (row, column) of the particle's area centroid from the image centre.
        supersample: samples per pixel edge (partial-volume edge pixels).
        blur_px: Gaussian blur (standard deviation, pixels; 0: none), applied to every frame.
        noise: standard deviation of additive Gaussian noise, in units of the particle's initial intensity.
        seed: noise seed.
    """
    snaps = np.asarray(snapshots, float)
    xy, triangles, real = _host(mesh)
    if snaps.ndim != 2 or snaps.shape[1] != len(xy):
        raise ValueError(f"snapshots must be (frames, {len(xy)} mesh nodes), got shape {snaps.shape}")
    if not np.all(np.isfinite(snaps[:, real])):
        raise ValueError("snapshots contain NaN (a requested time the simulation did not reach)")
    times = np.asarray(times_s, float)
    if times.shape != (snaps.shape[0],):
        raise ValueError(f"{snaps.shape[0]} snapshots but {times.shape} times")
    intensity = intensity or linear_intensity()
    radius_px = radius_m * 1e9 / pixel_size_nm
    reach = float(np.abs(xy[real]).max())
    size = 2 * int(math.ceil(reach * radius_px + abs(max(centre_offset_px, key=abs)))) + 2 * margin_px
    centre = ((size - 1) / 2 + centre_offset_px[0], (size - 1) / 2 + centre_offset_px[1])
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    samples = (np.arange(size)[:, None] + sub[None, :]).ravel()  # (size * ss,) row or column positions
    x = (samples - centre[1]) / radius_px  # units of R_eq, increasing
    y = (centre[0] - samples[::-1]) / radius_px  # y up: increasing y is decreasing row
    stencil = raster.grid_stencil(xy, triangles, x, y)
    inside = stencil.inside[::-1]  # rows top to bottom

    def pool(a):  # (..., size*ss, size*ss) -> (..., size, size) pixel means
        return a.reshape(a.shape[:-2] + (size, supersample, size, supersample)).mean(axis=(-3, -1))

    coverage = pool(inside.astype(float))
    frames = np.empty((snaps.shape[0], size, size))
    for k, snap in enumerate(snaps):
        theta = raster.apply_stencil(stencil, snap)[::-1]
        frames[k] = pool(np.where(inside, intensity(np.where(inside, theta, 1.0)), background))
    if blur_px > 0:
        frames = _gaussian_blur(frames, blur_px)
    if noise > 0:
        frames = frames + np.random.default_rng(seed).normal(0.0, noise, frames.shape)
    return ImageStack(frames, float(pixel_size_nm), times, coverage, centre)


def simulate_snapshots(params, rates_mA_per_g: Sequence[float], capacities_mAh_per_g: Sequence[float], numerics=None,
                       outline=None):
    """Occupancy snapshots of one particle charged at several rates, at the same passed capacities for every rate.

    All rates run in one vmapped, time-rescaled batch on one mesh of ``outline`` (default a disk) at
    ``numerics.spacing`` (default :class:`fluxsim.core.solve.Numerics`): at equal passed capacity the rescaled
    snapshot times coincide, so one compiled program serves every rate (as in :mod:`fluxsim.fit`).

    Returns:
        ``(snapshots (S, n, n_nodes), times_s (S, n), mesh)``: nodal fields on ``mesh``'s nodes.
    """
    import jax

    from fluxsim import fit as fit_mod
    from fluxsim.core.mesh import DISK, mesh_outline
    from fluxsim.core.solve import Numerics, simulate
    from fluxsim.model.protocol import Charge

    numerics = numerics or Numerics()
    cap = np.asarray(capacities_mAh_per_g, float)
    if cap.ndim != 1 or np.any(cap < 0) or np.any(np.diff(cap) < 0):
        raise ValueError("capacities_mAh_per_g must be a non-decreasing 1-D sequence of values >= 0")
    rates = np.asarray(rates_mA_per_g, float)
    horizon = fit_mod.CANONICAL_HORIZON_S
    rate_sim = fit_mod.HORIZON_MARGIN * float(cap[-1]) * 3600.0 / horizon
    canonical = tuple(float(c) for c in cap * 3600.0 / rate_sim)
    protocol = (Charge(max_duration_s=horizon, until_cutoff=False),)
    mesh = mesh_outline(DISK if outline is None else outline, numerics.spacing)

    def one(rate):
        return simulate(fit_mod.time_rescaled(params, rate_sim, rate), mesh, protocol, numerics, (0.0, horizon),
                        canonical).snapshots

    snaps = np.asarray(jax.jit(jax.vmap(one))(rates))
    return snaps, cap[None, :] * 3600.0 / rates[:, None], mesh


def hard_offsets(snapshots: np.ndarray, mesh: TriMesh, radius_m: float, theta_core: float = DEFAULTS["theta_core"]):
    """The simulation's own hard core metric of each snapshot (exact clipping of the P1 field on the triangles,
    :func:`fluxsim.core.observables.core`): ``(x_nm, y_nm, fraction)`` arrays of the snapshots' leading shape."""
    import jax
    import jax.numpy as jnp

    from fluxsim.core import observables

    snaps = np.asarray(snapshots, float)
    flat = snaps.reshape((-1, snaps.shape[-1]))
    geo = jax.vmap(lambda s: observables.core(mesh, s, theta_core))(jnp.asarray(flat))
    scale = radius_m * 1e9
    lead = snaps.shape[:-1]
    return (np.asarray(geo.x).reshape(lead) * scale, np.asarray(geo.y).reshape(lead) * scale,
            np.asarray(geo.fraction).reshape(lead))


def simulate_frames(params, rates_mA_per_g, capacities_mAh_per_g, pixel_size_nm: float, *, numerics=None,
                    outline=None, **render) -> list[ImageStack]:
    """Synthetic image stacks, one per rate, at the given passed capacities (:func:`simulate_snapshots` on
    ``outline``, then :func:`render_frames` with ``render`` options; each stack's noise seed is ``seed`` + its
    index)."""
    snaps, times, mesh = simulate_snapshots(params, rates_mA_per_g, capacities_mAh_per_g, numerics, outline)
    seed = render.pop("seed", 0)
    return [render_frames(s, mesh, float(params.radius_m), pixel_size_nm, t, seed=seed + i, **render)
            for i, (s, t) in enumerate(zip(snaps, times))]


# ---------------------------------------------------------------------------------------------------------------------
# analysis: frames -> metrics -> observations
# ---------------------------------------------------------------------------------------------------------------------
def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximum between-class variance) of a set of values."""
    v = np.asarray(values, float).ravel()
    hist, edges = np.histogram(v, bins=bins)
    mids = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * mids)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    return float(mids[int(np.nanargmax(between[:-1]))])


def _label_component(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 4-connected component of ``mask`` containing ``seed`` (breadth-first flood fill)."""
    out = np.zeros_like(mask, bool)
    stack = [seed]
    out[seed] = True
    rows, cols = mask.shape
    while stack:
        r, c = stack.pop()
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= rr < rows and 0 <= cc < cols and mask[rr, cc] and not out[rr, cc]:
                out[rr, cc] = True
                stack.append((rr, cc))
    return out


def segment_particle(image: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Particle mask of a raw intensity image: pixels brighter than ``threshold`` (default: Otsu), the largest
    4-connected region, with its holes filled."""
    image = np.asarray(image, float)
    level = otsu_threshold(image) if threshold is None else threshold
    bright = image > level
    remaining = bright.copy()
    best = np.zeros_like(bright)
    while remaining.any():
        seed = tuple(int(i) for i in np.argwhere(remaining)[0])
        comp = _label_component(remaining, seed)
        if comp.sum() > best.sum():
            best = comp
        remaining &= ~comp
    if not best.any():
        raise ValueError("segmentation found no particle (no pixel above the threshold); give mask=")
    # holes: background regions not connected to the border
    padded = np.pad(~best, 1, constant_values=True)
    outside = _label_component(padded, (0, 0))[1:-1, 1:-1]
    return best | ~outside


@dataclasses.dataclass(frozen=True)
class FrameMetrics:
    """Per-frame metrics of one particle (arrays of length n frames; NaN offsets where there is no core).

    Attributes:
        times_s, d_nm, direction_rad, core_fraction, core_x_nm, core_y_nm: per frame (x right, y up, relative to
            the particle's centre of mass).
        n_core_pixels: unreacted pixels per frame.
        mask: the particle mask used.
        pixel_size_nm, threshold, rate_mA_per_g, particle: settings and metadata.
    """

    times_s: np.ndarray
    d_nm: np.ndarray
    direction_rad: np.ndarray
    core_fraction: np.ndarray
    core_x_nm: np.ndarray
    core_y_nm: np.ndarray
    n_core_pixels: np.ndarray
    mask: np.ndarray
    pixel_size_nm: float
    threshold: float
    rate_mA_per_g: float
    particle: str = obs_mod.DEFAULT_PARTICLE

    @property
    def radius_m(self) -> float:
        """Equivalent radius of the mask, ``sqrt(area / pi)`` [m]."""
        return math.sqrt(self.mask.sum() / math.pi) * self.pixel_size_nm * 1e-9

    def to_observations(self, d_sigma_nm: float | None = None, min_core_pixels: int = 1,
                        with_core_fraction: bool = True) -> obs_mod.Observations:
        """Rows for the observations format: frames with at least ``min_core_pixels`` unreacted pixels (d is
        undefined without a core), with direction, core fraction (optional) and the equivalent radius."""
        keep = self.n_core_pixels >= min_core_pixels
        if not keep.any():
            raise ValueError(f"no frame of particle {self.particle!r} at {self.rate_mA_per_g:g} mA/g has an unreacted "
                             f"region (differential intensity < {self.threshold})")
        kw = {}
        if with_core_fraction:
            kw["core_fraction"] = self.core_fraction[keep]
        return obs_mod.make_observations(
            self.rate_mA_per_g, self.times_s[keep], self.d_nm[keep], particle=self.particle, d_sigma_nm=d_sigma_nm,
            direction_rad=self.direction_rad[keep], radius_m=self.radius_m, **kw)


def analyse_frames(
    frames,
    pixel_size_nm: float | None = None,
    times_s: Sequence[float] | None = None,
    rate_mA_per_g: float = 100.0,
    *,
    mask: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    differential: bool = False,
    reference: int = 0,
    particle: str = obs_mod.DEFAULT_PARTICLE,
) -> FrameMetrics:
    """The paper's core metrics of every frame of one particle.

    Args:
        frames: an :class:`ImageStack` (then ``pixel_size_nm`` and ``times_s`` default to its own) or a
            ``(n, rows, cols)`` array of raw intensities (or of differential intensities with ``differential=True``).
        pixel_size_nm: pixel edge [nm].
        times_s: frame times since the start of the charge [s].
        rate_mA_per_g: the charging rate (metadata for the observations).
        mask: boolean particle mask ``(rows, cols)``; default: segmented from the reference frame (raw frames only).
        threshold: differential intensity below which a particle pixel is unreacted (0.05 as in the paper).
        differential: ``frames`` already hold differential intensities.
        reference: index of the frame that normalises the differential intensity.
        particle: particle id for the observations.
    """
    if isinstance(frames, ImageStack):
        pixel_size_nm = frames.pixel_size_nm if pixel_size_nm is None else pixel_size_nm
        times_s = frames.times_s if times_s is None else times_s
        frames = frames.frames
    frames = np.asarray(frames, float)
    if frames.ndim != 3:
        raise ValueError(f"frames must be a (frames, rows, columns) stack, got shape {frames.shape}")
    if pixel_size_nm is None or not pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be > 0, got {pixel_size_nm}")
    if times_s is None:
        raise ValueError("times_s (frame times [s]) are required")
    times = np.asarray(times_s, float)
    if times.shape != (frames.shape[0],):
        raise ValueError(f"{frames.shape[0]} frames but {times.size} frame times")
    if not np.all(np.isfinite(frames)):
        raise ValueError("frames contain NaN or inf")
    if mask is None:
        if differential:
            raise ValueError("differential frames cannot be segmented (the particle is not brighter than the matrix "
                             "in them): give mask=")
        mask = segment_particle(frames[reference])
    mask = np.asarray(mask, bool)
    if mask.shape != frames.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} differs from the frame shape {frames.shape[1:]}")
    if not mask.any():
        raise ValueError("the particle mask is empty")
    diff = frames if differential else differential_intensity(frames, reference)
    rows, cols = np.nonzero(mask)
    x = cols * pixel_size_nm
    y = -rows * pixel_size_nm  # y up
    x0, y0 = x.mean(), y.mean()
    core = diff[:, rows, cols] < threshold  # (n, pixels)
    count = core.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.where(count > 0, (core * x).sum(axis=1) / count - x0, np.nan)
        cy = np.where(count > 0, (core * y).sum(axis=1) / count - y0, np.nan)
    return FrameMetrics(
        times_s=times, d_nm=np.hypot(cx, cy), direction_rad=np.arctan2(cy, cx), core_fraction=count / rows.size,
        core_x_nm=cx, core_y_nm=cy, n_core_pixels=count, mask=mask, pixel_size_nm=float(pixel_size_nm),
        threshold=float(threshold), rate_mA_per_g=float(rate_mA_per_g), particle=str(particle),
    )


def analyse_stacks(stacks: Sequence, rates_mA_per_g: Sequence[float], *, particle: str = obs_mod.DEFAULT_PARTICLE,
                   mask: np.ndarray | None = None, d_sigma_nm: float | None = None, with_core_fraction: bool = True,
                   **kwargs) -> obs_mod.Observations:
    """Observations of one particle imaged at several rates: one :class:`ImageStack` per rate (wrap a loaded array
    as ``ImageStack(frames, pixel_size_nm, times_s)``). The particle is segmented once (from the first stack, unless
    ``mask`` is given) and that mask is used at every rate, so the particle has one size; ``kwargs`` go to
    :func:`analyse_frames` (``threshold``, ``differential``, ...)."""
    if len(stacks) != len(rates_mA_per_g):
        raise ValueError(f"{len(stacks)} stacks but {len(rates_mA_per_g)} rates")
    parts = []
    for stack, rate in zip(stacks, rates_mA_per_g):
        m = analyse_frames(stack, rate_mA_per_g=rate, particle=particle, mask=mask, **kwargs)
        mask = m.mask
        parts.append(m.to_observations(d_sigma_nm=d_sigma_nm, with_core_fraction=with_core_fraction))
    return obs_mod.combine(*parts, source=f"images of particle {particle}")


# ---------------------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------------------
def _tifffile():
    try:
        import tifffile
    except ImportError:
        raise ImportError("TIFF stacks need the optional package tifffile: pip install 'fluxsim[images]' "
                          "(or save the stack as .npy)") from None
    return tifffile


def load_stack(path: str | Path) -> np.ndarray:
    """Read a ``(frames, rows, cols)`` stack from ``.npy`` or a (multi-page) TIFF."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image stack {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        stack = np.load(path)
    elif suffix in (".tif", ".tiff"):
        stack = _tifffile().imread(path)
    else:
        raise ValueError(f"{path}: unsupported image format {suffix!r}; use .npy, .tif or .tiff")
    stack = np.asarray(stack, float)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise ValueError(f"{path}: expected a (frames, rows, columns) stack, got shape {stack.shape}")
    return stack


def save_stack(frames: np.ndarray, path: str | Path) -> Path:
    """Write a stack as ``.npy`` or float32 multi-page TIFF (by suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, np.asarray(frames))
    elif suffix in (".tif", ".tiff"):
        _tifffile().imwrite(path, np.asarray(frames, np.float32))
    else:
        raise ValueError(f"{path}: unsupported image format {suffix!r}; use .npy, .tif or .tiff")
    return path


def analyse_file(path: str | Path, pixel_size_nm: float, times_s: Sequence[float] | None = None, *,
                 frame_interval_s: float | None = None, mask: np.ndarray | str | Path | None = None,
                 **kwargs) -> FrameMetrics:
    """:func:`analyse_frames` of a stack file; frame times from ``times_s`` or ``frame_interval_s`` (first frame at
    0); ``mask`` may be a path of a 2-D ``.npy``/TIFF boolean image."""
    frames = load_stack(path)
    if times_s is None:
        if frame_interval_s is None:
            raise ValueError("give times_s or frame_interval_s")
        times_s = np.arange(frames.shape[0]) * float(frame_interval_s)
    if isinstance(mask, str | Path):
        mask = load_stack(mask)[0] > 0
    return analyse_frames(frames, pixel_size_nm, times_s, mask=mask, **kwargs)

"""Synthetic field-of-view image stacks of particles of any outline, rendered from the mesh core (tests, examples).

Each particle (outline, equivalent radius, centre in pixels, its own model inputs) is simulated with
:func:`fluxsim.core.solve.simulate` on its mesh, the snapshots at the frame times are P1-interpolated onto a
supersampled pixel grid (:func:`fluxsim.core.raster.grid_stencil`), mapped to intensity by
:func:`fluxsim.imaging.images.linear_intensity` (so ``dI < 0.05`` is the model's core), averaged per pixel (partial
volume at the edge), laid on a matrix whose intensity has a linear gradient across the field, blurred (Gaussian)
and made noisy (Gaussian).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from fluxsim.imaging.segment import FieldStack


@dataclasses.dataclass(frozen=True)
class PlacedParticle:
    """A particle to render: its outline, equivalent radius [m], centre (row, column) [pixels] and model inputs
    (:class:`fluxsim.model.params.Params`; its rate is replaced by the stack's)."""

    outline: object
    radius_m: float
    centre_px: tuple[float, float]
    params: object


def particle_snapshots(particle: PlacedParticle, rate_mA_per_g: float, times_s, numerics, buckets=None):
    """Occupancy snapshots ``(n, nodes)`` at ``times_s`` and the mesh (mesh core, charge without cut-off)."""
    from fluxsim.api import replace
    from fluxsim.core.mesh import mesh_outline
    from fluxsim.fit.model import simulate_jit
    from fluxsim.model.protocol import Charge

    times = tuple(float(t) for t in times_s)
    mesh = mesh_outline(particle.outline, numerics.spacing, buckets)
    params = replace(particle.params, rate_mA_per_g=rate_mA_per_g, radius_m=particle.radius_m)
    protocol = (Charge(max_duration_s=max(times[-1], 1e-6), until_cutoff=False),)
    return np.asarray(simulate_jit(params, mesh, protocol, numerics, times, times).snapshots), mesh


def render_field(particles: Sequence[PlacedParticle], shape: tuple[int, int], pixel_size_m: float,
                 rate_mA_per_g: float, times_s, *, numerics=None, background: float = 0.3,
                 gradient: tuple[float, float] = (0.0, 0.0), blur_px: float = 0.0, noise: float = 0.0,
                 supersample: int = 3, seed: int = 0) -> FieldStack:
    """A field-of-view stack of ``particles`` at one rate.

    Args:
        particles: what to render (they must not overlap).
        shape: ``(rows, cols)`` of the frames.
        pixel_size_m: pixel edge [m].
        rate_mA_per_g: the charging rate of every particle.
        times_s: frame times [s].
        numerics: :class:`fluxsim.core.solve.Numerics` of the simulations (default: the solver's).
        background: matrix intensity at the field's centre (the particles start at 1).
        gradient: change of the matrix intensity across the whole field, along (rows, columns).
        blur_px: Gaussian blur, standard deviation [pixels] (0: none).
        noise: standard deviation of additive Gaussian noise (units of the particles' initial intensity).
        supersample: samples per pixel edge.
        seed: noise seed.
    """
    from scipy.ndimage import gaussian_filter

    from fluxsim.core import raster
    from fluxsim.core.solve import Numerics
    from fluxsim.fit.model import common_buckets
    from fluxsim.imaging.images import linear_intensity

    rows, cols = shape
    times = np.asarray(times_s, float)
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    r_fine = (np.arange(rows)[:, None] + sub[None, :]).ravel()
    c_fine = (np.arange(cols)[:, None] + sub[None, :]).ravel()
    rr, cc = np.meshgrid(r_fine, c_fine, indexing="ij")
    base = background + gradient[0] * (rr / rows - 0.5) + gradient[1] * (cc / cols - 0.5)
    fine = np.broadcast_to(base, (len(times),) + base.shape).copy()
    intensity = linear_intensity()
    numerics = numerics or Numerics()
    buckets = common_buckets([p.outline for p in particles], numerics.spacing)  # one compile for all
    for particle in particles:
        snaps, mesh = particle_snapshots(particle, rate_mA_per_g, times, numerics, buckets)
        scale_px = particle.radius_m / pixel_size_m  # pixels per R_eq
        x = (c_fine - particle.centre_px[1]) / scale_px  # units of R_eq, increasing with the column
        y = (particle.centre_px[0] - r_fine) / scale_px  # y up: decreasing with the row
        cols_near, rows_near = np.flatnonzero(np.abs(x) < 4), np.flatnonzero(np.abs(y) < 4)
        if not (cols_near.size and rows_near.size):
            continue  # the particle lies outside the field
        stencil = raster.grid_stencil(np.asarray(mesh.xy), raster.triangles_on_host(mesh), x[cols_near],
                                      y[rows_near][::-1])
        window = np.ix_(rows_near, cols_near)
        inside = stencil.inside[::-1]  # rows top to bottom
        for k, snap in enumerate(snaps):
            theta = raster.apply_stencil(stencil, snap)[::-1]
            fine[k][window] = np.where(inside, intensity(np.where(inside, theta, 1.0)), fine[k][window])
    frames = fine.reshape(len(times), rows, supersample, cols, supersample).mean(axis=(2, 4))
    if blur_px > 0:
        frames = gaussian_filter(frames, sigma=(0, blur_px, blur_px))
    if noise > 0:
        frames = frames + np.random.default_rng(seed).normal(0.0, noise, frames.shape)
    return FieldStack(frames, times, float(pixel_size_m), float(rate_mA_per_g))

"""Segmentation of a field of view (fluxsim.imaging.segment): particles of known outlines drawn on a matrix with a
background gradient, blur and noise come back one each, with their areas, centres and equivalent radii."""

import math

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from fluxsim.core.outline import Ellipse, Polygon
from fluxsim.imaging import segment as S

PIXEL_M = 50e-9
SHAPES = [  # (outline, equivalent radius [m], centre (row, col) [px])
    (Ellipse(1.8, 0.3), 1.0e-6, (25.0, 30.0)),
    (Ellipse(1.4, 1.5), 0.8e-6, (30.0, 85.0)),
    (Polygon(((0, 0), (1.2, 0.1), (1.4, 1.0), (0.5, 1.3), (-0.2, 0.8))), 0.9e-6, (75.0, 55.0)),
]


def draw(shapes, shape=(100, 120), gradient=(0.15, 0.2), blur_px=0.8, noise=0.02, seed=0, supersample=4):
    """A raw frame: particles at intensity 1 on a 0.3 matrix with a linear gradient; true pixel coverages."""
    from scipy.ndimage import gaussian_filter

    rows, cols = shape
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    rr, cc = np.meshgrid((np.arange(rows)[:, None] + sub).ravel(), (np.arange(cols)[:, None] + sub).ravel(),
                         indexing="ij")
    inside = np.zeros(rr.shape, bool)
    coverages = []
    for outline, radius_m, (r0, c0) in shapes:
        boundary = outline.boundary(0.02) * radius_m / PIXEL_M  # x right, y up [px]
        path = MplPath(np.c_[c0 + boundary[:, 0], r0 - boundary[:, 1]])
        hit = path.contains_points(np.c_[cc.ravel(), rr.ravel()]).reshape(rr.shape)
        coverages.append(hit.reshape(rows, supersample, cols, supersample).mean(axis=(1, 3)))
        inside |= hit
    fine = np.where(inside, 1.0, 0.3 + gradient[0] * (rr / rows - 0.5) + gradient[1] * (cc / cols - 0.5))
    image = fine.reshape(rows, supersample, cols, supersample).mean(axis=(1, 3))
    image = gaussian_filter(image, blur_px) + np.random.default_rng(seed).normal(0.0, noise, shape)
    return image, coverages


def test_three_particles_in_a_field_of_view_come_back_one_each():
    image, coverages = draw(SHAPES)
    particles = S.particles_from_stack(image[None].repeat(3, axis=0), PIXEL_M)
    assert [p.name for p in particles] == ["p1", "p2", "p3"]  # reading order: top rows first, then left to right
    expected = sorted(zip(SHAPES, coverages), key=lambda s: (round(s[0][2][0] / 10), s[0][2][1]))
    for p, ((_, radius_m, _), coverage) in zip(particles, expected):
        assert p.radius_m == pytest.approx(radius_m, rel=0.03)  # blur and threshold move the edge < 1/3 pixel
        assert p.mask.sum() == pytest.approx(coverage.sum(), rel=0.06)
        rows, cols = np.indices(coverage.shape)
        true_centre = ((rows * coverage).sum() / coverage.sum(), (cols * coverage).sum() / coverage.sum())
        assert np.hypot(p.centre_px[0] - true_centre[0], p.centre_px[1] - true_centre[1]) < 0.5
        # the crop holds the whole particle; its mask is the particle's only
        assert p.crop_mask.sum() == p.mask.sum()
        assert p.sub_stack(np.zeros((2,) + image.shape)).shape == (2,) + p.crop_mask.shape


def test_background_gradient_is_removed():
    """Without the quadratic background fit a strong gradient would merge the bright matrix corner with the
    particles; with it the three particles are found and nothing else."""
    image, _ = draw(SHAPES, gradient=(0.0, 0.9), noise=0.01)
    assert len(S.segment_particles(image)) == 3
    from scipy.ndimage import binary_dilation

    corrected = S.remove_background(image)
    background = np.ones(image.shape, bool)
    for p in S.particles_from_stack(image[None], PIXEL_M):
        background &= ~binary_dilation(p.mask, iterations=3)  # away from the blurred edges
    assert np.std(corrected[background]) < 0.02  # the gradient (0.9 across the field) is gone: noise 0.01 left


def test_border_particles_and_small_specks_are_dropped():
    shapes = SHAPES[:2] + [(Ellipse(1.2, 0.0), 0.5e-6, (50.0, 2.0))]  # cut by the left border
    image, _ = draw(shapes)
    image[90:92, 100:102] += 0.7  # a 4-pixel speck
    assert len(S.segment_particles(image)) == 2
    assert len(S.segment_particles(image, keep_border=True)) == 3


def test_given_label_mask():
    image, coverages = draw(SHAPES)
    labels = np.zeros(image.shape, int)
    for k, c in enumerate(coverages):
        labels[c >= 0.5] = k + 1
    particles = S.particles_from_stack(image[None], PIXEL_M, mask=labels)
    assert len(particles) == 3
    assert sorted(int(p.mask.sum()) for p in particles) == sorted(int((c >= 0.5).sum()) for c in coverages)


def test_bad_input_is_refused_with_the_parameter_named():
    image, _ = draw(SHAPES)
    with pytest.raises(ValueError, match="pixel_size_m must be a finite number > 0"):
        S.particles_from_stack(image[None], -1.0)
    with pytest.raises(ValueError, match="frames must be a"):
        S.particles_from_stack(image, PIXEL_M)
    with pytest.raises(ValueError, match="min_area_px must be an integer >= 12"):
        S.segment_particles(image, min_area_px=3)
    with pytest.raises(ValueError, match="no particle found"):
        S.particles_from_stack(np.full((1, 40, 40), 0.3) + np.random.default_rng(0).normal(0, 1e-3, (1, 40, 40)),
                               PIXEL_M, min_area_px=5000)
    with pytest.raises(ValueError, match="mask shape"):
        S.particles_from_stack(image[None], PIXEL_M, mask=np.ones((3, 3), bool))
    assert math.isfinite(S.remove_background(image).sum())

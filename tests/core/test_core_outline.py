"""Outlines: normalisation, validation, and tracing a microscopy mask."""

import math

import numpy as np
import pytest
from shapes import OUTLINES, blob_mask

from fluxsim.core.outline import (
    Curve,
    Disk,
    Ellipse,
    Polygon,
    ellipse_from_semi_axes,
    normalise,
    outline_from_mask,
    polygon_area_centroid,
    polygon_from_vertices,
)


@pytest.mark.parametrize("name", sorted(OUTLINES))
def test_boundary_is_normalised(name):
    """Every sampled boundary encloses area pi with its area centroid at 0, counter-clockwise, evenly sampled."""
    for spacing in (0.1, 0.03):
        b = OUTLINES[name].boundary(spacing)
        area, centroid = polygon_area_centroid(b)
        assert area == pytest.approx(math.pi, rel=1e-13)
        assert np.abs(centroid).max() < 1e-13
        edges = np.linalg.norm(np.roll(b, -1, axis=0) - b, axis=1)
        assert edges.max() < 1.05 * spacing


def test_ellipse_axes_and_orientation():
    b = Ellipse(4.0, math.pi / 2).boundary(0.01)
    # long axis along y: semi-axes sqrt(4) = 2 and 1/2 (area pi already)
    assert np.max(b[:, 1]) == pytest.approx(2.0, rel=1e-4)
    assert np.max(b[:, 0]) == pytest.approx(0.5, rel=1e-4)


def test_polygon_keeps_its_corners():
    square = Polygon([(0, 0), (3, 0), (3, 3), (0, 3)])
    b = square.boundary(0.07)
    half = math.sqrt(math.pi) / 2
    for corner in ((half, half), (-half, half), (-half, -half), (half, -half)):
        assert np.min(np.linalg.norm(b - np.array(corner), axis=1)) < 1e-12


def test_normalise_reorients_clockwise_input():
    clockwise = np.array([(0, 0), (0, 1), (1, 1), (1, 0)], float)
    area, _ = polygon_area_centroid(normalise(clockwise))
    assert area == pytest.approx(math.pi)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Ellipse(0.5), "aspect"),
        (lambda: Ellipse(2.0, math.nan), "orientation_rad"),
        (lambda: Polygon([(0, 0), (1, 0)]), "m >= 3"),
        (lambda: Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), "cross"),
        (lambda: Polygon([(0, 0), (1, 0), (2, 0)]), "zero area"),
        (lambda: Disk().boundary(0.5), "spacing"),
        (lambda: Disk().boundary(0.001), "spacing"),
        (lambda: Curve([(0, 0), (1, 0)]), "m >= 8"),
        (lambda: outline_from_mask(np.ones((5, 5)), 1e-8), "boolean"),
        (lambda: outline_from_mask(blob_mask(), -1.0), "pixel_size_m"),
        (lambda: outline_from_mask(np.zeros((9, 9), bool), 1e-8), "at least 12"),
    ],
)
def test_bad_input_is_rejected_with_the_parameter_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_mask_of_a_disk_traces_a_circle():
    """A rasterised disk of radius 30 px: the traced outline is round to ~1 % and the radius is the pixel count's."""
    rows, cols = np.mgrid[0:80, 0:80]
    mask = np.hypot(rows - 39.5, cols - 39.5) < 30
    curve, radius_m = outline_from_mask(mask, 2e-8)
    assert radius_m == pytest.approx(math.sqrt(mask.sum() / math.pi) * 2e-8)
    assert radius_m == pytest.approx(30 * 2e-8, rel=0.01)
    r = np.linalg.norm(curve.boundary(0.02), axis=1)
    assert np.max(np.abs(r - 1.0)) < 0.01


def test_mask_with_two_particles_is_rejected():
    mask = np.zeros((40, 80), bool)
    mask[5:35, 5:35] = True
    mask[5:35, 45:75] = True
    with pytest.raises(ValueError, match="2 separate particles"):
        outline_from_mask(mask, 1e-8)


def test_mask_noise_speck_is_ignored_and_holes_filled():
    mask = blob_mask()
    reference, radius = outline_from_mask(mask, 1.0)
    noisy = mask.copy()
    noisy[1, 1] = True  # a one-pixel speck
    noisy[36, 36] = False  # a one-pixel hole inside the particle
    curve, noisy_radius = outline_from_mask(noisy, 1.0)
    assert noisy_radius == radius
    assert np.allclose(curve.boundary(0.05), reference.boundary(0.05))


def test_mask_orientation_follows_image_axes():
    """x runs along columns and y up (towards row 0): a particle elongated along the rows is tall in y."""
    rows, cols = np.mgrid[0:80, 0:40]
    mask = ((rows - 40) / 35.0) ** 2 + ((cols - 20) / 15.0) ** 2 < 1
    b = outline_from_mask(mask, 1.0)[0].boundary(0.05)
    assert np.ptp(b[:, 1]) > 2 * np.ptp(b[:, 0])


def test_outlines_from_physical_dimensions():
    ellipse, radius = ellipse_from_semi_axes(0.5e-6, 2e-6, 0.3)
    assert ellipse == Ellipse(4.0, 0.3 + math.pi / 2)
    assert radius == pytest.approx(1e-6)
    polygon, radius = polygon_from_vertices([(0, 0), (2e-6, 0), (2e-6, 1e-6), (0, 1e-6)])
    assert radius == pytest.approx(math.sqrt(2e-12 / math.pi))
    assert polygon_area_centroid(polygon.boundary(0.05))[0] == pytest.approx(math.pi)
    with pytest.raises(ValueError, match="b_m"):
        ellipse_from_semi_axes(1e-6, 0.0)

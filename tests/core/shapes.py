"""Outlines shared by the fluxsim.core tests."""

import numpy as np

from fluxsim.core.outline import Disk, Ellipse, Polygon, outline_from_mask

#: An irregular non-convex polygon (a notched, lopsided particle).
IRREGULAR = Polygon([(0.0, 0.0), (2.0, -0.2), (2.3, 0.9), (1.2, 0.7), (1.0, 1.6), (0.3, 1.8), (-0.6, 1.0)])


def blob_mask(size=72):
    """A lumpy particle on a pixel grid: a disk with two harmonics of radius modulation."""
    rows, cols = np.mgrid[0:size, 0:size]
    x, y = cols - size / 2 + 0.3, -(rows - size / 2) + 0.2
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    return r < size * 0.36 * (1 + 0.12 * np.cos(2 * phi + 0.4) + 0.07 * np.sin(3 * phi))


MASK_OUTLINE, MASK_RADIUS_PX = outline_from_mask(blob_mask(), 1.0)

OUTLINES = {
    "disk": Disk(),
    "ellipse2": Ellipse(2.0, 0.4),
    "irregular": IRREGULAR,
    "mask": MASK_OUTLINE,
}

"""An independent P1 resampler of mesh-core node fields at arbitrary points: matplotlib's triangulation
interpolator does the point location. The peer of :mod:`fluxsim.core.raster` (the library's exact grid stencil) in
the tests; it shares no code with it.
"""

from __future__ import annotations

import matplotlib.tri as mtri
import numpy as np

from fluxsim.core.mesh import TriMesh


def resample(mesh: TriMesh, theta, x, y) -> np.ndarray:
    """P1 interpolation of a node field at points ``(x, y)`` (host-side numpy; NaN outside the particle).

    Args:
        mesh: an unbatched mesh.
        theta: node field ``(n,)``.
        x, y: coordinates of the points (any equal shapes, e.g. a pixel grid from ``np.meshgrid``), in the
            mesh's units (``R_eq``; divide SI coordinates by ``radius_m``).

    Returns:
        Values with the shape of ``x`` (float64).
    """
    area = np.asarray(mesh.triangle_area)
    tri = np.asarray(mesh.triangles)[area > 0]
    xy = np.asarray(mesh.xy)
    used = np.unique(tri)
    remap = np.full(len(xy), -1)
    remap[used] = np.arange(len(used))
    triangulation = mtri.Triangulation(xy[used, 0], xy[used, 1], remap[tri])
    interpolator = mtri.LinearTriInterpolator(triangulation, np.asarray(theta, dtype=float)[used])
    values = interpolator(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.ma.filled(values.astype(float), np.nan)

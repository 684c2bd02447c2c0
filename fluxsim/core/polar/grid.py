"""Vertex-centred polar finite-volume grid on the unit disk.

The particle cross-section is a disk of radius R; everything here is nondimensional (r / R), so the grid is a
static object shared by every particle size. Nodes sit at

* the centre (one node), and
* rings ``i = 1 .. nr`` at ``r_i = i / nr`` with ``nphi`` nodes each at ``phi_j = 2 pi j / nphi``
  (angles counter-clockwise from +x).

Each node owns a control volume (a disk of radius ``dr / 2`` for the centre, annular sectors
``[r_i - dr/2, r_i + dr/2] x [phi_j - dphi/2, phi_j + dphi/2]`` for the rings, half-width at the surface), so the
control volumes tile the disk exactly: their areas sum to ``pi``. The outermost ring lies *on* the surface, so the
surface occupancy is a node value (no extrapolation) and the surface cut-off is evaluated exactly on the grid.

Fields are stored as ``(nr + 1, nphi)`` arrays whose row 0 is the centre value repeated ``nphi`` times; that layout
keeps every operator a dense array operation and is also the natural layout for output (``r`` x ``phi``).

All arrays are built with numpy and are static (they never depend on traced parameters).
"""

from __future__ import annotations

import dataclasses
import functools
import operator

import numpy as np


@dataclasses.dataclass(frozen=True)
class PolarGrid:
    """Static polar grid on the unit disk.

    Args:
        nr: number of rings (radial nodes excluding the centre); radial spacing ``1 / nr``.
        nphi: nodes per ring (azimuthal spacing ``2 pi / nphi``).
    """

    nr: int
    nphi: int

    def __post_init__(self):
        for name, minimum in (("nr", 2), ("nphi", 8)):
            value = getattr(self, name)
            try:
                as_int = operator.index(value)  # accepts numpy integers, rejects floats
            except TypeError:
                as_int = None
            if as_int is None or as_int < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
            object.__setattr__(self, name, as_int)

    # ---- spacing and coordinates -------------------------------------------------------------------------------
    @property
    def dr(self) -> float:
        return 1.0 / self.nr

    @property
    def dphi(self) -> float:
        return 2.0 * np.pi / self.nphi

    @functools.cached_property
    def r(self) -> np.ndarray:
        """Node radii, shape ``(nr + 1,)``, from 0 (centre) to 1 (surface)."""
        return np.arange(self.nr + 1) / self.nr

    @functools.cached_property
    def phi(self) -> np.ndarray:
        """Node angles, shape ``(nphi,)`` [rad]."""
        return np.arange(self.nphi) * self.dphi

    @functools.cached_property
    def xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Cartesian node coordinates, each ``(nr + 1, nphi)`` (row 0 is the centre, repeated)."""
        r, phi = np.meshgrid(self.r, self.phi, indexing="ij")
        return r * np.cos(phi), r * np.sin(phi)

    # ---- finite-volume geometry --------------------------------------------------------------------------------
    @functools.cached_property
    def volume(self) -> np.ndarray:
        """Control-volume areas, ``(nr + 1, nphi)``; row 0 holds the centre volume split evenly over ``nphi``.

        With the split, ``volume.sum() == pi`` and ``(volume * u).sum()`` integrates a field over the disk.
        """
        dr, dphi, nr = self.dr, self.dphi, self.nr
        v = np.empty((nr + 1, self.nphi))
        v[0] = np.pi * (dr / 2) ** 2 / self.nphi
        i = np.arange(1, nr)
        v[1:nr] = (dphi * i * dr * dr)[:, None]
        v[nr] = dphi / 2 * (1.0 - (1.0 - dr / 2) ** 2)
        return v

    @functools.cached_property
    def centre_volume(self) -> float:
        return float(np.pi * (self.dr / 2) ** 2)

    @functools.cached_property
    def w_radial(self) -> np.ndarray:
        """Conductances (face length / node distance) of radial faces, shape ``(nr,)``.

        Entry ``k`` couples ring ``k`` (``k = 0``: the centre) to ring ``k + 1``; per azimuthal node.
        """
        k = np.arange(self.nr)
        return (k + 0.5) * self.dphi

    @functools.cached_property
    def w_azimuthal(self) -> np.ndarray:
        """Conductances of azimuthal faces between ``(i, j)`` and ``(i, j + 1)``, shape ``(nr,)`` for rings 1..nr.

        The face spans the node's radial extent ``[r_lo, r_hi]``; integrating ``(1/r) du/dphi`` along it exactly
        gives ``ln(r_hi / r_lo) / dphi``.
        """
        dr = self.dr
        i = np.arange(1, self.nr + 1)
        r_lo = (i - 0.5) * dr
        r_hi = np.minimum((i + 0.5) * dr, 1.0)
        return np.log(r_hi / r_lo) / self.dphi

    @functools.cached_property
    def boundary_arcs(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end angles [rad] of each surface node's dual arc, ``phi_j -+ dphi / 2`` (length ``dphi``)."""
        return self.phi - self.dphi / 2, self.phi + self.dphi / 2

    # ---- P1 triangulation (for interpolated metrics) -----------------------------------------------------------
    @functools.cached_property
    def quads(self) -> np.ndarray:
        """Corners of the quadrilaterals between consecutive rings, ``(nquads, 4)`` flat indices into the
        ``(nr + 1, nphi)`` layout, ordered (inner j, outer j, outer j+1, inner j+1)."""
        nphi = self.nphi
        j = np.arange(nphi)
        jp = (j + 1) % nphi
        rows = [np.stack([i * nphi + j, (i + 1) * nphi + j, (i + 1) * nphi + jp, i * nphi + jp], axis=1)
                for i in range(1, self.nr)]
        return np.concatenate(rows) if rows else np.zeros((0, 4), int)

    @functools.cached_property
    def triangles(self) -> np.ndarray:
        """Triangles of the P1 interpolant, ``(ntri, 3)``, counter-clockwise.

        Indices point into the nodal values (flat ``(nr + 1, nphi)`` layout; flat index 0 is the centre) followed by
        one extra value per quadrilateral, its centre (the mean of its four corners). The centre fan gives
        ``nphi`` triangles and each quadrilateral is split into four around its centre, so the interpolant is
        mirror-symmetric about every grid ray (a single diagonal per quad would bias centroids sideways). The
        triangulated polygon is inscribed in the unit circle.
        """
        nphi, n_nodes = self.nphi, (self.nr + 1) * self.nphi
        j = np.arange(nphi)
        fan = np.stack([np.zeros(nphi, int), nphi + j, nphi + (j + 1) % nphi], axis=1)
        q = self.quads
        m = n_nodes + np.arange(q.shape[0])
        a, b, c, d = q.T  # inner j, outer j, outer j+1, inner j+1
        split = np.concatenate([np.stack(t, axis=1) for t in ((a, b, m), (b, c, m), (c, d, m), (d, a, m))])
        return np.concatenate([fan, split])

    @functools.cached_property
    def triangle_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates of the interpolation points: all nodes (flat) then the quadrilateral centres."""
        x, y = (c.ravel() for c in self.xy)
        q = self.quads
        return np.concatenate([x, x[q].mean(axis=1)]), np.concatenate([y, y[q].mean(axis=1)])

    @functools.cached_property
    def polygon_area(self) -> float:
        """Area of the inscribed triangulated polygon, ``nphi / 2 sin(dphi)`` (slightly below ``pi``)."""
        return float(0.5 * self.nphi * np.sin(self.dphi))

    def __hash__(self):
        return hash((self.nr, self.nphi))

    def __eq__(self, other):
        return isinstance(other, PolarGrid) and (self.nr, self.nphi) == (other.nr, other.nphi)

"""The triangulation and the finite-volume mesh arrays: non-negative conductances, exact areas, padding."""

import math

import numpy as np
import pytest
from shapes import OUTLINES

from fluxsim.core.mesh import DEFAULT_SPACING, MeshSizes, bucket_size, mesh_outline, mesh_sizes, stack_meshes
from fluxsim.core.outline import Disk, Ellipse, polygon_area_centroid


def _arrays(mesh):
    return {k: np.asarray(v) for k, v in vars(mesh).items()}


@pytest.mark.parametrize("name", sorted(OUTLINES))
def test_conductances_are_non_negative_and_symmetric(name):
    """Conforming Delaunay: every cotangent conductance >= 0 (disk, ellipse 2, non-convex polygon, mask)."""
    for spacing in (0.08, 0.04):
        m = _arrays(mesh_outline(OUTLINES[name], spacing))
        w, nb = m["conductance"], m["neighbours"]
        assert w.min() >= 0.0
        real = w > 0
        assert real.sum(axis=1)[m["node_mask"]].min() >= 2  # every real node is connected
        # symmetry: w_ij appears in row j with the same value
        n, k = w.shape
        dense = {}
        for i, j, wij in zip(np.repeat(np.arange(n), k)[real.ravel()], nb[real], w[real]):
            dense[(i, j)] = wij
        assert all(dense[(j, i)] == pytest.approx(wij, rel=1e-12) for (i, j), wij in dense.items())


@pytest.mark.parametrize("name", sorted(OUTLINES))
def test_masses_sum_to_the_polygon_area(name):
    m = _arrays(mesh_outline(OUTLINES[name], 0.05))
    rim = m["xy"][: int(m["node_mask"][: len(m["rim_s"])].sum())]
    area, centroid = polygon_area_centroid(rim)
    assert area == pytest.approx(math.pi, rel=1e-12)
    assert m["mass"].sum() == pytest.approx(area, rel=1e-12)
    assert m["area"] == pytest.approx(area, rel=1e-12)
    assert np.abs(m["centroid"]).max() < 1e-12 and np.abs(centroid).max() < 1e-12
    assert m["triangle_area"][m["triangle_area"] > 0].size == np.count_nonzero(m["triangles"].any(axis=1))
    assert np.all(m["triangle_area"] >= 0)


@pytest.mark.parametrize("name", sorted(OUTLINES))
def test_rim_is_ordered_counter_clockwise_and_shares_sum_to_the_perimeter(name):
    outline = OUTLINES[name]
    m = _arrays(mesh_outline(outline, 0.05))
    n_rim = int(m["node_mask"][: len(m["rim_s"])].sum())
    rim = m["xy"][:n_rim]
    edges = np.linalg.norm(np.roll(rim, -1, axis=0) - rim, axis=1)
    assert m["perimeter"] == pytest.approx(edges.sum(), rel=1e-13)
    assert (m["rim_s_hi"] - m["rim_s_lo"]).sum() == pytest.approx(m["perimeter"], rel=1e-13)
    assert np.allclose(m["rim_edge"][:n_rim], edges)
    assert polygon_area_centroid(rim)[0] > 0  # counter-clockwise
    phi = np.mod(np.arctan2(rim[:, 1], rim[:, 0]), 2 * np.pi)
    assert min(phi[0], 2 * np.pi - phi[0]) == pytest.approx(np.min(np.minimum(phi, 2 * np.pi - phi)))
    # every rim node lies on the sampled boundary polygon (Triangle may add nodes on boundary segments)
    b = outline.boundary(0.05)
    a, d = b, np.roll(b, -1, axis=0) - b
    t = np.clip(((rim[:, None] - a[None]) * d[None]).sum(-1) / (d * d).sum(-1)[None], 0, 1)
    distance = np.linalg.norm(rim[:, None] - (a[None] + t[..., None] * d[None]), axis=-1).min(axis=1)
    assert distance.max() < 1e-12


def test_padding_is_inert():
    mesh = mesh_outline(Disk(), 0.05)
    m = _arrays(mesh)
    pad = ~m["node_mask"]
    assert pad.sum() > 0
    assert np.all(m["mass"][pad] == 0) and np.all(m["inv_mass"][pad] == 0)
    assert np.all(m["conductance"][pad] == 0)
    assert np.all(m["neighbours"][pad] == np.flatnonzero(pad)[:, None])
    sizes = mesh.sizes
    assert sizes == MeshSizes(*(bucket_size(s) for s in sizes[:3]), sizes.max_degree)


def test_bucket_ladder():
    assert [bucket_size(n) for n in (1, 16, 17, 33, 4097, 5121)] == [16, 16, 18, 36, 4608, 5632]
    for n in range(16, 5000, 37):
        b = bucket_size(n)
        assert n <= b <= 1.125 * n


def test_explicit_buckets_and_too_small_buckets():
    sizes = mesh_sizes(Disk(), 0.08)
    big = MeshSizes(2048, 128, 2048, 12)
    assert mesh_outline(Disk(), 0.08, big).sizes == big
    with pytest.raises(ValueError, match="n_triangles"):
        mesh_outline(Disk(), 0.08, big._replace(n_triangles=sizes.n_triangles - 1))


def test_stacked_meshes_share_sizes():
    stacked = stack_meshes([Disk(), Ellipse(2.0), Ellipse(1.6, 1.0)], 0.05)
    assert stacked.xy.shape[0] == 3
    assert stacked.conductance.min() >= 0


def test_node_counts_per_spacing():
    """Nodes of the disk per spacing: about pi / (sqrt(3)/2 h**2) (a hexagonal lattice of pitch h) plus half a
    node per spacing of perimeter (the boundary layer).

    Measured: 0.08 -> 595, 0.04 -> 2,329, 1/32 (the default) -> 3,775 (today's polar grid: 4,097).
    """
    counts = {h: mesh_sizes(Disk(), h).n_nodes for h in (0.08, 0.04, DEFAULT_SPACING)}
    print("disk nodes per spacing", counts)
    for h, n in counts.items():
        assert n == pytest.approx(math.pi / (math.sqrt(3) / 2 * h * h) + math.pi / h, rel=0.03)


def test_centroid_outside_the_particle_is_rejected():
    from fluxsim.core.outline import Polygon

    crescent = Polygon([(0, 0), (4, 0), (4, 4), (0, 4), (0, 3.6), (3.6, 3.6), (3.6, 0.4), (0, 0.4)])
    with pytest.raises(ValueError, match="centroid lies outside"):
        mesh_outline(crescent, 0.05)


@pytest.mark.parametrize("outline, symmetries", [
    (Disk(), ((-1, 0, 0, 1), (1, 0, 0, -1), (0.5, -math.sqrt(0.75), math.sqrt(0.75), 0.5))),
    (Ellipse(2.0, 0.0), ((-1, 0, 0, 1), (1, 0, 0, -1))),
])
def test_mesh_shares_the_symmetries_of_the_outline(outline, symmetries):
    """Seeds on a hexagonal lattice through the centroid: the disk mesh maps onto itself under both mirrors and a
    60 degree rotation, the ellipse's under its two mirrors (so d = 0 at eta = 1 up to rounding)."""
    m = _arrays(mesh_outline(outline))
    xy = m["xy"][m["node_mask"]]
    for s in symmetries:
        image = xy @ np.reshape(s, (2, 2)).T
        nearest = np.min(np.linalg.norm(image[:, None, :] - xy[None, :, :], axis=-1), axis=1)
        assert nearest.max() < 1e-12

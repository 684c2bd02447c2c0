"""The solver core v2 on non-disk outlines against the independent P1 finite-element reference (issue 11, shapes).

Reference: ``tests/reference/fem_outline.py`` (scikit-fem P1, lumped mass, Kirchhoff form, scipy BDF; its own
Delaunay mesher, no fluxsim import), committed data ``tests/reference/data/fem_outline.json`` at its finest level
(17.8 nm, ~16,700 nodes), read by ``run_fem_outline.load_reference``. Cases: an ellipse of aspect 1.8 with the long
axis at 0.3 rad and the ten-vertex non-convex ``IRREGULAR_POLYGON``; model A, equivalent radius 1.2 um, a quarter of
the perimeter blocked at eta = 0.3 with the arc centred at pi, 100 mA/g to the cut-off.

Conventions checked to agree by reading both codes: both normalise the outline to area pi with the area centroid at
the origin (ellipse semi-axes sqrt(aspect) and 1/sqrt(aspect), long axis counter-clockwise from +x; the polygon
rescaled and re-centred, corners kept as nodes), both centre the arc on the first rim crossing of the ray from the
area centroid at phi_c and cover f times the discrete perimeter, both normalise the total current with the discrete
area and perimeter, and both define the core as the superlevel set {P1(theta) > theta_core} clipped exactly on the
triangles and d from the mesh's area centroid. So the core's ``Ellipse``/``Polygon`` are the same outlines.

The reference's core fraction as specified converges at first order and from above (the degenerate front's cusp);
its level set of the P1 interpolant of K(theta) converges from below, and the two bracket the limit (half-width
<= 0.0028 at the finest level). The core (spacing 1/32 R_eq = 37.5 nm) computes the same quantity as the reference's
"as specified" one, so it is compared with that; against the bracket midpoint (the best estimate of the limit) the
issue's 0.01 is missed by a hair, kept below as a strict xfail with the measured figures.
"""

import functools

import numpy as np
import pytest
from reference.run_fem_outline import IRREGULAR_POLYGON, RADIUS_M, RATE_MA_PER_G, load_reference

import fluxsim  # noqa: F401
from fluxsim.api import make_params
from fluxsim.core import solve
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import Ellipse, Polygon

OUTLINES = {"ellipse": Ellipse(1.8, 0.3), "polygon": Polygon(IRREGULAR_POLYGON)}
#: The series are compared while the core fraction exceeds this in both solutions (d is ill-conditioned as the core
#: vanishes).
CORE_PRESENT = 0.05


def case_params(name):
    ((arc_center_rad, blocked_fraction, eta),) = load_reference(name)["arcs"]
    return make_params(radius_m=RADIUS_M, rate_mA_per_g=RATE_MA_PER_G, eta=eta, blocked_fraction=blocked_fraction,
                       arc_center_rad=arc_center_rad)


@functools.cache
def run_core(name, spacing=None):
    """The core on case ``name`` at the reference's output times, plus a late time for the final capacity."""
    mesh = mesh_outline(OUTLINES[name]) if spacing is None else mesh_outline(OUTLINES[name], spacing)
    times = np.concatenate([load_reference(name)["t_s"], [1e5]])
    s = solve.simulate(case_params(name), mesh, save_times_s=times)
    assert bool(s.complete) and bool(s.step_cutoff[-1])
    return {
        "d_nm": np.hypot(np.asarray(s.core_x_nm), np.asarray(s.core_y_nm))[:-1],
        "core_fraction": np.asarray(s.core_fraction)[:-1],
        "capacity_mAh_per_g": float(s.passed_capacity_mAh_per_g[-1]),
    }


def present(ref, out):
    both = (ref["core_fraction"] > CORE_PRESENT) & (out["core_fraction"] > CORE_PRESENT)
    assert both.sum() >= 25  # 0 .. ~15 min of the 30 s grid
    return both


@pytest.mark.parametrize(
    "name, d_bound_nm, core_bound, capacity_rel_bound",
    [
        # measured: 2.15 nm, 0.0079, 1.5e-6 (default mesh 3,783 nodes; ~12 s with compilation)
        ("ellipse", 3.0, 0.01, 1e-5),
        # measured: 1.56 nm, 0.0088, 1.8e-7 (3,796 nodes; ~11 s)
        ("polygon", 3.0, 0.01, 1e-5),
    ],
)
def test_outline_against_finite_elements(name, d_bound_nm, core_bound, capacity_rel_bound):
    """d(t) within 3 nm while the core exists, the core fraction within 0.01 of the reference's (same definition) at
    every output time, the capacity at the cut-off within 1e-5 relative (issue 11: 1e-4), at default numerics."""
    ref, out = load_reference(name), run_core(name)
    both = present(ref, out)
    d_err = np.abs(out["d_nm"] - ref["d_nm"])[both]
    core_err = np.abs(out["core_fraction"] - ref["core_fraction"])
    capacity_err = abs(out["capacity_mAh_per_g"] / ref["capacity_mAh_per_g"] - 1.0)
    print(f"{name}: max |d - d_FEM| = {d_err.max():.2f} nm, max |core - core_FEM| = {core_err.max():.4f}, "
          f"capacity {capacity_err:.2e} relative")
    assert d_err.max() < d_bound_nm
    assert core_err.max() < core_bound
    assert capacity_err < capacity_rel_bound


@pytest.mark.parametrize(
    "name, measured",
    [("ellipse", 0.01001), ("polygon", 0.01099)],
)
@pytest.mark.xfail(strict=True, reason="issue 11's 0.01 in core fraction against the reference's bracket midpoint "
                   "is missed: measured 0.0100 (ellipse) and 0.0110 (polygon), largest at 30-60 s when the front "
                   "runs along the whole rim; the core's P1-theta core is first order in h and above the limit "
                   "(0.0079 / 0.0088 from the reference's same-definition value); spacing 1/36 gives 0.0090 on the "
                   "ellipse")
def test_core_fraction_against_bracket_midpoint(name, measured):
    """The core fraction within 0.01 of the midpoint of the reference's theta/K-interpolant bracket."""
    ref, out = load_reference(name), run_core(name)
    midpoint = 0.5 * (ref["core_fraction"] + ref["core_fraction_kirchhoff"])
    err = np.abs(out["core_fraction"] - midpoint).max()
    print(f"{name}: max |core - bracket midpoint| = {err:.5f} (recorded {measured})")
    assert err < 0.01


@pytest.mark.slow
def test_ellipse_mesh_convergence():
    """Spacings 1/16, 1/24, 1/36 R_eq (961, 2,132, 4,786 nodes; ratio 1.5) against the reference's finest level.

    Measured errors (coarse to fine) and observed orders p = log(e1 / e2) / log(1.5) per consecutive pair:

    * d, RMS over the 30 s grid while the core exists: 4.05, 1.86, 0.50 nm (p = 1.92, 3.24); at 1/54 (10,701 nodes)
      0.44 nm, the reference's own level (its theta- and K-interpolant d differ by up to 2.6 nm);
    * d(10 min): 262.19, 260.23, 256.94 nm against 257.54 nm (errors 4.66, 2.69, -0.59 nm: p = 1.35, then a sign
      change), so a single time is no clean measure of the order; the RMS above is;
    * capacity at the cut-off: -6.1e-6, -2.8e-6, -1.9e-6 relative (p = 1.96, 0.92; the reference's own Richardson
      error is 3.5e-7 relative); successive differences 7.4e-4, 1.9e-4 mAh/g (p = 3.36);
    * core fraction, largest distance from the reference's bracket midpoint: 0.0187, 0.0149, 0.0090 (p = 0.56,
      1.25; 0.0048 at 1/54), so issue 11's 0.01 holds from spacing 1/36 (the default 1/32 gives 0.0100).
    Runtime ~35 s (compilation per mesh size included).
    """
    ref = load_reference("ellipse")
    midpoint = 0.5 * (ref["core_fraction"] + ref["core_fraction_kirchhoff"])
    at = int(np.flatnonzero(ref["t_s"] == 600.0)[0])
    d_rms, d600, capacity, core = [], [], [], []
    for h in (1 / 16, 1 / 24, 1 / 36):
        out = run_core("ellipse", h)
        both = present(ref, out)
        d_rms.append(np.sqrt(np.mean((out["d_nm"] - ref["d_nm"])[both] ** 2)))
        d600.append(out["d_nm"][at])
        capacity.append(out["capacity_mAh_per_g"])
        core.append(np.abs(out["core_fraction"] - midpoint).max())
    d_rms, core = np.asarray(d_rms), np.asarray(core)
    successive = np.abs(np.diff(capacity))
    capacity = np.abs(np.asarray(capacity) / ref["capacity_mAh_per_g"] - 1.0)

    def orders(e):
        return np.log(e[:-1] / e[1:]) / np.log(1.5)

    successive_order = np.log(successive[0] / successive[1]) / np.log(1.5)
    print(f"d RMS error {np.round(d_rms, 3)} nm, orders {np.round(orders(d_rms), 2)}; d(10 min) {np.round(d600, 2)} "
          f"nm (reference {ref['d_nm'][at]:.2f}); capacity error {capacity} relative, orders "
          f"{np.round(orders(capacity), 2)}, successive-difference order {successive_order:.2f}; "
          f"core fraction error {np.round(core, 4)}, orders {np.round(orders(core), 2)}")
    assert np.all(orders(d_rms) > 1.5) and d_rms[-1] < 1.0  # measured 1.92, 3.24; 0.50 nm
    assert np.all(orders(capacity) > 0.6) and capacity[-1] < 4e-6  # measured 1.96, 0.92; 1.9e-6
    assert np.all(np.diff(core) < 0) and core[-1] < 0.01  # measured 0.0187, 0.0149, 0.0090

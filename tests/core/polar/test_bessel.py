"""Constant D with uniform flux against the analytic Bessel-series solution for a disk.

Nondimensional problem (r in units of R, t in units of R**2 / D, flux qh = qbar R / D)::

    theta(r, t) = theta0 - 2 qh t - qh (r**2 / 2 - 1 / 4) + sum_n 2 qh J0(a_n r) exp(-a_n**2 t) / (a_n**2 J0(a_n))

with a_n the positive zeros of J1: it satisfies the heat equation, -dtheta/dr = qh at r = 1, the mean falls at
2 qh, and the series cancels the quasi-steady profile at t = 0. D = 1e-16 m2/s at 100 mA/g gives qh = 0.73, so the
occupancy varies by O(1) across the particle and an absolute error below 1e-3 is a demanding target.
"""

import numpy as np
import pytest
from bessel_series import PARAMS, PROTOCOL, TIMES_S, D, exact
from helpers import polar_batched as batched
from helpers import stack, unbatch

from fluxsim.core.polar import solver as polar


def snapshots(nr, nphi, n_steps):
    numerics = polar.Numerics(nr=nr, nphi=nphi, n_steps=n_steps)
    out = unbatch(batched(numerics, PROTOCOL, TIMES_S)(stack([PARAMS])), 0)
    return numerics.grid.r, np.asarray(out.snapshots)


def max_errors(r, fields):
    return np.array([np.max(np.abs(f - exact(r, t)[:, None])) for f, t in zip(fields, TIMES_S)])


def test_series_is_a_solution():
    """The reference itself: mean falls at 2 qh t and the surface gradient is -qh (checks the formula)."""
    r = np.linspace(0, 1, 4001)
    for t in TIMES_S:
        u = exact(r, t)
        mean = np.trapezoid(2 * r * u, r)
        qh = float(PARAMS.material.surface_flux_m_per_s(100.0, PARAMS.radius_m)) * float(PARAMS.radius_m) / D
        assert mean == pytest.approx(1 - 2 * qh * t * D / float(PARAMS.radius_m) ** 2, abs=1e-6)
        assert (u[-1] - u[-2]) / (r[1] - r[0]) == pytest.approx(-qh, rel=1e-3)


def test_error_at_default_resolution_below_1e_3():
    """Default numerics (32 rings x 128, 200 steps): max nodal error < 1e-3 at all three times.

    Measured: 3.4e-4, 1.8e-4, 9.2e-5 at 250, 1000, 5000 s.
    """
    defaults = polar.Numerics()
    r, fields = snapshots(defaults.nr, defaults.nphi, defaults.n_steps)
    errors = max_errors(r, fields)
    assert np.all(errors < 1e-3), errors


def test_spatial_order_at_least_1p8():
    """Observed spatial order from nr = 8, 16, 32 (time error made negligible with 400 steps).

    The solution is radially symmetric, so 8 nodes per ring suffice (azimuthal fluxes vanish identically).
    Measured order: 2.1, 2.0.
    """
    errors = np.array([max_errors(*snapshots(nr, 8, 400)) for nr in (8, 16, 32)])
    orders = np.log2(errors[:-1] / errors[1:])
    print("spatial errors", errors.tolist(), "orders", orders.tolist())
    assert np.all(orders >= 1.8), orders


def test_temporal_order_reported():
    """Observed temporal order (self-convergence against 768 steps at nr = 16): BDF2 is second order.

    The graded start (steps growing from 1 % of the final size) keeps the initial sqrt(t) transient from
    degrading the order. Printed for the record; asserted > 1.5 to catch a regression to first order.
    """
    r, reference = snapshots(16, 8, 768)
    diffs = []
    for n in (48, 96, 192):
        _, fields = snapshots(16, 8, n)
        diffs.append(np.max(np.abs(fields - reference)))
    orders = np.log2(np.array(diffs[:-1]) / np.array(diffs[1:]))
    print("temporal differences", diffs, "orders", orders.tolist())
    assert np.all(orders > 1.5), orders

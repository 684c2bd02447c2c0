"""Li balance: the mean occupancy falls at exactly I / (3600 Q_th) (docs/model.md section 7, behaviour 1)."""

import math

import numpy as np
import pytest
from helpers import polar_batched as batched
from helpers import stack, unbatch

from fluxsim.api import make_params
from fluxsim.core.polar import solver as polar
from fluxsim.model.protocol import Charge, Rest

NUMERICS = polar.Numerics(nr=8, nphi=32, n_steps=40)

# (eta, blocked fraction, arc centre): arcs whose ends fall inside boundary cells (dphi = 2 pi / 32), full
# blocking with a little transfer left, and no blocking.
CASES = [(1.0, 0.0, math.pi), (0.7, 0.25, math.pi), (0.3, 0.2371, 2.9), (0.05, 0.61, 0.3), (0.3, 1.0, 1.0)]


def _relative_balance_error(solution, rate_mA_per_g, q_th, theta0):
    t = np.asarray(solution.t_s)[1:]
    extracted = theta0 - np.asarray(solution.mean_theta)[1:]
    expected = rate_mA_per_g * t / (3600.0 * q_th)
    return np.max(np.abs(extracted - expected) / expected)


@pytest.mark.parametrize("normalisation", ["total_current", "open_surface"])
def test_mean_occupancy_follows_the_applied_current(normalisation):
    """Exact discrete balance (rounding only) for every eta and f, arcs cutting through cells included.

    With the default normalisation the specific current is the same for every eta and f; with "open_surface" the
    particle passes (1 - f + f eta) times the nominal current.
    """
    plist = [make_params(eta=e, blocked_fraction=f, arc_center_rad=c, flux_normalisation=normalisation)
             for e, f, c in CASES]
    out = batched(NUMERICS)(stack(plist))
    q_th = plist[0].material.theoretical_capacity_mAh_per_g
    for i, (eta, f, _) in enumerate(CASES):
        factor = 1.0 if normalisation == "total_current" else 1 - f + f * eta
        err = _relative_balance_error(unbatch(out, i), 100.0 * factor, q_th, 1.0)
        assert err < 1e-10, (eta, f, err)


def test_balance_with_extra_arcs_and_profile():
    """Several arcs plus a sampled eta(phi) profile: still exact."""
    p = make_params(eta=0.3, blocked_fraction=0.2, extra_arcs=[[0.4, 0.1, 0.5], [4.0, 0.05, 0.0]],
                    eta_profile=[1.0, 0.8, 0.6, 0.9, 1.0, 0.7])
    out = batched(NUMERICS)(stack([p]))
    err = _relative_balance_error(unbatch(out, 0), 100.0, p.material.theoretical_capacity_mAh_per_g, 1.0)
    assert err < 1e-10


def test_balance_model_b_and_rest():
    """Model B (film resistance): the galvanostatic constraint holds through Newton, and rest conserves Li."""
    protocol = (Charge(max_duration_s=600.0, until_cutoff=False), Rest(duration_s=300.0))
    p = make_params(surface_model="B", eta=0.3, blocked_fraction=0.25, r_NMC_ohm_m2=0.05)
    s = unbatch(batched(NUMERICS, protocol)(stack([p])), 0)
    charge = np.asarray(s.protocol_step) == 0
    q_th = p.material.theoretical_capacity_mAh_per_g
    t = np.asarray(s.t_s)
    mean = np.asarray(s.mean_theta)
    expected = float(p.theta0) - 100.0 * np.minimum(t, 600.0) / (3600 * q_th)
    assert np.max(np.abs(mean - expected)[1:] / (float(p.theta0) - expected[1:])) < 1e-10
    rest = np.asarray(s.protocol_step) == 1
    assert np.ptp(mean[rest]) < 1e-13
    assert charge.any() and rest.any()

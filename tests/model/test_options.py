"""Protocol steps and model options through the whole solver: discharge, voltage cut-off, tabulated D."""

import numpy as np
from conftest import COARSE
from helpers import batched, stack, unbatch

import fluxsim
from fluxsim import outputs
from fluxsim.api import make_params
from fluxsim.model.protocol import Charge, Discharge, Rest

NUMERICS = fluxsim.Numerics(**COARSE)
#: Output grid covering every protocol below [s].
TIMES = tuple(np.linspace(0.0, 8000.0, 81))


def test_charge_rest_discharge():
    """Charge 20 min, rest 10 min, discharge to the upper cut-off: each step ends where it should, the discharge
    at surface max theta = theta_upper (interpolated inside the step), and the net passed capacity equals the
    Li balance at every saved time."""
    protocol = (Charge(max_duration_s=1200.0), Rest(duration_s=600.0), Discharge())
    p = make_params(eta=0.3, blocked_fraction=0.25)
    s = unbatch(batched(NUMERICS, protocol, TIMES)(stack([p])), 0)
    np.testing.assert_allclose(np.asarray(s.step_end_s[:2]), [1200.0, 1800.0], rtol=1e-14)
    assert list(np.asarray(s.step_cutoff)) == [False, False, True]
    assert abs(float(s.surface_max_theta[-1]) - 0.99) < 1e-12
    q_th = p.material.theoretical_capacity_mAh_per_g
    extracted = (1.0 - np.asarray(s.mean_theta)) * q_th
    np.testing.assert_allclose(extracted, np.asarray(s.passed_capacity_mAh_per_g), atol=1e-9)
    assert float(s.passed_capacity_mAh_per_g[-1]) < 100.0 * 1200.0 / 3600.0  # the discharge gave some back


def test_model_b_voltage_cutoff():
    """Model B with a cut-off voltage: the charge ends when V reaches voltage_cut_V (interpolated inside the step),
    before the surface occupancy reaches theta_cut."""
    p = make_params(surface_model="B", eta=0.3, blocked_fraction=0.25, voltage_cut_V=3.9)
    s = unbatch(batched(NUMERICS, save_times_s=TIMES)(stack([p])), 0)
    assert bool(s.step_cutoff[0])
    end = float(s.step_end_s[0])
    voltage = float(outputs.at_times(s, s.voltage_V, end))
    assert abs(voltage - 3.9) < 1e-3  # linear interpolation of V inside the last step
    assert float(outputs.at_times(s, s.surface_min_theta, end)) > 0.25


def test_tabulated_law_reproduces_the_power_law():
    """A 401-point log-linear table of the default law gives the same solution (capacity to 1e-5 relative, d within
    0.15 nm, core fraction within 1e-3): the tabulated Kirchhoff potential is exact for its interpolant, and what
    remains is the two runs' different adaptive step sequences (1e-6 relative in capacity at rtol 1e-2; d 0.03 to
    0.06 nm apart at 10 min, depending on the integrator's stage counts)."""
    law = make_params().diffusivity
    theta = np.linspace(0.0, 1.0, 401)
    table = make_params(eta=0.3, blocked_fraction=0.25, diffusivity="tabulated", table_theta=theta,
                        table_D_m2_per_s=np.asarray(law(theta)))
    run = batched(NUMERICS, save_times_s=TIMES)
    tab = unbatch(run(stack([table])), 0)
    ref = unbatch(run(stack([make_params(eta=0.3, blocked_fraction=0.25)])), 0)
    assert abs(float(outputs.capacity_at_cutoff(tab)) / float(outputs.capacity_at_cutoff(ref)) - 1) < 1e-5
    for series, tol in [(outputs.offset_nm, 0.15), (lambda s: s.core_fraction, 1e-3)]:
        a = float(outputs.at_times(tab, series(tab), 600.0))
        b = float(outputs.at_times(ref, series(ref), 600.0))
        assert abs(a - b) < tol, (a, b)


def test_replace_sets_named_inputs_and_rejects_unknown_ones():
    """fluxsim.api.replace routes each named input to its place in the pytree (incl. a dip's base law)."""
    import pytest

    from fluxsim.api import replace

    base = make_params(blocked_fraction=0.25, low_theta_dip=True)
    p = replace(base, eta=0.4, rate_mA_per_g=200.0, D_hi_m2_per_s=2e-14, width=0.1, density_kg_per_m3=4700.0)
    assert p.blocking.eta == 0.4 and p.rate_mA_per_g == 200.0 and p.material.density_kg_per_m3 == 4700.0
    assert p.diffusivity.base.D_hi_m2_per_s == 2e-14 and p.diffusivity.width == 0.1
    with pytest.raises(ValueError, match="r_NMC_ohm_m2"):
        replace(base, r_NMC_ohm_m2=0.1)  # model A has no film resistance
    with pytest.raises(ValueError, match="unknown input"):
        replace(base, etaa=0.3)

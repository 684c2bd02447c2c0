"""The solver core v2 on the disk against the independent references (tests/reference): issue 11's acceptance points.

* eta = 1, 250 mA/g: the core-vanish time against the 1D radial solver (cell-centred FV + scipy BDF, 400 cells);
* case (c) (eta 0.3, quarter blocked, 100 mA/g): d(t) and the capacity against the 2D P1 finite-element solver.
"""

import numpy as np
import pytest
from reference.fem2d import solve_fem2d
from reference.radial1d import solve_radial1d

import fluxsim  # noqa: F401
from fluxsim.api import make_params
from fluxsim.core import solve
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import Disk


def first_zero(t, fraction):
    """First time a core-fraction series reaches 0, linear between samples."""
    k = int(np.flatnonzero(np.asarray(fraction) <= 0)[0])
    return float(np.interp(0.0, [fraction[k], fraction[k - 1]], [t[k], t[k - 1]]))


@pytest.mark.slow
def test_core_vanish_time_at_eta_one_against_radial_reference():
    """Within 0.3 % of the 1D radial solution at the default mesh (today's polar solver: 1.9 % early).

    Measured: 555.75 s for the reference (first zero of its core fraction, 0.25 s samples); the default mesh
    (spacing 0.03, mirror-symmetric): 555.09 s (-0.12 %).
    """
    t_out = np.arange(530.0, 580.0, 0.25)
    ref = solve_radial1d(rate_mA_per_g=250.0, t_out_s=t_out, n_cells=400)
    vanish_ref = first_zero(t_out, ref["core_fraction"])
    s = solve.simulate(make_params(rate_mA_per_g=250.0), mesh_outline(Disk()),
                       save_times_s=(0.0, 600.0))
    print(f"core vanishes at {float(s.core_vanish_s):.2f} s, radial reference {vanish_ref:.2f} s")
    assert abs(float(s.core_vanish_s) / vanish_ref - 1.0) < 3e-3


@pytest.mark.slow
def test_case_c_against_finite_elements():
    """d(t) within 3 nm while the core exists (60-1080 s) and the capacity within 1e-4 relative of 2D P1 FEM.

    Measured: |d - d_FEM| <= 2.8 nm (today's polar solver: 2.1 nm against the same reference).
    """
    t_out = np.arange(60.0, 1081.0, 60.0)
    fem = solve_fem2d(eta=0.3, blocked_fraction=0.25, t_out_s=t_out, refine=5, dt_max_s=1.0)
    params = make_params(eta=0.3, blocked_fraction=0.25)
    s = solve.simulate(params, mesh_outline(Disk()), save_times_s=np.concatenate([t_out, [1e5]]))
    d = np.hypot(np.asarray(s.core_x_nm), np.asarray(s.core_y_nm))[:-1]
    present = (np.asarray(s.core_fraction)[:-1] > 0) & (np.asarray(fem["core_fraction"]) > 0)
    assert present.sum() >= 15
    print("d - d_FEM [nm]:", np.round((d - fem["d_nm"])[present], 2))
    assert np.max(np.abs(d - fem["d_nm"])[present]) < 3.0
    fem_cutoff = solve_fem2d(eta=0.3, blocked_fraction=0.25, refine=5, dt_max_s=2.0)
    capacity = float(s.passed_capacity_mAh_per_g[-1])
    assert capacity == pytest.approx(fem_cutoff["capacity_mAh_per_g"], rel=1e-4)

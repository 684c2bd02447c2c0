"""Shape matters (issue 12): d(t) of an elongated particle from the independent finite-element reference
(tests/reference/fem_outline.py via run_fem_shape.py, not fluxsim's forward model), fitted with the particle's true
outline and with an equal-area disk.

Data: the reference's hard-core offset vectors (ellipse of aspect 2.2, a quarter of the perimeter blocked at
eta = 0.3 at the tip of the long axis; 100 and 200 mA/g, 20 points over 1-20 mAh/g) plus seeded Gaussian noise of
5 nm on each component, fitted for eta at the fit's default numerics. Measured: the outline fit gives
eta = 0.3013 +- 0.0015 without noise (0.8 SE from the truth); the disk fit gives 0.08 (about 180 SE off).
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fluxsim import fit as F
from fluxsim.core.outline import Disk, Ellipse
from fluxsim.io import observations as obs_mod

DATA = Path(__file__).parents[1] / "reference" / "data" / "fem_shape.json"
SIGMA_NM = 5.0


def reference_observations(seed=0):
    ref = json.loads(DATA.read_text())
    rng = np.random.default_rng(seed)
    parts = []
    for s in ref["series"]:
        x = np.asarray(s["d_x_nm"]) + rng.normal(0.0, SIGMA_NM, len(s["d_x_nm"]))
        y = np.asarray(s["d_y_nm"]) + rng.normal(0.0, SIGMA_NM, len(s["d_y_nm"]))
        parts.append(obs_mod.make_observations(s["rate_mA_per_g"], s["time_s"], np.hypot(x, y),
                                               direction_rad=np.arctan2(y, x), d_sigma_nm=SIGMA_NM,
                                               radius_m=ref["metadata"]["radius_m"], particle="ellipse"))
    return obs_mod.combine(*parts), ref["metadata"]


@pytest.mark.slow
def test_outline_fit_recovers_eta_where_the_equal_area_disk_does_not():
    obs, meta = reference_observations()
    truth = meta["arc"]["eta"]
    inputs = dict(blocked_fraction=meta["arc"]["fraction"], arc_center_rad=meta["arc"]["center_rad"],
                  n_candidates=4, profile=None, intervals=False)
    outline = Ellipse(meta["outline"]["aspect"], meta["outline"]["orientation_rad"])
    true_shape = F.fit(obs, ["eta"], outline=outline, **inputs)
    disk = F.fit(obs, ["eta"], outline=Disk(), **inputs)
    for result in (true_shape, disk):
        assert result.converged and result.absolute_sigma
    err_outline = abs(true_shape.values["eta"] - truth) / true_shape.standard_errors["eta"]
    err_disk = abs(disk.values["eta"] - truth) / disk.standard_errors["eta"]
    assert err_outline <= 2.0, (true_shape.values, true_shape.standard_errors)
    assert err_disk > 2.0, (disk.values, disk.standard_errors)
    # and the disk cannot describe the data: its chi2 is far above the outline fit's (both 80 residuals - 1)
    assert disk.chi2 > 2 * true_shape.chi2
    assert math.isfinite(true_shape.reduced_chi2) and true_shape.reduced_chi2 < 2.0

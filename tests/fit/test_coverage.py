"""Coverage of the reported intervals (issue 12): over 40 synthetic data sets (the fit's own forward model at small
numerics, 10 nm noise, a quarter blocked at eta = 0.35 on an ellipse of aspect 1.6, 4 rates x 20 points), the 95 %
profile-likelihood and Gauss-Newton intervals of eta must contain the truth in 95 +- 10 % of them (binomial
standard deviation at 40 sets: 3.4 points, so a correct interval fails this with probability < 0.5 %); the 68 %
intervals within their binomial 3-sigma band (+- 22 points)."""

import numpy as np
import pytest

from fluxsim import fit as F
from fluxsim.api import make_params
from fluxsim.core.outline import Ellipse
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics

NUM = Numerics(spacing=0.125, integrator=RKLSettings(rtol=1e-2, atol=1e-4), line_cut_samples=3)
RATES = (50.0, 100.0, 200.0, 400.0)
TIMES = [np.linspace(1.0, 20.0, 20) * 3600.0 / r for r in RATES]
OUTLINE = Ellipse(1.6, 0.4)
TRUTH = 0.35
N_SETS = 40


def covered(pair, truth):
    lo, hi = (-np.inf if pair[0] is None else pair[0]), (np.inf if pair[1] is None else pair[1])
    return lo <= truth <= hi


@pytest.mark.slow
def test_interval_coverage_over_synthetic_data_sets():
    params = make_params(eta=TRUTH, blocked_fraction=0.25, arc_center_rad=0.0)
    hits = {"profile_95": 0, "gauss_newton_95": 0, "profile_68": 0, "gauss_newton_68": 0}
    for seed in range(N_SETS):
        data = F.simulate_observations(params, RATES, TIMES, numerics=NUM, outline=OUTLINE, noise_nm=10.0,
                                       seed=1000 + seed)
        result = F.fit(data, ["eta"], blocked_fraction=0.25, arc_center_rad=0.0, numerics=NUM, outline=OUTLINE,
                       n_candidates=3, profile=None)
        for kind in hits:
            hits[kind] += covered(result.intervals["eta"][kind], TRUTH)
    coverage = {k: v / N_SETS for k, v in hits.items()}
    print("coverage:", coverage)
    for kind in ("profile_95", "gauss_newton_95"):
        assert abs(coverage[kind] - 0.95) <= 0.10, coverage
    for kind in ("profile_68", "gauss_newton_68"):
        assert abs(coverage[kind] - 0.6827) <= 0.22, coverage

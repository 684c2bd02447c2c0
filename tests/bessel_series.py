"""The analytic Bessel-series solution for a disk with constant D and uniform flux (shared by the polar and mesh
core tests; not a test module).

Nondimensional problem (r in units of R, t in units of R**2 / D, flux qh = qbar R / D)::

    theta(r, t) = theta0 - 2 qh t - qh (r**2 / 2 - 1 / 4) + sum_n 2 qh J0(a_n r) exp(-a_n**2 t) / (a_n**2 J0(a_n))

with a_n the positive zeros of J1: it satisfies the heat equation, -dtheta/dr = qh at r = 1, the mean falls at
2 qh, and the series cancels the quasi-steady profile at t = 0. D = 1e-16 m2/s at 100 mA/g gives qh = 0.73, so the
occupancy varies by O(1) across the particle and an absolute error below 1e-3 is a demanding target.
"""

import numpy as np
from scipy.special import j0, jn_zeros

from fluxsim.api import make_params
from fluxsim.model.protocol import Charge

D = 1e-16
DURATION_S = 5000.0
TIMES_S = (250.0, 1000.0, 5000.0)
PROTOCOL = (Charge(max_duration_s=DURATION_S, until_cutoff=False),)
PARAMS = make_params(diffusivity="constant", D_m2_per_s=D)


def exact(r, t_s):
    radius = float(PARAMS.radius_m)
    qh = float(PARAMS.material.surface_flux_m_per_s(100.0, radius)) * radius / D
    t = t_s * D / radius**2
    zeros = jn_zeros(1, 400)[:, None]
    series = np.sum(2 * qh * j0(zeros * r) * np.exp(-(zeros**2) * t) / (zeros**2 * j0(zeros)), axis=0)
    return 1.0 - 2 * qh * t - qh * (r**2 / 2 - 0.25) + series

"""Shared test settings. The tests run in float64, like the app (fluxsim.precision), and refuse implicit rank
promotion, so a broadcast between arrays of different rank in the code under test is an error, not a silent bug."""

import jax
import pytest

import fluxsim

fluxsim.enable_float64()
jax.config.update("jax_numpy_rank_promotion", "raise")

#: Coarse mesh-core settings for behaviour tests: node spacing R / 8 (about 250 nodes on a disk), rtol 1e-2.
COARSE = dict(spacing=0.125, integrator=fluxsim.RKLSettings(rtol=1e-2))
#: Coarse settings of the polar solver's own tests (tests/core/polar): 16 rings x 64 nodes, 200 time steps.
POLAR_COARSE = dict(nr=16, nphi=64, n_steps=200)


@pytest.fixture(scope="session")
def coarse_numerics():
    return fluxsim.Numerics(**COARSE)

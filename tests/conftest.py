"""Shared test settings. The tests run in float64, like the app (fluxsim.precision)."""

import pytest

import fluxsim

fluxsim.enable_float64()

#: Coarse settings for behaviour tests: 16 rings x 64 nodes, 200 time steps (about 1 s per run after compiling).
COARSE = dict(nr=16, nphi=64, n_steps=200)


@pytest.fixture(scope="session")
def coarse_numerics():
    return fluxsim.Numerics(**COARSE)

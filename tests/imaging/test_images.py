"""Image stacks (imaging.images): the paper's differential-intensity metrics, synthetic frames, files, image fit."""

import numpy as np
import pytest

from fluxsim import fit as F
from fluxsim.api import make_params
from fluxsim.core.mesh import mesh_outline
from fluxsim.core.outline import Ellipse
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics
from fluxsim.imaging import images as I
from fluxsim.io import observations as obs_mod

#: The frames' simulation (mesh core): spacing R / 12, rtol 1e-2.
NUM = Numerics(spacing=1 / 12, integrator=RKLSettings(rtol=1e-2))  # frames and the fit's model
RADIUS = 1.2e-6
PIXEL_NM = 40.0
THETA_CORE = 0.97
# same worker as tests/fit/test_fit.py: the image fit has that module's data shape (4 series x 20 points) and numerics,
# so it reuses the compiled fit program
pytestmark = pytest.mark.xdist_group("fit_small")


def test_metrics_of_a_drawn_frame_follow_the_paper_convention():
    """A hand-made stack: particle disk, a 'reacted' region (differential intensity 0.3) everywhere except an
    unreacted disk (intensity change 0.02 < 0.05) shifted by a known vector; y is up (towards row 0)."""
    n, r0 = 101, 40
    rows, cols = np.mgrid[0:n, 0:n]
    x, y = cols - 50, 50 - rows  # pixels, y up
    particle = x**2 + y**2 <= r0**2
    core = (x - 10) ** 2 + (y - 6) ** 2 <= 15**2
    first = np.where(particle, 1.0, 0.2)
    later = np.where(particle, np.where(core, 1.02, 1.3), 0.2)
    m = I.analyse_frames(np.stack([first, later]), pixel_size_nm=50.0, times_s=[0.0, 60.0], rate_mA_per_g=100)
    np.testing.assert_array_equal(m.mask, particle)  # segmented (Otsu) = the drawn disk
    assert m.d_nm[0] == pytest.approx(0.0, abs=1e-9) and m.core_fraction[0] == 1.0
    assert m.core_x_nm[1] == pytest.approx(10 * 50.0, abs=1e-6) and m.core_y_nm[1] == pytest.approx(6 * 50.0, abs=1e-6)
    assert m.direction_rad[1] == pytest.approx(np.arctan2(6, 10))
    assert m.core_fraction[1] == pytest.approx(core.sum() / particle.sum())
    # threshold is on the differential intensity: at 0.01 the 0.02 region is no longer "unreacted"
    none = I.analyse_frames(np.stack([first, later]), 50.0, [0.0, 60.0], threshold=0.01)
    assert none.n_core_pixels[1] == 0 and np.isnan(none.d_nm[1])
    assert m.radius_m == pytest.approx(r0 * 50e-9, rel=0.01)


@pytest.fixture(scope="module")
def known_run():
    """Snapshots of one eta = 0.3 particle at 100 and 400 mA/g, every 2 mAh/g to 48 mAh/g (past the core's end)."""
    params = make_params(eta=0.3, blocked_fraction=0.25, arc_center_rad=0.5, radius_m=RADIUS)
    capacities = np.linspace(0.0, 48.0, 25)
    snaps, times, mesh = I.simulate_snapshots(params, [100.0, 400.0], capacities, NUM)
    return snaps, times, mesh, I.hard_offsets(snaps, mesh, RADIUS, THETA_CORE)


@pytest.mark.parametrize("blur_px, noise, pixel_nm", [(0.0, 0.0, PIXEL_NM), (0.0, 0.003, PIXEL_NM),
                                                      (1.0, 0.003, 60.0)])
def test_frames_reproduce_the_simulation_offsets_within_a_pixel(known_run, blur_px, noise, pixel_nm):
    snaps, times, mesh, (x, y, fraction) = known_run
    worst = 0.0
    for i in range(snaps.shape[0]):
        stack = I.render_frames(snaps[i], mesh, RADIUS, pixel_nm, times[i], centre_offset_px=(0.3, -0.2),
                                blur_px=blur_px, noise=noise, seed=i)
        m = I.analyse_frames(stack, rate_mA_per_g=100.0)  # mask segmented from the first frame
        assert abs(m.mask.sum() - stack.mask.sum()) <= 0.02 * stack.mask.sum()
        has_core = fraction[i] > 0.005  # a core of at least a few pixels
        assert has_core.sum() >= 8 and not has_core[-1]  # the series covers the core's disappearance
        err = np.hypot(m.core_x_nm - x[i], m.core_y_nm - y[i])[has_core] / pixel_nm
        worst = max(worst, float(np.max(err)))
        np.testing.assert_allclose(m.core_fraction[has_core], fraction[i][has_core], atol=0.03)
        assert np.all(m.n_core_pixels[fraction[i] == 0] == 0)  # no spurious core after it has gone
    assert worst <= 1.0, worst


def test_stack_files_and_observations_round_trip(known_run, tmp_path):
    snaps, times, mesh, _ = known_run
    stack = I.render_frames(snaps[0], mesh, RADIUS, PIXEL_NM, times[0])
    direct = I.analyse_frames(stack, rate_mA_per_g=100.0, particle="P1")
    for name in ("stack.npy", "stack.tif"):
        path = I.save_stack(stack.frames, tmp_path / name)
        again = I.analyse_file(path, PIXEL_NM, times[0], rate_mA_per_g=100.0, particle="P1")
        np.testing.assert_allclose(again.d_nm, direct.d_nm, atol=1e-3 * PIXEL_NM)  # TIFF is float32
    obs = direct.to_observations(d_sigma_nm=PIXEL_NM / 2)
    back = obs_mod.read_csv(obs_mod.write_csv(obs, tmp_path / "P1.csv"))
    s = back.series[0]
    keep = direct.n_core_pixels >= 1
    np.testing.assert_allclose(s.d_nm, direct.d_nm[keep])
    assert back.radius_m["P1"] == pytest.approx(RADIUS, rel=0.01)
    with pytest.raises(ValueError, match="unsupported image format"):
        I.load_stack(tmp_path / "P1.csv")
    with pytest.raises(ValueError, match="give mask="):
        I.analyse_frames(stack.differential(), PIXEL_NM, times[0], differential=True)


def test_fit_from_frames_recovers_eta():
    """Frames of four rates (noise, blur) -> metrics -> observations -> fit: eta within 0.05 of the truth (and
    within two standard errors)."""
    truth = 0.4
    params = make_params(eta=truth, blocked_fraction=0.25, arc_center_rad=0.0, radius_m=RADIUS)
    rates = [50.0, 100.0, 200.0, 400.0]
    stacks = I.simulate_frames(params, rates, np.linspace(1.2, 24.0, 20), PIXEL_NM, numerics=NUM, noise=0.003,
                               blur_px=0.7, centre_offset_px=(0.25, 0.4))
    obs = I.analyse_stacks(stacks, rates, particle="img", d_sigma_nm=PIXEL_NM / 2, with_core_fraction=False)
    assert obs.rates_mA_per_g == rates and obs.particles == ["img"]
    result = F.fit(obs, ["eta"], blocked_fraction=0.25, arc_center_rad=0.0, numerics=NUM, start={"eta": 0.7},
                   n_candidates=4, n_starts=1)
    assert abs(result.values["eta"] - truth) <= 0.05, result.summary()
    assert abs(result.values["eta"] - truth) <= 2 * result.standard_errors["eta"], result.summary()


def test_frames_of_an_ellipse_have_its_area_and_its_occupancy():
    """An ellipse (aspect 1.8, long axis at 0.4 rad) of a uniform occupancy: the rendered particle covers its
    area pi R_eq**2 in pixels within 2 %, pixels inside show I(theta) and pixels outside the background; the
    segmented mask is elongated along the long axis (second moments)."""
    outline = Ellipse(1.8, 0.4)
    mesh = mesh_outline(outline, 0.125)
    theta = np.full((1, mesh.xy.shape[0]), 0.9)
    stack = I.render_frames(theta, mesh, RADIUS, PIXEL_NM, [0.0], margin_px=3)
    area_px = np.pi * (RADIUS * 1e9 / PIXEL_NM) ** 2
    assert abs(stack.coverage.sum() / area_px - 1) < 0.02, stack.coverage.sum() / area_px
    inside, outside = stack.coverage == 1.0, stack.coverage == 0.0
    np.testing.assert_allclose(stack.frames[0][inside], I.linear_intensity()(0.9), rtol=1e-12)
    np.testing.assert_allclose(stack.frames[0][outside], 0.3, rtol=1e-12)
    rows, cols = np.nonzero(stack.mask)
    x, y = cols - cols.mean(), -(rows - rows.mean())
    u = np.array([np.cos(0.4), np.sin(0.4)])
    along, across = (x * u[0] + y * u[1]).std(), (-x * u[1] + y * u[0]).std()
    assert abs(along / across - 1.8) < 0.1, along / across  # semi-axes ratio of the ellipse

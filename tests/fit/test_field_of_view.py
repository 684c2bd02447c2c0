"""A field of view (issue 12): three particles of different outlines and eta in one synthetic image stack (the mesh
core rendered through blur, noise and a background gradient) give three reports, each fitted on the particle's own
segmented outline, and a summary over particles; the same through ``fluxsim fit --stack``."""

import json

import numpy as np
import pytest
from app_support import assert_figure

from fluxsim.api import make_params
from fluxsim.app import fit_cli
from fluxsim.core.outline import Ellipse, Polygon
from fluxsim.core.rkl import RKLSettings
from fluxsim.core.solve import Numerics
from fluxsim.imaging import segment as S
from fluxsim.imaging import synthetic_field as SF

NUM = Numerics(spacing=0.125, integrator=RKLSettings(rtol=1e-2, atol=1e-4), line_cut_samples=3)
ETAS = (0.3, 0.5, 0.4)
PARTICLES = [
    SF.PlacedParticle(Ellipse(1.8, 0.3), 1.0e-6, (25.0, 30.0), None),
    SF.PlacedParticle(Ellipse(1.4, 1.5), 0.8e-6, (30.0, 85.0), None),
    SF.PlacedParticle(Polygon(((0, 0), (1.2, 0.1), (1.4, 1.0), (0.5, 1.3), (-0.2, 0.8))), 0.9e-6, (75.0, 55.0), None),
]
FIT = dict(blocked_fraction=0.25, arc_center_rad=np.pi, numerics=NUM, n_candidates=3, profile=None)


@pytest.fixture(scope="module")
def field():
    placed = [SF.PlacedParticle(p.outline, p.radius_m, p.centre_px,
                                make_params(eta=eta, blocked_fraction=0.25, arc_center_rad=np.pi))
              for p, eta in zip(PARTICLES, ETAS)]
    return SF.render_field(placed, (100, 120), 50e-9, 100.0, np.linspace(0.0, 600.0, 16), numerics=NUM,
                           gradient=(0.1, 0.15), blur_px=0.7, noise=0.005)


def test_three_particles_three_reports(field):
    particles, results, summary = S.fit_field_of_view(field, ["eta"], d_sigma_nm=20.0, **FIT)
    assert [p.name for p in particles] == ["p1", "p2", "p3"]
    assert set(results) == {"p1", "p2", "p3"} and not any(isinstance(r, str) for r in results.values())
    assert summary.sizes["particle"] == 3 and list(summary["parameter"].values) == ["eta"]
    for p, eta in zip(particles, ETAS):  # p1..p3 are in the order of PARTICLES (reading order)
        r = results[p.name]
        assert r.outline is p.outline and r.params.radius_m == pytest.approx(p.radius_m)
        # images are pixelated, blurred and noisy: eta comes back to a few hundredths
        assert abs(r.values["eta"] - eta) < 0.06, (p.name, r.values, eta)
        lo, hi = r.intervals["eta"]["profile_95"]
        assert lo < r.values["eta"] < hi
    np.testing.assert_allclose(summary["estimate"].values[:, 0], [results[n].values["eta"] for n in ("p1", "p2", "p3")])


@pytest.mark.slow
def test_cli_stack_writes_one_report_per_particle_and_the_summary(field, tmp_path, capsys):
    stack = S.save_field_stack(field, tmp_path / "field.npz")
    out = tmp_path / "fits"
    code = fit_cli.main(["--stack", str(stack), "--d-sigma-nm", "20", "--spacing", str(NUM.spacing), "--rtol",
                         str(NUM.integrator.rtol), "--candidates", "3", "--profile", "none", "--quiet",
                         "--arc-center-rad", str(np.pi), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and printed.strip().splitlines()[-1] == str(out)
    import xarray as xr

    summary = xr.open_zarr(out / "summary.zarr", consolidated=False)
    assert list(summary["particle"].values) == ["p1", "p2", "p3"]
    for name in ("p1", "p2", "p3"):
        report = json.loads((out / name / "fit.json").read_text())
        assert report["outline"]["kind"] == "Curve" and len(report["outline"]["vertices_nm"]) > 20
        assert set(report["intervals"]["eta"]) >= {"gauss_newton_95", "profile_95"}
        assert "profile" in report["interval_kinds"]
        assert_figure(out / name / "fit.png")


def test_cli_refuses_a_stack_and_a_csv_together(tmp_path, capsys):
    assert fit_cli.main(["x.csv", "--stack", "y.npz", "--quiet"]) == 2
    assert "either a measurements CSV or --stack" in capsys.readouterr().err
    assert fit_cli.main(["--stack", str(tmp_path / "missing.npz"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err

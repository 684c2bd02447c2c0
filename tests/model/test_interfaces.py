"""The model's interfaces (issue 10): every law, surface model and protocol step is abstract or final, and the
solvers and the fit reach them only through the interface (no duck typing)."""

import dataclasses
import inspect

import jax
import pytest

from fluxsim.model import diffusivity, protocol, surface
from fluxsim.model._pytree import Interface

CONCRETE = [diffusivity.PowerLaw, diffusivity.ConstantDiffusivity, diffusivity.TabulatedDiffusivity,
            diffusivity.LowThetaDip, surface.FluxRatio, surface.FilmResistance, protocol.Charge, protocol.Discharge,
            protocol.Rest]
ABSTRACT = [diffusivity.DiffusivityLaw, diffusivity.ModifiedLaw, surface.SurfaceKinetics, surface.PrescribedFlux,
            surface.StateDependentKinetics, protocol.ProtocolStep]


@pytest.mark.parametrize("cls", CONCRETE, ids=lambda c: c.__name__)
def test_concrete_classes_are_final(cls):
    assert issubclass(cls, Interface) and not inspect.isabstract(cls)
    with pytest.raises(TypeError, match=f"{cls.__name__} is final"):
        type("Sub", (cls,), {})


@pytest.mark.parametrize("cls", ABSTRACT, ids=lambda c: c.__name__)
def test_interfaces_are_abstract(cls):
    assert inspect.isabstract(cls)
    with pytest.raises(TypeError):
        cls()


def test_surface_models_match_the_catalogue_and_keep_their_pytree_leaves():
    a, b = surface.FluxRatio(), surface.FilmResistance()
    assert (a.model, a.state_dependent, b.model, b.state_dependent) == ("A", False, "B", True)
    assert jax.tree.leaves(a) == []  # normalisation stays static
    assert len(jax.tree.leaves(b)) == 4
    assert b.time_rescaled(2.0).r_NMC_ohm_m2 == pytest.approx(b.r_NMC_ohm_m2 / 2) and a.time_rescaled(2.0) is a


def test_scaled_multiplies_every_diffusivity_and_find_reaches_the_base():
    law = diffusivity.LowThetaDip(diffusivity.PowerLaw())
    doubled = law.scaled(2.0)
    assert float(doubled(0.5)) == pytest.approx(2 * float(law(0.5)), rel=1e-12)
    assert float(doubled(0.99)) == pytest.approx(2 * float(law(0.99)), rel=1e-12)
    assert law.find("D_hi_m2_per_s") is law.base and law.find("theta_dip") is law
    table = diffusivity.TabulatedDiffusivity(jax.numpy.array([0.0, 1.0]), jax.numpy.array([1e-15, 1e-14]))
    assert float(table.scaled(3.0)(0.5)) == pytest.approx(3 * float(table(0.5)), rel=1e-12)
    assert [f.name for f in dataclasses.fields(table.scaled(3.0))] == ["theta", "D_m2_per_s"]


def test_protocol_steps_keep_their_kind_sign_and_errors():
    assert [(s.kind, s.sign) for s in (protocol.Charge(), protocol.Rest(10.0), protocol.Discharge())] == [
        ("charge", 1.0), ("rest", 0.0), ("discharge", -1.0)]
    assert protocol.Rest(10.0).surface_cutoff(None, None, None) is None
    with pytest.raises(ValueError, match=r"protocol step 0 \(rest\): duration_s must be finite"):
        protocol.check_protocol([protocol.Rest(float("inf"))])
    with pytest.raises(ValueError, match="needs until_cutoff=True or a finite max_duration_s"):
        protocol.check_protocol([protocol.Charge(until_cutoff=False)])


def test_flux_normalisations_are_the_catalogue_choices_and_checked_at_construction():
    from fluxsim.model import catalogue

    assert tuple(surface._NORMALISATIONS) == catalogue.FLUX_NORMALISATIONS
    with pytest.raises(ValueError, match="'total_current', 'open_surface', got 'per_area'"):
        surface.FluxRatio("per_area")

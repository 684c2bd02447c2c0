"""Unit tests of the D(theta) laws of :mod:`fluxsim.model.diffusivity` and their Kirchhoff potentials.

Reference integrals come from ``scipy.integrate.quad`` (adaptive Gauss-Kronrod, ``epsrel = 1e-13``, breakpoints at
the laws' kinks), independent of the closed forms / quadratures inside fluxsim.

The dip's Kirchhoff potential is a fixed composite 4-point Gauss-Legendre rule (panels h = 1/128). It is accurate to
rounding where the integrand ``D - D_base`` is smooth on the panel scale, but two regions are under-resolved and are
tested against their own error bounds (see ``_dip_bound``):

* the panel holding the base power law's kink at ``theta_ref`` (0.8 = panel 102.4, not a panel edge): the rule is
  O(h^2 |J|) accurate there, J the jump of ``d(D - D_base)/dtheta``;
* theta within two panels of 1 (and beyond 1): ``D_base`` falls to its floor on the scale
  ``(D_floor / D_hi)^(1/m) (1 - theta_ref) = 0.002 < h``, so the rule only bounds the (tiny, ``< 1e-5 D``) excess
  by its size: the error of a Gauss rule on a panel is at most ``2 h max|D - D_base|``.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

import fluxsim  # noqa: F401  (float64)
from fluxsim.model.diffusivity import ConstantDiffusivity, LowThetaDip, PowerLaw, TabulatedDiffusivity

EPS = np.finfo(float).eps
PANEL = 1.0 / 128  # the dip's fixed Gauss-Legendre panel width

TABLE_THETA = np.array([0.1, 0.4, 0.8, 0.95, 1.0])
TABLE_D = np.array([2e-14, 1e-14, 5e-15, 1e-16, 1e-19])

LAWS = {
    "power_law": PowerLaw(),
    "power_law_m2": PowerLaw(D_hi_m2_per_s=3e-14, theta_ref=0.7, exponent=2.0, D_floor_m2_per_s=1e-19),
    "constant": ConstantDiffusivity(3e-15),
    "tabulated": TabulatedDiffusivity(jnp.asarray(TABLE_THETA), jnp.asarray(TABLE_D)),
    "dip_power_law": LowThetaDip(PowerLaw()),
    "dip_constant": LowThetaDip(ConstantDiffusivity(1e-14)),
}
# Points where D (or its derivative) is not smooth, passed to quad as breakpoints.
KINKS = {"power_law": [0.8, 1.0], "power_law_m2": [0.7, 1.0], "tabulated": list(TABLE_THETA),
         "dip_power_law": [0.8, 1.0]}
INTERVALS = [(0.0, 0.2), (0.05, 0.45), (0.2, 0.9), (0.75, 0.85), (0.9, 1.0), (0.5, 1.0), (0.97, 0.995), (0.0, 1.0),
             (0.999, 1.0), (1.0, 1.01), (-0.01, 0.05)]


def _np_power(theta, d_hi=1e-14, theta_ref=0.8, m=3.0, floor=1e-20):
    x = np.clip(1.0 - theta, 0.0, None) / (1.0 - theta_ref)
    return d_hi * np.minimum(1.0, x**m) + floor


def _np_dip(theta, base):
    s = 1.0 / (1.0 + np.exp((theta - 0.3) / 0.05))
    return np.exp((1 - s) * np.log(base(theta)) + s * np.log(1e-15))


# Independent numpy versions of the laws (the quad references must not reuse fluxsim's D, and numpy is ~100x faster
# per scalar call than dispatching jax).
NUMPY_LAWS = {
    "power_law": _np_power,
    "power_law_m2": lambda t: _np_power(t, 3e-14, 0.7, 2.0, 1e-19),
    "constant": lambda t: np.full_like(np.asarray(t, float), 3e-15),
    "tabulated": lambda t: np.exp(np.interp(t, TABLE_THETA, np.log(TABLE_D))),
    "dip_power_law": lambda t: _np_dip(t, _np_power),
    "dip_constant": lambda t: _np_dip(t, lambda u: np.full_like(np.asarray(u, float), 1e-14)),
}


@functools.cache
def _compiled(name):
    """jit(vmap) of D, K and dK/dtheta for one law (one compilation each, shared by the tests)."""
    law = LAWS[name]
    return jax.jit(jax.vmap(law.__call__)), jax.jit(jax.vmap(law.kirchhoff)), jax.jit(jax.vmap(jax.grad(law.kirchhoff)))


def test_power_law_matches_model_md_values():
    """docs/model.md section 4: D(0.85) = 4.2e-15, D(0.90) = 1.25e-15, D(0.95) = 1.6e-16, D(0.99) = 1.3e-18 with the
    default parameters, each to the digits given (within half a unit of the last quoted digit)."""
    law = PowerLaw()
    quoted = [(0.85, "4.2e-15"), (0.90, "1.25e-15"), (0.95, "1.6e-16"), (0.99, "1.3e-18")]
    d = np.asarray(_compiled("power_law")[0](jnp.array([t for t, _ in quoted])))
    for value, (theta, text) in zip(d, quoted):
        mantissa, exponent = text.split("e")
        half_unit = 0.5 * 10.0 ** (int(exponent) - (len(mantissa) - 2))
        assert abs(value - float(text)) <= half_unit, (theta, value, text)
    # The law's stated structure: plateau D_hi + D_floor below theta_ref, D_floor at full lithiation.
    d = np.asarray(_compiled("power_law")[0](jnp.array([0.5, 1.0, 0.9, 0.8])))
    np.testing.assert_allclose(d, [1e-14 + 1e-20, 1e-20, 1e-14 * 0.5**3 + 1e-20, 1e-14 + 1e-20], rtol=8 * EPS)
    assert law.D_hi_m2_per_s == 1e-14 and law.theta_ref == 0.8 and law.exponent == 3 and law.D_floor_m2_per_s == 1e-20


# ---- Kirchhoff potential = integral of D --------------------------------------------------------------------------
def _excess_max(law, lo, hi):
    """max |D - D_base| on [lo, hi] for the default dip on the default power law (fine sampling; used only in the
    under-resolved regions' error bounds)."""
    t = np.linspace(lo, hi, 257)
    return float(np.max(np.abs(_np_dip(t, _np_power) - _np_power(t))))


def _kink_jump_bound(law):
    """h^2 |J|: J = jump of d(D - D_base)/dtheta at the base power law's theta_ref."""
    base = law.base
    jump_base = base.D_hi_m2_per_s * base.exponent / (1.0 - base.theta_ref)  # |dD_base/dtheta| above theta_ref
    s = 1.0 / (1.0 + math.exp((base.theta_ref - law.theta_dip) / law.width))
    log_ratio = math.log(law.D_low_m2_per_s / float(base(base.theta_ref)))
    sensitivity = abs((1 - s) * math.exp(s * log_ratio) - 1)  # d(D - D_base)/dD_base, D = D_base^(1-s) D_low^s
    return PANEL**2 * sensitivity * jump_base


NEAR_ONE = 1.0 - 2 * PANEL


def _dip_bound(law, a, b):
    """Quadrature error bound of K(b) - K(a) for the dip with a PowerLaw base in the under-resolved regions."""
    bound = 0.0
    if a < law.base.theta_ref < b:
        bound += _kink_jump_bound(law)
    if b > NEAR_ONE:
        lo = max(a, NEAR_ONE)
        panels = math.ceil((b - lo) / PANEL) + 2  # partial panels at both ends
        bound += 2 * PANEL * panels * _excess_max(law, lo - PANEL, b)
    return bound


REL_TOL = 1e-9  # agreement with the adaptive reference quadrature (itself at 1e-13)


@pytest.mark.parametrize("name", list(LAWS))
def test_d_matches_independent_numpy_law(name):
    """Each law's D equals its documented formula, re-implemented in numpy (power law with min(1, x^m) and floor;
    log-linear table held constant outside; dip as log-mix), on [-0.02, 1.02], to 64 * 35 eps (exp/log of arguments
    up to ~35 in size)."""
    theta = np.linspace(-0.02, 1.02, 1041)
    np.testing.assert_allclose(np.asarray(_compiled(name)[0](jnp.asarray(theta))), NUMPY_LAWS[name](theta),
                               rtol=64 * 35 * EPS, atol=0)


@pytest.mark.parametrize("name", list(LAWS))
def test_kirchhoff_difference_is_integral_of_d(name):
    """K(b) - K(a) = integral_a^b D (scipy quad) for every law over intervals across kinks, the plateau, the steep
    branch, the dip and just outside [0, 1], to 1e-9 relative plus the cancellation of subtracting two potentials of
    size |K| (64 eps (|K(a)| + |K(b)|)) and quad's own error estimate; the dip with a power-law base also gets its
    under-resolved-region bound (module docstring)."""
    law = LAWS[name]
    _, kirchhoff, _ = _compiled(name)
    ends = np.array(INTERVALS)
    k = np.asarray(kirchhoff(jnp.asarray(ends.ravel()))).reshape(ends.shape)
    for (a, b), (ka, kb) in zip(INTERVALS, k):
        points = [p for p in KINKS.get(name, []) if a < p < b] or None
        ref, err = quad(NUMPY_LAWS[name], a, b, points=points, epsabs=0.0, epsrel=1e-13, limit=200)
        tol = REL_TOL * abs(ref) + 64 * EPS * (abs(ka) + abs(kb)) + err
        if name == "dip_power_law":
            tol += _dip_bound(law, a, b)
        assert abs((kb - ka) - ref) <= tol, (a, b, kb - ka, ref)


def _tabulated_cancellation(theta):
    """AD of d_k x exprel(z) (z = slope x) forms exprel(z) + z exprel'(z) = exp(z): terms of size |exprel(z)| cancel
    down to exp(z), amplifying rounding by 1 + |exprel(z)| / exp(z)."""
    k = np.clip(np.searchsorted(TABLE_THETA, theta, side="right") - 1, 0, len(TABLE_THETA) - 2)
    slope = np.diff(np.log(TABLE_D)) / np.diff(TABLE_THETA)
    z = slope[k] * (np.clip(theta, TABLE_THETA[0], TABLE_THETA[-1]) - TABLE_THETA[k])
    exprel = np.where(z == 0, 1.0, np.expm1(z) / np.where(z == 0, 1.0, z))
    return 1.0 + np.abs(exprel) / np.exp(z)


@pytest.mark.parametrize("name", list(LAWS))
def test_grad_of_kirchhoff_is_d(name):
    """jax.grad(kirchhoff)(theta) = D(theta) on a fine grid of [-0.02, 1.02].

    Closed forms: to rounding, 64 eps relative (times the exprel cancellation factor for the table). The dip: the
    derivative of the Gauss rule's error; where the integrand is smooth (sigmoid of width w = 0.05) that is
    ~ 8! c_4 (h / w)^8 ~ 1e-11 relative (c_4 = 5.6e-10 the 4-point constant), so 1e-10; on the kink panel the
    derivative of an O(h^2 |J|) error, O(h |J|); near and beyond theta = 1 the rule's derivative is a bounded
    combination of excess values and h times their slopes (scale 0.002 ~ h / 4): at most 8 max|D - D_base| there."""
    law = LAWS[name]
    d, _, dk = _compiled(name)
    theta = np.linspace(-0.02, 1.02, 1041)
    got, expected = np.asarray(dk(jnp.asarray(theta))), np.asarray(d(jnp.asarray(theta)))
    tol = 64 * EPS * np.abs(expected)
    if name == "tabulated":
        tol = tol * _tabulated_cancellation(theta)
    if name.startswith("dip"):
        tol = np.maximum(tol, 1e-10 * np.abs(expected))
    if name == "dip_power_law":
        kink_panel = np.floor(theta * 128) == math.floor(law.base.theta_ref * 128)
        tol = np.where(kink_panel, tol + _kink_jump_bound(law) / PANEL, tol)
        near_one = theta > NEAR_ONE
        tol = np.where(near_one, tol + 8 * _excess_max(law, NEAR_ONE - PANEL, theta.max()), tol)
    bad = np.abs(got - expected) > tol
    assert not np.any(bad), (theta[bad], (np.abs(got - expected) / np.abs(expected))[bad])


@pytest.mark.parametrize("name", list(LAWS))
def test_kirchhoff_strictly_increasing_and_d_positive(name):
    """D > 0 everywhere, so K is strictly increasing (K is the integral of D); for the power laws and the
    (decreasing) table, D itself is non-increasing in theta: slow near full lithiation, fast once Li leaves."""
    d, kirchhoff, _ = _compiled(name)
    theta = jnp.linspace(0.0, 1.0, 1041)
    dv, kv = np.asarray(d(theta)), np.asarray(kirchhoff(theta))
    assert np.all(dv > 0)
    assert np.all(np.diff(kv) > 0)
    if name in ("power_law", "power_law_m2", "tabulated"):
        assert np.all(np.diff(dv) <= 0)
    if name == "constant":
        assert np.all(dv == 3e-15)


def test_power_law_kirchhoff_anchor():
    """K(1) = 0 (the documented anchor: K = integral from 1 to theta), so K(0) = -integral_0^1 D."""
    _, kirchhoff, _ = _compiled("power_law")
    k0, k1 = np.asarray(kirchhoff(jnp.array([0.0, 1.0])))
    assert k1 == 0.0
    ref, err = quad(_np_power, 0.0, 1.0, points=[0.8], epsabs=0, epsrel=1e-13)
    assert abs(k0 + ref) <= 1e-12 * ref + err


# ---- parameter gradients -------------------------------------------------------------------------------------------
GRAD_THETA = jnp.array([1.0, 1.0 - 1e-12, 0.8, 0.85, 0.5, 1.001])
KINK_INDEX = 2  # theta = theta_ref: min(1, x^m) at x = 1, one-sided derivatives differ (no finite-difference check)


def _law_values(law, theta):
    return jnp.stack([jax.vmap(law)(theta), jax.vmap(law.kirchhoff)(theta)])


_values = jax.jit(_law_values)
_jac_fwd = jax.jit(jax.jacfwd(_law_values, argnums=(0, 1)))
_jac_rev = jax.jit(jax.jacrev(_law_values, argnums=(0, 1)))


def test_power_law_parameter_gradients():
    """Gradients of D and K w.r.t. every law parameter (and theta) are finite, including at theta = 1 where the
    power's base (1 - theta) vanishes (safe power) and at the kink theta_ref; forward and reverse mode agree, and
    both match central finite differences away from the kink (relative step 1e-6: truncation ~1e-12 and rounding
    ~eps / 1e-6 = 2e-10, relative to value / parameter, so 1e-7 is a safe bound). At theta = 1 the exact derivatives
    w.r.t. exponent and theta_ref are 0 (D = D_floor there for any exponent > 0)."""
    law = PowerLaw()
    (jp, jt), (rp, rt) = _jac_fwd(law, GRAD_THETA), _jac_rev(law, GRAD_THETA)
    assert np.all(np.isfinite(np.asarray(jt))) and np.all(np.isfinite(np.asarray(rt)))
    np.testing.assert_allclose(np.asarray(jt), np.asarray(rt), rtol=1e-13, atol=0)
    base = np.asarray(_values(law, GRAD_THETA))
    smooth = np.arange(len(GRAD_THETA)) != KINK_INDEX
    for name in ("D_hi_m2_per_s", "theta_ref", "exponent", "D_floor_m2_per_s"):
        g, gr = np.asarray(getattr(jp, name)), np.asarray(getattr(rp, name))
        assert np.all(np.isfinite(g)) and np.all(np.isfinite(gr)), name
        np.testing.assert_allclose(g, gr, rtol=1e-13, atol=0, err_msg=name)
        value = getattr(law, name)
        step = 1e-6 * value
        plus = np.asarray(_values(PowerLaw(**{**law.__dict__, name: value + step}), GRAD_THETA))
        minus = np.asarray(_values(PowerLaw(**{**law.__dict__, name: value - step}), GRAD_THETA))
        fd = (plus - minus) / (2 * step)
        tol = 1e-7 * np.abs(base) / value
        assert np.all(np.abs(g - fd)[:, smooth] <= tol[:, smooth]), name
    assert np.all(np.asarray(jp.exponent)[:, 0] == 0) and np.all(np.asarray(jp.theta_ref)[:, 0] == 0)


def test_tabulated_parameter_gradients():
    """The tabulated law is differentiable w.r.t. its table: at table node k, dD/dD_j = delta_jk (log-linear
    interpolation passes through the data), and all gradients, w.r.t. D values and abscissae, of D and K are finite,
    including at and beyond the table ends."""
    law = LAWS["tabulated"]
    theta = jnp.asarray(np.concatenate([TABLE_THETA[:-1], [0.0, 1.0, 1.01]]))
    jp, jt = _jac_fwd(law, theta)
    d_of_table = np.asarray(jp.D_m2_per_s)[0]  # (n_theta, n_table)
    np.testing.assert_allclose(d_of_table[: len(TABLE_THETA) - 1], np.eye(len(TABLE_D))[:-1], rtol=0, atol=1e-12)
    for leaf in (jp.D_m2_per_s, jp.theta, jt):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_dip_matches_its_formula():
    """LowThetaDip: log D = (1 - s) log D_base + s log D_low, s = 1 / (1 + exp((theta - theta_dip) / width))
    (docs/model.md section 4), evaluated independently in numpy (rounding: exp of an argument ~ -35 carries 35 eps,
    so 64 * 35 eps). At theta_dip (s = 1/2) D is the geometric mean; far above the dip D -> D_base."""
    law = LAWS["dip_power_law"]
    d, _, _ = _compiled("dip_power_law")
    theta = np.linspace(0.0, 1.0, 1041)
    base = np.asarray(_compiled("power_law")[0](jnp.asarray(theta)))
    s = 1.0 / (1.0 + np.exp((theta - 0.3) / 0.05))
    expected = np.exp((1 - s) * np.log(base) + s * np.log(1e-15))
    got = np.asarray(d(jnp.asarray(theta)))
    np.testing.assert_allclose(got, expected, rtol=64 * 35 * EPS)
    at_dip = np.argmin(np.abs(theta - 0.3))
    assert abs(theta[at_dip] - 0.3) < 1e-12
    assert got[at_dip] == pytest.approx(math.sqrt(1e-15 * base[at_dip]), rel=64 * 35 * EPS)
    # s(0.9) = 1 / (1 + e^12) = 6.1e-6: D / D_base = (D_low / D_base)^s = 1 - 1.4e-5.
    i = np.argmin(np.abs(theta - 0.9))
    assert abs(got[i] / base[i] - 1) < 2e-5
    assert law.D_low_m2_per_s == 1e-15 and law.theta_dip == 0.3 and law.width == 0.05


def test_reference_diffusivities():
    """`reference` (the solver's time scale) is D_hi, D, max of the table, and the base's for the dip."""
    assert float(LAWS["power_law"].reference) == 1e-14
    assert float(LAWS["constant"].reference) == 3e-15
    assert float(LAWS["tabulated"].reference) == 2e-14
    assert float(LAWS["dip_power_law"].reference) == 1e-14

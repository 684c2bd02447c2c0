"""The Kirchhoff finite-volume operator: exact Li balance, consistency, padding, batching over outlines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shapes import OUTLINES

from fluxsim.core import fv, rim
from fluxsim.core.mesh import MeshSizes, mesh_outline, stack_meshes
from fluxsim.core.outline import Disk, Ellipse
from fluxsim.model.diffusivity import ConstantDiffusivity, LowThetaDip, PowerLaw
from fluxsim.model.params import Params
from fluxsim.model.surface import FilmResistance, FluxRatio, make_blocking

BLOCKED = make_blocking(eta=0.3, blocked_fraction=0.25, arc_center_rad=2.5, extra_arcs=[[0.3, 0.1, 0.6]])
MODEL_A = Params(blocking=BLOCKED)
MODEL_B = Params(theta0=1 - 1e-4, blocking=BLOCKED, kinetics=FilmResistance())


def _field(mesh, base=0.85):
    x, y = mesh.xy[:, 0], mesh.xy[:, 1]
    return base + 0.1 * jnp.tanh(x - 0.3 * y) + 0.03 * jnp.sin(3 * y)


@jax.jit
def _mean_rates_per_s(meshes, params, rate):
    """d(mean theta)/dt [s-1] of a field on each of the stacked meshes, and the open-surface current fraction."""

    def one(mesh):
        drive = rim.make_drive(mesh, params, rate)
        dtheta, _ = fv.kirchhoff_rhs(mesh, params, _field(mesh), drive)
        mean_rate = jnp.sum(mesh.mass * dtheta) / mesh.area / fv.time_scale_s(params)
        return mean_rate, jnp.sum(drive.weights) / mesh.perimeter

    return jax.vmap(one)(meshes)


@pytest.fixture(scope="module")
def all_outlines():
    return stack_meshes([OUTLINES[k] for k in sorted(OUTLINES)], 0.06)


@pytest.mark.parametrize("params", [MODEL_A, MODEL_B, Params(blocking=BLOCKED, kinetics=FluxRatio("open_surface"))],
                         ids=["A", "B", "A-open"])
def test_mean_occupancy_falls_at_exactly_the_applied_rate(all_outlines, params):
    """Li balance: d(mean theta)/dt = -I / (3600 Q_th) on every outline, both surface models (to rounding).

    With the open-surface normalisation the particle passes (1 - sum f (1 - eta)) of the nominal current.
    """
    rates, open_fraction = _mean_rates_per_s(all_outlines, params, 150.0)
    nominal = -params.material.mean_rate_per_s(150.0)
    if params.kinetics == FluxRatio("open_surface"):
        assert np.allclose(open_fraction, 1 - 0.25 * 0.7 - 0.1 * 0.4, rtol=1e-12)
        nominal = nominal * np.asarray(open_fraction)
    assert np.allclose(rates, nominal, rtol=1e-12, atol=0)


def test_rest_conserves_li_exactly():
    mesh = mesh_outline(OUTLINES["irregular"], 0.06)
    for params in (MODEL_A, MODEL_B):
        dtheta, _ = jax.jit(fv.kirchhoff_rhs)(mesh, params, _field(mesh), rim.make_drive(mesh, params, 0.0))
        assert abs(float(jnp.sum(mesh.mass * dtheta))) < 1e-13 * float(jnp.sum(mesh.mass * jnp.abs(dtheta)))


@pytest.mark.parametrize("name", ["ellipse2", "irregular"])
def test_linear_potential_is_exact(name):
    """P1 reproduces linear fields: -A u vanishes at interior nodes and is the boundary flux at rim nodes."""
    mesh = mesh_outline(OUTLINES[name], 0.06)
    g = jnp.array([0.7, -1.3])
    u = mesh.xy @ g
    inflow = np.asarray(fv.net_inflow(mesh, u))
    n_rim = mesh.n_rim
    assert np.abs(inflow[n_rim:]).max() < 1e-12
    # rim node i: half of each adjacent rim edge's normal flux, (grad u . n) l / 2 with n the outward normal
    xy = np.asarray(mesh.xy[:n_rim])
    real = np.asarray(mesh.node_mask[:n_rim])
    p = xy[real]
    e = np.roll(p, -1, axis=0) - p
    normal_flux = (e[:, 1] * g[0] - e[:, 0] * g[1])  # (grad u . n) * length, n = (e_y, -e_x) / |e|
    expected = -0.5 * (normal_flux + np.roll(normal_flux, 1))  # what leaves through the rim is not inflow
    assert np.allclose(inflow[:n_rim][real], expected, atol=1e-12)


def test_quadratic_potential_converges_to_its_laplacian():
    """-A u / m -> laplacian u = 4 for u = |x|**2 at interior nodes (mean error shrinks with the spacing)."""
    errors = []
    for spacing in (0.08, 0.04):
        mesh = mesh_outline(Ellipse(2.0, 0.3), spacing)
        u = jnp.sum(mesh.xy**2, axis=1)
        lap = np.asarray(fv.net_inflow(mesh, u) * mesh.inv_mass)[mesh.n_rim:][np.asarray(mesh.node_mask)[mesh.n_rim:]]
        errors.append(np.mean(np.abs(lap - 4.0)))
    print("mean |lap - 4|", errors)
    assert errors[0] < 0.05 and errors[1] < errors[0]


def test_padding_gives_identical_results():
    params = MODEL_B
    small = mesh_outline(OUTLINES["mask"], 0.06)
    sizes = small.sizes
    big = mesh_outline(OUTLINES["mask"], 0.06, MeshSizes(sizes.n_nodes + 300, sizes.n_rim + 40,
                                                         sizes.n_triangles + 200, 16))

    @jax.jit
    def rhs(mesh):
        return fv.kirchhoff_rhs(mesh, params, _field(mesh), rim.make_drive(mesh, params, 80.0))

    def run(mesh):
        out, v = rhs(mesh)
        mask = np.asarray(mesh.node_mask)
        return np.asarray(out)[mask], np.asarray(mesh.xy)[mask], float(v)

    a, xa, va = run(small)
    b, xb, vb = run(big)
    assert np.array_equal(xa, xb)
    assert np.allclose(a, b, rtol=1e-13, atol=1e-13 * np.abs(a).max())
    assert va == pytest.approx(vb, rel=1e-14)


def test_vmap_over_outlines_compiles_once():
    """Stacked meshes of different outlines in the same buckets: one trace serves every stack."""
    traces = []

    @jax.jit
    def total_outflow(meshes, params):
        traces.append(1)

        def one(mesh):
            dtheta, _ = fv.kirchhoff_rhs(mesh, params, jnp.full(mesh.xy.shape[0], 0.9),
                                         rim.make_drive(mesh, params, 100.0))
            return jnp.sum(mesh.mass * dtheta)

        return jax.vmap(one)(meshes)

    first = stack_meshes([Disk(), Ellipse(1.5, 0.2)], 0.06)
    second = stack_meshes([Ellipse(1.7, 1.0), Ellipse(1.4, -0.5)], 0.06)
    assert first.sizes == second.sizes
    a = total_outflow(first, MODEL_A)
    b = total_outflow(second, MODEL_A)
    assert len(traces) == 1
    assert np.allclose(a, b, rtol=1e-12)  # same area pi, same rate: same total outflow


@pytest.mark.parametrize("law", [PowerLaw(), ConstantDiffusivity(3e-15)], ids=["power", "constant"])
def test_spectral_radius_bound_holds(law):
    """The Gershgorin bound is above the largest |eigenvalue| of the Jacobian (dense, small mesh)."""
    mesh = mesh_outline(OUTLINES["irregular"], 0.12)
    params = Params(diffusivity=law, blocking=BLOCKED)
    drive = rim.make_drive(mesh, params, 100.0)
    theta = _field(mesh, 0.6)
    rho = _largest_eigenvalue(mesh, params, theta, drive)
    state = float(jax.jit(fv.spectral_radius_bound)(mesh, params, theta))
    global_bound = float(jax.jit(fv.spectral_radius_bound)(mesh, params))
    print(f"rho {rho:.4g}  state bound {state:.4g}  global bound {global_bound:.4g}")
    assert rho <= state * (1 + 1e-12) and state <= global_bound * (1 + 1e-12)
    assert global_bound < 1.6 * float(fv.max_diffusivity(law)) * rho_laplacian(mesh)  # measured 1.31


@jax.jit
def _jacobian(mesh, params, theta, drive):
    return jax.jacfwd(lambda t: fv.kirchhoff_rhs(mesh, params, t, drive)[0])(theta)


def _largest_eigenvalue(mesh, params, theta, drive):
    return np.max(np.abs(np.linalg.eigvals(np.asarray(_jacobian(mesh, params, theta, drive)))))


def rho_laplacian(mesh):
    """Largest eigenvalue of M^-1 A, assembled densely in numpy from the ELL table."""
    n = mesh.xy.shape[0]
    a = np.zeros((n, n))
    np.add.at(a, (np.repeat(np.arange(n), mesh.neighbours.shape[1]), np.asarray(mesh.neighbours).ravel()),
              -np.asarray(mesh.conductance).ravel())
    a[np.diag_indices(n)] -= a.sum(axis=1)
    return np.max(np.abs(np.linalg.eigvals(np.asarray(mesh.inv_mass)[:, None] * a)))


def test_spectral_radius_bound_model_b():
    mesh = mesh_outline(Disk(), 0.12)
    drive = rim.make_drive(mesh, MODEL_B, 100.0)
    theta = _field(mesh, 0.5)
    rho = _largest_eigenvalue(mesh, MODEL_B, theta, drive)
    assert rho <= float(jax.jit(fv.spectral_radius_bound)(mesh, MODEL_B, theta, drive)) * (1 + 1e-12)


def test_max_diffusivity():
    assert float(fv.max_diffusivity(PowerLaw())) == pytest.approx(1 + 1e-6, rel=1e-12)
    dip = LowThetaDip(PowerLaw(), D_low_m2_per_s=3e-14)
    dense = float(jnp.max(dip(jnp.linspace(0, 1, 100001)))) / dip.reference
    assert float(fv.max_diffusivity(dip)) == pytest.approx(dense, rel=1e-3)


def test_float32_mesh_keeps_the_balance():
    mesh = mesh_outline(OUTLINES["ellipse2"], 0.06).astype(jnp.float32)
    assert mesh.xy.dtype == jnp.float32 and mesh.neighbours.dtype == jnp.int32
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), MODEL_A)
    theta = _field(mesh).astype(jnp.float32)
    dtheta, _ = jax.jit(fv.kirchhoff_rhs)(mesh, params, theta, rim.make_drive(mesh, params, 150.0))
    assert dtheta.dtype == jnp.float32
    rate = float(jnp.sum(mesh.mass * dtheta) / mesh.area / fv.time_scale_s(params))
    assert rate == pytest.approx(-float(params.material.mean_rate_per_s(150.0)), rel=1e-5)


def test_slotwise_ell_sum_equals_the_block_form():
    """net_inflow's slot-by-slot gathers (looped on CPU, unrolled on GPU: both checked here) give the (n, k) block
    formula ``sum_k w_ik (u_j - u_i)`` to rounding (measured 2.5e-16 relative)."""
    mesh = mesh_outline(OUTLINES["irregular"], 0.06)
    u = _field(mesh)
    block = jnp.sum(mesh.conductance * (u[mesh.neighbours] - u[:, None]), axis=-1)
    assert float(jnp.max(jnp.abs(jax.jit(fv.net_inflow)(mesh, u) - block))) <= 1e-15 * float(jnp.max(jnp.abs(block)))
    for loop in (False, True):
        got = jax.jit(lambda m, u, loop=loop: fv._ell_sum(m, u, lambda w, at: w * (at - u), loop))(mesh, u)
        assert float(jnp.max(jnp.abs(got - block))) <= 1e-15 * float(jnp.max(jnp.abs(block))), loop


@pytest.mark.parametrize("exponent", [1, 2, 3, 4])
def test_integer_exponent_promise_matches_the_general_power(exponent):
    """The multiplication fast path of the power law's Kirchhoff potential equals the exp/log power to rounding on
    a field with nodes on both branches (and at theta = 1); a broken promise gives NaN everywhere."""
    mesh = mesh_outline(Disk(), 0.06)
    params = Params(blocking=BLOCKED, diffusivity=PowerLaw(exponent=float(exponent)))
    theta = _field(mesh, base=0.8).at[:5].set(1.0)
    drive = rim.make_drive(mesh, params, 150.0)
    rhs = jax.jit(fv.kirchhoff_rhs, static_argnums=4)
    general, fast = rhs(mesh, params, theta, drive, None)[0], rhs(mesh, params, theta, drive, exponent)[0]
    assert float(jnp.max(jnp.abs(fast - general))) <= 1e-14 * float(jnp.max(jnp.abs(general)))
    assert bool(jnp.all(jnp.isnan(rhs(mesh, params, theta, drive, exponent + 1)[0])))


@pytest.mark.parametrize("name", ["disk", "ellipse2", "irregular"])
def test_lanczos_spectral_radius_is_the_largest_eigenvalue(name):
    """The Lanczos estimate for the stage count is the dense largest eigenvalue of M^-1 A from below (measured
    1.2e-7 relative on the disk at this spacing, 1e-10 at 0.03), so with its margin it bounds the Jacobian's
    spectral radius while staying below Gershgorin."""
    mesh = mesh_outline(OUTLINES[name], 0.12)
    exact = rho_laplacian(mesh)
    estimate = float(jax.jit(fv.laplacian_spectral_radius)(mesh))
    assert estimate == pytest.approx(exact, rel=1e-6)
    used = float(jax.jit(fv.spectral_radius_estimate)(mesh, MODEL_A))
    d_max = float(fv.max_diffusivity(MODEL_A.diffusivity))
    assert d_max * exact < used < float(fv.spectral_radius_bound(mesh, MODEL_A))

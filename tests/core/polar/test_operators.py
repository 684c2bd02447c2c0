"""Unit tests of the polar operators: finite-volume Laplacian, face diffusivities and the implicit operator.

Unknowns are ordered ``[centre, ring 1 (nphi), ..., ring nr (nphi)]`` when a field is flattened into a vector
("centre-summed" layout: the centre's equation is the sum of row 0, as the docstrings' split convention implies).

Tolerance conventions (float64, ``EPS = 2.2e-16``):

* exact identities of the discrete operator (symmetry, zero sums, ``-L r**2 = 4 V``) are checked to a few ``EPS``
  times the size of the terms that are summed;
* linear solves are checked by their componentwise (Oettli-Prager) backward error
  ``max_i |A x - b|_i / (|A| |x| + |b|)_i``. Gaussian elimination satisfies ``|A x - b| <= gamma_3n |L||U| |x|``
  (Higham, Accuracy and Stability, Thm 9.3) and for these diagonally dominant matrices ``|L||U|`` is of the size of
  ``|A|``, so the bound is ``~3 n EPS``; we allow ``4 n EPS`` (``2e-13`` for the 61 unknowns of the 5 x 12 grid).
  This is far stronger than a normwise check, which the 1e6 range of the diagonal would make lax.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import jv, jvp

import fluxsim  # noqa: F401  (float64)
from fluxsim.core.polar.grid import PolarGrid
from fluxsim.core.polar.operators import factor_operator, net_inflow, solve_operator

EPS = np.finfo(float).eps
SMALL = PolarGrid(5, 12)


# ---- layout helpers ------------------------------------------------------------------------------------------------
def to_field(grid, vec):
    """Vector (centre, rings) -> (nr + 1, nphi) field with the centre repeated in row 0."""
    vec = jnp.asarray(vec)
    return jnp.concatenate([jnp.broadcast_to(vec[0], (1, grid.nphi)), vec[1:].reshape(grid.nr, grid.nphi)])


def to_vec(grid, field):
    """Mass-weighted (nr + 1, nphi) field -> vector whose centre entry is the sum of row 0 (split convention)."""
    field = jnp.asarray(field)
    return jnp.concatenate([jnp.sum(field[0])[None], field[1:].ravel()])


def nodal_vec(field):
    """Nodal (nr + 1, nphi) field -> vector with the centre *value* (row 0 entry) first."""
    field = np.asarray(field)
    return np.concatenate([field[0, :1], field[1:].ravel()])


@functools.partial(jax.jit, static_argnums=0)
def net_inflow_matrix(grid, face_coefficients=None):
    """The matrix of ``u -> net_inflow(grid, u)`` in the centre-summed layout, by applying it to unit vectors."""
    n = 1 + grid.nr * grid.nphi
    columns = jax.vmap(lambda e: to_vec(grid, net_inflow(grid, to_field(grid, e), face_coefficients)))(jnp.eye(n))
    return columns.T


def dense_operator(grid, d_rad, d_az, gamma_h, diag_field, slope=None, share=None):
    """Independent dense assembly of ``diag + gamma_h (L_D + dB/dtheta)`` from a loop over the faces.

    Radial face ``k`` joins ring ``k`` (0: the centre) and ring ``k + 1`` with conductance ``w_radial[k] d_rad[k, j]``;
    azimuthal face ``(i, j)`` joins ``(i + 1, j)`` and ``(i + 1, j + 1)`` with ``w_azimuthal[i] d_az[i, j]``; model B
    adds ``diag(e) - omega e^T`` on the surface ring.
    """
    nr, nphi = grid.nr, grid.nphi
    n = 1 + nr * nphi

    def idx(i, j):
        return 0 if i == 0 else 1 + (i - 1) * nphi + (j % nphi)

    a = np.zeros((n, n))
    a[0, 0] = np.sum(diag_field[0])
    for i in range(1, nr + 1):
        for j in range(nphi):
            a[idx(i, j), idx(i, j)] = diag_field[i, j]

    def couple(p, q, c):
        a[p, p] += c
        a[q, q] += c
        a[p, q] -= c
        a[q, p] -= c

    for k in range(nr):
        for j in range(nphi):
            couple(idx(k, j), idx(k + 1, j), gamma_h * grid.w_radial[k] * d_rad[k, j])
            couple(idx(k + 1, j), idx(k + 1, j + 1), gamma_h * grid.w_azimuthal[k] * d_az[k, j])
    if slope is not None:
        surface = [idx(nr, j) for j in range(nphi)]
        a[np.ix_(surface, surface)] += gamma_h * (np.diag(slope) - np.outer(share, slope))
    return a


def backward_error(a, x, b):
    """Componentwise (Oettli-Prager) backward error of ``a x = b``."""
    return np.max(np.abs(a @ x - b) / (np.abs(a) @ np.abs(x) + np.abs(b)))


# ---- net_inflow ----------------------------------------------------------------------------------------------------
def _random_face_coefficients(rng, grid, contrast):
    shape = (grid.nr, grid.nphi)
    return tuple(jnp.asarray(10.0 ** rng.uniform(-np.log10(contrast), 0, shape)) for _ in range(2))


@pytest.mark.parametrize("with_coefficients", [False, True])
def test_net_inflow_matrix_is_the_face_graph_laplacian(with_coefficients):
    """-L assembled from unit vectors is symmetric with zero row AND column sums (constants are in the kernel; Li is
    only redistributed), and equals minus the face-by-face graph Laplacian (conductances where the docstrings say)."""
    grid = SMALL
    rng = np.random.default_rng(1)
    fc = _random_face_coefficients(rng, grid, 1e3) if with_coefficients else None
    m = np.asarray(net_inflow_matrix(grid, fc))
    d_rad, d_az = (np.ones((grid.nr, grid.nphi)),) * 2 if fc is None else (np.asarray(c) for c in fc)
    laplacian = dense_operator(grid, d_rad, d_az, 1.0, np.zeros((grid.nr + 1, grid.nphi)))
    scale = np.max(np.abs(m))
    # Each entry is a sum of at most 5 conductance terms: rounding <= 8 eps * scale.
    np.testing.assert_allclose(m, -laplacian, rtol=0, atol=8 * EPS * scale)
    np.testing.assert_allclose(m, m.T, rtol=0, atol=8 * EPS * scale)
    n = m.shape[0]
    # Row / column sums add at most nphi + 1 entries (the centre's row and column), each with rounding 8 eps scale.
    assert np.max(np.abs(m.sum(axis=0))) <= 8 * EPS * scale * (grid.nphi + 1)
    assert np.max(np.abs(m.sum(axis=1))) <= 8 * EPS * scale * (grid.nphi + 1)
    # Negative semi-definite with a one-dimensional kernel (the constants, as the graph is connected): eigenvalue
    # rounding is ~ n eps scale = 1e-14 scale, so the second eigenvalue must be clearly below it (1e-8 scale).
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    assert eig[-1] <= 8 * EPS * scale * n
    assert eig[-2] < -1e-8 * scale


def test_net_inflow_centre_row_split_convention():
    """Row 0 of net_inflow holds the centre's total inflow split evenly over its nphi copies."""
    grid = SMALL
    u = jnp.asarray(np.random.default_rng(2).normal(size=(grid.nr + 1, grid.nphi))).at[0].set(0.3)
    out = np.asarray(jax.jit(net_inflow, static_argnums=0)(grid, u))
    total = np.sum(grid.w_radial[0] * (np.asarray(u[1]) - 0.3))
    np.testing.assert_allclose(out[0], total / grid.nphi, rtol=0, atol=8 * EPS * np.abs(out[0]).max())


@pytest.mark.parametrize(("nr", "nphi"), [(5, 12), (8, 32), (16, 20)])
def test_minus_laplacian_of_r_squared_is_four_volumes(nr, nphi):
    """Laplacian(r^2) = 4, and the scheme is exact for it: -L r^2 = 4 V at the centre and on interior rings (the
    flux through each circular face, (2 r) * r dphi, is exact); on the surface ring -L r^2 plus the exact boundary
    flux 2 dphi (dr^2/dr = 2 over the dual arc) equals 4 V. Uniform fields give exactly zero."""
    grid = PolarGrid(nr, nphi)
    x, y = grid.xy
    f = jax.jit(net_inflow, static_argnums=0)
    out = np.array(f(grid, jnp.asarray(x**2 + y**2)))
    out[-1] += 2 * grid.dphi
    # Terms are O(w * 1) with w <= nr dphi; a few roundings each.
    np.testing.assert_allclose(out, 4 * grid.volume, rtol=0, atol=16 * EPS * nr * grid.dphi)
    assert np.all(np.asarray(f(grid, jnp.full((nr + 1, nphi), 0.731))) == 0.0)


def _helmholtz_error(nr, field):
    """Max nodal error of the discrete solution of u - Laplacian(u) = f with exact Neumann data on the unit disk."""
    grid = PolarGrid(nr, 4 * nr)
    x, y = grid.xy
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    if field == "x2y":
        u, lap = x**2 * y, 2 * y

        def du_dr(p):  # at r = 1
            return 3 * np.cos(p) ** 2 * np.sin(p)
    else:  # Bessel mode J_3(k r) sin(3 phi + 0.4): Laplacian = -k^2 u
        k = 2.7
        u = jv(3, k * r) * np.sin(3 * phi + 0.4)
        lap = -(k**2) * u

        def du_dr(p):
            return k * jvp(3, k) * np.sin(3 * p + 0.4)

    # Exact boundary inflow over each dual arc (20-point Gauss: the integrand is a trigonometric polynomial).
    start, end = grid.boundary_arcs
    xs, ws = np.polynomial.legendre.leggauss(20)
    pts = (start + end)[:, None] / 2 + (end - start)[:, None] / 2 * xs
    inflow = np.sum(ws * du_dr(pts), axis=1) * (end - start) / 2
    minus_l = np.asarray(net_inflow_matrix(grid))
    volume = np.asarray(to_vec(grid, grid.volume))
    rhs = np.array(to_vec(grid, grid.volume * (u - lap)))
    rhs[-grid.nphi :] += inflow
    uh = np.linalg.solve(np.diag(volume) - minus_l, rhs)
    return np.max(np.abs(uh - nodal_vec(u)))


def test_laplacian_second_order_convergence():
    """For non-radial smooth fields (x^2 y; a J_3 Bessel mode at an angle off the grid rays) the discrete solution of
    u - Laplacian(u) = f with exact Neumann data converges at second order in the max norm (nr = 4, 8, 16 with
    nphi = 4 nr, i.e. uniform refinement). With error C h^2 (1 + a h + ...) the observed order from a pair (h, h/2)
    is 2 + O(h): it must approach 2 under refinement and be within 0.1 of 2 for the finest pair (h = 1/8)."""
    for field in ("x2y", "bessel"):
        errors = [_helmholtz_error(nr, field) for nr in (4, 8, 16)]
        orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        deviation = np.abs(orders - 2)
        assert deviation[1] < deviation[0], (field, errors, orders)  # the observed order tends to 2 ...
        assert deviation[1] < 0.1, (field, errors, orders)  # ... and is within O(h) = 0.1 of it for the finest pair


# ---- factor_operator / solve_operator ------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnums=0)
def _solve(grid, face_d, gamma_h, slope, share, diagonal, rhs):
    """factor_operator + solve_operator for one case (one compilation per None-pattern, shared by all cases; a vmap
    over cases would compile the batched scans, which is slower than looping over the cases)."""
    return solve_operator(factor_operator(grid, face_d, gamma_h, slope, share, diagonal), rhs)


def _cases(grid, n_cases, seed, contrast):
    """Random operators: face coefficients spanning `contrast`, gamma_h from 1e-3 to 1e3 (V-dominated to
    L-dominated), positive surface slopes e (model B has dB_j/dtheta_j > 0), shares omega > 0 summing to 1,
    positive nodal diagonals (V / D in the stepper: up to 1e6 apart), and right-hand sides."""
    rng = np.random.default_rng(seed)
    shape = (n_cases, grid.nr, grid.nphi)
    face_d = tuple(10.0 ** rng.uniform(-np.log10(contrast), 0, shape) for _ in range(2))
    gamma_h = 10.0 ** np.linspace(-3, 3, n_cases)
    slope = 10.0 ** rng.uniform(-2, 2, (n_cases, grid.nphi))
    slope[0] = 0.0  # a case without the rank-one term (u v^T = 0)
    share = rng.uniform(0.1, 1.0, (n_cases, grid.nphi))
    share /= share.sum(axis=1, keepdims=True)
    diagonal = grid.volume * 10.0 ** rng.uniform(0, 6, (n_cases, grid.nr + 1, grid.nphi))
    diagonal[:, 0] = diagonal[:, 0, :1]  # the centre's diagonal split evenly over row 0, as for V
    rhs = rng.normal(size=(n_cases, grid.nr + 1, grid.nphi))
    return face_d, gamma_h, slope, share, diagonal, rhs


BACKWARD_TOL = 4 * (1 + SMALL.nr * SMALL.nphi) * EPS  # 4 n eps, componentwise (module docstring)


def test_solve_operator_default_matches_dense():
    """Without model-B terms and with the default diagonal V, solve_operator(factor_operator(...)) solves the
    independently assembled V + gamma h L_D to componentwise backward error 4 n eps, for gamma h from 1e-3 to 1e3 and
    also for a 1e6 contrast in face coefficients, and conserves: sum(V k) = sum(rhs) (L_D has zero column sums), to
    the summed residual bound."""
    grid = SMALL
    cases = [_cases(grid, 6, seed=5, contrast=contrast) for contrast in (1.0, 1e6)]  # one compilation for all
    for (face_d, gamma_h, _, _, _, rhs), c in ((case, c) for case in cases for c in range(6)):
        k = np.asarray(_solve(grid, (face_d[0][c], face_d[1][c]), gamma_h[c], None, None, None, rhs[c]))
        a = dense_operator(grid, face_d[0][c], face_d[1][c], gamma_h[c], grid.volume)
        x, b = nodal_vec(k), np.asarray(to_vec(grid, rhs[c]))
        assert np.all(k[0] == k[0, 0])  # the centre value is repeated over row 0
        assert backward_error(a, x, b) < BACKWARD_TOL
        # sum(V k) - sum(rhs) is the sum of the residual (L_D's columns sum to zero): bounded by the componentwise
        # residual bound summed over the rows.
        scale = np.sum(np.abs(a) @ np.abs(x) + np.abs(b))
        assert abs(np.sum(grid.volume * k) - np.sum(rhs[c])) <= BACKWARD_TOL * scale


def test_solve_operator_model_b_and_custom_diagonal_match_dense():
    """With model B's surface Jacobian diag(e) - omega e^T (Sherman-Morrison inside the solver) and a custom nodal
    diagonal (up to 1e6 apart, as V / D in the stepper), the solve matches the dense matrix to componentwise backward
    error 4 n eps (1e6 face contrast included; case 0 has e = 0, i.e. no rank-one term) and LAPACK's solution to
    cond times that, and conserves: sum(diag k) = sum(rhs), because sum(omega) = 1 makes the columns of the surface
    Jacobian sum to zero."""
    grid = SMALL
    cases = [_cases(grid, 6, seed=6, contrast=contrast) for contrast in (1.0, 1e6)]
    for (face_d, gamma_h, slope, share, diagonal, rhs), c in ((case, c) for case in cases for c in range(6)):
        k = np.asarray(_solve(grid, (face_d[0][c], face_d[1][c]), gamma_h[c], slope[c], share[c], diagonal[c], rhs[c]))
        a = dense_operator(grid, face_d[0][c], face_d[1][c], gamma_h[c], diagonal[c], slope[c], share[c])
        x, b = nodal_vec(k), np.asarray(to_vec(grid, rhs[c]))
        assert backward_error(a, x, b) < BACKWARD_TOL
        # Against LAPACK: each solution's forward error is <= cond * (its backward error), so they differ by <= 2x.
        x_ref = np.linalg.solve(a, b)
        cond = np.linalg.cond(a, np.inf)
        assert np.max(np.abs(x - x_ref)) <= 2 * cond * BACKWARD_TOL * np.max(np.abs(x_ref))
        scale = np.sum(np.abs(a) @ np.abs(x) + np.abs(b))
        assert abs(np.sum(diagonal[c] * k) - np.sum(rhs[c])) <= BACKWARD_TOL * scale

"""Unit tests of :mod:`fluxsim.core.polar.blocksolve` against dense numpy linear algebra.

The test matrices are random, symmetric (apart from the rank-one term) and strictly diagonally dominant by a margin
of at least 0.5, so they are well conditioned (``cond_inf`` ~ 5-20, computed in every test). Every solve is checked
by its componentwise (Oettli-Prager) backward error ``max_i |A x - b|_i / (|A| |x| + |b|)_i``, which Gaussian
elimination keeps below ``gamma_3n |L||U| / |A| ~ 3 n EPS`` for diagonally dominant matrices (Higham, Accuracy and
Stability, Thm 9.3; we allow ``4 n EPS``), and by its distance to LAPACK's solution, ``<= 2 cond * 4 n EPS`` (each
solution is within ``cond * 4 n EPS`` of the exact one).
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxsim  # noqa: F401  (float64)
from fluxsim.core.polar import blocksolve

EPS = np.finfo(float).eps
SHAPES = [(8, 1), (8, 5), (3, 2)]


def random_wheel(n, m, seed, rank_one_scale=0.3):
    """Random inputs of factor_wheel: dense symmetric blocks, positive couplings and spokes, diagonal dominance."""
    rng = np.random.default_rng(seed)
    off = rng.uniform(-1, 1, (n, m, m))
    off = (off + off.transpose(0, 2, 1)) / 2
    off[:, np.arange(m), np.arange(m)] = 0.0
    couple = rng.uniform(0.1, 1.0, (n, m))
    spokes = rng.uniform(0.1, 1.0, n)
    row = np.abs(off).sum(axis=2) + couple + np.roll(couple, 1, axis=0)
    row[:, 0] += spokes
    blocks = off.copy()
    blocks[:, np.arange(m), np.arange(m)] = row + rng.uniform(0.5, 2.0, (n, m))
    centre_diag = spokes.sum() + rng.uniform(0.5, 2.0)
    u = rank_one_scale * rng.normal(size=(n, m))
    v = rank_one_scale * rng.normal(size=(n, m))
    centre_rhs = rng.normal()
    ray_rhs = rng.normal(size=(n, m))
    matrix_rhs = rng.normal(size=(n, m, 4))
    return dict(blocks=blocks, couple=couple, spokes=spokes, centre_diag=centre_diag, u=u, v=v,
                centre_rhs=centre_rhs, ray_rhs=ray_rhs, matrix_rhs=matrix_rhs)


def dense_wheel(blocks, couple, spokes, centre_diag, u=None, v=None):
    """The documented matrix, unknowns ordered [centre, ray 0 (m), ..., ray n-1 (m)]:
    A_j x_j - c_{j-1} x_{j-1} - c_j x_{j+1} - s_j e_1 c = r_j (mod n); (V_c + sum s) c - sum s_j x_j[0] = r_c;
    minus u v^T on the rays."""
    n, m = couple.shape
    a = np.zeros((1 + n * m, 1 + n * m))
    a[0, 0] = centre_diag
    for j in range(n):
        sl = slice(1 + j * m, 1 + (j + 1) * m)
        nxt = slice(1 + ((j + 1) % n) * m, 1 + ((j + 1) % n + 1) * m)
        a[sl, sl] += blocks[j]
        a[sl, nxt] -= np.diag(couple[j])
        a[nxt, sl] -= np.diag(couple[j])
        a[0, 1 + j * m] -= spokes[j]
        a[1 + j * m, 0] -= spokes[j]
    if u is not None:
        a[1:, 1:] -= np.outer(u.ravel(), v.ravel())
    return a

def check_solution(a, x, b):
    """Componentwise backward error <= 4 n eps and forward error <= cond * 4 n eps (module docstring)."""
    tol = 4 * a.shape[0] * EPS
    backward = np.max(np.abs(a @ x - b) / (np.abs(a) @ np.abs(x) + np.abs(b)))
    assert backward < tol, backward
    x_ref = np.linalg.solve(a, b)
    cond = np.linalg.cond(a, np.inf)
    assert np.max(np.abs(x - x_ref)) <= 2 * cond * tol * np.max(np.abs(x_ref))  # both within cond * tol


@jax.jit
def _solve_all(p):
    """All solver paths for one input set (one compilation per shape). The factorisation without the rank-one term
    is the rank-one one with its Sherman-Morrison fields cleared (factor_wheel builds the plain factor first and only
    appends them), so one factorisation serves both, halving the compile time."""
    ranked = blocksolve.factor_wheel(p["blocks"], p["couple"], p["spokes"], p["centre_diag"], (p["u"], p["v"]))
    plain = ranked._replace(rank_one_u=None, rank_one_v=None, rank_one_denominator=None)
    return dict(
        plain=blocksolve.solve_wheel(plain, p["centre_rhs"], p["ray_rhs"]),
        ranked=blocksolve.solve_wheel(ranked, p["centre_rhs"], p["ray_rhs"]),
        rays_vector=blocksolve.solve_rays(plain.rays, p["ray_rhs"]),
        rays_matrix=blocksolve.solve_rays(plain.rays, p["matrix_rhs"]),
        denominator=ranked.rank_one_denominator,
    )


def _stacked(centre, rays):
    return np.concatenate([[centre], np.asarray(rays).ravel()])


@pytest.mark.parametrize(("n", "m"), SHAPES)
def test_solves_match_dense(n, m):
    """For random inputs (two seeds; one compilation per shape, so all paths are checked in one test):

    * solve_wheel(factor_wheel(...)) solves the periodic block-tridiagonal system with the bordered centre;
    * with the rank-one term -u v^T (Sherman-Morrison) it solves the dense non-symmetric matrix;
    * solve_rays solves the periodic block system without the centre for (n, m) and (n, m, k) right-hand sides
      (each column of the matrix solve is the solve of that column)."""
    for seed in (0, 1):
        p = random_wheel(n, m, seed)
        out = jax.tree.map(np.asarray, _solve_all(jax.tree.map(jnp.asarray, p)))
        b = _stacked(p["centre_rhs"], p["ray_rhs"])
        plain = dense_wheel(p["blocks"], p["couple"], p["spokes"], p["centre_diag"])
        centre, rays = out["plain"]
        assert rays.shape == (n, m) and centre.shape == ()
        check_solution(plain, _stacked(centre, rays), b)
        # Sherman-Morrison is only stable away from a vanishing denominator 1 - v^T W^-1 u; ours are O(1).
        assert abs(out["denominator"]) > 0.1
        ranked = dense_wheel(p["blocks"], p["couple"], p["spokes"], p["centre_diag"], p["u"], p["v"])
        check_solution(ranked, _stacked(*out["ranked"]), b)
        rays_only = plain[1:, 1:]
        check_solution(rays_only, out["rays_vector"].ravel(), p["ray_rhs"].ravel())
        assert out["rays_matrix"].shape == (n, m, 4)
        for k in range(4):
            check_solution(rays_only, out["rays_matrix"][..., k].ravel(), p["matrix_rhs"][..., k].ravel())


_inverse = jax.jit(blocksolve._inverse)


@pytest.mark.parametrize("m", [1, 3, 6])
def test_inverse_matches_numpy(m):
    """_inverse (Gauss-Jordan without pivoting, batched over leading axes) equals numpy.linalg.inv for SPD diagonally
    dominant blocks, and also for non-symmetric diagonally dominant ones (pivots stay nonzero):
    |X - inv| <= cond * 16 m eps |inv| (Gauss-Jordan's forward error is cond * O(m eps))."""
    rng = np.random.default_rng(m)
    a = rng.uniform(-1, 1, (2, 5, m, m))
    a[0] = (a[0] + a[0].transpose(0, 2, 1)) / 2  # batch 0: symmetric; batch 1: general
    a[..., np.arange(m), np.arange(m)] = np.abs(a).sum(axis=-1) + rng.uniform(0.1, 1.0, (2, 5, m))
    x = np.asarray(_inverse(jnp.asarray(a)))
    assert x.shape == a.shape
    for idx in np.ndindex(2, 5):
        ref = np.linalg.inv(a[idx])
        cond = np.linalg.cond(a[idx], np.inf)
        np.testing.assert_allclose(x[idx], ref, rtol=0, atol=cond * 16 * m * EPS * np.abs(ref).max())
        np.testing.assert_allclose(a[idx] @ x[idx], np.eye(m), rtol=0, atol=cond * 16 * m * EPS)


# ---- derivatives ---------------------------------------------------------------------------------------------------
GRAD_SHAPE = (3, 2)
NAMES = ("blocks", "couple", "spokes", "centre_diag", "u", "v", "centre_rhs", "ray_rhs")


def _loss(p, cotangent):
    fac = blocksolve.factor_wheel(p["blocks"], p["couple"], p["spokes"], p["centre_diag"], (p["u"], p["v"]))
    centre, rays = blocksolve.solve_wheel(fac, p["centre_rhs"], p["ray_rhs"])
    return cotangent[0] * centre + jnp.sum(cotangent[1:].reshape(rays.shape) * rays)


_grad = jax.jit(jax.grad(_loss))


def _dense_solution(p):
    a = dense_wheel(p["blocks"], p["couple"], p["spokes"], p["centre_diag"], p["u"], p["v"])
    return a, np.linalg.solve(a, _stacked(p["centre_rhs"], p["ray_rhs"]))


# Central differences of the dense (LAPACK) solution with step 1e-5: truncation step**2 / 6 * |third derivative|
# ~ 1e-11 for these O(1)-conditioned systems, rounding cond * eps / step ~ 1e-10; 1e-8 relative is above both.
FD_STEP, FD_TOL = 1e-5, 1e-8


def test_reverse_mode_gradient():
    """jax.grad of L = g . x through factor_wheel + solve_wheel, w.r.t. every input (blocks, couplings, spokes,
    centre diagonal, rank-one vectors, right-hand sides):

    * projected on three random directions t, equals the central finite difference of g . x along t (the
      reverse-mode check of jax.test_util.check_vjp), x from dense LAPACK solves;
    * equals the adjoint method exactly: with lambda = A^-T g, dL/db = lambda, dL/dblocks_j = -lambda_j x_j^T,
      dL/dcentre_diag = -lambda_0 x_0, and from the -u v^T term dL/du = (v . x_rays) lambda_rays,
      dL/dv = (u . lambda_rays) x_rays; to cond * 16 n eps of the products' size (two solves, x and lambda, and
      their product: four times the single-solve 4 n eps)."""
    n, m = GRAD_SHAPE
    p = {k: v for k, v in random_wheel(n, m, seed=11).items() if k in NAMES}
    rng = np.random.default_rng(12)
    g = rng.normal(size=1 + n * m)
    grad = jax.tree.map(np.asarray, _grad(jax.tree.map(jnp.asarray, p), jnp.asarray(g)))
    assert all(np.all(np.isfinite(v)) for v in grad.values())

    for _ in range(3):
        t = {k: rng.normal(size=np.shape(v)) for k, v in p.items()}
        projected = sum(np.sum(grad[k] * t[k]) for k in p)
        x_plus = _dense_solution({k: p[k] + FD_STEP * t[k] for k in p})[1]
        x_minus = _dense_solution({k: p[k] - FD_STEP * t[k] for k in p})[1]
        fd_dx = (x_plus - x_minus) / (2 * FD_STEP)
        assert abs(projected - g @ fd_dx) <= FD_TOL * np.abs(g).sum() * np.abs(fd_dx).max()

    a, x = _dense_solution(p)
    lam = np.linalg.solve(a.T, g)
    cond = np.linalg.cond(a, np.inf)
    size = np.abs(lam).max() * max(1.0, np.abs(x).max()) * (1 + np.abs(p["u"]).sum() + np.abs(p["v"]).sum())
    tol = 16 * a.shape[0] * EPS * cond * size
    lam_rays, x_rays = lam[1:].reshape(n, m), x[1:].reshape(n, m)
    np.testing.assert_allclose(grad["centre_rhs"], lam[0], rtol=0, atol=tol)
    np.testing.assert_allclose(grad["ray_rhs"], lam_rays, rtol=0, atol=tol)
    np.testing.assert_allclose(grad["blocks"], -lam_rays[:, :, None] * x_rays[:, None, :], rtol=0, atol=tol)
    np.testing.assert_allclose(grad["centre_diag"], -lam[0] * x[0], rtol=0, atol=tol)
    np.testing.assert_allclose(grad["u"], lam_rays * np.sum(p["v"] * x_rays), rtol=0, atol=tol)
    np.testing.assert_allclose(grad["v"], np.sum(p["u"] * lam_rays) * x_rays, rtol=0, atol=tol)
    # Couplings and spokes enter only the off-diagonal entries (the diagonal is part of the blocks / centre inputs):
    # dA/dc_j = -1 at (ray j, ray j+1) and (ray j+1, ray j), per ring, so dL/dc_j = lambda_j x_{j+1} + lambda_{j+1} x_j;
    # dA/ds_j = -1 at (centre, ray j ring 1) and back, so dL/ds_j = lambda_0 x_j[0] + lambda_j[0] x_0.
    nxt = np.roll(np.arange(n), -1)
    np.testing.assert_allclose(grad["couple"], lam_rays * x_rays[nxt] + lam_rays[nxt] * x_rays, rtol=0, atol=tol)
    np.testing.assert_allclose(grad["spokes"], lam[0] * x_rays[:, 0] + lam_rays[:, 0] * x[0], rtol=0, atol=tol)

"""The Krylov engine shared by `jgeo.landscape` (Hessian eigenvalues, Hutch++, spectral
densities) and the wide-metric kernels (`local_basis`, the stochastic log-volume).

Everything here sees a symmetric operator A only through `matvec(v) = A v` on flat
vectors (n,):

- `lanczos`: the Lanczos tridiagonalisation A Q ≈ Q T with full reorthogonalisation
  (every new vector orthogonalised against all earlier ones twice, "twice is enough",
  Parlett) and restarts where the Krylov space closes;
- `ritz`: the Ritz pairs of T and their residual norms;
- `quadrature`: stochastic Lanczos quadrature of tr f(A) (Ubaru, Chen & Saad 2017);
- `hutch_plus_plus`: the trace estimator of Meyer, Musco, Musco & Woodruff (2021).

matfree (Krämer et al. 2024) implements the same algorithms; `docs/wide.md` records why
jgeo keeps its own (its restarts: a rank-deficient operator, such as the Fisher metric
of a classifier at a hidden layer, closes the Krylov space early, where a Lanczos
recurrence without restarts divides by zero).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

Matvec = Callable[[Float[Array, " n"]], Float[Array, " n"]]


class Tridiagonal(NamedTuple):
    """The result of `lanczos`: A Q ≈ Q T + β_m q_{m+1} e_mᵀ.

    **Fields:**

    - `basis`: Q, the Lanczos vectors as rows, shape (m, n), orthonormal.
    - `alpha`: the diagonal of T, shape (m,).
    - `beta`: its off-diagonal, shape (m,); `beta[-1]` is the norm β_m of the residual
      that the next step would normalise, and a zero entry marks a restart.
    """

    basis: Float[Array, "m n"]
    alpha: Float[Array, " m"]
    beta: Float[Array, " m"]


def start_vector(key: PRNGKeyArray, n: int, dtype) -> Float[Array, " n"]:
    """A random unit vector (n,)."""
    v = jr.normal(key, (n,), dtype)
    return v / jnp.linalg.norm(v)


def lanczos(matvec: Matvec, v0: Float[Array, " n"], steps: int, key: PRNGKeyArray) -> Tridiagonal:
    """`steps` Lanczos steps of the symmetric operator `matvec` from the unit vector `v0`.

    Each new vector is orthogonalised against all earlier ones twice (classical
    Gram–Schmidt, two passes: the cost matfree's `tridiag_sym(reortho="full")` has). When
    the Krylov
    space closes (the residual is below 1e3·ε·‖A q‖: `v0` lies in an invariant subspace,
    e.g. A has rank < steps) the recurrence restarts from a random vector orthogonal to
    the basis, with coupling 0, so that T's eigenvalues stay eigenvalues of A and its
    quadrature weights stay those of `v0`.

    **Arguments:** `matvec`, a symmetric linear map of vectors (n,); `v0`, the start,
    of unit norm; `steps` m ≤ n; `key`, for the restart vectors.

    **Returns:** a `Tridiagonal` (Q, α, β). Memory (m + 1)·n; cost m products.
    """
    n, dtype = v0.shape[0], v0.dtype
    eps = jnp.finfo(dtype).eps
    basis = jnp.zeros((steps + 1, n), dtype).at[0].set(v0)

    def project_out(w, basis):  # one pass of classical Gram–Schmidt
        return w - basis.T @ (basis @ w)

    def step(j, carry):
        basis, alpha, beta = carry
        v = basis[j]
        av = matvec(v)
        a = jnp.vdot(v, av)
        w = project_out(av, basis)
        closed = jnp.linalg.norm(w) <= 1e3 * eps * jnp.maximum(
            jnp.linalg.norm(av), jnp.finfo(dtype).tiny
        )
        # The second pass ("twice is enough") orthogonalises the restart vector instead
        # where the space closed: two passes a step either way. One pass suffices for a
        # random vector, whose part outside the span of m ≪ n vectors is most of it.
        fresh = jr.normal(jr.fold_in(key, j), (n,), dtype)
        w = project_out(jnp.where(closed, fresh, w), basis)
        b = jnp.linalg.norm(w)
        nxt = w / jnp.where(b > 0, b, 1)
        return basis.at[j + 1].set(nxt), alpha.at[j].set(a), beta.at[j].set(jnp.where(closed, 0, b))

    init = (basis, jnp.zeros(steps, dtype), jnp.zeros(steps, dtype))
    basis, alpha, beta = jax.lax.fori_loop(0, steps, step, init)
    return Tridiagonal(basis[:steps], alpha, beta)


def ritz(alpha: Array, beta: Array) -> tuple[Array, Array, Array]:
    """The eigendecomposition of the Lanczos tridiagonal T = tridiag(β, α, β).

    **Returns:** the Ritz values θ (m,), ascending; T's eigenvectors S (m, m) as columns
    (the Ritz vectors are Qᵀ S, and the quadrature weights of the start vector are
    S[0]²); and the residual norms ‖A y − θ y‖ = |β_m S[m−1]| of the Ritz pairs.
    """
    t = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    theta, s = jnp.linalg.eigh(t)
    return theta, s, jnp.abs(beta[-1] * s[-1])


class Quadrature(NamedTuple):
    """Gauss quadrature of vᵀ f(A) v for one unit start vector v, from `lanczos`:
    vᵀ f(A) v ≈ Σⱼ τⱼ f(θⱼ).

    **Fields:**

    - `nodes`: the Ritz values θ (m,).
    - `weights`: τ = S[0]², summing to 1.
    - `tridiagonal`: the `Tridiagonal` they come from, and `vectors`, T's eigenvectors
      S (m, m): with them, A⁻¹ v ≈ Qᵀ S diag(1/θ) S[0] (the Lanczos form of CG).
    """

    nodes: Float[Array, " m"]
    weights: Float[Array, " m"]
    vectors: Float[Array, "m m"]
    tridiagonal: Tridiagonal

    def solve(self) -> Float[Array, " n"]:
        """A⁻¹ v for the unit start vector v, from the Krylov space: exact when it closed."""
        s = self.vectors
        return self.tridiagonal.basis.T @ (s @ (s[0] / self.nodes))


def quadrature(matvec: Matvec, v0: Float[Array, " n"], steps: int, key: PRNGKeyArray) -> Quadrature:
    """Lanczos from the unit vector `v0`, read as a Gauss quadrature rule (Golub & Meurant).

    **Returns:** a `Quadrature`.
    """
    tri = lanczos(matvec, v0, steps, key)
    theta, s, _ = ritz(tri.alpha, tri.beta)
    return Quadrature(theta, s[0] ** 2, s, tri)


def rademacher_probes(key: PRNGKeyArray, probes: int, n: int, dtype) -> Float[Array, "p n"]:
    """`probes` Rademacher vectors (±1 entries), shape (probes, n)."""
    return jr.rademacher(key, (probes, n), dtype)


def hutch_plus_plus(many: Callable, n: int, dtype, key: PRNGKeyArray, probes: int) -> Array:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021) of tr A, from `probes` products:
    a third sketch the top of the spectrum, Q = orth(A S), whose trace tr(QᵀAQ) is taken
    exactly; Hutchinson's estimator with the last third covers (I − QQᵀ)A(I − QQᵀ).

    **Arguments:** `many`, A applied to the rows of a (p, n) array; `n`, `dtype`;
    `key`; `probes` ≥ 3.

    **Returns:** the estimate, a scalar.
    """
    k_sketch, k_rest = jr.split(key)
    sketch = probes // 3
    q, _ = jnp.linalg.qr(many(rademacher_probes(k_sketch, sketch, n, dtype)).T)
    top = jnp.sum(q.T * many(q.T))  # tr(QᵀAQ)
    g = rademacher_probes(k_rest, probes - 2 * sketch, n, dtype)
    g = g - (g @ q) @ q.T  # the rest of the space
    return top + jnp.mean(jnp.sum(g * many(g), axis=1))


def hutchinson(many: Callable, n: int, dtype, key: PRNGKeyArray, probes: int) -> Array:
    """Hutchinson's estimator (1/p) Σ vᵀAv of tr A over p Rademacher vectors v (drawn
    with the second half of `jr.split(key)`, as Hutch++ draws its last third)."""
    v = rademacher_probes(jr.split(key)[1], probes, n, dtype)
    return jnp.mean(jnp.sum(v * many(v), axis=1))

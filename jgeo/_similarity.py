"""The comparison measures of `jgeo.representation`, documented there: how similar two
representations (N, D₁) and (N, D₂) of the same N inputs are.

Everything is computed from each representation's centred Gram matrix (N, N) or its
thin SVD, so D₁ ≠ D₂ costs nothing and a wide layer never needs a D × D matrix: a Gram
matrix is accumulated over chunks of `chunk` features (memory O(N² + N·chunk)), and an
input given as a NumPy array (a memory map of a conv layer's activations included) is
sent to the device one chunk at a time.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ._custom_types import Points
from ._linalg import singular_values
from ._representation import _distinct, _neighbours, _points

CHUNK = 8192  # features per chunk of a Gram matrix: N × 8192 floats in flight


# -- arguments -----------------------------------------------------------------------


def _pair(x, y, least: int = 2) -> tuple:
    """`x` and `y` checked as two representations of the same n ≥ `least` inputs: kept
    as NumPy arrays where they are (streamed to the device by chunks), floating point."""
    out = []
    for name, z in (("x", x), ("y", y)):
        if not isinstance(z, np.ndarray | jax.Array):
            z = np.asarray(z)
        if z.ndim != 2 or z.shape[0] < least:
            raise ValueError(
                f"`{name}` must be a representation of shape (n ≥ {least}, d): one row per "
                f"input, got shape {z.shape}."
            )
        if not (jnp.issubdtype(z.dtype, jnp.floating) or jnp.issubdtype(z.dtype, jnp.integer)):
            raise ValueError(f"`{name}` must hold real numbers, got dtype {z.dtype}.")
        out.append(z)
    if out[0].shape[0] != out[1].shape[0]:
        raise ValueError(
            "`x` and `y` must hold the same inputs, one per row (arrays of equal n): got "
            f"{out[0].shape[0]} and {out[1].shape[0]} rows; line them up by the inputs' "
            "indices first."
        )
    return tuple(out)


def _dtype(*arrays) -> jnp.dtype:
    """The floating dtype the measures compute in: the inputs' common one (integers as
    float32, float64 only with jax_enable_x64)."""
    dtype = jnp.result_type(*[a.dtype for a in arrays])
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.dtype(jnp.float32)
    return jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))


def _device(z, dtype) -> Array:
    return jnp.asarray(z, dtype)


def _check_chunk(chunk) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 1:
        raise ValueError(f"`chunk` must be a positive integer (features per chunk), got {chunk!r}.")
    return int(chunk)


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}, got {value!r}.")
    return value


# -- Gram matrices and bases -----------------------------------------------------------


@functools.partial(jax.jit, static_argnames="rows")
def _block_gram(block: Array, shift: Array, rows: bool) -> Array:
    """Gram matrix (N, N) of one block of features, centred: each column on its mean
    (`rows` False), or each row on `shift`, the rows' means over all features."""
    block = block - (shift[:, None] if rows else jnp.mean(block, 0, keepdims=True))
    return block @ block.T


def gram(z, dtype, chunk: int = CHUNK, rows: bool = False) -> Array:
    """z zᵀ (N, N) of `z` (N, D) with its columns centred (or, `rows`, its rows: the
    inner products of the patterns the correlation distance compares), summed over
    chunks of `chunk` features. A NumPy `z` goes to the device a chunk at a time (it is
    never copied whole); a JAX array is sliced inside one loop, so this runs under `jit`."""
    n, d = z.shape
    starts = range(0, d, chunk)
    if isinstance(z, np.ndarray):
        shift = jnp.zeros(n, dtype)
        if rows:
            total = sum(np.sum(z[:, s : s + chunk], axis=1, dtype=np.float64) for s in starts)
            shift = jnp.asarray(total / d, dtype)
        out = jnp.zeros((n, n), dtype)
        for s in starts:  # one chunk on the device at a time: wait for each before the next
            out = out + _block_gram(_device(z[:, s : s + chunk], dtype), shift, rows)
            out.block_until_ready()
        return out
    z = z.astype(dtype)
    shift = jnp.mean(z, 1) if rows else jnp.zeros(n, dtype)
    full, rest = divmod(d, chunk)
    if full <= 1 and not (full == 1 and rest):
        return _block_gram(z, shift, rows)

    def add(i, out):
        block = lax.dynamic_slice_in_dim(z, i * chunk, chunk, axis=1)
        return out + _block_gram(block, shift, rows)

    out = lax.fori_loop(0, full, add, jnp.zeros((n, n), dtype))
    return out + (_block_gram(z[:, full * chunk :], shift, rows) if rest else 0.0)


def basis(z, dtype, chunk: int = CHUNK) -> tuple[Array, Array, Array]:
    """An orthonormal basis of the centred `z`'s column space: U (N, k), the singular
    values s (k,), descending, and which directions are kept (k,): those whose squared
    singular value is above k·ε of the largest (zero in U and s elsewhere). k = min(N, D),
    from the eigendecomposition of the smaller of the covariance zᵀz (D ≤ N; then
    U = z V / s) and the Gram matrix z zᵀ (D > N, accumulated by chunks: no (N, D)
    factor). An eigendecomposition squares the singular values, so directions below
    √ε of the largest are dropped — as netrep's whitening does — in exchange for a
    cost of O(N·min(N, D)²) matrix products instead of a thin SVD of z, much slower
    on CPU."""
    n, d = z.shape
    if d <= n:
        return _covariance_basis(_device(z, dtype))
    return _gram_basis(gram(z, dtype, chunk))


def _top_eigenpairs(k: Array) -> tuple[Array, Array, Array]:
    values, vectors = jnp.linalg.eigh(k)
    values, vectors = values[::-1], vectors[:, ::-1]
    kept = values > len(k) * jnp.finfo(k.dtype).eps * values[0]
    return jnp.sqrt(jnp.where(kept, values, 0.0)), vectors, kept


@jax.jit
def _covariance_basis(z: Array) -> tuple[Array, Array, Array]:
    z = z - jnp.mean(z, 0, keepdims=True)
    s, v, kept = _top_eigenpairs(z.T @ z)
    u = (z @ v) / jnp.where(kept, s, 1.0)[None]
    return jnp.where(kept[None], u, 0.0), s, kept


@jax.jit
def _gram_basis(k: Array) -> tuple[Array, Array, Array]:
    s, u, kept = _top_eigenpairs(k)
    return jnp.where(kept[None], u, 0.0), s, kept


# -- CKA ---------------------------------------------------------------------------------


def _centre(k: Array) -> Array:
    """H K H, H = I − 11ᵀ/n: the kernel of the centred features."""
    return k - jnp.mean(k, 0, keepdims=True) - jnp.mean(k, 1, keepdims=True) + jnp.mean(k)


def _u_centre(k: Array) -> Array:
    """The U-centred kernel (Székely & Rizzo 2014): ⟨Ũ(K), Ũ(L)⟩ / (n(n − 3)) is the
    unbiased HSIC estimator of Song et al. 2012."""
    n = len(k)
    k = k * (1 - jnp.eye(n, dtype=k.dtype))
    rows = jnp.sum(k, 1, keepdims=True) / (n - 2)
    u = k - rows - rows.T + jnp.sum(k) / ((n - 1) * (n - 2))
    return u * (1 - jnp.eye(n, dtype=k.dtype))


def _rbf(k: Array, sigma: float) -> Array:
    """exp(−‖xᵢ − xⱼ‖² / (2σ²)) from the centred linear Gram `k`, σ = `sigma` × the
    median distance between distinct inputs."""
    squared = _squared_distances(k)
    n = len(k)
    upper = squared[jnp.triu_indices(n, 1)]
    median = jnp.sqrt(jnp.median(upper))
    bandwidth = sigma * jnp.where(median > 0, median, 1.0)
    return jnp.exp(-squared / (2 * bandwidth**2))


def _squared_distances(k: Array) -> Array:
    diagonal = jnp.diagonal(k)
    squared = jnp.maximum(diagonal[:, None] + diagonal[None] - 2 * k, 0.0)
    return squared * (1 - jnp.eye(len(k), dtype=k.dtype))


@functools.partial(jax.jit, static_argnames=("rbf", "debiased"))
def _cka_grams(kx: Array, ky: Array, rbf: bool, sigma, debiased: bool) -> Array:
    if rbf:
        kx, ky = _rbf(kx, sigma), _rbf(ky, sigma)
    prepare = _u_centre if debiased else _centre
    kx, ky = prepare(kx), prepare(ky)
    xy, xx, yy = jnp.sum(kx * ky), jnp.sum(kx * kx), jnp.sum(ky * ky)
    return _ratio(xy, xx, yy)


def _ratio(xy, xx, yy):
    """xy / √(xx·yy), NaN where a self-similarity is not positive (a constant
    representation; a debiased estimate on too few inputs)."""
    positive = (xx > 0) & (yy > 0)
    return jnp.where(positive, xy / jnp.sqrt(jnp.where(positive, xx * yy, 1.0)), jnp.nan)


@functools.partial(jax.jit, static_argnames="debiased")
def _cka_features(x: Array, y: Array, debiased: bool) -> Array:
    """Linear CKA in feature space, O(N·D²) where D ≤ N: ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)
    on centred features; debiased, each inner product ⟨K, L⟩ corrected as Kornblith et
    al.'s reference code does (the unbiased HSIC, up to a factor that cancels)."""
    n = x.shape[0]
    x, y = x - jnp.mean(x, 0, keepdims=True), y - jnp.mean(y, 0, keepdims=True)
    gx, gy = x.T @ x, y.T @ y
    cross = y.T @ x
    terms = [jnp.sum(cross**2), jnp.sum(gx**2), jnp.sum(gy**2)]
    if debiased:
        rx, ry = jnp.sum(x**2, 1), jnp.sum(y**2, 1)  # the Gram matrices' diagonals
        tx, ty = jnp.sum(rx), jnp.sum(ry)

        def corrected(inner, ra, rb, ta, tb):
            return inner - n / (n - 2) * (ra @ rb) + ta * tb / ((n - 1) * (n - 2))

        terms = [corrected(terms[0], rx, ry, tx, ty), corrected(terms[1], rx, rx, tx, tx),
                 corrected(terms[2], ry, ry, ty, ty)]  # fmt: skip
    return _ratio(*terms)


def cka(
    x: Points,
    y: Points,
    *,
    kernel: str = "linear",
    sigma: float | None = None,
    debiased: bool = False,
    chunk: int = CHUNK,
) -> Float[Array, ""]:
    """Centred kernel alignment (Kornblith et al. 2019) of two representations of the
    same N inputs: CKA = HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)), with K, L the kernel
    matrices of x and y and HSIC(K, L) = tr(K H L H) / (N − 1)², H = I − 11ᵀ/N.

    The linear kernel is invariant to rotations and isotropic scaling of either
    representation (and to translations), not to other invertible maps: 1 for x and
    3·x·Q + b, below 1 for a stretched copy. The RBF kernel exp(−‖xᵢ − xⱼ‖²/(2σ²))
    looks at local neighbourhoods, with σ = `sigma` × the median distance between
    inputs (the paper's choice; 1 when None).

    The biased estimator above is pulled up at small N and large D: two independent
    Gaussian clouds of N = 50, D = 500 score about 0.9. `debiased=True` uses the
    unbiased HSIC of Song et al. 2012 (as Nguyen et al. 2021 do), near 0 for them; it
    can be slightly negative.

    Memory is O(N² + N·`chunk`): the Gram matrices are summed over chunks of features
    (a NumPy `x`, a memory map included, goes to the device a chunk at a time), so a
    conv layer of N × 100,000 features runs in the memory of two N × N matrices beyond
    its input. Where D₁, D₂ ≤ N the linear kernel uses the D × D form instead, in
    O(N·D²) time.

    **Arguments:**

    - `x`, `y`: the representations, (N, D₁) and (N, D₂): row i of each is input i.
    - `kernel`: "linear" or "rbf".
    - `sigma`: the RBF bandwidth relative to the median distance (None: 1).
    - `debiased`: the unbiased HSIC estimator (needs N ≥ 4).
    - `chunk`: features per chunk of a Gram matrix.

    **Returns:** a scalar, 1 for identical representations (up to the invariances); NaN
    where x or y is constant (no variance to compare).

    **Raises:** `ValueError` naming the argument: shapes that are not (N, ·) with the
    same N, an unknown `kernel`, `sigma` not positive or given for the linear kernel,
    `debiased` with N < 4.
    """
    x, y = _pair(x, y, 4 if debiased else 2)
    _check_choice("kernel", kernel, ("linear", "rbf"))
    chunk = _check_chunk(chunk)
    if sigma is not None and kernel != "rbf":
        raise ValueError('`sigma` is the RBF bandwidth: give it with kernel="rbf".')
    if sigma is not None and not (isinstance(sigma, int | float) and sigma > 0):
        raise ValueError(
            f"`sigma` must be a positive number (× the median distance), got {sigma!r}."
        )
    dtype = _dtype(x, y)
    n = x.shape[0]
    if kernel == "linear" and max(x.shape[1], y.shape[1]) <= n:
        return _cka_features(_device(x, dtype), _device(y, dtype), bool(debiased))
    kx, ky = gram(x, dtype, chunk), gram(y, dtype, chunk)
    bandwidth = jnp.asarray(1.0 if sigma is None else sigma, dtype)
    return _cka_grams(kx, ky, kernel == "rbf", bandwidth, bool(debiased))


def linear_cka(x: Points, y: Points) -> Float[Array, ""]:
    """Linear centred kernel alignment (Kornblith et al. 2019) of two representations
    of the same n samples, (n, p) and (n, q): 1 when they differ by a rotation and a
    uniform scaling, near 0 when unrelated. Invariant to how the representation is
    rotated or scaled, so it measures change of the representation, not of its frame.
    The biased linear case of `cka`, `cka(x, y)`.

    **Arguments:**

    - `x`, `y`: two representations of the same n samples, shapes (n, p) and (n, q).

    **Returns:** a scalar in [0, 1]; NaN where x or y is constant.
    """
    return cka(x, y)


# -- CCA ---------------------------------------------------------------------------------


def _check_rank(rank) -> int | None:
    if rank is None:
        return None
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or rank < 1:
        raise ValueError(f"`rank` must be a positive integer or None, got {rank!r}.")
    return int(rank)


def _top(u: Array, s: Array, kept: Array, rank: int | None):
    if rank is not None:
        u, s, kept = u[:, :rank], s[:rank], kept[:rank]
    return u, s, kept


def _svd(a: Array) -> tuple[Array, Array]:
    """Thin SVD's U and singular values by LAPACK's gesvd (see `_linalg.singular_values`
    for why not gesdd: it can hang when the probes run beside training)."""
    u, s, _ = lax.linalg.svd(a, full_matrices=False, compute_uv=True,
                             algorithm=lax.linalg.SvdAlgorithm.QR)  # fmt: skip
    return u, s


def _canonical(ux: Array, uy: Array) -> tuple[Array, Array]:
    """The canonical correlations of two orthonormal bases (columns zero where not kept)
    — the singular values of Uxᵀ Uy — and the left singular vectors."""
    p, rho = _svd(ux.T @ uy)
    return jnp.clip(rho, 0.0, 1.0), p


def cca_correlations(
    x: Points, y: Points, *, rank: int | None = None, chunk: int = CHUNK
) -> Float[Array, " k"]:
    """Canonical correlations (Hotelling 1936) of two representations of the same N
    inputs: ρ₁ ≥ ρ₂ ≥ … , the correlations of the pairs of directions a, b (one in each)
    that correlate most, each pair uncorrelated with the earlier ones. Invariant to any
    invertible linear map of either representation.

    Computed as the singular values of Uₓᵀ U_y, with U orthonormal bases of the centred
    representations (thin SVD), not by inverting covariance matrices: directions below
    the numerical rank are dropped, so rank-deficient inputs (duplicate features, D > N)
    give finite correlations, never the NaN of a square root of a negative eigenvalue.

    **Arguments:**

    - `x`, `y`: the representations, (N, D₁) and (N, D₂).
    - `rank`: keep only each representation's top `rank` principal directions first
      (None: all above the numerical rank).
    - `chunk`: features per chunk where D > N (see `cka`).

    **Returns:** the correlations (k,) in [0, 1], descending, k = min(N, D₁, D₂) (or
    `rank`); 0 beyond the smaller of the two numerical ranks.

    **Raises:** `ValueError` naming the argument for shapes that are not (N ≥ 2, ·) with
    the same N, or `rank` not a positive integer.
    """
    x, y = _pair(x, y)
    rank, chunk = _check_rank(rank), _check_chunk(chunk)
    dtype = _dtype(x, y)
    ux, _, _ = _top(*basis(x, dtype, chunk), rank)
    uy, _, _ = _top(*basis(y, dtype, chunk), rank)
    rho, _ = _canonical(ux, uy)
    return rho[: min(ux.shape[1], uy.shape[1])]


def _variance_kept(s: Array, kept: Array, keep: float) -> Array:
    """The fewest top directions whose variance is at least `keep` of the total."""
    variance = s**2
    share = jnp.cumsum(variance) / jnp.sum(variance)
    count = jnp.sum(share < keep * (1 - 4 * jnp.finfo(s.dtype).eps)) + 1
    return kept & (jnp.arange(len(s)) < count)


def svcca(x: Points, y: Points, *, keep: float = 0.99, chunk: int = CHUNK) -> Float[Array, ""]:
    """SVCCA (Raghu et al. 2017): each representation reduced by SVD to its fewest top
    directions keeping the fraction `keep` of its variance, then the mean canonical
    correlation of the two reductions (over min(k₁, k₂) correlations, kᵢ the directions
    kept). Invariant to invertible linear maps within the kept subspaces; the reduction
    drops the low-variance directions CCA would otherwise match to noise.

    **Arguments:**

    - `x`, `y`: the representations, (N, D₁) and (N, D₂).
    - `keep`: the fraction of variance kept, in (0, 1].
    - `chunk`: features per chunk where D > N (see `cka`).

    **Returns:** a scalar in [0, 1]; NaN where x or y is constant.

    **Raises:** `ValueError` naming the argument for shapes that are not (N ≥ 2, ·) with
    the same N, or `keep` outside (0, 1].
    """
    x, y = _pair(x, y)
    if not (isinstance(keep, int | float) and not isinstance(keep, bool) and 0 < keep <= 1):
        raise ValueError(f"`keep` must be a fraction of variance in (0, 1], got {keep!r}.")
    chunk = _check_chunk(chunk)
    dtype = _dtype(x, y)
    return _svcca(basis(x, dtype, chunk), basis(y, dtype, chunk), float(keep))


@functools.partial(jax.jit, static_argnums=2)
def _svcca(bx, by, keep: float) -> Array:
    (ux, sx, kx), (uy, sy, ky) = bx, by
    kx, ky = _variance_kept(sx, kx, keep), _variance_kept(sy, ky, keep)
    rho, _ = _canonical(jnp.where(kx[None], ux, 0.0), jnp.where(ky[None], uy, 0.0))
    count = jnp.minimum(jnp.sum(kx), jnp.sum(ky))
    return jnp.where(count > 0, jnp.sum(rho) / jnp.maximum(count, 1), jnp.nan)


def pwcca(x: Points, y: Points, *, chunk: int = CHUNK) -> Float[Array, ""]:
    """Projection-weighted CCA (Morcos et al. 2018): the canonical correlations ρᵢ
    averaged with weights αᵢ ∝ Σⱼ |⟨hᵢ, zⱼ⟩|, how much of the representation's own
    features zⱼ (centred columns) the i-th canonical variate hᵢ (unit norm) accounts
    for — so that the directions the representation actually uses count, and noise
    directions CCA matched do not. The weights come from the representation with fewer
    features (x on a tie), as the reference code does. (The reference code adds the
    neuron means back before weighting; here the features are centred, as in the
    paper's formula.)

    **Arguments:**

    - `x`, `y`: the representations, (N, D₁) and (N, D₂).
    - `chunk`: features per chunk where D > N (see `cka`).

    **Returns:** a scalar in [0, 1]; NaN where x or y is constant.

    **Raises:** `ValueError` naming the argument for shapes that are not (N ≥ 2, ·) with
    the same N.
    """
    x, y = _pair(x, y)
    chunk = _check_chunk(chunk)
    if y.shape[1] < x.shape[1]:
        x, y = y, x
    dtype = _dtype(x, y)
    return _pwcca(basis(x, dtype, chunk), basis(y, dtype, chunk), _device(x, dtype))


@jax.jit
def _pwcca(bx, by, x: Array) -> Array:
    (ux, _, _), (uy, _, _) = bx, by
    rho, p = _canonical(ux, uy)
    k = min(ux.shape[1], uy.shape[1])
    variates = (ux @ p)[:, :k]  # orthonormal, zero-mean columns: ⟨h, x − x̄⟩ = ⟨h, x⟩
    weights = jnp.sum(jnp.abs(variates.T @ x), axis=1)
    total = jnp.sum(weights)
    return jnp.where(total > 0, weights @ rho[:k] / jnp.where(total > 0, total, 1.0), jnp.nan)


# -- shape metrics -----------------------------------------------------------------------


def shape_distance(
    x: Points, y: Points, *, alpha: float = 1.0, chunk: int = CHUNK
) -> Float[Array, ""]:
    """The generalized shape metric of Williams et al. 2021, angular form: the angle
    between the two representations after centring, partial whitening and the best
    rotation of one onto the other,

        θ = arccos( max_Q ⟨φ(x), φ(y) Q⟩ / (‖φ(x)‖ ‖φ(y)‖) )
          = arccos( ‖φ(x)ᵀφ(y)‖_* / (‖φ(x)‖ ‖φ(y)‖) ),

    φ(x) = x̄ (α I + (1 − α)(x̄ᵀx̄)^(−1/2)) with x̄ the centred x (‖·‖_* the nuclear norm; the
    smaller representation is padded with zero features, which changes nothing). α = 1
    is the orthogonal Procrustes distance, α = 0 the CCA distance (whitened; then
    arccos of the mean canonical correlation times min/√(k₁k₂)). A metric in the
    mathematical sense — zero for rotated, scaled and translated copies, symmetric,
    obeying the triangle inequality — unlike CKA or CCA scores, so distances between
    many networks can be averaged, clustered and embedded. For 0 < α < 1 the whitening
    mixes αs with 1 − α per singular value s, as netrep does: not invariant to scale.

    **Arguments:**

    - `x`, `y`: the representations, (N, D₁) and (N, D₂).
    - `alpha`: the whitening in [0, 1] (1: none, 0: full).
    - `chunk`: features per chunk where D > N (see `cka`).

    **Returns:** a scalar angle in [0, π/2]; NaN where x or y is constant.

    **Raises:** `ValueError` naming the argument for shapes that are not (N ≥ 2, ·) with
    the same N, or `alpha` outside [0, 1].
    """
    x, y = _pair(x, y)
    if not (isinstance(alpha, int | float) and not isinstance(alpha, bool) and 0 <= alpha <= 1):
        raise ValueError(f"`alpha` must be in [0, 1] (1: Procrustes, 0: CCA), got {alpha!r}.")
    chunk = _check_chunk(chunk)
    dtype = _dtype(x, y)
    return _shape(basis(x, dtype, chunk), basis(y, dtype, chunk), jnp.asarray(alpha, dtype))


@jax.jit
def _shape(bx, by, alpha) -> Array:
    """In the bases φ(x) = Uₓ diag(a) Vₓᵀ, a = αs + (1 − α) on the kept directions: the
    nuclear norm of φ(x)ᵀφ(y) is that of diag(a) UₓᵀU_y diag(b)."""
    (ux, sx, kx), (uy, sy, ky) = bx, by
    a = jnp.where(kx, alpha * sx + (1 - alpha), 0.0)
    b = jnp.where(ky, alpha * sy + (1 - alpha), 0.0)
    inner = (ux * a[None]).T @ (uy * b[None])
    nuclear = jnp.sum(singular_values(inner))
    norms = jnp.linalg.norm(a) * jnp.linalg.norm(b)
    cosine = jnp.clip(nuclear / jnp.where(norms > 0, norms, 1.0), 0.0, 1.0)
    return jnp.where(norms > 0, jnp.arccos(cosine), jnp.nan)


def procrustes_distance(x: Points, y: Points, *, chunk: int = CHUNK) -> Float[Array, ""]:
    """The angular orthogonal Procrustes distance, `shape_distance(x, y, alpha=1)`:
    arccos(‖x̄ᵀȳ‖_* / (‖x̄‖ ‖ȳ‖)) of the centred representations, the angle left after
    the best rotation (Williams et al. 2021). A metric; zero for rotated, scaled and
    translated copies.

    **Arguments:** `x`, `y`: the representations, (N, D₁) and (N, D₂); `chunk` (see `cka`).

    **Returns:** a scalar angle in [0, π/2]; NaN where x or y is constant.

    **Raises:** `ValueError` naming the argument for mismatched shapes.
    """
    return shape_distance(x, y, alpha=1.0, chunk=chunk)


# -- RSA ---------------------------------------------------------------------------------


def _ranks(v: Array) -> Array:
    """Ranks 1 … m of `v`, ties given their average rank (as `scipy.stats.rankdata`)."""
    ordered = jnp.sort(v)
    below = jnp.searchsorted(ordered, v, side="left")
    through = jnp.searchsorted(ordered, v, side="right")
    return ((below + through + 1) / 2).astype(v.dtype)


def _pearson(a: Array, b: Array) -> Array:
    a, b = a - jnp.mean(a), b - jnp.mean(b)
    return _ratio(a @ b, a @ a, b @ b)


@functools.partial(jax.jit, static_argnames=("correlation", "spearman"))
def _rsa(kx: Array, ky: Array, correlation: bool, spearman: bool) -> Array:
    upper = jnp.triu_indices(len(kx), 1)

    def dissimilarities(k):
        if correlation:  # k holds the row-centred patterns' inner products
            norms = jnp.sqrt(jnp.diagonal(k))
            safe = jnp.where(norms > 0, norms, 1.0)
            return (1 - k / safe[:, None] / safe[None])[upper]
        return jnp.sqrt(_squared_distances(k))[upper]

    dx, dy = dissimilarities(kx), dissimilarities(ky)
    if spearman:
        dx, dy = _ranks(dx), _ranks(dy)
    return _pearson(dx, dy)


def rsa(
    x: Points,
    y: Points,
    *,
    distance: str = "euclidean",
    compare: str = "spearman",
    chunk: int = CHUNK,
) -> Float[Array, ""]:
    """Representational similarity analysis (Kriegeskorte et al. 2008): the correlation
    of the two representational dissimilarity matrices (RDMs), over their upper
    triangles (the N(N − 1)/2 pairs of inputs). Needs no correspondence between features,
    so it compares a network with a brain recording or networks of any widths.

    Euclidean RDMs are invariant to rotations and translations of the representations
    (and, with Spearman, to isotropic scaling); correlation RDMs (1 − Pearson r of two
    inputs' patterns across features) also to scaling and shifting each pattern. Spearman
    compares only the order of the dissimilarities (ties: average ranks).

    **Arguments:**

    - `x`, `y`: the representations, (N, D₁) and (N, D₂), N ≥ 3.
    - `distance`: the RDM: "euclidean" or "correlation".
    - `compare`: "spearman" or "pearson".
    - `chunk`: features per chunk (the RDMs come from Gram matrices, see `cka`).

    **Returns:** a scalar correlation in [−1, 1]; NaN where an RDM is constant.

    **Raises:** `ValueError` naming the argument for shapes that are not (N ≥ 3, ·) with
    the same N, or an unknown `distance` or `compare`.
    """
    x, y = _pair(x, y, 3)
    _check_choice("distance", distance, ("euclidean", "correlation"))
    _check_choice("compare", compare, ("spearman", "pearson"))
    chunk = _check_chunk(chunk)
    dtype, rows = _dtype(x, y), distance == "correlation"
    kx, ky = gram(x, dtype, chunk, rows), gram(y, dtype, chunk, rows)
    return _rsa(kx, ky, rows, compare == "spearman")


# -- neighbourhoods ----------------------------------------------------------------------


def information_imbalance(
    a: Points, b: Points, *, k: int = 1, chunk: int = CHUNK
) -> Float[Array, ""]:
    """The information imbalance Δ(a → b) of Glielmo et al. 2022: how well the
    neighbourhoods of a predict those of b,

        Δ(a → b) = (2 / N) · mean over i and its k nearest neighbours j in a of r^b_ij,

    r^b_ij the rank of j among i's neighbours in b (1: the nearest). 0 when a's nearest
    neighbours are b's, about 1 when a says nothing of b. Asymmetric: Δ(a → b) small and
    Δ(b → a) large means a holds b's information and more. Ties in b count j's rank as
    one plus the number of strictly nearer points (DADApy breaks them at random).

    **Arguments:**

    - `a`, `b`: the representations, (N, D₁) and (N, D₂), N ≥ 3.
    - `k`: neighbours per point in a, 1 ≤ k ≤ N − 1.
    - `chunk`: features per chunk (distances come from Gram matrices, see `cka`).

    **Returns:** a scalar, about in [0, 1].

    **Raises:** `ValueError` naming the argument for shapes that are not (N ≥ 3, ·) with
    the same N, or `k` outside [1, N − 1].
    """
    try:
        a, b = _pair(a, b, 3)
    except ValueError as error:
        raise ValueError(str(error).replace("`x`", "`a`").replace("`y`", "`b`")) from None
    n = a.shape[0]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k < n:
        raise ValueError(f"`k` must be an integer in [1, N − 1] = [1, {n - 1}], got {k!r}.")
    chunk = _check_chunk(chunk)
    dtype = _dtype(a, b)
    return _imbalance(gram(a, dtype, chunk), gram(b, dtype, chunk), int(k))


@functools.partial(jax.jit, static_argnums=2)
def _imbalance(ka: Array, kb: Array, k: int) -> Array:
    n = len(ka)
    itself = jnp.eye(n, dtype=bool)
    da = jnp.where(itself, jnp.inf, _squared_distances(ka))
    db = jnp.where(itself, jnp.inf, _squared_distances(kb))
    _, nearest = lax.top_k(-da, k)  # (n, k): i's k nearest in a
    target = jnp.take_along_axis(db, nearest, axis=1)  # their squared distances in b

    def rank(row, targets):  # 1 + how many of i's others are strictly nearer in b
        return 1 + jnp.sum(row[None] < targets[:, None], axis=1)

    ranks = jax.vmap(rank)(db, target)
    return 2.0 * jnp.mean(ranks.astype(ka.dtype)) / n


def gride_dimension(z: Points, *, n1: int = 1, n2: int = 2) -> Float[Array, ""]:
    """Intrinsic dimension by GRIDE (Denti et al. 2022): the maximum-likelihood d of the
    ratios μᵢ = r_{i,n2} / r_{i,n1} of each point's n2-th to n1-th nearest-neighbour
    distance, whose density on a d-dimensional manifold of locally constant density is

        f(μ) = d (μ^d − 1)^(n2 − n1 − 1) / (B(n2 − n1, n1) μ^((n2 − 1) d + 1)).

    n1 = 1, n2 = 2 is the TwoNN maximum-likelihood estimate N / Σ log μᵢ. Larger n1
    (n2 = 2·n1 is the usual choice) looks at larger scales, past noise that inflates
    the dimension at the smallest distances. Duplicate points count once (as in
    `twonn_dimension`).

    **Arguments:**

    - `z`: the codes, (N, d).
    - `n1`, `n2`: the neighbour orders, 1 ≤ n1 < n2 < N.

    **Returns:** a scalar, the estimated dimension (the root of the likelihood's
    derivative, by bisection in log d over [10⁻³, 10⁴]); NaN with fewer than n2 + 1
    distinct points.

    **Raises:** `ValueError` naming the argument for a `z` that is not (N ≥ 3, d) or
    orders outside 1 ≤ n1 < n2 < N.
    """
    z = _points(z)
    n = len(z)
    for name, value in (("n1", n1), ("n2", n2)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    if not n1 < n2 < n:
        raise ValueError(f"`n1` < `n2` < N = {n} is required, got n1 = {n1}, n2 = {n2}.")
    return _gride(z, int(n1), int(n2))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _gride(z: Array, n1: int, n2: int) -> Array:
    distinct = _distinct(z)
    r, _ = _neighbours(z, n2, distinct)
    used = distinct & (r[:, 0] > 0) & jnp.isfinite(r[:, n2 - 1])
    count = jnp.sum(used)
    log_mu = jnp.where(used, jnp.log(r[:, n2 - 1] / jnp.where(used, r[:, n1 - 1], 1.0)), 0.0)

    def slope(log_d):  # d/dd of the log-likelihood: decreasing in d, one root
        d = jnp.exp(log_d)
        # log μ / (1 − μ^(−d)), → 1/d as μ → 1 (ties)
        tied = log_mu * d < 1e-12
        ratio = jnp.where(tied, 1 / d, log_mu / -jnp.expm1(-d * jnp.where(tied, 1.0, log_mu)))
        return (count / d + (n2 - n1 - 1) * jnp.sum(jnp.where(used, ratio, 0.0))
                - (n2 - 1) * jnp.sum(log_mu))  # fmt: skip

    def bisect(_, bounds):
        low, high = bounds
        middle = (low + high) / 2
        up = slope(middle) > 0
        return jnp.where(up, middle, low), jnp.where(up, high, middle)

    bounds = (jnp.log(jnp.asarray(1e-3, z.dtype)), jnp.log(jnp.asarray(1e4, z.dtype)))
    low, high = lax.fori_loop(0, 64, bisect, bounds)
    return jnp.where(count > n2, jnp.exp((low + high) / 2), jnp.nan)

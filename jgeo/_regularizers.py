"""The implementation of `jgeo.regularizers`, documented there."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._custom_types import Batch, Fn
from ._pullback import Pullback


def _check_batch(batch, name="z"):
    if batch.ndim != 2 or batch.shape[0] < 2:
        raise ValueError(
            f"`{name}` must be a batch of shape (B, dim) with B ≥ 2, got {batch.shape}."
        )


def mixup(z: Batch, key: PRNGKeyArray, eta: float = 0.2) -> Batch:
    """Points a zᵢ + (1 − a) z_π(i) for a random permutation π and a ~ U[−η, 1 + η]: the
    latent region between and slightly beyond the codes, where IRVAE and FMVAE enforce
    their geometry (Lee et al. 2022; Chen et al. 2020).

    **Arguments:**

    - `z`: latent codes, shape (B, d); `key`: a JAX PRNG key.
    - `eta`: how far beyond the segment between two codes a point may lie.

    **Returns:** the mixup points, shape (B, d).
    """
    key_perm, key_a = jr.split(key)
    a = jr.uniform(key_a, (z.shape[0], 1), z.dtype, minval=-eta, maxval=1 + eta)
    return a * z + (1 - a) * z[jr.permutation(key_perm, z.shape[0])]


def _jacobian_probes(decoder: Fn, z: Batch, v: Float[Array, "probes batch d"]):
    """Jv and JᵀJv for every point and probe, each from one JVP and one VJP;
    shapes (batch, probes, D) and (batch, probes, d).

    The decoder is linearized once over the whole batch (not point by point under
    `vmap`): the JVP and its transpose are then batched matrix products, about 10 %
    cheaper per training step than per-point linearizations."""
    _, jvp = jax.linearize(jax.vmap(decoder), z)
    transpose = jax.linear_transpose(jvp, z)

    def probe(v):
        jv = jvp(v)
        return jv, transpose(jv)[0]

    jv, jtjv = jax.vmap(probe)(v)
    return jnp.moveaxis(jv, 0, 1), jnp.moveaxis(jtjv, 0, 1)


def isometry(
    decoder: Fn, z: Batch, key: PRNGKeyArray, *, eta: float = 0.2, probes: int = 1
) -> Float[Array, ""]:
    """Relaxed distortion measure E[Tr G²] / E[Tr G]² of IRVAE (Lee et al. 2022).

    Expectations over the mixup points of `z` (`eta`; drawn with the first half of
    `jr.split(key)`), traces by Hutchinson's estimator with `probes` probes v ~ N(0, I)
    per point: E‖Jv‖² = Tr G, E‖JᵀJv‖² = Tr G² (one JVP + one VJP each), as in IRVAE.
    Its minimum 1/d is reached exactly when G = cI everywhere for one c: the decoder is
    then a scaled isometry.

    **Arguments:**

    - `decoder`: any JAX callable from one latent point (d,) to one output (D,).
    - `z`: a latent batch, shape (B, d).
    - `key`: a JAX PRNG key.
    - `eta`: the mixup range (see `mixup`); `probes`: Hutchinson probes per point.

    **Returns:** a scalar ≥ 1/d.
    """
    _check_batch(z)
    key_mix, key_v = jr.split(key)
    points = mixup(z, key_mix, eta)
    jv, jtjv = _jacobian_probes(decoder, points, jr.normal(key_v, (probes, *z.shape), z.dtype))
    return jnp.mean(jnp.sum(jtjv**2, -1)) / jnp.mean(jnp.sum(jv**2, -1)) ** 2


def flat(
    decoder: Fn, z: Batch, key: PRNGKeyArray, *, eta: float = 0.2, probes: int = 1
) -> Float[Array, ""]:
    """Flatness penalty E‖G − cI‖²_F with c = E[Tr G] / d (FMVAE, Chen et al. 2020).

    Estimated as the mean of ‖(G − ĉI) v‖² over probes v ~ N(0, I) at the mixup points
    (drawn as in `isometry`), with ĉ = Σ‖Jv‖² / Σ‖v‖²: unbiased as ĉ → c, and exactly zero
    for a scaled isometry, so the noise vanishes at the optimum.

    **Arguments:**

    - `decoder`: any JAX callable from one latent point (d,) to one output (D,).
    - `z`: a latent batch, shape (B, d).
    - `key`: a JAX PRNG key.
    - `eta`: the mixup range (see `mixup`); `probes`: probes per point.

    **Returns:** a scalar ≥ 0.
    """
    _check_batch(z)
    key_mix, key_v = jr.split(key)
    v = jr.normal(key_v, (probes, *z.shape), z.dtype)
    jv, jtjv = _jacobian_probes(decoder, mixup(z, key_mix, eta), v)
    v = jnp.moveaxis(v, 0, 1)  # (batch, probes, d) like jtjv
    c = jnp.sum(jv**2) / jnp.sum(v**2)
    return jnp.mean(jnp.sum((jtjv - c * v) ** 2, -1))


def _logdet_lanczos(matvec, probe, steps: int):
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017): probeᵀ log(G) probe from
    `steps` Lanczos steps with full reorthogonalisation (exact when steps = d)."""
    norm = jnp.linalg.norm(probe)
    q = probe / norm
    basis = jnp.zeros((steps, probe.shape[0]), probe.dtype).at[0].set(q)
    alphas, betas = [], []
    for i in range(steps):  # `steps` is small and static: unrolled
        w = matvec(basis[i])
        alphas.append(basis[i] @ w)
        w = w - basis.T @ (basis @ w)  # rows beyond i are still zero
        w = w - basis.T @ (basis @ w)
        if i + 1 < steps:
            beta = jnp.linalg.norm(w)
            betas.append(beta)
            basis = basis.at[i + 1].set(w / beta)
    tri = jnp.diag(jnp.stack(alphas))
    if betas:
        off = jnp.stack(betas)
        tri = tri + jnp.diag(off, 1) + jnp.diag(off, -1)
    theta, vecs = jnp.linalg.eigh(tri)
    return norm**2 * jnp.sum(vecs[0] ** 2 * jnp.log(theta))


def log_det_metric(
    decoder: Fn,
    z: Float[Array, " d"],
    key: PRNGKeyArray | None = None,
    *,
    probes: int = 4,
    steps: int = 8,
    exact_max_dim: int = 8,
) -> Float[Array, ""]:
    """log det G(z): exact (d JVPs and a QR factorisation of J) for d ≤ `exact_max_dim`,
    otherwise stochastic Lanczos quadrature with `probes` Rademacher probes of `steps`
    Lanczos steps each, every step one JVP + VJP.

    **Arguments:**

    - `decoder`: any JAX callable from one latent point (d,) to one output (D,).
    - `z`: one latent point, shape (d,).
    - `key`: a JAX PRNG key, needed only above `exact_max_dim`.
    - `probes`, `steps`: of the stochastic Lanczos quadrature.
    - `exact_max_dim`: the largest d computed exactly.

    **Returns:** a scalar.
    """
    d = z.shape[-1]
    if d <= exact_max_dim:  # the pullback's QR path: twice its log-volume
        return 2 * Pullback(decoder, dim=d).log_volume(z)
    if key is None:
        raise ValueError(
            f"`key` is needed for the stochastic log-determinant (d = {d} > exact_max_dim)."
        )
    _, jvp = jax.linearize(decoder, z)
    transpose = jax.linear_transpose(jvp, z)

    def matvec(u):
        return transpose(jvp(u))[0]

    signs = jr.rademacher(key, (probes, d), z.dtype)
    steps = min(steps, d)
    return jnp.mean(jax.vmap(lambda p: _logdet_lanczos(matvec, p, steps))(signs))


def volume(
    decoder: Fn,
    z: Batch,
    key: PRNGKeyArray,
    *,
    probes: int = 4,
    steps: int = 8,
    exact_max_dim: int = 8,
) -> Float[Array, ""]:
    """Variance over the batch of log det G (Geometric Autoencoder, Nazari et al. 2023):
    zero when the decoder scales volume by the same factor everywhere. Exact for
    d ≤ `exact_max_dim`, stochastic Lanczos quadrature above (see `log_det_metric`).

    **Arguments:**

    - `decoder`: any JAX callable from one latent point (d,) to one output (D,).
    - `z`: a latent batch, shape (B, d).
    - `key`: a JAX PRNG key. (used only above `exact_max_dim`)
    - `probes`, `steps`, `exact_max_dim`: as for `log_det_metric`.

    **Returns:** a scalar ≥ 0.
    """
    _check_batch(z)
    keys = jr.split(key, z.shape[0])
    logdets = jax.vmap(
        lambda z, k: log_det_metric(
            decoder, z, k, probes=probes, steps=steps, exact_max_dim=exact_max_dim
        )
    )(z, keys)
    return jnp.var(logdets)


def contractive(encoder: Fn, x: Batch, key: PRNGKeyArray | None = None) -> Float[Array, ""]:
    """Contractive penalty E‖J_enc(x)‖²_F (Rifai et al. 2011), exact from d VJPs per
    point (one per latent dimension; d ≪ D).

    **Arguments:**

    - `encoder`: any JAX callable from one input (D,) to one latent point (d,).
    - `x`: a batch of inputs, shape (B, D).
    - `key`: unused; it keeps the signature of the other regularizers.

    **Returns:** a scalar ≥ 0.
    """
    _check_batch(x, "x")

    def one(x):
        z, vjp = jax.vjp(encoder, x)
        (rows,) = jax.vmap(vjp)(jnp.eye(z.shape[0], dtype=z.dtype))
        return jnp.sum(rows**2)

    return jnp.mean(jax.vmap(one)(x))


def second_fundamental_form(decoder: Fn, z: Float[Array, " d"]) -> Float[Array, "D d d"]:
    """II[:, i, j] = P⊥ ∂ᵢ∂ⱼ f(z), the normal part of the decoder's Hessian (exact; for
    tests and small decoders).

    **Arguments:**

    - `decoder`: any JAX callable from one latent point (d,) to one output (D,).
    - `z`: one latent point, shape (d,).

    **Returns:** shape (D, d, d), symmetric in its last two axes.
    """
    jac = jax.jacfwd(decoder)(z)
    hess = jax.jacfwd(jax.jacfwd(decoder))(z)
    q, _ = jnp.linalg.qr(jac)
    return hess - jnp.einsum("ak,bk,bij->aij", q, q, hess)


def curvature(decoder: Fn, z: Batch, key: PRNGKeyArray, *, probes: int = 1) -> Float[Array, ""]:
    """Extrinsic curvature penalty E_z E_u ‖II(u, u)‖² with u ~ N(0, I) in latent
    coordinates: per probe one second-order JVP, per point the tangent projection from J
    (d JVPs and a QR factorisation).

    For Gaussian u the exact value is E_z[2 Σᵢⱼ ‖IIᵢⱼ‖² + ‖Σᵢ IIᵢᵢ‖²] (see
    `second_fundamental_form`): zero iff the decoded surface is totally geodesic — an
    affine piece of a plane in data space.

    **Arguments:**

    - `decoder`: any JAX callable from one latent point (d,) to one output (D,).
    - `z`: a latent batch, shape (B, d).
    - `key`: a JAX PRNG key.
    - `probes`: directions u per point.

    **Returns:** a scalar ≥ 0.
    """
    _check_batch(z)
    u = jr.normal(key, (probes, *z.shape), z.dtype)

    def one(z, u):
        q, _ = jnp.linalg.qr(jax.jacfwd(decoder)(z))

        def probe(u):
            def first(z):
                return jax.jvp(decoder, (z,), (u,))[1]

            second = jax.jvp(first, (z,), (u,))[1]
            return jnp.sum((second - q @ (q.T @ second)) ** 2)

        return jnp.mean(jax.vmap(probe)(u))

    return jnp.mean(jax.vmap(one, in_axes=(0, 1))(z, u))


REGULARIZERS: dict[str, Callable] = {
    "isometry": isometry,
    "flat": flat,
    "volume": volume,
    "contractive": contractive,
    "curvature": curvature,
}

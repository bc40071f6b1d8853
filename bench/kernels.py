"""Kernel cost against the decoder's forward pass, and fast paths against nested autodiff.

Decoder: tanh MLP d → 256 → 256 → 784, batch 256, float32 (issue: core engine).

    python bench/kernels.py [--batch 256] [--dims 2,8,16,32,64] [--json bench/results/kernels.json]

Every ratio is measured in this one process: kernel time ÷ forward-pass time, and
naive time ÷ jgeo time. Compile time is reported separately. The Fisher–Rao rows time
the spray of `jgeo.FisherPullback` (the decoder's outputs read as logits, log-rates,
categories of 4, or a Gaussian's mean with a second network's softplus as std) against
the Euclidean pullback of the same decoder's mean (`fisher_rows`).

`riemann_ratio` measures nested autodiff ÷ the Gauss equation at d = 8 in alternating
rounds (the median of per-round ratios, with their range). `dimension_rows` sweeps the
latent dimension d for the MLP decoder and for `jgeo.nn.ConvDecoder` to 28 × 28 and
32 × 32 × 3 images: each kernel's cost in decoder forward passes and its peak memory as
XLA accounts it, exp maps and log maps (`EnergyBVP`, rtol 1e-3) on a smaller batch, and
the exponent p of cost ∝ dᵖ fitted over d.
"""

import argparse

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _decoder import decoder
from _timing import environment, peak_bytes, print_table, time_jitted, time_ratio, write_json

import jgeo


def batched(kernel):
    """jit ∘ vmap over the batch axis of every argument after the metric."""
    return jax.jit(jax.vmap(kernel, in_axes=(None, 0, 0)))


def naive_spray(metric, z, v):
    # What one writes without jgeo's fast path: Γ by autodiff of G, then contract.
    gamma = jgeo.christoffel(metric, z, method="autodiff")
    return -jnp.einsum("kij,i,j->k", gamma, v, v)


def run(batch: int) -> list[dict]:
    key = jr.key(0)
    rows = []
    for d, kernels in [
        (
            16,
            {
                "geodesic_acceleration (jgeo, fast path)": lambda m, z, v: (
                    jgeo.geodesic_acceleration(m, z, v)
                ),
                "geodesic_acceleration (fast path, no NaN check)": lambda m, z, v: (
                    m.geodesic_acceleration(z, v)
                ),
                "geodesic_acceleration (jgeo, autodiff path)": lambda m, z, v: (
                    jgeo.geodesic_acceleration(m, z, v, method="autodiff")
                ),
                "naive: -Γ(v,v), Γ by autodiff of G": naive_spray,
            },
        ),
        (
            8,
            {
                "riemann (jgeo, Gauss equation)": lambda m, z, v: jgeo.riemann(m, z),
                "naive: riemann by nested autodiff of G": lambda m, z, v: jgeo.riemann(
                    m, z, method="autodiff"
                ),
                "sectional_curvature (jgeo, fast path)": lambda m, z, v: jgeo.sectional_curvature(
                    m, z, v, jnp.roll(v, 1)
                ),
            },
        ),
    ]:
        kz, kv, kd = jr.split(jr.fold_in(key, d), 3)
        mlp = decoder(kd, d, jnp.float32)
        metric = jgeo.Pullback(mlp)
        z = jr.normal(kz, (batch, d), jnp.float32)
        v = jr.normal(kv, (batch, d), jnp.float32)
        forward_fn = jax.jit(jax.vmap(lambda m, x: m.immersion(x), in_axes=(None, 0)))
        forward, _ = time_jitted(forward_fn, metric, z)
        rows.append({"d": d, "kernel": "decoder forward pass", **forward, "x forward": 1.0})
        for name, kernel in kernels.items():
            timing, _ = time_jitted(batched(kernel), metric, z, v)
            rows.append(
                {
                    "d": d,
                    "kernel": name,
                    **timing,
                    "x forward": timing["median_s"] / forward["median_s"],
                }
            )
    return rows


def fisher_rows(batch: int, d: int = 16) -> list[dict]:
    """The spray of each Fisher–Rao pullback ÷ the Euclidean pullback JᵀJ of the same
    decoder read as its distribution's mean (what one pulls back without jgeo: the mean
    image σ(ℓ), the probabilities, the rates; (μ, σ) for the Gaussian), and ÷ JᵀJ of the
    raw network output (a linear last layer, with no elementwise map after it)."""
    kz, kv, kd, ks = jr.split(jr.key(1), 4)
    mlp, std_mlp = decoder(kd, d, jnp.float32), decoder(ks, d, jnp.float32)
    std = lambda z: jax.nn.softplus(std_mlp(z))  # noqa: E731
    categories = lambda z: mlp(z).reshape(-1, 4)  # noqa: E731
    pairs = {  # family: (Fisher pullback, Euclidean pullback of the mean)
        "bernoulli": (
            jgeo.FisherPullback(mlp, "bernoulli"),
            jgeo.Pullback(lambda z: jax.nn.sigmoid(mlp(z))),
        ),
        "categorical (196 × 4)": (
            jgeo.FisherPullback(categories, "categorical"),
            jgeo.Pullback(lambda z: jax.nn.softmax(categories(z)).ravel()),
        ),
        "poisson": (jgeo.FisherPullback(mlp, "poisson"), jgeo.Pullback(lambda z: jnp.exp(mlp(z)))),
        "gaussian (μ, σ)": (
            jgeo.FisherPullback(lambda z: (mlp(z), std(z)), "gaussian"),
            jgeo.StochasticPullback(mlp, std),
        ),
    }
    z = jr.normal(kz, (batch, d), jnp.float32)
    v = jr.normal(kv, (batch, d), jnp.float32)
    spray = batched(lambda m, y, w: jgeo.geodesic_acceleration(m, y, w))
    raw, _ = time_jitted(spray, jgeo.Pullback(mlp), z, v)
    rows = []
    for family, (fisher, euclidean) in pairs.items():
        timing, _ = time_jitted(spray, fisher, z, v)
        mean, _ = time_jitted(spray, euclidean, z, v)
        rows.append({
            "d": d,
            "family": family,
            **timing,
            "mean JᵀJ_s": mean["median_s"],
            "x mean JᵀJ": timing["median_s"] / mean["median_s"],
            "x raw JᵀJ": timing["median_s"] / raw["median_s"],
        })  # fmt: skip
    return rows


def riemann_ratio(batch: int, d: int = 8) -> dict:
    """Nested autodiff ÷ the Gauss equation for `riemann`, interleaved (`time_ratio`)."""
    kz, kd = jr.split(jr.key(2))
    metric = jgeo.Pullback(decoder(kd, d, jnp.float32))
    z = jr.normal(kz, (batch, d), jnp.float32)

    def kernel(method):
        return jax.jit(jax.vmap(lambda m, x: jgeo.riemann(m, x, method=method), in_axes=(None, 0)))

    return {"d": d, "batch": batch, **time_ratio(kernel("autodiff"), kernel("auto"), metric, z)}


def _conv_decoder(d: int, image_shape: tuple) -> object:
    from flax import nnx

    from jgeo.nn import ConvDecoder

    graphdef, state = nnx.split(ConvDecoder(d, image_shape, rngs=nnx.Rngs(0)))
    state = jax.tree.map(lambda a: a.astype(jnp.float32), state)
    return lambda z: nnx.merge(graphdef, state)(z)


DIMENSION_KERNELS = {
    "metric G": lambda m, z, v: m(z),
    "geodesic_acceleration": lambda m, z, v: jgeo.geodesic_acceleration(m, z, v),
    "sectional_curvature": lambda m, z, v: jgeo.sectional_curvature(m, z, v, jnp.roll(v, 1)),
    "log_volume": lambda m, z, v: jgeo.log_volume(m, z),
    "riemann": lambda m, z, v: jgeo.riemann(m, z),
}


def dimension_rows(batch: int, dims: list[int], geodesic_batch: int = 16) -> list[dict]:
    """Each kernel's cost against d, for the MLP decoder and two conv decoders."""
    decoders = {
        "MLP d→256→256→784": lambda key, d: decoder(key, d, jnp.float32),
        "conv d→28×28": lambda key, d: _conv_decoder(d, (28, 28)),
        "conv d→32×32×3": lambda key, d: _conv_decoder(d, (32, 32, 3)),
    }
    rows = []
    for name, make in decoders.items():
        for d in dims:
            kz, kv, kd = jr.split(jr.fold_in(jr.key(3), d), 3)
            metric = jgeo.Pullback(make(kd, d))
            z = jr.normal(kz, (batch, d), jnp.float32)
            v = jr.normal(kv, (batch, d), jnp.float32)
            forward_fn = jax.jit(jax.vmap(lambda m, x: m.immersion(x), in_axes=(None, 0)))
            forward, _ = time_jitted(forward_fn, metric, z)
            for kernel, fn in DIMENSION_KERNELS.items():
                if kernel == "riemann" and d > 32:
                    continue  # (d(d+1)/2)² inner products per point: see the docs
                jitted = batched(fn)
                timing, _ = time_jitted(jitted, metric, z, v, repeats=5)
                peak = peak_bytes(jitted, metric, z, v) or 0
                rows.append({"decoder": name, "d": d, "kernel": kernel, **timing,
                             "x forward": timing["median_s"] / forward["median_s"],
                             "peak_MiB": peak / 2**20})  # fmt: skip
                print(rows[-1], flush=True)
            zs, vs = z[:geodesic_batch], 0.5 * v[:geodesic_batch]
            for kernel, fn in {
                "exp_map": lambda m, x, u: jgeo.exp_map(m, x, u, throw=False),
                "log_map (EnergyBVP, rtol 1e-3)": lambda m, x, u: jgeo.log_map(
                    m, x, x + u, solver=jgeo.EnergyBVP(), rtol=1e-3, atol=1e-3, throw=False
                ),
            }.items():
                timing, _ = time_jitted(batched(fn), metric, zs, vs, repeats=1, min_seconds=0.0)
                per = timing["median_s"] / geodesic_batch
                rows.append({"decoder": name, "d": d, "kernel": kernel, **timing,
                             "per_item_s": per,
                             "x forward": per / (forward["median_s"] / batch)})  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def fit_exponents(rows: list[dict]) -> list[dict]:
    """The exponent p of cost (in forward passes) ∝ dᵖ, least squares in log–log."""
    fits = []
    for name in dict.fromkeys(r["decoder"] for r in rows):
        for kernel in dict.fromkeys(r["kernel"] for r in rows):
            points = [(r["d"], r["x forward"]) for r in rows if r["decoder"] == name
                      and r["kernel"] == kernel and r["d"] >= 8]  # fmt: skip
            if len(points) >= 2:
                d, cost = np.log(np.array(points)).T
                fits.append({"decoder": name, "kernel": kernel,
                             "exponent": float(np.polyfit(d, cost, 1)[0]),
                             "dims": [int(round(np.exp(x))) for x in d]})  # fmt: skip
    return fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dims", default="2,8,16,32,64")
    parser.add_argument("--json", default="bench/results/kernels.json")
    args = parser.parse_args()
    rows = run(args.batch)
    fisher = fisher_rows(args.batch)
    riemann = riemann_ratio(args.batch)
    print("riemann, nested autodiff ÷ Gauss equation, interleaved:", riemann, flush=True)
    dims = dimension_rows(args.batch, [int(d) for d in args.dims.split(",")])
    exponents = fit_exponents(dims)
    by_name = {(r["d"], r["kernel"]): r["median_s"] for r in rows}
    spray = by_name[(16, "geodesic_acceleration (jgeo, fast path)")]
    summary = {
        "spray_x_forward": spray / by_name[(16, "decoder forward pass")],
        "naive_spray_over_fast": by_name[(16, "naive: -Γ(v,v), Γ by autodiff of G")] / spray,
        "naive_riemann_over_gauss": riemann["ratio"],
        "fisher_spray_over_mean_pullback": max(r["x mean JᵀJ"] for r in fisher),
    }
    print(f"batch {args.batch}, float32, {environment()['backend']}\n")
    print_table(rows, ["d", "kernel", "median_s", "x forward", "compile_s"])
    print("\nFisher–Rao pullback sprays ÷ JᵀJ of the decoded mean, and of the raw outputs")
    columns = ["d", "family", "median_s", "mean JᵀJ_s", "x mean JᵀJ", "x raw JᵀJ", "compile_s"]
    print_table(fisher, columns)
    print()
    for name, value in summary.items():
        print(f"{name}: {value:.1f}")
    write_json(
        args.json,
        {
            "environment": environment(),
            "batch": args.batch,
            "rows": rows,
            "fisher": fisher,
            "riemann_ratio": riemann,
            "dimensions": dims,
            "exponents": exponents,
            "summary": summary,
        },
    )


if __name__ == "__main__":
    main()

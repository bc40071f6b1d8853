"""Kernel cost against the decoder's forward pass, and fast paths against nested autodiff.

Decoder: tanh MLP d → 256 → 256 → 784, batch 256, float32 (issue: core engine).

    python bench/kernels.py [--batch 256] [--json bench/results/kernels.json]

Every ratio is measured in this one process: kernel time ÷ forward-pass time, and
naive time ÷ jgeo time. Compile time is reported separately. The Fisher–Rao rows time
the spray of `jgeo.FisherPullback` (the decoder's outputs read as logits, log-rates,
categories of 4, or a Gaussian's mean with a second network's softplus as std) against
the Euclidean pullback of the same decoder's mean (`fisher_rows`).
"""

import argparse

import jax
import jax.numpy as jnp
import jax.random as jr
from _decoder import decoder
from _timing import environment, print_table, time_jitted, write_json

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", default="bench/results/kernels.json")
    args = parser.parse_args()
    rows = run(args.batch)
    fisher = fisher_rows(args.batch)
    by_name = {(r["d"], r["kernel"]): r["median_s"] for r in rows}
    spray = by_name[(16, "geodesic_acceleration (jgeo, fast path)")]
    summary = {
        "spray_x_forward": spray / by_name[(16, "decoder forward pass")],
        "naive_spray_over_fast": by_name[(16, "naive: -Γ(v,v), Γ by autodiff of G")] / spray,
        "naive_riemann_over_gauss": by_name[(8, "naive: riemann by nested autodiff of G")]
        / by_name[(8, "riemann (jgeo, Gauss equation)")],
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
            "summary": summary,
        },
    )


if __name__ == "__main__":
    main()

"""The `jgeo` command.

`jgeo` (or `jgeo demo`) prints a short geometry demo: the curvature of a sphere, where
the answer is known, and of a small random decoder, where jgeo's fast path is checked
against nested autodiff.
"""

import argparse
import sys
import time


def demo(seed: int = 0) -> int:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import jgeo

    jax.config.update("jax_enable_x64", True)
    print(f"jgeo {jgeo.__version__} · jax {jax.__version__} on {jax.default_backend()}\n")

    radius = 2.0

    def sphere(q):  # spherical coordinates (θ, φ) on the sphere of radius 2
        theta, phi = q
        return radius * jnp.array(
            [jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)]
        )

    metric = jgeo.Pullback(sphere)
    x = jnp.array([0.7, 0.3])
    print(f"Sphere of radius {radius} as the pullback of its embedding, at (θ, φ) = {x.tolist()}:")
    rows = [
        ("Gaussian curvature", jgeo.gaussian_curvature(metric, x), 1 / radius**2),
        ("scalar curvature", jgeo.scalar_curvature(metric, x), 2 / radius**2),
        ("Γ^θ_φφ", jgeo.christoffel(metric, x)[0, 1, 1], -jnp.sin(0.7) * jnp.cos(0.7)),
        ("log volume", jgeo.log_volume(metric, x), jnp.log(radius**2 * jnp.sin(0.7))),
    ]
    for name, value, expected in rows:
        print(f"  {name:<20} {float(value): .12f}   closed form {float(expected): .12f}")

    d, big_d = 3, 64
    decoder = eqx.nn.MLP(d, big_d, 64, depth=2, activation=jnp.tanh, key=jr.key(seed))
    metric = jgeo.Pullback(decoder)
    points = jr.normal(jr.key(seed + 1), (512, d))
    print(f"\nRandom tanh decoder R^{d} → R^{big_d}, 512 latent points (jit ∘ vmap):")
    for method in ["auto", "autodiff"]:
        kernel = jax.jit(
            jax.vmap(lambda m, z: jgeo.scalar_curvature(m, z, method=method), in_axes=(None, 0))
        )
        jax.block_until_ready(kernel(metric, points))
        start = time.perf_counter()
        scalars = jax.block_until_ready(kernel(metric, points))
        elapsed = 1e3 * (time.perf_counter() - start)
        label = "Gauss equation" if method == "auto" else "nested autodiff"
        print(
            f"  scalar curvature via {label:<16} mean {float(scalars.mean()): .6f}  "
            f"range [{float(scalars.min()): .4f}, {float(scalars.max()): .4f}]  {elapsed:.1f} ms"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="jgeo", description="Riemannian geometry of learned latent spaces."
    )
    sub = parser.add_subparsers(dest="command")
    demo_parser = sub.add_parser("demo", help="print a short curvature demo (the default)")
    demo_parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return demo(getattr(args, "seed", 0))


if __name__ == "__main__":
    sys.exit(main())

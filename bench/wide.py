"""Wide metrics without forming G (issue 33): `metric_operator(...).mv`, `local_basis`
(k = 16) and `log_volume(method="slq")` against the dense route (the metric matrix from
d JVPs, then `eigh` / QR), for d ∈ {64, 256, 1,024, 4,096}.

Decoders, float32: a tanh MLP d → 2d → 2d; `jgeo.nn.ConvDecoder` to 64 × 64 × 3 images;
and a classifier head d → 256 → 10 read at a hidden layer of width d through
`FisherPullback(head, "categorical")` (rank ≤ 9; its log-volume with jitter 1e-4). Each
with first-layer weights whose singular values decay like i^(−1/2) ("decaying": the
anisotropic Jacobian spectra of trained networks) and at its random initialisation
("random": a flat top, which Krylov methods need several times the steps for).

Times are per point, from a `jax.vmap`ped batch of 32 points (as probes run them; the
median of repeats after compilation, which is reported apart), and for one point alone
(`single_*`). Memory is XLA's account of the compiled batch program (temporaries and
outputs). The dense route runs where d ≤ 1,024; at 4,096 it is only compiled, for its
memory. Accuracy: the largest relative error of the top-16 eigenvalues (those above
1e-6 λ₁) against float64 `eigh` of the float32 dense metric; the log-volume's relative
error against float64 `slogdet` of it, median and maximum over the 32 points.

    python bench/wide.py [--parts mv,basis,slq,curve,floor,engine] [--dims 64,256,1024,4096]
                         [--decoders mlp,conv,head] [--json bench/results/wide.json]

`curve` is the log-volume's error against its cost (probes × steps, MLP decoder) with
the dense time beside it; `floor` prices 1 % for any Hutchinson-type estimator: the
spread of one probe from the exact spectrum (and after deflating the top 16 exactly),
the probes 1 % at two standard deviations needs, and how many products a tenth of the
dense route's time buys. `--parts` reruns some parts and keeps the others' rows in the
JSON. `engine` compares
jgeo's Lanczos with matfree's (Krämer et al. 2024) where matfree is importable;
`geodesics` times exp maps and energy-minimising connecting geodesics with their linear
solves by Cholesky against conjugate gradients (`Pullback(f, linear_solver=lineax.CG(...))`).
"""

import os

# LAPACK (eigh, QR, slogdet: the dense route, and the Lanczos tridiagonal's eigh) on one
# thread: with OpenBLAS's default threads on this shared 2-core machine a 160 × 160 eigh
# took 160 ms instead of 2.7 ms (threads spinning against other processes), which would
# flatter the Krylov route. XLA's own threads are unaffected.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from _timing import (  # noqa: E402
    compiled_bytes,
    environment,
    print_table,
    time_ratio,
    write_json,
)

import jgeo  # noqa: E402

BATCH, K = 32, 16
STEPS = (48, 160)  # local_basis: the default max(3k, 32), and ~3× it for flat spectra
DENSE_MAX_D = 1024


def _decay_first_layer(weight: np.ndarray) -> np.ndarray:
    """The same singular vectors, singular values s₁·i^(−1/2)."""
    u, s, vt = np.linalg.svd(np.asarray(weight, np.float64), full_matrices=False)
    return (u * (s[0] * np.arange(1, s.size + 1) ** -0.5)) @ vt


def make(kind: str, d: int, weights: str):
    """(metric for the spectrum and the operator, metric for the log-volume)."""
    key = jr.key(d)
    if kind == "mlp":
        net = eqx.nn.MLP(d, 2 * d, 2 * d, depth=1, activation=jnp.tanh, key=key)
        if weights == "decaying":
            w = _decay_first_layer(net.layers[0].weight)
            net = eqx.tree_at(lambda n: n.layers[0].weight, net, jnp.asarray(w, jnp.float32))
        metric = jgeo.Pullback(net)
        return metric, metric
    if kind == "conv":
        from flax import nnx

        from jgeo.nn import ConvDecoder

        net = ConvDecoder(d, (64, 64, 3), rngs=nnx.Rngs(d))
        if weights == "decaying":
            w = _decay_first_layer(np.asarray(net.inp.kernel[...]).T).T
            net.inp.kernel[...] = jnp.asarray(w, jnp.float32)
        metric = jgeo.Pullback(net)
        return metric, metric
    if kind == "head":
        head = eqx.nn.MLP(d, 10, 256, depth=1, activation=jnp.tanh, key=key)
        if weights == "decaying":
            w = _decay_first_layer(head.layers[0].weight)
            head = eqx.tree_at(lambda n: n.layers[0].weight, head, jnp.asarray(w, jnp.float32))
        return (
            jgeo.FisherPullback(head, "categorical"),
            jgeo.FisherPullback(head, "categorical", jitter=1e-4),
        )
    raise ValueError(kind)


def points(d: int):
    xs = jr.normal(jr.key(1), (BATCH, d), jnp.float32)
    vs = jr.normal(jr.key(2), (BATCH, d), jnp.float32)
    return xs, vs, jr.split(jr.key(3), BATCH)


def batched(fn):
    return jax.jit(jax.vmap(fn, in_axes=(None, 0, 0)))


def run(fn, *args, repeats: int = 3) -> tuple[dict, object]:
    """Compile, then the median of `repeats` calls (one call when a call takes > 20 s)."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - start
    times, out = [], None
    while len(times) < repeats:
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
        if times[0] > 20:
            break
    memory = compiled_bytes(compiled)
    timing = {
        "compile_s": compile_s,
        "s": float(np.median(times)),
        "MiB": None if memory is None else memory / 2**20,
    }
    return timing, out


def dense_reference(metric, xs) -> tuple[np.ndarray, np.ndarray, dict]:
    """float64 eigenvalues (descending) and ½ log det of the float32 dense metrics, and
    the timing of forming them."""
    timing, g = run(jax.jit(jax.vmap(metric)), xs, repeats=1)
    g = np.asarray(g, np.float64)
    values = np.linalg.eigvalsh(g)[:, ::-1]
    return values, 0.5 * np.linalg.slogdet(g)[1], timing


def eigen_error(values, reference) -> float:
    reference = reference[:, : values.shape[1]]
    used = reference > 1e-6 * reference[:, :1]
    return float(np.max(np.where(used, np.abs(values - reference) / reference, 0)))


def _volume_reference(volume_metric, xs):
    g = np.asarray(jax.jit(jax.vmap(volume_metric))(xs), np.float64)
    return 0.5 * np.linalg.slogdet(g)[1], g


# The floor prices each probe at FLOOR_STEPS Lanczos steps (where the curve shows the
# quadrature's bias gone on these decoders), and a product at the time of
# SLQ(probes=FLOOR_PROBES, steps=FLOOR_STEPS) over its products; spreads over FLOOR_POINTS.
FLOOR_STEPS, FLOOR_PROBES, FLOOR_POINTS = 24, 4, 8


def probe_spreads(g: np.ndarray, deflate: int) -> tuple[float, float]:
    """The standard deviation of one Rademacher probe's zᵀ log(G) z, relative to
    |tr log G|: √(2 Σ_{i≠j} (log G)ᵢⱼ²) / |tr log G| (float64, from one
    eigendecomposition); and, with the top `deflate` = k eigenpairs taken exactly, that
    of Hutchinson on the rest (B = (I − P)(log G − c)(I − P), c the mean log-eigenvalue
    of the rest, so that the shift costs nothing): what deflation (Hutch++) can buy."""
    lam, vec = np.linalg.eigh(g)
    if lam.min() <= 0:
        raise ValueError("probe_spreads: G is not positive definite (give the metric jitter)")
    logs = np.log(lam)

    def spread(rest: slice, shift: float) -> float:
        b = (vec[:, rest] * (logs[rest] - shift)) @ vec[:, rest].T
        off = np.sum(b**2) - np.sum(np.diagonal(b) ** 2)
        return float(np.sqrt(2 * off) / abs(logs.sum()))

    rest = slice(0, lam.size - deflate)
    return spread(slice(None), 0.0), spread(rest, logs[rest].mean())


def probes_for_1pct(spread: float) -> int:
    """Probes that keep the value within 1 % at two standard deviations: (2s/0.01)²."""
    return int(np.ceil((2 * spread / 0.01) ** 2))


def case_rows(kind, d, weights, parts) -> dict:
    metric, volume_metric = make(kind, d, weights)
    xs, vs, keys = points(d)
    base = {"decoder": kind, "d": d, "weights": weights}
    out = {p: [] for p in parts}
    dense_fits = d <= DENSE_MAX_D
    reference = volume = None
    dense_volume = batched(lambda m, x, k: jgeo.log_volume(m, x))
    if dense_fits and ({"basis", "slq", "curve", "floor"} & set(parts)):
        reference, _, _ = dense_reference(metric, xs)
        volume, volume_g = _volume_reference(volume_metric, xs)

    if "mv" in parts:
        t_op, mv = run(batched(lambda m, x, v: jgeo.metric_operator(m, x).mv(v)), metric, xs, vs)
        forward, _ = run(
            jax.jit(jax.vmap(lambda m, x, v: m.immersion(x), in_axes=(None, 0, 0))), metric, xs, vs
        )
        row = {
            **base,
            "forward_s": forward["s"] / BATCH,
            "mv_s": t_op["s"] / BATCH,
            "mv_MiB": t_op["MiB"],
        }
        dense_mv = batched(lambda m, x, v: m(x) @ v)
        if dense_fits:
            t_dense, expected = run(dense_mv, metric, xs, vs, repeats=1)
            error = np.max(np.abs(np.asarray(mv) - expected)) / np.max(np.abs(expected))
            row.update(
                dense_s=t_dense["s"] / BATCH, dense_MiB=t_dense["MiB"], mv_error=float(error)
            )
        else:
            row.update(dense_MiB=compiled_bytes(dense_mv.lower(metric, xs, vs).compile()) / 2**20)
        out["mv"].append(row)
        print(row, flush=True)

    if "basis" in parts:
        row = dict(base)
        for steps in STEPS:
            if steps > d:
                continue
            fn = batched(lambda m, x, k, s=steps: jgeo.local_basis(m, x, K, key=k, steps=s))
            timing, basis = run(fn, metric, xs, keys)
            row[f"lanczos{steps}_s"] = timing["s"] / BATCH
            row[f"lanczos{steps}_MiB"] = timing["MiB"]
            row[f"lanczos{steps}_compile_s"] = timing["compile_s"]
            row[f"lanczos{steps}_residual"] = float(
                np.max(np.asarray(basis.residuals) / np.asarray(basis.values[:, :1]))
            )
            if reference is not None:
                row[f"lanczos{steps}_error"] = eigen_error(np.asarray(basis.values), reference)
            single, _ = run(
                jax.jit(lambda m, x, k, s=steps: jgeo.local_basis(m, x, K, key=k, steps=s)),
                metric,
                xs[0],
                keys[0],
            )
            row[f"single_lanczos{steps}_s"] = single["s"]
        dense = batched(lambda m, x, k: jnp.linalg.eigh(m(x)))
        if dense_fits:
            timing, _ = run(dense, metric, xs, keys, repeats=1)
            row.update(dense_s=timing["s"] / BATCH, dense_MiB=timing["MiB"])
            single, _ = run(jax.jit(lambda m, x: jnp.linalg.eigh(m(x))), metric, xs[0], repeats=1)
            row["single_dense_s"] = single["s"]
        else:
            row["dense_MiB"] = compiled_bytes(dense.lower(metric, xs, keys).compile()) / 2**20
        out["basis"].append(row)
        print(row, flush=True)

    if "slq" in parts:
        row = dict(base)
        fn = batched(lambda m, x, k: jgeo.log_volume(m, x, method="slq", key=k))
        timing, slq = run(fn, volume_metric, xs, keys, repeats=1)
        row.update(
            slq_s=timing["s"] / BATCH, slq_MiB=timing["MiB"], slq_compile_s=timing["compile_s"]
        )
        single, _ = run(
            jax.jit(lambda m, x, k: jgeo.log_volume(m, x, method="slq", key=k)),
            volume_metric,
            xs[0],
            keys[0],
            repeats=1,
        )
        row["single_slq_s"] = single["s"]
        if dense_fits:
            relative = np.abs(np.asarray(slq, np.float64) / volume - 1)
            row.update(
                slq_error_median=float(np.median(relative)), slq_error_max=float(relative.max())
            )
            timing, exact = run(dense_volume, volume_metric, xs, keys, repeats=1)
            row.update(
                dense_s=timing["s"] / BATCH,
                dense_MiB=timing["MiB"],
                dense_error_max=float(np.max(np.abs(np.asarray(exact, np.float64) / volume - 1))),
            )
            single, _ = run(
                jax.jit(lambda m, x: jgeo.log_volume(m, x)), volume_metric, xs[0], repeats=1
            )
            row["single_dense_s"] = single["s"]
        else:
            row["dense_MiB"] = (
                compiled_bytes(dense_volume.lower(volume_metric, xs, keys).compile()) / 2**20
            )
        out["slq"].append(row)
        print(row, flush=True)

    if "curve" in parts and volume is not None:
        dense_timing, _ = run(dense_volume, volume_metric, xs, keys, repeats=1 if d > 256 else 3)
        for probes in (2, 3, 4, 8, 16):
            for steps in (16, 24, 32):
                method = jgeo.SLQ(probes=probes, steps=min(steps, d))
                fn = batched(lambda m, x, k, method=method: method.estimate(m, x, key=k))
                timing, slq = run(fn, volume_metric, xs, keys)
                value = np.asarray(slq.value, np.float64)
                relative = np.abs(value / volume - 1)
                # how often the estimate's own error bar covers the truth
                covered = np.abs(value - volume) <= 2 * np.asarray(slq.standard_error)
                row = {
                    **base,
                    "probes": probes,
                    "steps": steps,
                    "products": probes * steps,
                    "s": timing["s"] / BATCH,
                    "dense_s": dense_timing["s"] / BATCH,
                    "error_median": float(np.median(relative)),
                    "error_90": float(np.quantile(relative, 0.9)),
                    "error_max": float(relative.max()),
                    "within_2se": float(np.mean(covered)),
                }
                out["curve"].append(row)
                print(row, flush=True)

    if "floor" in parts and volume is not None:
        # What a tenth of the dense cost buys against what 1 % needs: the probes' spread
        # comes from the exact spectrum, so it binds every Hutchinson-type estimator.
        spreads, deflated = zip(*(probe_spreads(g, K) for g in volume_g[:FLOOR_POINTS]))
        steps = min(FLOOR_STEPS, d)
        method = jgeo.SLQ(probes=FLOOR_PROBES, steps=steps)
        fn = batched(lambda m, x, k: jgeo.log_volume(m, x, method=method, key=k))
        timing, _ = run(fn, volume_metric, xs, keys)
        dense_timing, _ = run(dense_volume, volume_metric, xs, keys)
        product_s = timing["s"] / BATCH / (FLOOR_PROBES * steps)
        spread, spread_deflated = float(np.median(spreads)), float(np.median(deflated))
        needed = probes_for_1pct(spread)
        row = {
            **base,
            "points": FLOOR_POINTS,
            "steps": steps,
            "priced_by": [FLOOR_PROBES, steps],
            "spread": spread,
            "spread_deflated": spread_deflated,
            "deflated_k": K,
            "probes_for_1pct": needed,
            "products_for_1pct": needed * steps,
            # fewer probes on the rest, plus the 3k Lanczos steps (local_basis's default)
            # that find the top k
            "products_for_1pct_deflated": probes_for_1pct(spread_deflated) * steps + 3 * K,
            "product_s": product_s,
            "dense_s": dense_timing["s"] / BATCH,
            "products_in_a_tenth": dense_timing["s"] / BATCH / 10 / product_s,
        }
        out["floor"].append(row)
        print(row, flush=True)
    return out


def geodesic_rows(dims=(64, 256, 1024)) -> list[dict]:
    """Geodesics of the MLP decoder (decaying weights), float32, dense against
    matrix-free (`Pullback(f, linear_solver=lineax.CG(rtol=1e-4, atol=1e-4,
    max_steps=1000))`: in float32, CG's residual stalls near κ(G)·ε, and at d = 1,024
    (κ ≈ 6e3) 1e-5 was not reached): `exp_map` with unit velocities (the spray's
    G u = b by Cholesky of G from d JVPs, or by CG on the operator; the endpoints'
    largest difference), and `connecting_geodesic(..., solver=EnergyBVP())` between
    x and x + u, ‖u‖ = 1, 16 points (the normal equations by block Cholesky of d × d
    blocks, or by CG preconditioned with the curve's second differences; the lengths'
    relative difference). A `vmap`ped batch of 4 points (1 at d = 1,024, where the dense energy
    stage is slow), per point."""
    import lineax as lx

    rows = []
    for d in dims:
        batch = 1 if d >= 1024 else 4
        metric, _ = make("mlp", d, "decaying")
        xs, vs, _ = points(d)
        xs, vs = xs[:batch], vs[:batch] / jnp.linalg.norm(vs[:batch], axis=1, keepdims=True)
        free = jgeo.Pullback(metric.f, linear_solver=lx.CG(rtol=1e-4, atol=1e-4, max_steps=1000))
        tasks = {
            "exp_map": lambda m, x, v: jgeo.exp_map(m, x, v, throw=False),
            # The dense route by blocks: `EnergyBVP()` alone would take CG from d = 8 on.
            "energy": lambda m, x, v: (
                jgeo.connecting_geodesic(
                    m,
                    x,
                    x + v,
                    throw=False,
                    solver=jgeo.EnergyBVP(linear_solver="auto" if m.linear_solver else None),
                ).length
            ),
        }
        for task, fn in tasks.items():
            solve = jax.jit(jax.vmap(fn, in_axes=(None, 0, 0)))
            dense_t, dense_out = run(solve, metric, xs, vs, repeats=1)
            free_t, free_out = run(solve, free, xs, vs, repeats=1)
            dense_out, free_out = np.asarray(dense_out), np.asarray(free_out)
            if task == "exp_map":
                difference = np.nanmax(np.abs(free_out - dense_out))
                finite = lambda a: np.isfinite(a).all(1)  # noqa: E731
            else:
                difference = np.nanmax(np.abs(free_out / dense_out - 1))
                finite = np.isfinite
            row = {"task": task, "d": d, "batch": batch, "dense_s": dense_t["s"] / batch,
                   "dense_MiB": dense_t["MiB"], "dense_compile_s": dense_t["compile_s"],
                   "cg_s": free_t["s"] / batch, "cg_MiB": free_t["MiB"],
                   "cg_compile_s": free_t["compile_s"], "difference": float(difference),
                   "cg_failed": int(np.sum(~finite(free_out))),
                   "dense_failed": int(np.sum(~finite(dense_out)))}  # fmt: skip
            rows.append(row)
            print(row, flush=True)
    return rows


def engine_rows(dims=(1024,)) -> list[dict]:
    """jgeo's Lanczos against matfree's (`tridiag_sym(reortho="full")`), on the MLP."""
    try:
        from matfree import decomp, eig, funm, stochtrace
    except ImportError:
        print("matfree is not installed: no engine rows")
        return []
    from jgeo import _krylov as krylov

    rows = []
    for d in dims:
        for weights in ("decaying", "random"):
            metric, _ = make("mlp", d, weights)
            xs, _, keys = points(d)
            reference, volume, _ = dense_reference(metric, xs)
            tridiag = eig.eigh_partial(decomp.tridiag_sym(48, reortho="full", custom_vjp=False))

            def ours(m, x, k):  # the engine alone, as local_basis runs it
                op = jgeo.metric_operator(m, x)
                v0 = krylov.start_vector(k, d, x.dtype)
                tri = krylov.lanczos(op.mv, v0, 48, jr.fold_in(k, 1))
                return krylov.ritz(tri.alpha, tri.beta)[0][::-1][:K]

            def theirs(m, x, k):
                op = jgeo.metric_operator(m, x)
                values, _ = tridiag(op.mv, krylov.start_vector(k, d, x.dtype))
                return values[::-1][:K]

            integrand = funm.monte_carlo_funm_sym_logdet(decomp.tridiag_sym(32, reortho="full"))
            sampler = stochtrace.sampler_signs(jnp.zeros(d, jnp.float32), num=4)
            estimate = stochtrace.estimator_monte_carlo(integrand, sampler)

            def mf_volume(m, x, k):
                op = jgeo.metric_operator(m, x)
                return 0.5 * estimate(op.mv, k)

            def jgeo_volume(m, x, k):
                return jgeo.log_volume(m, x, method=jgeo.SLQ(probes=4, steps=32), key=k)

            row = {"d": d, "weights": weights}
            pairs = {"basis": (ours, theirs), "slq": (jgeo_volume, mf_volume),
                     "slq_grad": (jax.grad(jgeo_volume, argnums=1),
                                  jax.grad(mf_volume, argnums=1))}  # fmt: skip
            for task, (mine, other) in pairs.items():
                # Alternating rounds, so that the machine's load drifts into both.
                ratio = time_ratio(batched(other), batched(mine), metric, xs, keys, rounds=5)
                row[f"jgeo_{task}_s"] = ratio["fast_s"] / BATCH
                row[f"matfree_{task}_s"] = ratio["slow_s"] / BATCH
                row[f"{task}_matfree_over_jgeo"] = ratio["ratio"]
            for name, fn in (("jgeo", ours), ("matfree", theirs)):
                values = batched(fn)(metric, xs, keys)
                row[f"{name}_basis_error"] = eigen_error(np.asarray(values), reference)
            for name, fn in (("jgeo", jgeo_volume), ("matfree", mf_volume)):
                values = batched(fn)(metric, xs, keys)
                relative = np.abs(np.asarray(values, np.float64) / volume - 1)
                row[f"{name}_slq_error_median"] = float(np.median(relative))
                try:  # matfree's custom VJP leaves no forward mode
                    jvp = batched(
                        lambda m, x, k, fn=fn: jax.jvp(lambda y: fn(m, y, k), (x,), (x,))[1]
                    )
                    timing, _ = run(jvp, metric, xs, keys)
                    row[f"{name}_slq_jvp_s"] = timing["s"] / BATCH
                except Exception as error:  # noqa: BLE001
                    row[f"{name}_slq_jvp_s"] = None
                    row[f"{name}_slq_jvp_error"] = type(error).__name__
            rows.append(row)
            print(row, flush=True)
    rows.append(_rank_deficient(decomp, eig))
    return rows


def _rank_deficient(decomp, eig) -> dict:
    """A 10-class head at a 512-wide layer (rank 9), 16 Lanczos steps, float64: where the
    Krylov space closes, matfree's recurrence divides by a vanishing residual."""
    from jgeo import _krylov as krylov

    with jax.enable_x64(True):
        head = eqx.nn.MLP(
            512, 10, 256, depth=1, activation=jnp.tanh, key=jr.key(5), dtype=jnp.float64
        )
        metric = jgeo.FisherPullback(head, "categorical")
        x = jr.normal(jr.key(1), (512,), jnp.float64)
        exact = np.linalg.eigvalsh(np.asarray(jgeo.metric_operator(metric, x).as_matrix()))[::-1]
        tridiag = eig.eigh_partial(decomp.tridiag_sym(16, reortho="full", custom_vjp=False))
        op = jgeo.metric_operator(metric, x)
        theirs = np.asarray(tridiag(op.mv, krylov.start_vector(jr.key(2), 512, x.dtype))[0])[::-1]
        ours = np.asarray(jgeo.local_basis(metric, x, 16, key=jr.key(2), steps=16).values)
    return {
        "case": "rank 9 of 512, 16 steps, float64",
        "jgeo_top9_error": float(np.max(np.abs(ours[:9] / exact[:9] - 1))),
        "matfree_top9_error": float(np.max(np.abs(theirs[:9] / exact[:9] - 1))),
        "jgeo_finite": bool(np.all(np.isfinite(ours))),
        "matfree_finite": bool(np.all(np.isfinite(theirs))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="mv,basis,slq,curve,floor,engine")
    parser.add_argument("--dims", default="64,256,1024,4096")
    parser.add_argument("--decoders", default="mlp,conv,head")
    parser.add_argument("--weights", default="decaying,random")
    parser.add_argument("--curve-dims", default="256,1024")
    parser.add_argument("--curve-decoders", default="mlp")
    parser.add_argument("--geodesic-dims", default="64,256,1024")
    parser.add_argument("--json", default="bench/results/wide.json")
    args = parser.parse_args()
    parts = args.parts.split(",")
    path = Path(args.json)
    payload = json.loads(path.read_text()) if path.exists() else {}
    fresh = {p: [] for p in parts if p not in ("engine", "geodesics")}
    for kind in args.decoders.split(",") if fresh else []:
        for d in (int(d) for d in args.dims.split(",")):
            for weights in args.weights.split(","):
                wanted = [
                    p
                    for p in fresh
                    if p != "curve"
                    or (
                        str(d) in args.curve_dims.split(",")
                        and kind in args.curve_decoders.split(",")
                    )
                ]
                for part, rows in case_rows(kind, d, weights, wanted).items():
                    fresh[part] += rows
    for part, rows in fresh.items():
        keep = [
            r
            for r in payload.get(part, [])
            if (r["decoder"], r["d"], r["weights"])
            not in {(s["decoder"], s["d"], s["weights"]) for s in rows}
        ]
        payload[part] = keep + rows
    if "engine" in parts:
        payload["engine"] = engine_rows()
    if "geodesics" in parts:
        payload["geodesics"] = geodesic_rows(tuple(int(d) for d in args.geodesic_dims.split(",")))
    payload["environment"] = {
        **environment(),
        "OPENBLAS_NUM_THREADS": os.environ["OPENBLAS_NUM_THREADS"],
    }
    payload["batch"], payload["k"], payload["steps"] = BATCH, K, list(STEPS)
    for part in ("basis", "slq"):
        if payload.get(part):
            print(f"\n{part}")
            print_table(payload[part], [c for c in payload[part][0] if not c.endswith("MiB")])
    write_json(path, payload)


if __name__ == "__main__":
    main()

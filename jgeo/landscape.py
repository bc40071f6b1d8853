"""Curvature of a loss surface over a params pytree: what the optimiser walks on.

`loss(params) -> scalar` is any function of a pytree of parameters (a dict of arrays, an
NNX state, an equinox module: its non-array leaves are held fixed and only its inexact
arrays are differentiated). Nothing forms the Hessian H = ∇²loss: every function here
sees it through Hessian-vector products, forward-over-reverse (`jax.jvp` of `jax.grad`),
at the cost of about two gradients each and the memory of one.

- `hessian_eigenvalues`: the extreme eigenvalues by Lanczos with full
  reorthogonalisation (the sharpness λ_max: Cohen et al. 2021, edge of stability).
- `hessian_trace`: Hutchinson's estimator E[vᵀHv] over Rademacher vectors v.
- `hessian_density`: the spectral density by stochastic Lanczos quadrature
  (Ghorbani, Krishnan & Xiao 2019), for a figure of the whole spectrum.
- `fisher_trace`: the trace of the empirical Fisher information from per-example
  gradients of a log-likelihood.

All run under `jax.jit` (the integer arguments are static) and take an explicit `key`
where they draw random vectors, so a probe is a deterministic function of its inputs.
`Landscape` bundles what `jgeo.dynamics.Recorder` needs to record them during training.

On GPUs and TPUs a float32 Hessian-vector product inherits the matmul precision in force
(TF32 or bf16 passes by default): wrap a call in `jax.default_matmul_precision("highest")`
where the small eigenvalues or the trace of a nearly flat direction matter.
"""

from ._landscape import (
    LANDSCAPE_SCALARS as LANDSCAPE_SCALARS,
    Landscape as Landscape,
    SpectralDensity as SpectralDensity,
    fisher_trace as fisher_trace,
    hessian_density as hessian_density,
    hessian_eigenvalues as hessian_eigenvalues,
    hessian_trace as hessian_trace,
    measure_landscape as measure_landscape,
)

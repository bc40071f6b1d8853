"""The discrete energy of a curve between two points: its residuals, its minimisation
(the `EnergyBVP` solver and the seed of `Hybrid`), and how its solution moves with the
end point (the chord Jacobian of `Hybrid`'s shooting)."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Float

from ._banded_least_squares import (
    BandedLevenbergMarquardt,
    block_gram,
    probe_band,
    solve_block_tridiagonal,
)
from ._metrics import AbstractMetric
from ._pullback import AbstractPullback

_SUBDIVISIONS = 2

# Levenberg–Marquardt solves its damped normal equations matrix-free from this latent
# width on (`EnergyBVP(linear_solver="auto")`): the d × d blocks cost d decoder products
# per point and O(d³) a block, CG a few products Jᵀ(J v) of the whole curve. On the tanh
# MLP decoders of `bench/geodesics.py` (50 pairs, rtol 1e-3) the blocks took 7.2 / 14.7
# / 18.6 / 53 ms a pair at d = 2 / 4 / 8 / 16 and CG 13.7 / 13.9 / 16.8 / 22 ms.
MATRIX_FREE_FROM = 8
# Inexact Gauss–Newton steps are enough: LM only needs each step to decrease the energy.
ENERGY_CG = lx.CG(rtol=1e-2, atol=1e-2, max_steps=50)


def energy_residuals(metric) -> tuple[Callable, Callable | None]:
    """The residuals `r(interior, (x, y))` of the discrete energy ½ (n − 1) Σᵢ ‖rᵢ‖² of
    the curve x, interior..., y: one row per segment, row i depending on points i and
    i + 1 only; and, where the residuals' structure gives it cheaply, the band of their
    Jacobian (`BandedLevenbergMarquardt`'s `jacobian`), else None.

    For a pullback, the residuals are the chords of the decoded curve, each segment
    decoded at a few sub-steps: no derivatives of the decoder in the residual, and no
    "tunnelling" — with g taken at segment midpoints (or chords of whole segments), a
    long segment whose midpoint sits on the crest of a ridge of the metric (a stochastic
    decoder's wall of variance) crosses it at almost no cost. Otherwise (a pullback
    through a non-Euclidean `ambient` metric too, whose chords are not its lengths)
    rᵢ = Lᵢᵀ Δᵢ with gᵢ = Lᵢ Lᵢᵀ at segment midpoints.
    """
    if isinstance(metric, AbstractPullback) and metric.ambient is None:
        chords = _Chords(metric)
        return chords, chords.band

    def residuals(interior, ends):
        x, y = ends
        curve = jnp.concatenate([x[None], interior, y[None]])
        steps, mids = curve[1:] - curve[:-1], 0.5 * (curve[1:] + curve[:-1])
        factors = jax.vmap(lambda m: jnp.linalg.cholesky(metric(m)))(mids)
        return jnp.einsum("nij,ni->nj", factors, steps)

    return residuals, None


class _Chords(eqx.Module):
    """A pullback's energy residuals: row i holds the chords of segment i's decoded
    sub-steps (`_SUBDIVISIONS` of them, so that a jump across a symmetric ridge, equal
    φ on both sides, still pays for the climb), times √s."""

    metric: AbstractPullback

    def _fine(self, interior, ends):
        # The curve with each segment split into s sub-steps: (n − 1)·s + 1 points, each
        # shared end once; fine point i·s + k = (1 − k/s)·cᵢ + (k/s)·cᵢ₊₁.
        x, y = ends
        s = _SUBDIVISIONS
        t = jnp.arange(s, dtype=x.dtype)[None, :, None] / s
        curve = jnp.concatenate([x[None], interior, y[None]])
        fine = curve[:-1, None] + t * (curve[1:] - curve[:-1])[:, None]  # (n − 1, s, d)
        return jnp.concatenate([fine.reshape(-1, x.shape[0]), y[None]])

    @staticmethod
    def _rows(points, segments):  # the decoded fine points' chords, one row per segment
        return jnp.sqrt(_SUBDIVISIONS) * (points[1:] - points[:-1]).reshape(segments, -1)

    def __call__(self, interior, ends):
        points = jax.vmap(self.metric.embedding)(self._fine(interior, ends))
        return self._rows(points, interior.shape[0] + 1)

    def band(self, interior, ends):
        """The residuals and their Jacobian's band from the decoder's Jacobian at each
        fine point: d products per point, where probing the whole curve takes 2·d."""
        s, d = _SUBDIVISIONS, interior.shape[1]
        points, rows = jax.vmap(self.metric._embedding_and_rows)(self._fine(interior, ends))
        segments = interior.shape[0] + 1
        residual = self._rows(points, segments)
        # Sub-chord k of segment i runs from fine point i·s + k to i·s + k + 1, at
        # t = k/s and (k + 1)/s: its derivative along cᵢ₊₁ is t₊ J₊ − t J, along
        # cᵢ (1 − t₊) J₊ − (1 − t) J.
        t = jnp.arange(s, dtype=interior.dtype)[None, :, None, None] / s
        ahead = rows[1:].reshape(segments, s, d, -1)
        behind = rows[:-1].reshape(segments, s, d, -1)
        to_end = (t + 1 / s) * ahead - t * behind
        to_start = (1 - t - 1 / s) * ahead - (1 - t) * behind

        def band(block):  # (segments, s, d, m) → (segments, d, s·m), as the residual rows
            return jnp.sqrt(s) * jnp.moveaxis(block, 2, 1).reshape(segments, d, -1)

        return residual, band(to_start)[1:], band(to_end)[:-1]


def energy_linear_solver(metric: AbstractMetric, d: int, choice) -> lx.AbstractLinearSolver | None:
    """The linear solver of the energy's normal equations: `choice` when given (None:
    the d × d blocks), and for "auto" the pullback's own `linear_solver`, else CG for a
    pullback without an ambient metric from `MATRIX_FREE_FROM` coordinates on."""
    if choice != "auto":
        return choice
    if not isinstance(metric, AbstractPullback):
        return None
    if metric.linear_solver is not None:
        return metric.linear_solver
    return ENERGY_CG if metric.ambient is None and d >= MATRIX_FREE_FROM else None


def minimise_energy(metric, x, y, curve0, max_steps, tol, linear_solver):
    """Energy-minimising discrete curve between x and y, from `curve0`; and whether the
    minimisation converged.

    The discrete energy is a sum of squares (`energy_residuals`), so Levenberg–Marquardt
    minimises it in a few iterations where a quasi-Newton method crawls (the problem's
    conditioning grows like n²); its Jacobian is block-banded (row i: points i and
    i + 1), which `BandedLevenbergMarquardt` exploits.
    """
    residuals, band = energy_residuals(metric)
    solver = BandedLevenbergMarquardt(
        rtol=tol, atol=tol, jacobian=band, linear_solver=linear_solver
    )
    sol = optx.least_squares(
        residuals, solver, curve0[1:-1], args=(x, y), max_steps=max_steps, throw=False
    )
    curve = jnp.concatenate([x[None], sol.value, y[None]])
    return curve, sol.result == optx.RESULTS.successful


def initial_velocity(curve: Array) -> Array:
    """ċ(0) of a discrete curve at evenly spaced times in [0, 1]: the second-order
    one-sided difference."""
    n = curve.shape[0]
    if n == 2:
        return curve[1] - curve[0]
    return 0.5 * (n - 1) * (-3 * curve[0] + 4 * curve[1] - curve[2])


def velocity_sensitivity(metric, curve: Float[Array, "n d"]) -> Float[Array, "d d"]:
    """∂v/∂y: how the initial velocity v of the energy-minimising discrete curve from x
    to y moves with y — the inverse of the discrete exponential map's Jacobian.

    At a minimiser, ∇ₖE(curve; y) = 0, so the interior moves by ∂c/∂y = −H⁻¹ ∂²E/∂c∂y
    with H the energy's Hessian in the interior points. H is taken as Gauss–Newton's
    JᵀJ (block tridiagonal, factored by blocks): it leaves out the residuals' second
    derivatives, terms of the size of the curvature along the curve. On
    `bench/geodesics.py`'s d = 16 decoder the result is within 5–13 % (spectral norm
    of I − (∂v/∂y)(∂exp/∂v)) of the inverse of the exact exponential map's Jacobian,
    against 1–5 % for the exact Hessian at 3·d Hessian-vector products more: chord steps
    with it reduce exp_x(v) − y about tenfold each.
    """
    x, y, interior = curve[0], curve[-1], curve[1:-1]
    residuals, band = energy_residuals(metric)
    if band is None:
        (_, left, right), _ = probe_band(lambda z, a: (residuals(z, a), None), interior, (x, y))
    else:
        _, left, right = band(interior, (x, y))
    diag, upper = block_gram(left, right)
    # The last segment, c_N → y, is the only one that sees y.
    before = curve[-3]
    coupling = jax.jacfwd(lambda end: residuals(interior[-1:], (before, end))[-1])(y)
    last = jnp.einsum("dm,me->de", left[-1], coupling)
    rhs = jnp.zeros(interior.shape + (y.shape[0],), y.dtype).at[-1].set(-last)
    moved = jax.vmap(lambda b: solve_block_tridiagonal(diag, upper, b), in_axes=2, out_axes=2)(rhs)
    # v = ½(n − 1)(−3x + 4c₁ − c₂), with c₂ = y when the curve has 3 points.
    second = moved[1] if interior.shape[0] > 1 else jnp.eye(y.shape[0], dtype=y.dtype)
    return 0.5 * (curve.shape[0] - 1) * (4 * moved[0] - second)

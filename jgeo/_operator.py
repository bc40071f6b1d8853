"""The metric at a point as a linear operator: G(x) v without forming G."""

import lineax as lx

from ._checks import metric_point
from ._custom_types import PointLike
from ._metrics import AbstractMetric


def metric_operator(metric: AbstractMetric, x: PointLike) -> lx.AbstractLinearOperator:
    """The metric G(x) as a `lineax` linear operator, tagged symmetric and positive
    semidefinite, for methods that need only products G v: Krylov eigensolvers
    (`local_basis`), stochastic traces and log-determinants (`log_volume(...,
    method="slq")`), and conjugate gradients, `lineax.linear_solve(op, b,
    lineax.CG(rtol, atol))` for G⁻¹ b.

    For every pullback (`Pullback`, also through an `ambient` metric,
    `StochasticPullback`, `FisherPullback`) G = Jᵀ M J (+ εI) is never formed: the
    immersion is linearised once at `x`, and each `op.mv(v)` costs one JVP and one VJP
    of it (Jᵀ M (J v) + εv), so d × d never appears and the cost of a product does not
    grow with d beyond the decoder's own. Other metrics wrap their matrix
    (`lineax.MatrixLinearOperator`); a `Product` applies each factor's operator to its
    block.

    The operator is a PyTree: gradients of anything computed from `op.mv` reach `x` and
    the decoder's parameters. Unlike the kernels, a metric that is singular by its
    shapes (a classifier head with fewer outputs than the width of the layer it is
    pulled back to) is accepted: its operator is only semidefinite.

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,).

    **Returns:** a `lineax.AbstractLinearOperator` with input and output structure
    `x`'s (shape (d,) and dtype); `op.mv(v)` = G(x) v, `op.as_matrix()` = G(x) (by d
    products, for checks).

    **Raises:** `ValueError`/`TypeError` for a malformed point.
    """
    x = metric_point(metric, x, full_rank=False)
    return metric.operator(x)

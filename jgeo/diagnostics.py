"""Measurements of a latent geometry: functions of a metric and a batch of latent points.

Used per epoch by `jgeo train` and for the final report; all are jit-compatible except
`spearman`, which ranks on the host.
"""

from ._diagnostics import (
    distance_spearman as distance_spearman,
    geodesic_ratios as geodesic_ratios,
    log_volumes as log_volumes,
    mean_condition_number as mean_condition_number,
    metric_summary as metric_summary,
    spearman as spearman,
    straight_length as straight_length,
    variance_of_riemannian_metric as variance_of_riemannian_metric,
)

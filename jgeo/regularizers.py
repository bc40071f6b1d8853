"""Geometric regularizers for training: pure functions `(fn, batch, key) -> scalar`.

`fn` maps one point to one point (a decoder Rᵈ → Rᴰ, or for `contractive` an encoder
Rᴰ → Rᵈ) and `batch` has shape (B, ·). G(z) = J(z)ᵀJ(z) is the decoder's pullback
metric. Estimators are stochastic where the exact value would need d Jacobian-vector
products per point; each docstring states the exact quantity it estimates.
"""

from ._regularizers import (
    REGULARIZERS as REGULARIZERS,
    contractive as contractive,
    curvature as curvature,
    flat as flat,
    isometry as isometry,
    log_det_metric as log_det_metric,
    mixup as mixup,
    second_fundamental_form as second_fundamental_form,
    volume as volume,
)

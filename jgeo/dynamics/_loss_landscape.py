"""The loss landscape around the parameters: what the optimiser walks on."""

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..landscape import Landscape, measure_landscape
from ._probe import AbstractProbe, ProbeInputs, Scalar


class LossLandscape(AbstractProbe):
    """The curvature of the training loss at the current parameters, on a fixed batch
    (`jgeo.landscape`): the sharpness, the largest Hessian eigenvalue by Lanczos, and its
    Ritz residual (`sharpness`, `sharpness_residual`); the Hutch++ Hessian trace
    (`hessian_trace`); with a log-likelihood, the empirical Fisher trace
    (`fisher_trace`). A probe of the parameters, not of a layer: it runs once per step.
    It costs more than the rest of a probe: `Every(n, LossLandscape(...))` runs it at
    every n-th step. Beside a `LearningRate` probe, `jgeo dynamics` draws 2/η with the
    sharpness: gradient descent's edge of stability (Cohen et al. 2021).

    **Arguments:**

    - `loss`: `loss(params, batch) -> scalar`, deterministic (fix any dropout key).
    - `batch`: the fixed batch it is measured on.
    - `log_likelihood`: optional `log_likelihood(params, example) -> scalar` of one
      example of `batch`, for the Fisher trace.
    - `iterations`: Lanczos steps of the sharpness; `probes`: Hutch++ probe vectors.
    """

    loss: Callable
    batch: Any
    log_likelihood: Callable | None = None
    iterations: int = 20
    probes: int = 20

    scalars = {
        "sharpness": Scalar("sharpness (top Hessian eigenvalue)", log=True,
                            reference="stability_edge"),
        "sharpness_residual": Scalar("Ritz residual of the sharpness", log=True),
        "hessian_trace": Scalar("Hessian trace", log=True),
        "fisher_trace": Scalar("Fisher trace", log=True),
    }  # fmt: skip
    group = "landscape"
    per_layer = False

    def __check_init__(self):
        if not callable(self.loss):
            raise ValueError(f"`loss` must be a function loss(params, batch), got {self.loss!r}.")
        if self.log_likelihood is not None and not callable(self.log_likelihood):
            raise ValueError("`log_likelihood` must be log_likelihood(params, example) or None.")
        for name, least in (("iterations", 1), ("probes", 3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
                raise ValueError(f"`{name}` must be an integer ≥ {least}, got {value!r}.")

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        landscape = Landscape(self.loss, self.batch, self.log_likelihood, None,
                              self.iterations, self.probes)  # fmt: skip
        return measure_landscape(landscape, inputs.params, inputs.key)


class LearningRate(AbstractProbe):
    """The step size in force (`learning_rate`) and 2/η (`stability_edge`): gradient
    descent is stable on a quadratic while the sharpness stays below 2/η, and trains at
    that edge (Cohen et al. 2021; adaptive optimisers such as Adam have theirs on the
    preconditioned Hessian, Cohen et al. 2022). `jgeo dynamics` draws 2/η beside the
    `LossLandscape`'s sharpness. Cheap: run it at every probe.

    **Arguments:**

    - `learning_rate`: a float or an optax schedule `step -> η`.
    """

    learning_rate: float | Callable
    scalars = {
        "learning_rate": Scalar("learning rate", log=True),
        "stability_edge": Scalar("2 / η", panel=False),
    }
    group = "landscape"
    per_layer = False

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        rate = self.learning_rate
        rate = jnp.asarray(rate(inputs.step) if callable(rate) else rate, float)
        return {"learning_rate": rate, "stability_edge": 2 / rate}

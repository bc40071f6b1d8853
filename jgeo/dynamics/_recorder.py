"""`Recorder`: learning-dynamics probes of any model, from any JAX training loop."""

import concurrent.futures
import contextlib
import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._fisher import FAMILIES
from .._io import RunError, run_lock
from .._labels import class_labels
from ..landscape import LANDSCAPE_SCALARS, Landscape, measure_landscape
from ._probes import measure_geometry, probe_set, sectional_planes, summarise
from ._store import DynamicsError, ProbeFiles


class Recorder:
    """Records how the representation of a model changes over training, from your own
    training loop: every `every` steps, `recorder(step, params)` encodes a fixed set of
    samples of `data` and writes what it measures to the directory `out`, where
    `jgeo dynamics out` draws it.

    ```python
    with Recorder("runs/mine", x_train, encode=encode, labels=y_train, every=100) as recorder:
        for step in range(1, 10_001):
            params, opt_state = update(params, opt_state, next(batches))
            recorder(step, params)
    ```

    **Arguments:**

    - `out`: the directory of the probe files (created): `dynamics.jsonl` (one row of
      scalars per probe), `dynamics.npz` (codes, fields, persistence diagrams) and
      `recorder.json` (what is probed). Held by this recorder until `close`.
    - `data`: the inputs (N, ...) the samples are drawn from, as the model takes them one
      by one (vectors, images, ...), or a `jgeo.data.Dataset`.
    - `encode`: `encode(params, x) -> z`, the representation of one input `x` (N's axis
      removed) under the parameters `params`: a latent code, a penultimate layer, any
      intermediate layer (flattened to a vector when there is no `decode`). Every probe
      records the codes' topology, linear CKA to the previous probe, intrinsic dimension
      (TwoNN and MLE), effective rank, participation ratio and, with `labels`, NC1 and
      the nearest-centroid accuracy (`jgeo.representation`).
    - `decode`: `decode(params, z) -> x̂`, a decoder of one code z (d,). With it the probes
      also measure the pullback metric of `z ↦ decode(params, z)`: its volume and
      condition number, the decoder's active dimensions, sectional curvature, geodesic /
      straight length ratios and, for d = 2, log-volume and curvature maps.
    - `likelihood`: with `decode`, the distribution whose parameters `decode` returns —
      `"bernoulli"` (logits), `"categorical"`, `"poisson"` or `"gaussian"` (a pair mean,
      std), as in `jgeo.FisherPullback` — to measure the Fisher–Rao pullback of the
      decoder instead of JᵀJ; None (the default) for JᵀJ of `decode`'s output.
    - `labels`: integer classes (N,) (taken from `data` if it is a `Dataset`): pairs of
      different classes for the geodesics, colours for the figures.
    - `every`: probe at steps divisible by `every`; other calls return at once.
    - `samples`: number of fixed samples (maxmin landmarks of `data`, spread evenly over
      it); `pairs`: geodesic pairs among them (0: none); `grid`: side of the latent grid
      of the fields (d = 2 with a decoder); `random_samples`: size of the uniform random sample
      whose codes give the intrinsic dimension, effective rank and class separation;
      `class_geodesics` (with `decode` and `labels`): also the geodesic distances
      between the classes of the samples, the log-volume barrier between them and the
      ratio of distance between classes to spread within them, under the metric and in
      coordinates (`jgeo.representation.class_geodesics` around coordinate means). Off
      by default for its cost: C(C − 1)/2 + `samples` more geodesic solves per probe;
      `seed`: the probe set is a deterministic function of the data and these
      arguments, fixed at construction.
    - `landscape`: the loss landscape to record, a `jgeo.landscape.Landscape(loss,
      batch, ...)` or a tuple `(loss, batch)` with `loss(params, batch) -> scalar`:
      every `landscape_every` steps (default `every`; a multiple of it) the probe also
      records the `sharpness` (largest Hessian eigenvalue, Lanczos), its Ritz residual,
      the `hessian_trace` (Hutch++) and, with a log-likelihood, the `fisher_trace`;
      with a learning rate, the `learning_rate` in force (`jgeo dynamics` draws 2/η).
      Rows of probes without it hold None there.
    - `background`: finish each probe (wait for its arrays, compute the topology, write
      the files) in a background thread while the loop trains on; the call then returns
      None, and a probe's error surfaces at the next call or at `close`. The probe's
      device computation is dispatched at the call itself, so parameters the loop
      donates or overwrites afterwards are safe.

    `params` may be any pytree holding the parameters: a dict of arrays (Flax NNX's
    `nnx.split` state or linen's `variables`), an equinox module (non-array leaves are
    static). The probe is compiled once, on the first probe (or in the background after
    `start`); calling the recorder with new parameters of the same structure does not
    compile again.

    **Resuming.** A recorder opened on a directory that holds probes of the same probe
    set continues them: the first probe (or `start(step, ...)`) drops the probes recorded
    after the step the loop resumed from, which it records again.

    **Raises:** `ValueError` naming the argument for bad arguments (labels outside
    [0, 2³¹ − 1) included: −1 does not mark unlabelled points); `DynamicsError` if `out`
    holds probes of another probe set or damaged probe files; `RunLocked` if another
    writer holds `out`: another process, or another open Recorder (or a `jgeo train` run)
    in this one — two writers would each rewrite the other's probes.
    """

    def __init__(
        self,
        out: str | Path,
        data,
        *,
        encode: Callable,
        decode: Callable | None = None,
        likelihood: str | None = None,
        labels=None,
        every: int = 1,
        samples: int = 128,
        pairs: int = 4,
        grid: int = 16,
        seed: int = 0,
        random_samples: int = 512,
        class_geodesics: bool = False,
        landscape: Landscape | tuple | None = None,
        landscape_every: int | None = None,
        background: bool = False,
    ):
        if not callable(encode):
            raise ValueError(f"`encode` must be a function encode(params, x) -> z, got {encode!r}.")
        if decode is not None and not callable(decode):
            raise ValueError(
                f"`decode` must be a function decode(params, z) -> x or None, got {decode!r}."
            )
        _check_int("every", every, 1)
        _check_int("samples", samples, 8)
        _check_int("pairs", pairs, 0)
        _check_int("seed", seed, 0)
        _check_int("grid", grid, 0)
        _check_int("random_samples", random_samples, 16)
        if grid == 1:
            raise ValueError("`grid` must be 0 (no fields) or at least 2, got 1.")
        x, labels, color = _data_arrays(data, labels)
        if likelihood is not None and (decode is None or likelihood not in FAMILIES):
            raise ValueError(
                f"`likelihood` must be None or one of {', '.join(FAMILIES)}, with a `decode`; "
                f"got {likelihood!r}" + (" without a decode." if decode is None else ".")
            )
        if class_geodesics and (decode is None or labels is None):
            raise ValueError("`class_geodesics` needs a `decode` and `labels`.")
        self.landscape, self.landscape_every = _landscape(landscape, landscape_every, every)
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise RunError(f"`out` {self.out} is a file, not a directory; choose a directory path.")
        self.encode, self.decode, self.every, self.seed = encode, decode, every, seed
        self.class_geodesics = bool(class_geodesics)
        self.likelihood = likelihood
        with_decoder = decode is not None
        self.probes = probe_set(
            x, None, labels=labels, samples=samples, pairs=pairs if with_decoder else 0,
            grid=grid, seed=seed, random_samples=random_samples,
        )  # fmt: skip
        # The probed inputs, passed to the probe as arguments (not baked into it as
        # constants, which would copy them into every compiled program).
        self._inputs = (jnp.asarray(x[self.probes.index]), jnp.asarray(x[self.probes.random]))
        info = {
            "samples": len(self.probes.index),
            "pairs": len(self.probes.pairs),
            "grid": grid if with_decoder else 0,
            "every": every,
            "seed": seed,
            "random_samples": len(self.probes.random),
            "class_geodesics": bool(class_geodesics),
            "landscape_every": self.landscape_every,
            "decoder": with_decoder,
            "labels": labels is not None,
            "data_shape": list(x.shape),
            "data_sha256": _digest(x, labels),
        }
        if likelihood is not None:  # (absent from the files of JᵀJ probes, as before it existed)
            info["likelihood"] = likelihood
        static = {"sample_index": self.probes.index, "color": color[self.probes.index],
                  "pairs": self.probes.pairs, "random_index": self.probes.random}  # fmt: skip
        if labels is not None:
            static["labels"] = labels[self.probes.index]
        self._closing = contextlib.ExitStack()
        self._closing.enter_context(run_lock(self.out, f"jgeo.dynamics.Recorder({self.out})"))
        try:
            self.files = ProbeFiles(self.out, info, static)
        except BaseException:
            self._closing.close()
            raise
        self._probe = None  # the jitted probe, made on first use
        self._shapes = None  # of the parameters it was made for
        self._landscape_probe = None
        self._compiled = None  # a future of its compiled form (see `start`)
        self._resumed = False
        self.closed = False
        self.background = bool(background)
        self._pending = None  # the probe finishing in the background
        if self.background:
            self._worker = concurrent.futures.ThreadPoolExecutor(1)

    # -- the probe ---------------------------------------------------------------------

    def _make_probe(self, params) -> None:
        """The jitted probe of parameters shaped like `params`; checks encode/decode."""
        arrays, static = eqx.partition(params, eqx.is_array)
        x = self._inputs[0]
        try:
            code = jax.eval_shape(lambda a, x: self.encode(eqx.combine(a, static), x), arrays, x[0])
        except Exception as error:
            raise ValueError(
                f"`encode(params, x)` fails on one input of shape {x.shape[1:]}: {error}"
            ) from error
        if self.decode is not None and len(code.shape) != 1:
            raise ValueError(
                f"`encode` returns shape {code.shape} per input; with a `decode` it must return a "
                "vector (d,): flatten inside both, or leave out `decode`."
            )
        latent_dim = int(np.prod(code.shape))
        last = self.files.last_codes
        if last is not None and last.shape[-1] != latent_dim:
            raise DynamicsError(
                f"{self.out} holds probes of {last.shape[-1]}-dimensional codes; `encode` now "
                f"gives {latent_dim} with these `params`. Probes of one directory compare "
                "one representation: record other codes into a new directory."
            )
        self._shapes = _shapes(arrays)
        probes = self.probes._replace(
            planes=sectional_planes(latent_dim, len(x), self.seed),
            grid=self.probes.grid if latent_dim == 2 else 0,
        )

        def probe(arrays, x, x_random):
            params = eqx.combine(arrays, static)
            encode = lambda x: self.encode(params, x).reshape(-1)  # noqa: E731
            decode = None if self.decode is None else functools.partial(self.decode, params)
            return measure_geometry(encode, decode, x, probes, x_random=x_random,
                                    class_geodesics=self.class_geodesics,
                                    likelihood=self.likelihood)  # fmt: skip

        self._probe = jax.jit(probe)
        if self.landscape is not None:
            landscape = self.landscape

            def landscape_probe(arrays, batch, key):
                params = eqx.combine(arrays, static)
                return measure_landscape(landscape._replace(batch=batch), params, key)

            self._landscape_probe = jax.jit(landscape_probe)

    def start(self, step: int, params) -> None:
        """Tell the recorder the loop (re)starts after `step` with parameters shaped like
        `params`: probes recorded after `step` are dropped, and the probe compiles in a
        background thread while the first steps train. Optional: without it the first
        probe does both."""
        self._check_open()
        self.files.resume(int(step))
        self._resumed = True
        if self._probe is None:
            self._make_probe(params)
        arrays, _ = eqx.partition(params, eqx.is_array)
        self._compiler = concurrent.futures.ThreadPoolExecutor(1)
        self._compiled = self._compiler.submit(_compile, self._probe, arrays, *self._inputs)

    def __call__(self, step: int, params, *, epoch: int | None = None) -> dict | None:
        """Record a probe of `params` at `step` (and `epoch`, if the loop counts them)
        when `step % every == 0`; returns its row of scalars (None in the background, or
        when `step` is not probed).

        **Raises:** `DynamicsError` if `step` is not after the last probe's step, or the
        recorder is closed; `ValueError` if the codes are not finite (the model diverged).
        In the background, an error of a probe is raised by the next call or `close`.
        """
        step = int(step)
        if step % self.every:
            return None
        self._check_open()
        self._wait()
        if not self._resumed:  # the first probe of this recorder: the loop resumed before it
            self.files.resume(step - 1)
            self._resumed = True
        if self.files.last_step is not None and step <= self.files.last_step:
            raise DynamicsError(
                f"step {step} is not after the last probe's step {self.files.last_step}: steps "
                "must increase. To record a new run, open a Recorder on a new directory."
            )
        began = time.perf_counter()
        arrays, _ = eqx.partition(params, eqx.is_array)
        if self._probe is None or _shapes(arrays) != self._shapes:
            self._make_probe(params)  # again for new shapes: checks the codes' size
            self._compiled = None
        geometry = self._run(arrays)  # dispatched: jax computes it asynchronously
        landscape = self._measure_landscape(step, arrays)
        if self.background:
            self._pending = self._worker.submit(
                self._finish, step, epoch, geometry, landscape, began
            )
            return None
        return self._finish(step, epoch, geometry, landscape, began)

    def _measure_landscape(self, step: int, arrays) -> dict:
        """The landscape scalars at `step` (dispatched), None-valued where not measured."""
        if self.landscape is None:
            return {}
        with_fisher = self.landscape.log_likelihood is not None
        keys = [k for k in LANDSCAPE_SCALARS if k != "fisher_trace" or with_fisher]
        if step % self.landscape_every:
            out = dict.fromkeys(keys)
        else:
            key = jr.fold_in(jr.key(self.seed), step)
            out = self._landscape_probe(arrays, self.landscape.batch, key)
        rate = self.landscape.learning_rate
        if rate is not None:
            out["learning_rate"] = rate(step) if callable(rate) else rate
        return out

    def _finish(self, step, epoch, geometry: dict, landscape: dict, began: float) -> dict:
        """The host part of a probe: wait for its arrays, summarise, append to the files."""
        geometry, landscape = jax.block_until_ready((geometry, landscape))
        try:
            row, probe_arrays = summarise(geometry, self.files.last_codes)
        except ValueError as error:
            raise ValueError(f"probe at step {step}: {error}") from None
        head = {"step": step} if epoch is None else {"epoch": int(epoch), "step": step}
        landscape = {k: None if v is None else float(v) for k, v in landscape.items()}
        row = {**head, **row, **landscape, "seconds": time.perf_counter() - began}
        self.files.append(row, probe_arrays)
        return row

    def _wait(self) -> None:
        """Finish the probe in flight (raising its error, if any)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _run(self, arrays):
        if self._compiled is not None:
            try:
                return self._compiled.result()(arrays, *self._inputs)
            except TypeError:  # parameters shaped otherwise than at `start`: jit them
                self._compiled = None
        return self._probe(arrays, *self._inputs)

    # -- life cycle ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise DynamicsError(f"this Recorder of {self.out} is closed; open a new one to record.")

    def close(self) -> None:
        """End the recording: compress the arrays and release the directory."""
        if self.closed:
            return
        self.closed = True
        try:
            self._wait()
            if self.files.rows:
                self.files.write(compress=True)
        finally:
            if self.background:
                self._worker.shutdown(wait=True)
            if self._compiled is not None:
                self._compiler.shutdown(wait=False)
            self._closing.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shapes(arrays):
    """The structure, shapes and dtypes of parameters: what the compiled probe was made for."""
    return jax.tree.structure(arrays), [(a.shape, a.dtype) for a in jax.tree.leaves(arrays)]


def _compile(probe, *arguments):
    import ripser  # noqa: F401  (its first import takes a while too)

    return probe.lower(*arguments).compile()


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"`{name}` must be an integer ≥ {least}, got {value!r}.")


def _landscape(landscape, every: int | None, probe_every: int):
    """The `landscape` argument as a `Landscape` and its period (checked)."""
    if landscape is None:
        if every is not None:
            raise ValueError("`landscape_every` needs a `landscape` (a loss and a batch).")
        return None, None
    if not isinstance(landscape, Landscape):
        if not isinstance(landscape, tuple) or not 2 <= len(landscape) <= 6:
            raise ValueError(
                "`landscape` must be a jgeo.landscape.Landscape(loss, batch, ...) or a tuple "
                f"(loss, batch), got {type(landscape).__name__}."
            )
        landscape = Landscape(*landscape)
    if not callable(landscape.loss):
        raise ValueError(
            f"`landscape.loss` must be a function loss(params, batch) -> scalar, got "
            f"{landscape.loss!r}."
        )
    if landscape.log_likelihood is not None and not callable(landscape.log_likelihood):
        raise ValueError("`landscape.log_likelihood` must be log_likelihood(params, example).")
    _check_int("landscape.iterations", landscape.iterations, 1)
    _check_int("landscape.probes", landscape.probes, 3)
    every = probe_every if every is None else every
    _check_int("landscape_every", every, 1)
    if every % probe_every:
        raise ValueError(
            f"`landscape_every` ({every}) must be a multiple of `every` ({probe_every}): the "
            "landscape is measured with a probe."
        )
    batch = jax.tree.map(jnp.asarray, landscape.batch)
    return landscape._replace(batch=batch), every


def _data_arrays(data, labels):
    """The inputs, labels and per-point colours of the `data` argument."""
    color = None
    if hasattr(data, "x") and hasattr(data, "labels"):  # a jgeo.data.Dataset
        if labels is None:
            labels = data.labels
        color = np.asarray(data.color, np.float64)
        data = data.x
    x = np.asarray(data)
    if x.dtype.kind not in "fiu" or x.ndim < 2 or len(x) < 8:
        raise ValueError(
            f"`data` must be a numeric array (N ≥ 8, ...) of inputs, got {x.dtype} of shape "
            f"{x.shape}."
        )
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("`data` holds NaN or infinite values; clean or drop those inputs.")
    if labels is not None:  # checked here, not at the first probe; kept as given (digest)
        labels = np.asarray(labels)
        class_labels(labels, len(x))
    if color is None:
        color = labels.astype(np.float64) if labels is not None else _first_axis(x)
    return x, labels, color


def _first_axis(x: np.ndarray) -> np.ndarray:
    """Each point's coordinate along the data's first principal axis (colours without labels)."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    flat -= flat.mean(0)
    rng = np.random.default_rng(0)
    axis = rng.standard_normal(flat.shape[1])
    for _ in range(20):  # power iteration on the covariance, without forming it
        axis = flat.T @ (flat @ axis)
        axis /= np.linalg.norm(axis) or 1.0
    return flat @ axis


def _digest(x: np.ndarray, labels) -> str:
    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    if labels is not None:
        h.update(np.ascontiguousarray(labels).tobytes())
    return h.hexdigest()

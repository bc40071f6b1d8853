"""`Recorder`: the probes of any model's representation, from any JAX training loop."""

import concurrent.futures
import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._callback import Callback
from .._io import RunError, run_lock
from .._labels import class_labels
from ._classes import ClassStructure
from ._codes import Codes
from ._dimension import IntrinsicDimension, Rank
from ._geometry import PullbackGeometry
from ._probe import AbstractProbe, Layout, ProbeInputs
from ._samples import choose_samples
from ._similarity import Similarity
from ._store import FORMAT, DynamicsError, ProbeFiles, key
from ._topology import PersistentHomology


def default_probes(*, decoder: bool, labels: bool) -> list[AbstractProbe]:
    """The probes a `Recorder` runs when given none: the codes (trajectories), their
    persistent homology, similarity (linear CKA to the previous and the first probe,
    and between layers), intrinsic dimension and rank;
    with labels the class structure; with a decoder the pullback geometry.

    **Arguments:**

    - `decoder`: whether the Recorder has a `decode` (adds `PullbackGeometry()`).
    - `labels`: whether it has labels (adds `ClassStructure()`).

    **Returns:** a new list of probes, to extend with others.
    """
    probes = [Codes(), PersistentHomology(), Similarity(), IntrinsicDimension(), Rank()]
    probes += [ClassStructure()] if labels else []
    probes += [PullbackGeometry()] if decoder else []
    return probes


class Recorder(Callback):
    """Records how a model's representation changes over training, from your own loop:
    every `every` steps, `recorder(step, params)` encodes fixed samples of `data`, runs
    the `probes` on each layer's codes and appends what they measure to the directory
    `out`, where `jgeo dynamics out` draws it.

    ```python
    with Recorder("runs/mine", x_train, encode=encode, labels=y_train, every=100) as recorder:
        for step in range(1, 10_001):
            params, opt_state, loss = update(params, opt_state, next(batches))
            recorder(step, params, scalars={"loss": loss})
    ```

    **Arguments:**

    - `out`: the directory of the probe files (created): `dynamics.jsonl` (one row of
      scalars per probe), `dynamics.npz` (arrays) and `recorder.json` (what is probed).
      Held by this recorder until `close`.
    - `data`: the inputs (N, ...) the samples are drawn from, as the model takes them one
      by one (vectors, images, ...), or a `jgeo.data.Dataset`.
    - `encode`: `encode(params, x)`, the representation of one input `x` (N's axis
      removed) under the parameters `params`: an array (a latent code, a hidden layer;
      flattened to a vector), or a dict `{layer_name: array}` to probe several layers at
      once — every probe then runs on every layer, and what it records is keyed
      `"<layer>/<name>"`.
    - `decode`: `decode(params, z) -> x̂`, a decoder of one code z (d,) — or, with a dict
      `encode`, a dict `{layer_name: decode}` for the layers that have one. Probes of
      a decoder's geometry (`PullbackGeometry`, `ClassGeodesics`) run on those layers.
    - `labels`: integer classes (N,) (taken from `data` if it is a `Dataset`), in
      [0, 2³¹ − 1): −1 does not mark unlabelled points. The class measures index the
      distinct values in order (`classes` in `dynamics.npz`), so sparse labels cost
      nothing.
    - `probes`: a list of `jgeo.dynamics.AbstractProbe`s, yours and the built-ins; None
      for `default_probes`: the codes, persistent homology, similarity (CKA to the
      previous and first probe, between layers), intrinsic dimension, rank, and the
      class structure with `labels`, the pullback geometry with a `decode`. Wrap a
      costly one in `Every(n, probe)`.
    - `every`: probe at steps divisible by `every`; other calls return at once.
    - `samples`: number of fixed samples (maxmin landmarks of `data`, spread evenly over
      it), whose codes are tracked; `random_samples`: size of the uniform random sample
      for the statistics of the whole cloud. Probes cost, and `codes` store, S × d
      numbers per layer and probe.
    - `seed`: the samples and every probe's random choices are a deterministic function
      of the data and it; `ProbeInputs.key` is `fold_in(key(seed), step)`.
    - `background`: finish each probe (wait for its arrays, run the host parts, write
      the files) in a background thread while the loop trains on; the call then returns
      None, and a probe's error surfaces at the next call or at `close`. The device
      computation is dispatched at the call itself, so parameters the loop donates or
      overwrites afterwards are safe.

    `params` may be any pytree holding the parameters: a dict of arrays (Flax NNX's
    `nnx.split` state or linen's `variables`), an equinox module (non-array leaves are
    static). Every probe of every layer compiles into one program, on the first probe (or
    in the background after `start`); new parameters of the same structure do not
    compile again.

    **Resuming.** A recorder opened on a directory that holds probes of the same probe
    set continues them: the first probe (or `start(step, ...)`) drops the probes recorded
    after the step the loop resumed from, which it records again.

    **Raises:** `ValueError` naming the argument for bad arguments (a probe that needs
    labels or a decoder it was not given included); `DynamicsError` if `out` holds probes
    of another probe set, of an older jgeo, or incomplete or damaged probe files;
    `RunLocked` if another writer holds `out`: another process, or another open Recorder
    (or a `jgeo train` run) in this one — two writers would each rewrite the other's
    probes.
    """

    def __init__(
        self,
        out: str | Path,
        data,
        *,
        encode: Callable,
        decode: Callable | Mapping[str, Callable] | None = None,
        labels=None,
        probes: Sequence[AbstractProbe] | None = None,
        every: int = 1,
        samples: int = 128,
        random_samples: int = 512,
        seed: int = 0,
        background: bool = False,
    ):
        if not callable(encode):
            raise ValueError(f"`encode` must be a function encode(params, x) -> z, got {encode!r}.")
        if not (decode is None or callable(decode) or isinstance(decode, Mapping)):
            raise ValueError(
                "`decode` must be a function decode(params, z) -> x, a dict of them per "
                f"layer, or None; got {decode!r}."
            )
        _check_int("every", every, 1)
        _check_int("samples", samples, 8)
        _check_int("seed", seed, 0)
        _check_int("random_samples", random_samples, 16)
        x, labels, color = _data_arrays(data, labels)
        if probes is None:
            probes = default_probes(decoder=decode is not None, labels=labels is not None)
        probes = list(probes)
        for probe in probes:
            if not isinstance(probe, AbstractProbe):
                raise ValueError(
                    f"`probes` must be jgeo.dynamics.AbstractProbe instances, got {probe!r}."
                )
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise RunError(f"`out` {self.out} is a file, not a directory; choose a directory path.")
        self.encode, self.decode, self.probes = encode, decode, probes
        self.every, self.seed = every, seed
        chosen = choose_samples(x, samples=samples, random_samples=random_samples, seed=seed)
        self._samples = chosen
        # Classes as the measures index them: the distinct labels in order.
        self.classes = np.unique(labels) if labels is not None else None
        index = None if labels is None else np.searchsorted(self.classes, labels)
        # The probed inputs and labels, passed to the program as arguments (not baked into
        # it as constants, which would copy them into every compiled program).
        self._inputs = (
            jnp.asarray(x[chosen.index]),
            jnp.asarray(x[chosen.random]),
            None if index is None else jnp.asarray(index[chosen.index], jnp.int32),
            None if index is None else jnp.asarray(index[chosen.random], jnp.int32),
        )
        info = {
            "format": FORMAT,
            "samples": len(chosen.index),
            "random_samples": len(chosen.random),
            "every": every,
            "seed": seed,
            "labels": labels is not None,
            "data_shape": list(x.shape),
            "data_sha256": _digest(x, labels),
            "probes": [probe.declaration() for probe in probes],
            "layers": None,  # learned at the first probe, with the arrays' manifest
            "arrays": None,
        }
        static = {"sample_index": chosen.index, "random_index": chosen.random,
                  "color": color[chosen.index]}  # fmt: skip
        if labels is not None:
            static.update(labels=labels[chosen.index], classes=self.classes)
        self._closing = contextlib.ExitStack()
        command = f"jgeo.dynamics.Recorder({self.out})"
        self._closing.enter_context(run_lock(self.out, command, borrow=True))
        try:
            self.files = ProbeFiles(self.out, info, static)
        except BaseException:
            self._closing.close()
            raise
        self._program = None  # the jitted probes, made on first use
        self._previous = None  # the last probe's codes per layer
        self._initial = {}  # the first probe's
        self._shapes = None  # of the parameters it was made for
        self._compiled = None  # a future of its compiled form (see `start`)
        self._resumed = False
        self.closed = False
        self.background = bool(background)
        self._pending = None  # the probe finishing in the background
        if self.background:
            self._worker = concurrent.futures.ThreadPoolExecutor(1)

    # -- the program ---------------------------------------------------------------------

    def _layers(self, params, x) -> dict[str, jax.Array]:
        """The representation of one input, per layer ("" for a single array)."""
        codes = self.encode(params, x)
        return dict(codes) if isinstance(codes, Mapping) else {"": codes}

    def _decoders(self, layers: dict) -> dict[str, Callable]:
        if self.decode is None:
            return {}
        if not isinstance(self.decode, Mapping):
            if list(layers) != [""]:
                raise ValueError(
                    "`encode` returns several layers: give `decode` as a dict {layer: decode} "
                    f"naming the layers it decodes (of {', '.join(layers)})."
                )
            return {"": self.decode}
        if unknown := sorted(set(self.decode) - set(layers)):
            raise ValueError(
                f"`decode` names layers {unknown} that `encode` does not return (it returns "
                f"{', '.join(map(repr, layers))})."
            )
        return dict(self.decode)

    def _make(self, params) -> None:
        """The jitted probes of parameters shaped like `params`: checks `encode` and
        `decode`, prepares every probe for every layer."""
        arrays, static = eqx.partition(params, eqx.is_array)
        x = self._inputs[0]
        try:
            layers_of = lambda a, x: self._layers(eqx.combine(a, static), x)  # noqa: E731
            shapes = jax.eval_shape(layers_of, arrays, x[0])
        except Exception as error:
            raise ValueError(
                f"`encode(params, x)` fails on one input of shape {x.shape[1:]}: {error}"
            ) from error
        for name, shape in shapes.items():
            if not isinstance(name, str) or "/" in name or (name == "" and len(shapes) > 1):
                raise ValueError(
                    f"`encode` returns a dict whose keys must be layer names (non-empty "
                    f"strings without '/'), got {name!r}."
                )
            if not jnp.issubdtype(shape.dtype, jnp.floating):
                raise ValueError(
                    f"`encode` returns {shape.dtype} codes for layer {name or 'its output'}: "
                    "a representation is floating point (cast it in `encode`)."
                )
        decoders = self._decoders(shapes)
        for name in decoders:
            if len(shapes[name].shape) != 1:
                raise ValueError(
                    f"`encode` returns shape {shapes[name].shape} per input for "
                    f"{'layer ' + repr(name) if name else 'the code'}; with a `decode` it must "
                    "return a vector (d,): flatten inside both."
                )
        layers = {name: int(np.prod(shape.shape)) for name, shape in shapes.items()}
        self.files.set_layers(layers)
        num_classes = 0 if self.classes is None else len(self.classes)
        labels = None if self._inputs[2] is None else np.asarray(self._inputs[2])
        prepared = []  # (layer, probe) in the order of `self.probes`; layer "" for globals
        for probe in self.probes:
            per_layer = probe.declaration()["per_layer"]
            count = len(prepared)
            for name in layers if per_layer else [next(iter(layers))]:
                layout = Layout(
                    layer=name, dim=layers[name], samples=len(x), labels=labels,
                    num_classes=num_classes, decoded=name in decoders, every=self.every,
                    seed=self.seed, rng=_copy(self._samples.rng),
                    sample_index=self._samples.index, random_index=self._samples.random,
                )  # fmt: skip
                ready = probe.prepare(layout)
                if ready is not None:
                    prepared.append((name if per_layer else "", ready))
            if len(prepared) == count:
                raise ValueError(
                    f"{type(probe).__name__} applies to no layer: its `prepare` declined each of "
                    f"{', '.join(map(repr, layers))} (a decoder's probe needs a `decode`)."
                )
        self._prepared = prepared
        probe_arrays, probe_static = eqx.partition([p for _, p in prepared], eqx.is_array)
        where = [name or next(iter(layers)) for name, _ in prepared]  # whose codes it sees

        def measure(probe_arrays, arrays, x, x_random, labels, random_labels, previous,
                    initial, first, step):  # fmt: skip
            params = eqx.combine(arrays, static)
            probes = eqx.combine(probe_arrays, probe_static)
            flat = lambda x: {k: jnp.ravel(v) for k, v in self._layers(params, x).items()}  # noqa: E731
            codes, random = jax.vmap(flat)(x), jax.vmap(flat)(x_random)
            # At a first probe there are no earlier codes: the current ones stand in.
            previous = {k: jnp.where(first, codes[k], v) for k, v in previous.items()}
            initial = {k: jnp.where(first, codes[k], v) for k, v in initial.items()}
            key = jr.fold_in(jr.key(self.seed), step)
            outputs = []
            for layer, (name, _), probe in zip(where, prepared, probes):
                decode = decoders.get(layer)
                inputs = ProbeInputs(
                    codes=codes[layer], random_codes=random[layer], labels=labels,
                    random_labels=random_labels, previous_codes=previous[layer],
                    initial_codes=initial[layer], first=first, layers=codes, params=params,
                    decode=None if decode is None else functools.partial(decode, params),
                    key=key, step=step, num_classes=num_classes, layer=name,
                )  # fmt: skip
                outputs.append(probe(inputs))
            return codes, outputs

        self._program = jax.jit(measure)
        self._program_arrays = probe_arrays
        self._shapes = _shapes(arrays)
        self._layer_widths = layers
        self._layer_dtypes = {name: shape.dtype for name, shape in shapes.items()}

    def _arguments(self, arrays, step: int) -> tuple:
        """The program's arguments at `step`: each layer's codes at the previous and at the
        first probe (the recorder's own, or the stored `codes`), or `first` where there are
        none (zeros of the codes' dtype stand in: one program)."""
        previous, initial, first = {}, {}, False
        for name, width in self._layer_widths.items():
            stored = key("codes", name)
            last = (self._previous or {}).get(name)
            last = self.files.last(stored) if last is None else last
            start = self._initial.get(name, self.files.first(stored))
            if last is None or start is None:
                zeros = np.zeros((len(self._inputs[0]), width), self._layer_dtypes[name])
                first, last, start = True, zeros, zeros
            previous[name], initial[name] = jnp.asarray(last), jnp.asarray(start)
        return (self._program_arrays, arrays, *self._inputs, previous, initial,
                jnp.asarray(first), jnp.asarray(step, jnp.int32))  # fmt: skip

    def start(self, step: int, params) -> None:
        """Tell the recorder the loop (re)starts after `step` with parameters shaped like
        `params`: probes recorded after `step` are dropped, and the probes compile in a
        background thread while the first steps train. Optional: without it the first
        probe does both."""
        self._check_open()
        self.files.resume(int(step))
        self._resumed = True
        self._previous, self._initial = None, {}
        arrays, _ = eqx.partition(params, eqx.is_array)
        if self._program is None:
            self._make(params)
        arguments = self._arguments(arrays, int(step) + self.every)
        self._compiler = concurrent.futures.ThreadPoolExecutor(1)
        self._compiled = self._compiler.submit(_compile, self._program, *arguments)

    def __call__(
        self, step: int, params, *, epoch: int | None = None, scalars: Mapping | None = None
    ) -> dict | None:
        """Record a probe of `params` at `step` (and `epoch`, if the loop counts them)
        when `step % every == 0`; returns its row of scalars (None in the background, or
        when `step` is not probed).

        **Arguments:**

        - `step`, `params`: the loop's step and parameters.
        - `epoch`: the epoch, if the loop counts them.
        - `scalars`: the loop's own numbers at this step, `{"loss": loss, "lr": lr}`
          (scalars: floats or arrays of shape ()), recorded in the row beside the probes'
          and drawn by `jgeo dynamics` ("your loop").

        **Raises:** `DynamicsError` if `step` is not after the last probe's step, the
        recorder is closed, or `encode` gives other layers than before; `ValueError` for
        bad `scalars`, or if the codes are not finite (the model diverged). In the
        background, an error of a probe is raised by the next call or `close`.
        """
        step = int(step)
        if step % self.every:
            return None
        self._check_open()
        loop = _loop_scalars(scalars)
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
        if self._program is None or _shapes(arrays) != self._shapes:
            self._make(params)  # again for new shapes: checks the layers' widths
            self._compiled, self._previous, self._initial = None, None, {}
        measured = self._run(self._arguments(arrays, step))  # dispatched, computed async
        if self.background:
            self._pending = self._worker.submit(self._finish, step, epoch, measured, loop, began)
            return None
        return self._finish(step, epoch, measured, loop, began)

    def _run(self, arguments):
        if self._compiled is not None:
            try:
                return self._compiled.result()(*arguments)
            except TypeError:  # parameters shaped otherwise than at `start`: jit them
                self._compiled = None
        return self._program(*arguments)

    def _finish(self, step, epoch, measured, loop: dict, began: float) -> dict:
        """The host part of a probe: wait for its arrays, run the probes' host parts,
        append to the files."""
        codes, outputs = jax.device_get(measured)
        for name, value in codes.items():
            if not np.all(np.isfinite(value)):
                where = f"layer {name!r}" if name else "the codes"
                raise ValueError(
                    f"probe at step {step}: {where} hold NaN or infinite values: the model "
                    "has diverged."
                )
        head = {"step": step} if epoch is None else {"epoch": int(epoch), "step": step}
        row, stacked, ragged = dict(head), {}, {}
        for (layer, probe), output in zip(self._prepared, outputs):
            try:
                recorded = probe.host({k: np.asarray(v) for k, v in output.items()})
            except ValueError as error:
                what = f"probe at step {step}: {type(probe).__name__}"
                raise ValueError(f"{what}: {error}") from None
            declared = set(probe.declaration()["ragged"])
            for base, value in recorded.items():
                name = key(base, layer)
                if base in declared:
                    ragged[name] = np.asarray(value)
                elif np.ndim(value) == 0:
                    row[name] = _scalar(value)
                else:
                    stacked[name] = np.asarray(value)
        if clash := sorted(loop.keys() & row.keys()):
            raise ValueError(f"`scalars` {clash} are named as the probes' own; rename them.")
        row.update(loop, seconds=time.perf_counter() - began)
        self.files.append(row, stacked, ragged)
        self._previous = {name: np.asarray(value) for name, value in codes.items()}
        for name, value in self._previous.items():
            if name not in self._initial:  # a resumed recording's first probe is stored
                stored = self.files.first(key("codes", name))
                self._initial[name] = value if stored is None else stored
        return row

    def _wait(self) -> None:
        """Finish the probe in flight (raising its error, if any)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

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


def _scalar(value):
    """A recorded scalar as a row holds it: int, bool, float, or None for NaN."""
    value = np.asarray(value).item() if not isinstance(value, int | float | bool) else value
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _loop_scalars(scalars) -> dict:
    """The loop's `scalars` as floats, checked."""
    if scalars is None:
        return {}
    if not isinstance(scalars, Mapping):
        raise ValueError(
            f"`scalars` must be a dict {{name: number}}, got {type(scalars).__name__}."
        )
    out = {}
    for name, value in scalars.items():
        if not isinstance(name, str) or not name or name in ("step", "epoch", "seconds"):
            raise ValueError(
                f"`scalars` names must be strings other than step, epoch and seconds, got {name!r}."
            )
        if np.ndim(value) != 0:
            raise ValueError(f"`scalars[{name!r}]` must be a number, got shape {np.shape(value)}.")
        out[name] = _scalar(float(jax.device_get(value)))
    return out


def _copy(rng: np.random.Generator) -> np.random.Generator:
    copy = np.random.default_rng()
    copy.bit_generator.state = rng.bit_generator.state
    return copy


def _shapes(arrays):
    """The structure, shapes and dtypes of parameters: what the compiled probe was made for."""
    return jax.tree.structure(arrays), [(a.shape, a.dtype) for a in jax.tree.leaves(arrays)]


def _compile(program, *arguments):
    import ripser  # noqa: F401  (its first import takes a while too)

    return program.lower(*arguments).compile()


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"`{name}` must be an integer ≥ {least}, got {value!r}.")


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

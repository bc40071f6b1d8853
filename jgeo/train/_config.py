"""Training configuration: defaults, a TOML file, command-line overrides, validation."""

import dataclasses
import math
import tomllib
from pathlib import Path

from .. import _data_file as data_file
from .._io import RunError, is_int, short
from ..data import DATASETS, IMAGE_DATASETS
from ..nn import ACTIVATIONS, MODELS
from ..regularizers import REGULARIZERS

REGULARIZER_NAMES = ("none", *REGULARIZERS)
# The `jgeo.likelihoods` the models train under: their decoders output one array of the
# data's shape (the mean, or the logits of data in [0, 1]).
TRAINABLE_LIKELIHOODS = ("gaussian", "bernoulli")

# (weight, warm-up fraction) used when a config does not set them. isometry and volume
# come from the sweep in bench/training.py (weights 0.002–1, warm-up 0–0.5, swiss roll,
# 3 seeds): at isometry's 0.05 the volume regularizer cost 1.6× the reconstruction
# error. flat, contractive and curvature were not swept; they keep isometry's values.
DEFAULT_WEIGHTS = {
    "none": (0.0, 0.0),
    "isometry": (0.05, 0.1),
    "volume": (0.002, 0.5),
    "flat": (0.05, 0.1),
    "contractive": (0.05, 0.1),
    "curvature": (0.05, 0.1),
}
DIGIT_CLASSES = tuple(range(10))


class ConfigError(RunError, ValueError):
    """A bad option value or config file; the command line exits with code 2."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the run is a deterministic function of it).

    The defaults are the embedded default run: a 2-D autoencoder of scikit-learn's digits
    under the isometry regularizer, about 40 seconds on 2 CPU cores. `weight` and `warmup`
    left as None take the regularizer's own defaults (`DEFAULT_WEIGHTS`); the config then
    holds the values used, so `config.json` records them. Invalid values raise
    `ConfigError` naming the field.

    **Fields:** one per `jgeo train` option (see the CLI page): `data`, `regularizer`,
    `weight`, `warmup`, `reg_fraction`, `latent_dim`, `epochs`, `seed`, `model`,
    `likelihood`, `hidden`, `activation`, `batch_size`, `learning_rate`, `weight_decay`,
    `clip_norm`, `beta` (the VAE's KL weight), `n`, `noise`, `classes`, `eval_points`, the
    probes' `probe_every`, `probe_samples`, `probe_pairs`, `probe_grid`,
    `probe_class_geodesics`, `landscape_every`, `devices`; and, for a data file,
    `data_scaling` and `data_sha256` (recorded, not chosen).
    """

    data: str = "digits"
    regularizer: str = "isometry"
    weight: float | None = None
    warmup: float | None = None
    reg_fraction: float = 0.5
    latent_dim: int = 2
    epochs: int = 200
    seed: int = 0
    model: str = "ae"
    likelihood: str = "gaussian"
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "silu"
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    clip_norm: float = 1.0
    beta: float = 1.0
    n: int | None = None
    noise: float = 0.0
    classes: tuple[int, ...] | None = None
    eval_points: int = 256
    probe_every: int = 1
    probe_samples: int = 128
    probe_pairs: int = 4
    probe_grid: int = 16
    probe_class_geodesics: bool = False
    landscape_every: int = 0
    devices: int = 1
    data_scaling: tuple[float, float] | None = None
    data_sha256: str | None = None

    def __post_init__(self):
        if not (self.data in DATASETS or data_file.is_data_file(self.data)):
            raise ConfigError(
                f"unknown data {self.data!r}: choose one of {', '.join(DATASETS)}, or give "
                "the path of a .npz or .npy file of your own."
            )
        choices = {
            "regularizer": REGULARIZER_NAMES,
            "model": MODELS,
            "likelihood": TRAINABLE_LIKELIHOODS,
            "activation": tuple(ACTIVATIONS),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"unknown {name} {getattr(self, name)!r}: choose one of {', '.join(allowed)}."
                )
        for field in dataclasses.fields(self):  # inf and NaN pass the range checks below
            value = getattr(self, field.name)
            numbers = value if field.name == "data_scaling" and value is not None else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                raise ConfigError(f"`{field.name}` must be a finite number, got {value!r}.")
        weight, warmup = DEFAULT_WEIGHTS[self.regularizer]
        if self.weight is None:  # frozen: fill in the regularizer's defaults once
            object.__setattr__(self, "weight", weight)
        if self.warmup is None:
            object.__setattr__(self, "warmup", warmup)
        positive = ["latent_dim", "epochs", "batch_size", "learning_rate", "eval_points", "devices"]
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"`{name}` must be positive, got {getattr(self, name)!r}.")
        for name in ["probe_every", "probe_pairs", "probe_grid", "landscape_every"]:
            if not getattr(self, name) >= 0:
                raise ConfigError(
                    f"`{name}` must be non-negative (0 turns it off), got {getattr(self, name)!r}."
                )
        if self.landscape_every and (
            not self.probe_every or self.landscape_every % self.probe_every
        ):
            raise ConfigError(
                f"`landscape_every` ({self.landscape_every} epochs) must be a multiple of "
                f"`probe_every` ({self.probe_every}): the landscape is measured at a probe."
            )
        if self.probe_grid == 1:
            raise ConfigError("`probe_grid` must be 0 (no fields) or at least 2, got 1.")
        if self.seed < 0:
            raise ConfigError(f"`seed` must be a non-negative integer, got {self.seed!r}.")
        if self.n is not None and self.n < 16:
            raise ConfigError(f"`n` must be at least 16 points (or unset), got {self.n!r}.")
        if self.probe_samples < 8:
            raise ConfigError(f"`probe_samples` must be at least 8, got {self.probe_samples!r}.")
        if not 0 <= self.warmup <= 1:
            raise ConfigError(
                f"`warmup` must be a fraction of training in [0, 1], got {self.warmup!r}."
            )
        if not 0 < self.reg_fraction <= 1:
            raise ConfigError(
                "`reg_fraction` must be a fraction of the batch in (0, 1], "
                f"got {self.reg_fraction!r}."
            )
        for name in ["weight", "weight_decay", "clip_norm", "beta", "noise"]:
            if not getattr(self, name) >= 0:
                raise ConfigError(f"`{name}` must be non-negative, got {getattr(self, name)!r}.")
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ConfigError(f"`hidden` must be a list of positive widths, got {self.hidden!r}.")
        if self.batch_size % self.devices:
            raise ConfigError(
                f"`batch_size` ({self.batch_size}) must be a multiple of `devices` "
                f"({self.devices}): each device trains on an equal share of every batch."
            )
        if self.model == "conv" and self.data in DATASETS and self.data not in IMAGE_DATASETS:
            raise ConfigError(
                'model "conv" needs image data: use --data digits, sprites or a file of images.'
            )
        recorded = [k for k in ("data_scaling", "data_sha256") if getattr(self, k) is not None]
        if recorded and not data_file.is_data_file(self.data):
            raise ConfigError(
                f"`{recorded[0]}` belongs to a data file (--data FILE), not to {self.data}: "
                "leave it out of the config."
            )
        if self.data_scaling is not None and not self.data_scaling[1] > 0:
            raise ConfigError(
                f"`data_scaling` must be [shift, scale] with scale > 0, got "
                f"{list(self.data_scaling)}: it is recorded from the data file, not chosen; "
                "leave it out of the config."
            )
        if self.classes is not None and self.data != "digits":
            raise ConfigError("`classes` only applies to --data digits.")
        if self.classes is not None:
            unknown = sorted(set(self.classes) - set(DIGIT_CLASSES))
            if unknown or not self.classes or len(set(self.classes)) != len(self.classes):
                raise ConfigError(
                    f"`classes` must be distinct digit classes from 0 to 9, got "
                    f"{list(self.classes)}" + (f" ({unknown} do not exist)." if unknown else ".")
                )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value):
    """Check a TOML/JSON value against the field's type; lists become tuples."""
    default = _FIELDS[name].default
    if name == "data_scaling":
        if value is None:
            return None
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise ConfigError(f"`data_scaling` must be [shift, scale], got {value!r}.")
        return tuple(_float("data_scaling", v) for v in value)
    if name == "data_sha256":
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"`data_sha256` must be a string, got {value!r}.")
        return value
    if name in ("hidden", "classes"):
        if value is None and name == "classes":
            return None
        if not isinstance(value, list | tuple) or not all(is_int(v) for v in value):  # no bools
            raise ConfigError(f"`{name}` must be a list of integers, got {short(value)}.")
        return tuple(value)
    if name == "n":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"`n` must be an integer, got {value!r}.")
        return value
    if value is None and default is None:  # weight, warmup: the regularizer's default
        return None
    kind = float if name in ("weight", "warmup") else type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = _float(name, value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        noun = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        raise ConfigError(f"`{name}` must be {noun[kind]}, got {short(value)}.")
    if kind is int and not is_int(value):
        raise ConfigError(f"`{name}` must be an integer within int64, got {short(value)}.")
    return value


def _float(name: str, value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise ConfigError(f"`{name}` must be a finite number, got {short(value)}.") from None


def make_config(values: dict) -> TrainConfig:
    """A config from a dict of field values.

    **Arguments:**

    - `values`: field names (with dashes or underscores) to values.

    **Returns:** a `TrainConfig`.

    **Raises:** `ConfigError` naming unknown keys and wrongly typed or invalid values.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"a config must be a table of keys, got {type(values).__name__}.")
    clean = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ConfigError(f"unknown config key {key!r}: known keys are {', '.join(_FIELDS)}.")
        clean[name] = _coerce(name, value)
    return TrainConfig(**clean)


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a TOML file of config keys (top level, or under a [train] table), then apply
    `overrides` (e.g. from the command line).

    **Arguments:**

    - `path`: the TOML file.
    - `overrides`: field values that win over the file's.

    **Returns:** a `TrainConfig`.

    **Raises:** `ConfigError` for a missing, unreadable or invalid file, naming it.
    """
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory; name a .toml file.") from None
    except OSError as error:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {error.strerror}.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    values = values.get("train", values)
    if not isinstance(values, dict):
        raise ConfigError(f"config file {str(path)!r}: [train] must be a table.")
    return make_config({**values, **(overrides or {})})


def with_data_file(config: TrainConfig) -> TrainConfig:
    """For a run on a data file: its absolute path, its SHA-256 and its scaling, read
    from the file where the config does not hold them yet; where it does, the file must
    still be the one the run was trained on.

    **Arguments:**

    - `config`: a run's config.

    **Returns:** the config, completed (unchanged for the built-in data sets).

    **Raises:** `DataFileError` for an unusable or changed file."""
    if not data_file.is_data_file(config.data):
        return config
    path = str(Path(config.data).absolute())
    sha = data_file.digest(path)
    if config.data_sha256 is None:
        arrays = data_file.read(path)
        scale = data_file.scaling(arrays["x"], config.likelihood)
        if config.data_scaling is not None and tuple(config.data_scaling) != scale:
            raise ConfigError(
                f"`data_scaling` {list(config.data_scaling)} is not the scaling of data file "
                f"{path} ({list(scale)}): it is recorded from the file, not chosen; leave it "
                "out of the config."
            )
        return dataclasses.replace(config, data=path, data_scaling=scale, data_sha256=sha)
    if sha != config.data_sha256:
        raise data_file.DataFileError(
            f"data file {path} has changed since the run was trained (SHA-256 "
            f"{sha[:12]}… against {config.data_sha256[:12]}…): restore it, or train a new run."
        )
    return dataclasses.replace(config, data=path)

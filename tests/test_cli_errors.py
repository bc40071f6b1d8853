"""Every bad input of the command line: one line on stderr naming the problem, exit
code 2, no traceback, and nothing left in the run directory. Adding a case is one row."""

import errno
import hashlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

import jgeo.train
from jgeo import cli
from jgeo.cli import main
from jgeo.train import _loop


def setup_file(tmp: Path) -> None:
    (tmp / "file").write_text("not a directory")


def setup_config_dir(tmp: Path) -> None:
    (tmp / "conf.toml").mkdir()


def setup_toml(text: str):
    def setup(tmp: Path) -> None:
        (tmp / "conf.toml").write_text(text)

    return setup


def setup_data(name: str, **arrays):
    """Write tmp/NAME with `arrays` (.npz), or arrays["x"] (.npy), or raw bytes."""

    def setup(tmp: Path) -> None:
        if "raw" in arrays:
            (tmp / name).write_bytes(arrays["raw"])
        elif name.endswith(".npy"):
            np.save(tmp / name, arrays["x"])
        else:
            np.savez(tmp / name, **arrays)

    return setup


POINTS = np.random.default_rng(0).normal(size=(200, 3))
LABELS = np.random.default_rng(1).integers(0, 3, size=200)
WITH_NAN = POINTS.copy()
WITH_NAN[[3, 7]] = np.nan


def setup_zip(name: str, members: dict[str, bytes]):
    def setup(tmp: Path) -> None:
        with zipfile.ZipFile(tmp / name, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)

    return setup


def setup_raw(name: str, data: bytes):
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(data)

    return setup


def _huge_header() -> bytes:
    """A .npy of 200 × 3 points whose header says 10¹² × 3."""
    header = np.lib.format.header_data_from_array_1_0(POINTS)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {**header, "shape": (10**12, 3)})
    return buffer.getvalue() + POINTS.tobytes()


HUGE_HEADER = _huge_header()


def setup_run_file(name: str, text: str):
    def setup(tmp: Path) -> None:
        (tmp / "run").mkdir(exist_ok=True)
        (tmp / "run" / name).write_text(text)

    return setup


def setup_run_bytes(name: str, data: bytes):
    def setup(tmp: Path) -> None:
        (tmp / "run" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "run" / name).write_bytes(data)

    return setup


# Probe files written by hand as a Recorder writes them: two probes of 8 samples of an
# encoder (no decoder, no labels). `setup_probes` replaces parts of them.
PROBE_ROWS = [
    {"step": s, "betti0": 1, "betti1": 0, "h0_persistence": 0.5, "h1_persistence": 0.0,
     "cka_previous": None if s == 1 else 0.9, "seconds": 0.1}
    for s in (1, 2)
]  # fmt: skip
PROBE_INFO = {"samples": 8, "pairs": 0, "grid": 0, "every": 1, "seed": 0, "random_samples": 16,
              "class_geodesics": False, "landscape_every": None, "decoder": False,
              "labels": False, "data_shape": [32, 3], "data_sha256": "0" * 64}  # fmt: skip
WITHOUT_SECONDS = {k: v for k, v in PROBE_ROWS[1].items() if k != "seconds"}


def setup_probes(*, rows=PROBE_ROWS, info=PROBE_INFO, arrays=None, files=None):
    """tmp/run with probe files: `rows` (a list, or the file's bytes) and `info` instead
    of the good ones, `arrays` updating the good arrays (None: deleted), and `files`
    (name → bytes) beside them."""

    def setup(tmp: Path) -> None:
        run = tmp / "run"
        run.mkdir(exist_ok=True)
        codes = np.random.default_rng(0).normal(size=(2, 8, 2))
        good = {"steps": np.array([1, 2]), "codes": codes, "h0": np.array([[1, 0, 0.5]] * 7 +
                [[2, 0, 0.4]] * 7), "h1": np.zeros((0, 3)), "sample_index": np.arange(8),
                "color": np.linspace(0, 1, 8), "pairs": np.zeros((0, 2), int),
                "random_index": np.arange(16)}  # fmt: skip
        merged = {k: v for k, v in {**good, **(arrays or {})}.items() if v is not None}
        np.savez(run / "dynamics.npz", **merged)
        (run / "recorder.json").write_text(json.dumps(info))
        text = rows if isinstance(rows, bytes) else "".join(json.dumps(r) + "\n" for r in rows)
        (run / "dynamics.jsonl").write_bytes(text if isinstance(text, bytes) else text.encode())
        for name, data in (files or {}).items():
            (run / name).write_bytes(data)

    return setup


def setup_checkpoint(*, drop: str | None = None, beside: str | None = None):
    """tmp/run/checkpoints/1 with a manifest lacking `drop`, and a directory `beside` it."""

    def setup(tmp: Path) -> None:
        step = tmp / "run" / "checkpoints" / "1"
        step.mkdir(parents=True)
        (step / "data").write_bytes(b"weights")
        digest = hashlib.sha256(b"weights").hexdigest()
        manifest = {"step": 1, "config": {}, "files": {"data": digest}}
        (step / "jgeo_manifest.json").write_text(
            json.dumps({k: v for k, v in manifest.items() if k != drop})
        )
        if beside is not None:
            (step.parent / beside).mkdir()

    return setup


def _damaged_deflate() -> bytes:
    """A compressed .npz with bytes overwritten inside its deflated `x` (zlib fails)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=POINTS)
    data = bytearray(buffer.getvalue())
    data[200:260] = b"\xff" * 60
    return bytes(data)


LONG_DOUBLES = POINTS.astype(np.longdouble)
LONG_DOUBLES[0, 0] = np.longdouble("1e400")  # finite in long double, beyond float64


def setup_all(*setups):
    def setup(tmp: Path) -> None:
        for one in setups:
            one(tmp)

    return setup


def setup_run_config(**values):
    """tmp/run/config.json of the config `values`, as a run writes it (`DATA` in `data`
    stands for tmp/mine.npy)."""

    def setup(tmp: Path) -> None:
        (tmp / "run").mkdir(exist_ok=True)
        data = values.get("data", "digits").replace("DATA", str(tmp / "mine.npy"))
        config = jgeo.train.make_config({**values, "data": data}).to_dict()
        (tmp / "run" / "config.json").write_text(json.dumps(config, indent=2))

    return setup


def setup_toml_of_file(text: str):
    """tmp/conf.toml of `text`, with SHA standing for the SHA-256 of tmp/mine.npy."""

    def setup(tmp: Path) -> None:
        sha = hashlib.sha256((tmp / "mine.npy").read_bytes()).hexdigest()
        (tmp / "conf.toml").write_text(text.replace("SHA", sha))

    return setup


TINY_TOML = 'data = "swissroll"\nn = 64\nhidden = [8]\nepochs = 1\nprobe_every = 0\n'


# Activation files as a script of any framework writes them for `jgeo probe`: two steps
# of two layers of 16 inputs, with labels. `setup_activations` replaces parts of them.
ACTIVATIONS = {
    "h": np.random.default_rng(2).normal(size=(16, 3)).astype(np.float32),
    "z": np.random.default_rng(3).normal(size=(16, 2)),
    "labels": np.arange(16) % 3,
}
WITH_NAN_H = ACTIVATIONS["h"].copy()
WITH_NAN_H[5, 1] = np.nan


def setup_second_probes(**changes):
    """tmp/run with good probe files, and tmp/run2 with `setup_probes(**changes)`'s."""

    def setup(tmp: Path) -> None:
        setup_probes(**changes)(tmp)
        os.rename(tmp / "run", tmp / "run2")
        setup_probes()(tmp)

    return setup


def setup_activations(**files):
    """tmp/acts with step_1.npz and step_2.npz; `files` maps a file name to the arrays
    that update the good ones (a value None drops the array; the file None drops the
    file), or to the bytes it holds."""

    def setup(tmp: Path) -> None:
        acts = tmp / "acts"
        acts.mkdir(exist_ok=True)
        for name, content in {"step_1.npz": {}, "step_2.npz": {}, **files}.items():
            if isinstance(content, bytes):
                (acts / name).write_bytes(content)
            elif content is not None:
                arrays = {k: v for k, v in {**ACTIVATIONS, **content}.items() if v is not None}
                np.savez(acts / name, **arrays)

    return setup


def _activations_with_a_member(name: str, data: bytes) -> bytes:
    """A step file of the good arrays and one more zip member `name`."""
    buffer = io.BytesIO()
    np.savez(buffer, **ACTIVATIONS)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def _activations_damaged() -> bytes:
    """A compressed step file with bytes overwritten inside its deflated `h`."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **ACTIVATIONS)
    data = bytearray(buffer.getvalue())
    data[60:90] = b"\xff" * 30
    return bytes(data)


def _activations_huge_header() -> bytes:
    """A step file whose `h` header declares 10**12 inputs."""
    header = np.lib.format.header_data_from_array_1_0(ACTIVATIONS["h"])
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {**header, "shape": (10**12, 3)})
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in ACTIVATIONS.items() if k != "h"})
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("h.npy", npy.getvalue() + ACTIVATIONS["h"].tobytes())
    return buffer.getvalue()


# (id, setup of the temporary directory, arguments after `jgeo`, expected text on stderr).
# `RUN` in the arguments stands for tmp/run; `TMP` for tmp.
CASES = [
    ("out-is-a-file", setup_file, ["train", "--out", "TMP/file"], "is a file, not a directory"),
    ("out-under-a-file", setup_file, ["train", "--out", "TMP/file/run"], "Not a directory"),
    ("config-is-a-directory", setup_config_dir, ["train", "--config", "TMP/conf.toml"],
     "is a directory; name a .toml file"),
    ("config-missing", None, ["train", "--config", "TMP/missing.toml"], "does not exist"),
    ("config-not-toml", setup_toml("data = [\n"), ["train", "--config", "TMP/conf.toml"],
     "not valid TOML"),
    ("n-zero", None, ["train", "--n", "0"], "`n` must be at least 16"),
    ("negative-seed", None, ["train", "--seed", "-5"], "`seed` must be a non-negative integer"),
    ("epochs-zero", None, ["train", "--epochs", "0"], "`epochs` must be positive"),
    ("out-empty", None, ["train", "--out", ""], "--out is empty: give a directory path"),
    ("keep-every-negative", None, ["train", "--keep-every", "-1"],
     "`keep_every` (--keep-every) must be an integer ≥ 0"),
    ("landscape-between-probes", None, ["train", "--landscape-every", "3", "--probe-every", "2"],
     "must be a multiple of `probe_every` (2)"),
    ("conv-needs-images", None, ["train", "--model", "conv", "--data", "swissroll"],
     "needs image data"),
    ("bernoulli-needs-intensities", None, ["train", "--likelihood", "bernoulli", "--data",
     "swissroll"], "bernoulli needs data in [0, 1]"),
    ("unknown-class", setup_toml("classes = [3, 12]\n"), ["train", "--config", "TMP/conf.toml"],
     "[12] do not exist"),
    ("repeated-class", setup_toml("classes = [3, 3]\n"), ["train", "--config", "TMP/conf.toml"],
     "distinct digit classes"),
    ("config-json-not-an-object", setup_run_file("config.json", "[1, 2]"),
     ["train", "--out", "RUN"], "config.json is damaged (a config must be a table of keys"),
    ("config-json-not-json", setup_run_file("config.json", '{"data": '),
     ["train", "--out", "RUN"], "config.json is damaged"),
    ("truncated-metrics", setup_run_file("metrics.jsonl", '{"epoch": 1, "loss": 0.5}\n{"epo'),
     ["train", "--out", "RUN"], "metrics.jsonl line 2 is truncated"),
    ("report-of-nothing", None, ["report", "RUN"], "not a jgeo run directory"),
    ("dynamics-of-nothing", None, ["dynamics", "RUN"], "not a jgeo run directory"),
    ("dynamics-without-probes", setup_run_file("metrics.jsonl", ""), ["dynamics", "RUN"],
     "dynamics.jsonl does not exist"),
    # Several runs on one page (issue 35): its own directory, each run once, runs only.
    ("dynamics-two-runs-without-out", setup_probes(), ["dynamics", "RUN", "TMP/b"],
     "2 runs go on one page: name its directory with --out DIR"),
    ("report-two-runs-without-out", None, ["report", "RUN", "TMP/b"],
     "2 runs go on one page: name its directory with --out DIR"),
    ("dynamics-a-run-twice", setup_probes(), ["dynamics", "RUN", "TMP/run/", "--out", "TMP/p"],
     "is given twice: name each run once"),
    ("dynamics-page-out-a-file", setup_file, ["dynamics", "TMP/a", "TMP/b", "--out", "TMP/file"],
     "is a file: name a directory for the page"),
    ("dynamics-beside-no-run", setup_probes(), ["dynamics", "RUN", "TMP", "--out", "TMP/p"],
     "holds neither probes (dynamics.jsonl) nor a report (report.json)"),
    ("data-file-missing", None, ["train", "--data", "TMP/mine.npz"], "mine.npz: does not exist"),
    ("data-file-wrong-kind", None, ["train", "--data", "TMP/mine.csv"], "unknown data"),
    ("data-file-unreadable", setup_data("mine.npz", raw=b"not a zip"),
     ["train", "--data", "TMP/mine.npz"], "mine.npz: unreadable as .npz"),
    ("data-file-without-x", setup_data("mine.npz", points=POINTS),
     ["train", "--data", "TMP/mine.npz"], "has no array `x` (found: points)"),
    ("data-file-nan", setup_data("mine.npz", x=WITH_NAN),
     ["train", "--data", "TMP/mine.npz"], "NaN or infinite values in 2 points"),
    ("data-file-wrong-rank", setup_data("mine.npy", x=POINTS[:, 0]),
     ["train", "--data", "TMP/mine.npy"], "`x` has shape (200,)"),
    ("data-file-labels-length", setup_data("mine.npz", x=POINTS, labels=np.zeros(199, int)),
     ["train", "--data", "TMP/mine.npz"], "`labels` has shape (199,), but `x` has 200 points"),
    ("data-file-smaller-than-a-batch", setup_data("mine.npy", x=POINTS[:40]),
     ["train", "--data", "TMP/mine.npy"], "has 40 points, fewer than a batch (batch_size 128)"),
    ("conv-on-vectors-from-a-file", setup_data("mine.npy", x=POINTS),
     ["train", "--data", "TMP/mine.npy", "--model", "conv"], "needs image data"),
    ("data-file-without-features", setup_data("mine.npy", x=np.zeros((200, 0))),
     ["train", "--data", "TMP/mine.npy"], "`x` has shape (200, 0): no features"),
    ("data-file-without-points", setup_data("mine.npy", x=np.zeros((0, 3))),
     ["train", "--data", "TMP/mine.npy"], "`x` has shape (0, 3): no points"),
    ("data-file-member-not-an-array", setup_zip("mine.npz", {"x.npy": b"not an array"}),
     ["train", "--data", "TMP/mine.npz"], "member 'x' is not a NumPy array"),
    ("data-file-header-asks-for-terabytes", setup_raw("mine.npy", HUGE_HEADER),
     ["train", "--data", "TMP/mine.npy"], "declares an array of shape (1000000000000, 3)"),
    ("data-file-string-colours", setup_data("mine.npz", x=POINTS, color=np.array(200 * ["red"])),
     ["train", "--data", "TMP/mine.npz"], "`color` must hold numbers"),
    ("data-file-values-beyond-float32", setup_data("mine.npy", x=POINTS * 1e300),
     ["train", "--data", "TMP/mine.npy"], "beyond float32 (±3.4e38), in which jgeo trains"),
    ("data-file-spread-below-float32", setup_data("mine.npy", x=POINTS * 1e-200),
     ["train", "--data", "TMP/mine.npy"], "below float32's smallest normal number"),
    ("data-file-constant", setup_data("mine.npy", x=np.ones((200, 3))),
     ["train", "--data", "TMP/mine.npy"], "`x` is constant (every value 1.0)"),
    ("data-file-negative-labels", setup_data("mine.npz", x=POINTS, labels=LABELS - 1),
     ["train", "--data", "TMP/mine.npz"], "`labels` must be in [0, 2**31 - 1): found -1"),
    ("data-file-labels-all-unlabelled", setup_data("mine.npz", x=POINTS, labels=-np.ones(200, int)),
     ["train", "--data", "TMP/mine.npz"], "found -1 (200 points); -1 does not mark unlabelled"),
    ("data-file-label-at-the-int32-maximum",
     setup_data("mine.npz", x=POINTS, labels=np.r_[LABELS[:-1], 2**31 - 1]),
     ["train", "--data", "TMP/mine.npz"], "found 2147483647 (1 point)"),
    ("data-file-label-beyond-int32",
     setup_data("mine.npz", x=POINTS, labels=np.r_[LABELS[:-1], 2**32 + 1]),
     ["train", "--data", "TMP/mine.npz"], "found 4294967297 (1 point)"),
    ("data-file-float-labels", setup_data("mine.npz", x=POINTS, labels=LABELS + 0.5),
     ["train", "--data", "TMP/mine.npz"], "`labels` must be integer classes of shape (200,)"),
    ("data-file-of-one-feature", setup_data("mine.npy", x=POINTS[:, :1]),
     ["train", "--data", "TMP/mine.npy"], "--latent-dim 2 is above the dimension of the data"),
    ("latent-dim-above-the-data", None, ["train", "--data", "swissroll", "--latent-dim", "4"],
     "(swissroll: 3 features)"),
    ("infinite-noise", None, ["train", "--noise", "inf"], "`noise` must be a finite number"),
    ("infinite-weight", None, ["train", "--weight", "inf"], "`weight` must be a finite number"),
    ("nan-learning-rate", None, ["train", "--learning-rate", "nan"],
     "`learning_rate` must be a finite number"),
    ("bool-option-given-a-string", setup_toml('probe_class_geodesics = "x"\n'),
     ["train", "--config", "TMP/conf.toml"], "`probe_class_geodesics` must be true or false"),
    ("integer-of-400-digits", setup_toml(f"weight = {10**400}\n"),
     ["train", "--config", "TMP/conf.toml"], "`weight` must be a finite number, got 1000"),
    ("epochs-beyond-int64", setup_toml(f"epochs = {2**70}\n"),
     ["train", "--config", "TMP/conf.toml"], "`epochs` must be an integer within int64"),
    ("infinite-weight-in-toml", setup_toml("weight = inf\n"),
     ["train", "--config", "TMP/conf.toml"], "`weight` must be a finite number, got inf"),
    ("probe-grid-of-one", setup_toml("probe_grid = 1\n"), ["train", "--config", "TMP/conf.toml"],
     "`probe_grid` must be 0 (no fields) or at least 2"),
    ("class-geodesics-without-labels", None,
     ["train", "--data", "swissroll", "--class-geodesics"],
     "--class-geodesics needs labelled data, and swissroll has no labels"),
    # Damaged probe and run files (issue 36), read by `jgeo dynamics`, `report`, or a resume.
    ("probes-array-missing", setup_probes(arrays={"codes": None}), ["dynamics", "RUN"],
     "dynamics.npz is damaged (no 'codes' array)"),
    ("probes-array-of-a-wrong-rank", setup_probes(arrays={"codes": np.zeros((2, 8))}),
     ["dynamics", "RUN"], "'codes' has shape (2, 8), not rank 3"),
    ("probes-row-missing-a-key", setup_probes(rows=[PROBE_ROWS[0], WITHOUT_SECONDS]),
     ["dynamics", "RUN"], "dynamics.jsonl line 2 has other keys than the first row (missing: "
     "seconds"),
    ("probes-value-of-a-wrong-type",
     setup_probes(rows=[PROBE_ROWS[0], {**PROBE_ROWS[1], "betti0": "1"}]),
     ["dynamics", "RUN"], "dynamics.jsonl line 2 has 'betti0' = '1', not a number, null or bool"),
    ("probes-rows-not-utf8", setup_probes(rows=b'{"step": 1, "betti0": "\xff"}\n'),
     ["dynamics", "RUN"], "dynamics.jsonl line 1 is truncated or not JSON"),
    ("probes-recorder-json-missing-a-key",
     setup_probes(info={k: v for k, v in PROBE_INFO.items() if k != "samples"}),
     ["dynamics", "RUN"], "recorder.json is damaged (no 'samples')"),
    ("probes-recorder-json-value-of-a-wrong-type",
     setup_probes(info={**PROBE_INFO, "samples": "8"}),
     ["dynamics", "RUN"], "recorder.json is damaged ('samples' is '8')"),
    ("probes-config-json-not-json", setup_probes(files={"config.json": b'{"data": '}),
     ["dynamics", "RUN"], "config.json is damaged (not a JSON object)"),
    ("probes-metrics-not-utf8", setup_probes(files={"metrics.jsonl": b'{"epoch": 1, "\xff": 1}\n'}),
     ["dynamics", "RUN"], "metrics.jsonl line 1 is truncated or not JSON"),
    ("metrics-row-missing-a-key",
     setup_run_file("metrics.jsonl", '{"epoch": 1, "loss": 0.5}\n{"epoch": 2}\n'),
     ["train", "--out", "RUN"], "metrics.jsonl line 2 has other keys than the first row "
     "(missing: loss"),
    ("metrics-value-of-a-wrong-type",
     setup_run_file("metrics.jsonl", '{"epoch": 1, "loss": [0.5]}\n'),
     ["train", "--out", "RUN"], "metrics.jsonl line 1 has 'loss' = [0.5], not a number"),
    ("metrics-not-utf8", setup_run_bytes("metrics.jsonl", b'{"epoch": 1, "loss": "\xff"}\n'),
     ["train", "--out", "RUN"], "metrics.jsonl line 1 is truncated or not JSON"),
    ("config-json-a-directory", setup_run_bytes("config.json/x", b""), ["train", "--out", "RUN"],
     "config.json cannot be read (Is a directory)"),
    ("manifest-without-config", setup_checkpoint(drop="config"), ["report", "RUN"],
     "checkpoints/1 is damaged (its manifest is damaged (keys ['files', 'step']"),
    ("manifest-without-config-on-resume", setup_checkpoint(drop="config"),
     ["train", "--out", "RUN"],
     "step 1: its manifest is damaged (keys ['files', 'step']"),
    ("misnamed-checkpoint-step", setup_checkpoint(beside="12x"), ["train", "--out", "RUN"],
     "checkpoints/12x is not a checkpoint step"),
    ("zero-padded-checkpoint-step", setup_checkpoint(beside="007"), ["report", "RUN"],
     "checkpoints/007 is not a checkpoint step"),
    # Issue 37: the adversarial tester's cases (item numbers of the issue).
    ("data-file-deflated-member-damaged", setup_raw("mine.npz", _damaged_deflate()),  # 1
     ["train", "--data", "TMP/mine.npz"], "mine.npz: unreadable as .npz (Error -3"),
    ("data-file-long-double-beyond-float64", setup_data("mine.npz", x=LONG_DOUBLES),  # 3
     ["train", "--data", "TMP/mine.npz"], "values up to 1e+400, beyond float32 (±3.4e38), in "
     "which jgeo trains: divide it by 1e+400."),
    ("data-file-changed-since-the-run",  # 4: the run recorded another SHA-256
     setup_all(setup_data("mine.npy", x=POINTS),
               setup_run_config(data="DATA", data_sha256="0" * 64, data_scaling=[0.0, 1.0])),
     ["train", "--data", "TMP/mine.npy"], "mine.npy has changed since the run was trained"),
    ("newline-in-a-path", None, ["train", "--data", "TMP/a\nb.npz"],  # 5
     "a\\nb.npz: does not exist."),
    ("hidden-too-wide-for-memory", setup_toml("hidden = [100000000000]\n"),  # 6
     ["train", "--config", "TMP/conf.toml"], "`hidden` [100000000000] makes a model of 1.34e+13 "
     "parameters"),
    ("hidden-of-a-bool", setup_toml("hidden = [true]\n"), ["train", "--config", "TMP/conf.toml"],
     "`hidden` must be a list of integers, got [True]"),  # 7
    ("classes-of-bools", setup_toml("classes = [true, false]\n"),  # 8
     ["train", "--config", "TMP/conf.toml"], "`classes` must be a list of integers"),
    ("data-scaling-of-zero", setup_all(setup_data("mine.npy", x=POINTS),  # 9
                                       setup_toml("data_scaling = [0.0, 0.0]\n")),
     ["train", "--config", "TMP/conf.toml", "--data", "TMP/mine.npy"],
     "`data_scaling` must be [shift, scale] with scale > 0, got [0.0, 0.0]"),
    ("data-scaling-not-the-files", setup_all(setup_data("mine.npy", x=POINTS),  # 9
                                             setup_toml("data_scaling = [5.0, 1e-30]\n")),
     ["train", "--config", "TMP/conf.toml", "--data", "TMP/mine.npy"],
     "`data_scaling` [5.0, 1e-30] is not the scaling of data file"),
    ("data-scaling-beyond-float32",  # 9: with the file's own SHA-256, as a run records it
     setup_all(setup_data("mine.npy", x=POINTS),
               setup_toml_of_file('data_sha256 = "SHA"\ndata_scaling = [5.0, 1e-300]\n')),
     ["train", "--config", "TMP/conf.toml", "--data", "TMP/mine.npy"],
     "`data_scaling` [5.0, 1e-300] takes `x` beyond float32"),
    ("data-scaling-of-built-in-data", setup_toml("data_scaling = [0.0, 1.0]\n"),  # 9
     ["train", "--config", "TMP/conf.toml"], "`data_scaling` belongs to a data file"),
    ("metrics-deleted-behind-a-checkpoint", setup_checkpoint(), ["train", "--out", "RUN"],  # 12
     "metrics.jsonl lacks the rows of epoch 1, which checkpoint 1 holds"),
    ("metrics-emptied-behind-a-checkpoint",  # 12
     setup_all(setup_checkpoint(), setup_run_file("metrics.jsonl", "")),
     ["train", "--out", "RUN"], "metrics.jsonl lacks the rows of epoch 1, which checkpoint 1"),
    ("metrics-a-directory", setup_run_bytes("metrics.jsonl/x", b""), ["train", "--out", "RUN"],
     "metrics.jsonl is a directory, not the run's metrics file"),  # 14
    ("config-json-edited-rerun-with-the-runs-options",  # 16: the checkpoint has epochs 200
     setup_all(setup_checkpoint(), setup_run_config(epochs=5)), ["train", "--out", "RUN"],
     "config.json disagrees with the configuration its checkpoint was trained with (epochs: "
     "200 → 5); restore it or delete it"),
    ("config-json-edited-rerun-with-its-options",  # 16
     setup_all(setup_checkpoint(), setup_run_config(epochs=5)),
     ["train", "--out", "RUN", "--epochs", "5"],
     "config.json disagrees with the configuration its checkpoint was trained with"),
    ("checkpoints-a-file-on-resume",  # 17
     setup_all(setup_toml(TINY_TOML), setup_run_file("checkpoints", "not a directory")),
     ["train", "--config", "TMP/conf.toml", "--out", "RUN"],
     "checkpoints is a file, not the run's checkpoint directory"),
    ("checkpoints-a-file-on-report", setup_run_file("checkpoints", "not a directory"),  # 17
     ["report", "RUN"], "checkpoints is a file, not the run's checkpoint directory"),
    # Issue 31: `jgeo probe` over saved activations (step_*.npz) or a run's checkpoints.
    ("probe-of-nothing", None, ["probe", "TMP/acts", "--out", "RUN"], "acts does not exist"),
    ("probe-no-step-files", setup_run_file("notes.txt", "x"), ["probe", "RUN", "--out", "TMP/o"],
     "holds no activation files: write one step_<step>.npz per step"),
    ("probe-step-not-a-number", setup_activations(**{"step_1e3.npz": {}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_1e3.npz: the step in its name is not an integer"),
    ("probe-other-npz", setup_activations(**{"inputs.npz": {}}),
     ["probe", "TMP/acts", "--out", "RUN"], "inputs.npz: it is not an activation file"),
    ("probe-step-twice", setup_activations(**{"step_002.npz": {}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_002.npz and step_2.npz both hold step 2"),
    ("probe-step-beyond-int32", setup_activations(**{"step_3000000000.npz": {}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step 3000000000 is beyond 2**31 - 1"),
    ("probe-sample-counts-differ", setup_activations(**{"step_2.npz": {
        "h": ACTIVATIONS["h"][:15], "z": ACTIVATIONS["z"][:15], "labels": np.arange(15) % 3}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_2.npz: layer 'h' holds 15 inputs, and "
     "step_1.npz 16: every layer of every step holds the same inputs"),
    ("probe-layer-missing", setup_activations(**{"step_2.npz": {"z": None}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_2.npz lacks layer 'z', which step_1.npz holds"),
    ("probe-layer-extra", setup_activations(**{"step_2.npz": {"w": ACTIVATIONS["z"]}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_2.npz holds layer 'w', which step_1.npz does "
     "not"),
    ("probe-layer-reshaped", setup_activations(**{"step_2.npz": {"h": np.ones((16, 4))}}),
     ["probe", "TMP/acts", "--out", "RUN"], "layer 'h' has shape (4,) per input, and (3,) in "
     "step_1.npz"),
    ("probe-nan", setup_activations(**{"step_2.npz": {"h": WITH_NAN_H}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_2.npz: layer 'h' holds NaN or infinite values "
     "(1 of 48)"),
    ("probe-long-double-beyond-float64",
     setup_activations(**{"step_2.npz": {"z": np.full((16, 2), np.longdouble("1e400"))}}),
     ["probe", "TMP/acts", "--out", "RUN"], "layer 'z' holds values up to 1e+400, beyond float"),
    ("probe-strings", setup_activations(**{"step_2.npz": {"h": np.full((16, 3), "a")}}),
     ["probe", "TMP/acts", "--out", "RUN"], "layer 'h' holds <U1 values, not real numbers"),
    ("probe-complex", setup_activations(**{"step_2.npz": {"h": np.ones((16, 3), complex)}}),
     ["probe", "TMP/acts", "--out", "RUN"], "layer 'h' holds complex128 values"),
    ("probe-too-few-inputs", setup_activations(**{name: {"h": np.ones((4, 3)), "z": np.ones((4, 2)),
     "labels": np.arange(4)} for name in ("step_1.npz", "step_2.npz")}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_1.npz holds 4 inputs: the probes need at "
     "least 8"),
    ("probe-labels-too-short", setup_activations(**{"step_2.npz": {"labels": np.arange(15)}}),
     ["probe", "TMP/acts", "--out", "RUN"], "`labels` has shape (15,), but the layers hold 16"),
    ("probe-labels-of-floats", setup_activations(**{"step_2.npz": {"labels": np.ones(16)}}),
     ["probe", "TMP/acts", "--out", "RUN"], "`labels` holds float64 values: save the classes as "
     "integers"),
    ("probe-labels-negative", setup_activations(**{"step_1.npz": {"labels": -np.ones(16, int)},
                                                   "step_2.npz": {"labels": -np.ones(16, int)}}),
     ["probe", "TMP/acts", "--out", "RUN"], "`labels` must be in [0, 2**31 - 1): found -1"),
    ("probe-labels-differ", setup_activations(**{"step_2.npz": {"labels": np.arange(16) % 2}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_2.npz: `labels` differ from step_1.npz's at "),
    ("probe-labels-in-one-file", setup_activations(**{"step_2.npz": {"labels": None}}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_1.npz holds `labels` and "),
    ("probe-not-a-zip", setup_activations(**{"step_2.npz": b"not a zip"}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_2.npz is damaged (not an .npz archive"),
    ("probe-deflated-bytes-damaged", setup_activations(**{"step_2.npz": _activations_damaged()}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_2.npz is damaged ("),
    ("probe-header-of-10**12-inputs",
     setup_activations(**{"step_2.npz": _activations_huge_header()}),
     ["probe", "TMP/acts", "--out", "RUN"], "step_2.npz is damaged ('h' declares shape "
     "(1000000000000, 3)"),
    ("probe-member-not-an-array",
     setup_activations(**{"step_2.npz": _activations_with_a_member("notes.txt", b"hi")}),
     ["probe", "TMP/acts", "--out", "RUN"], "its member 'notes.txt' is not a NumPy array"),
    ("probe-too-few-samples", setup_activations(), ["probe", "TMP/acts", "--out", "RUN",
     "--samples", "4"], "`samples` (--samples) must be an integer ≥ 8, got 4"),
    ("probe-out-is-the-input", setup_activations(), ["probe", "TMP/acts", "--out", "TMP/acts"],
     "is the probed directory itself"),
    ("probe-out-holds-probes", setup_all(setup_activations(), setup_probes()),
     ["probe", "TMP/acts", "--out", "RUN"], "holds probes already (dynamics.jsonl, dynamics.npz,"),
    ("probe-run-without-checkpoints", setup_run_file("config.json", "{}"),
     ["probe", "RUN", "--out", "TMP/o"], "is not a trained jgeo run (no checkpoint yet)"),
    ("probe-run-no-checkpoint-verifies", setup_checkpoint(drop="config"),
     ["probe", "RUN", "--out", "TMP/o"], "no checkpoint in "),
    ("probe-run-with-a-seed", setup_checkpoint(), ["probe", "RUN", "--out", "TMP/o", "--seed", "1"],
     "--seed applies to activation files"),
    # Issue 32: `jgeo compare` of probe directories of the same inputs.
    ("compare-one-directory", setup_probes(), ["compare", "RUN", "--out", "TMP/c"],
     "give at least two probe directories to compare"),
    ("compare-a-directory-twice", setup_probes(), ["compare", "RUN", "TMP/run/", "--out", "TMP/c"],
     "is given twice: name each probe directory once"),
    ("compare-out-is-an-input", setup_second_probes(), ["compare", "RUN", "TMP/run2", "--out",
     "RUN"], "is one of the compared directories"),
    ("compare-without-probes", setup_probes(), ["compare", "RUN", "TMP/none", "--out", "TMP/c"],
     "dynamics.jsonl does not exist"),
    ("compare-other-data", setup_second_probes(info={**PROBE_INFO, "data_sha256": "1" * 64}),
     ["compare", "RUN", "TMP/run2", "--out", "TMP/c"], "run2 probed other data than "),
    ("compare-no-common-samples", setup_second_probes(arrays={"sample_index": np.arange(8) + 20}),
     ["compare", "RUN", "TMP/run2", "--out", "TMP/c"], "the recordings share 0 fixed samples"),
]  # fmt: skip


# Bad option values: `jgeo train` refuses them before it prints its header.
OPTION_VALUES = {"n-zero", "negative-seed", "epochs-zero", "out-empty", "keep-every-negative",
                 "landscape-between-probes"}  # fmt: skip


def resolve(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("TMP", str(tmp)).replace("RUN", str(tmp / "run")) for a in args]


@pytest.mark.parametrize("setup, args, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path, monkeypatch, capsys, request, setup, args, message
):
    monkeypatch.chdir(tmp_path)  # the default --out (runs/...) lands here
    if setup is not None:
        setup(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = resolve(args, tmp_path)
    if args[0] == "train" and "--out" not in args:
        args += ["--out", str(tmp_path / "run")]
    assert main([*args, "--no-progress"] if args[0] == "train" else args) == 2
    out, err = capsys.readouterr()
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if request.node.callspec.id in OPTION_VALUES:  # refused before the run's header
        assert out == ""
    # A refused command writes nothing: no config.json, no new files (a run directory
    # that existed before keeps the lock file it was opened with, which holds no data).
    after = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.name != ".lock"]
    assert sorted(after) == before


@pytest.mark.parametrize("command", ["train", "report", "dynamics", "probe"])
def test_the_application_without_its_extra_names_the_install(monkeypatch, capsys, command):
    # `pip install jgeo` is the core; `jgeo train` and the reports need `jgeo[train]`.
    monkeypatch.setattr(cli, "missing_application", lambda: "flax")
    assert main([command, "--epochs", "2"] if command == "train" else [command, "x"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"jgeo {command}: needs the application packages, but flax is not installed: "
        'pip install "jgeo[train]" (the core, `import jgeo`, works without them).'
    )
    with pytest.raises(SystemExit) as exit_:  # --help still lists the command
        main(["--help"])
    assert exit_.value.code == 0 and 'needs pip install "jgeo[train]"' in capsys.readouterr().out


def test_an_unknown_choice_is_argparse_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--regularizer", "sparse"])
    assert exit_.value.code == 2 and "invalid choice: 'sparse'" in capsys.readouterr().err


def test_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    # Simulated: the first write of the run (config.json) finds no space left.
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(_loop, "write_atomic", full)
    argv = ["train", "--data", "swissroll", "--n", "64", "--epochs", "1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "config.json" in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture
def small_file_system(tmp_path):
    """A real tmpfs of `size`, mounted (as root) read-only or tiny; skipped where the
    machine does not allow mounting."""
    mounted = []

    def mount(options: str) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("options", ["ro,size=1m", "size=12k"], ids=["read-only", "full"])
def test_a_read_only_or_full_file_system_is_one_line(small_file_system, capsys, options):
    root = small_file_system(options)
    config = root.parent / "tiny.toml"
    config.write_text('data = "swissroll"\nn = 64\nhidden = [8, 8]\nepochs = 1\nprobe_every = 0\n')
    argv = ["train", "--config", str(config), "--out", str(root / "run"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert any(s in err for s in ["Read-only file system", "no room for checkpoint 1"])
    assert "rerun" in err.lower() or "writable" in err

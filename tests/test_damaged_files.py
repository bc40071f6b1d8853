"""Damaged run and probe files (issue 36): every reader returns what the undamaged file
holds, or raises a `RunError` naming the file (one line at the command line) — never a
traceback, never a quiet wrong number."""

import hashlib
import io
import json
import logging
import math
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

from jgeo import dynamics
from jgeo._io import RunError
from jgeo.cli import main
from jgeo.dynamics._store import ProbeFiles
from jgeo.train import CheckpointError, read_rows
from jgeo.train._checkpoint import MANIFEST, Checkpoints

ROWS, ARRAYS, INFO, METRICS = "dynamics.jsonl", "dynamics.npz", "recorder.json", "metrics.jsonl"
DATA = np.random.default_rng(0).normal(size=(64, 3))
ENCODER = dict(encode=lambda p, x: jnp.tanh(p["enc"] @ x), labels=np.arange(64) % 3, samples=16,
               random_samples=32)  # fmt: skip
# With a decoder the probes hold more arrays (geodesic ratios, fields on a grid), and
# take seconds more to compile: the slow tier.
DECODER = dict(ENCODER, decode=lambda p, z: jnp.tanh(p["dec"] @ z),
               probes=[*dynamics.default_probes(decoder=False, labels=True),
                       dynamics.PullbackGeometry(grid=3)])  # fmt: skip
# Rows as `jgeo train` writes them to metrics.jsonl (written by hand: no training).
METRIC_ROWS = [
    {"epoch": e, "step": 4 * e, "loss": 1 / e, "recon_mse": 0.5 / e, "regularizer": 0.01 * e,
     "mcn": 3.0 + e, "vor": 0.2, "logdet_mean": -1.5, "logdet_var": 0.1, "seconds": 0.25}
    for e in range(1, 6)
]  # fmt: skip


class Probes(NamedTuple):
    path: Path
    recorder: dict  # the Recorder's arguments but `out` and `data`


@pytest.fixture(scope="module", params=["encoder", pytest.param("decoder", marks=pytest.mark.slow)])
def probes(request, tmp_path_factory) -> Probes:
    """Four probes (with epochs and labels) of a tiny model on 64 points, recorded by a
    `Recorder`: of its encoder, or (slow) of its encoder and decoder."""
    out = tmp_path_factory.mktemp("probes") / "probes"
    arguments = ENCODER if request.param == "encoder" else DECODER
    rng = np.random.default_rng(1)
    params = {"enc": rng.normal(size=(2, 3)) / 2, "dec": rng.normal(size=(3, 2))}
    with dynamics.Recorder(out, DATA, **arguments) as recorder:
        for epoch in range(1, 5):
            recorder(10 * epoch, {k: v * (1 + epoch / 10) for k, v in params.items()}, epoch=epoch)
    return Probes(out, arguments)


# -- the property test ---------------------------------------------------------------


class Mutation(NamedTuple):
    file: str
    what: str
    data: bytes  # the damaged file
    accepted: list  # results as true as the undamaged file's ([]: it must raise)


INVALID = object()
# Values a damaged row may hold instead of a number: (JSON text, what it reads as if the
# writer could have written it, else INVALID).
VALUES = [
    (b'"x"', INVALID),
    (b"[1]", INVALID),
    (b'{"a": 1}', INVALID),
    (b"null", None),
    (b"true", True),
    (b"1" + b"0" * 400, INVALID),  # an integer no writer writes
    (b"1e400", math.inf),
    (b"-Infinity", -math.inf),
    (b"NaN", math.nan),
    (b'"\xff\xfe"', INVALID),  # not UTF-8
    (b"\xff", INVALID),
]
PER_PROBE = ("steps", "epochs", "codes", "ratios", "pairs", "extent", "log_volume",
             "gaussian_curvature")  # fmt: skip


def with_value(record: dict, key: str, literal: bytes, **dumps) -> bytes:
    """`record` as JSON with the value of `key` replaced by the raw `literal`."""
    text = json.dumps({**record, key: "\u0001MARK"}, **dumps).encode()
    return text.replace(b'"\\u0001MARK"', literal)


def jsonl_mutation(rng, name: str, data: bytes, rows: list, special: set, result) -> Mutation:
    """A damaged copy of the rows file `name` (`rows`, as `data`): `result(rows)` is what
    a reader returns for rows it accepts; `special` keys hold integers only."""
    lines = data.split(b"\n")[:-1]  # the writer ends every row with a newline
    kind = rng.choice(["truncate", "delete key", "change type", "bad byte"])
    if kind == "truncate":
        ends = [i for i, byte in enumerate(data) if byte == ord("\n")]
        where = rng.choice(["anywhere", "at a row's start", "before a newline"])
        if where == "anywhere":
            cut = int(rng.integers(0, len(data)))
        elif where == "at a row's start":
            cut = int(rng.choice([0, *[e + 1 for e in ends[:-1]]]))
        else:
            cut = int(rng.choice(ends))
        kept = sum(end <= cut for end in ends)  # rows whose text is whole
        return Mutation(name, f"truncated at byte {cut} ({where})", data[:cut],
                        [result(rows[:kept])])  # fmt: skip
    i = int(rng.integers(len(rows)))
    key = str(rng.choice(list(rows[i])))
    if kind == "delete key":
        line = json.dumps({k: v for k, v in rows[i].items() if k != key}).encode()
        accepted = []
    elif kind == "change type":
        literal, value = VALUES[int(rng.integers(len(VALUES)))]
        line = with_value(rows[i], key, literal)
        valid = value is not INVALID and key not in special
        changed = [dict(r) for r in rows]
        changed[i][key] = value
        accepted = [result(changed)] if valid else []
        key = f"{key} = {literal[:12]!r}"
    else:
        at = int(rng.integers(len(lines[i])))
        line = lines[i][:at] + b"\xff" + lines[i][at + 1 :]
        key, accepted = f"byte {at}", []
    damaged = b"".join(line + b"\n" if j == i else lines[j] + b"\n" for j in range(len(lines)))
    return Mutation(name, f"{kind}: row {i + 1}, {key}", damaged, accepted)


def info_mutation(rng, data: bytes, info: dict, original) -> Mutation:
    kind = rng.choice(["truncate", "delete key", "change type", "bad byte"])
    if kind == "truncate":
        cut = int(rng.integers(0, len(data)))
        return Mutation(INFO, f"truncated at byte {cut}", data[:cut], [])
    if kind == "bad byte":
        at = int(rng.integers(len(data)))
        return Mutation(INFO, f"byte {at}", data[:at] + b"\xff" + data[at + 1 :], [])
    key = str(rng.choice(list(info)))
    if kind == "delete key":
        damaged = json.dumps({k: v for k, v in info.items() if k != key}, indent=2).encode()
        return Mutation(INFO, f"deleted {key}", damaged, [])
    literal, value = VALUES[int(rng.integers(len(VALUES)))]
    same = value is not INVALID and type(value) is type(info[key]) and value == info[key]
    return Mutation(INFO, f"{key} = {literal[:12]!r}", with_value(info, key, literal, indent=2),
                    [original] if same else [])  # fmt: skip


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def npz_mutation(rng, data: bytes, arrays: dict, original) -> Mutation:
    kind = rng.choice(["truncate", "delete array", "reshape", "retype", "bad byte"])
    if kind == "truncate":
        cut = int(rng.integers(0, len(data)))
        return Mutation(ARRAYS, f"truncated at byte {cut}", data[:cut], [])
    if kind == "bad byte":  # a zip's CRC catches changed data; some header bytes are inert
        at = int(rng.integers(len(data)))
        return Mutation(ARRAYS, f"byte {at}", data[:at] + b"\xff" + data[at + 1 :], [original])
    name = str(rng.choice(list(arrays)))
    changed, a = dict(arrays), arrays[name]
    if kind == "delete array":
        del changed[name]
        return Mutation(ARRAYS, f"deleted {name}", npz_bytes(changed), [])
    if kind == "reshape":
        # (a diagram's length varies: fewer pairs in it is no damage its shape shows)
        how = rng.choice(
            ["flat", "new axis", "reversed", *["one probe less"] * (name in PER_PROBE)]
        )
        changed[name] = {"flat": lambda: a.ravel(), "new axis": lambda: a[..., None],
                         "reversed": lambda: a.reshape(a.shape[::-1]),
                         "one probe less": lambda: a[1:]}[how]()  # fmt: skip
        same = changed[name].shape == a.shape  # e.g. a square reversed: the same array
        return Mutation(ARRAYS, f"{name} {how}", npz_bytes(changed), [original] if same else [])
    to = rng.choice(["int", "float", "str", "complex"])
    if to == {"f": "float", "i": "int", "u": "int"}.get(a.dtype.kind):
        to = "str"
    changed[name] = a.astype({"int": np.int64, "float": np.float64, "str": str,
                              "complex": np.complex128}[to])  # fmt: skip
    return Mutation(ARRAYS, f"{name} as {to}", npz_bytes(changed), [])


def probes_of(original, rows: list):
    """What `load` may return when dynamics.jsonl holds `rows` instead of the original's
    rows: those rows with the original arrays; for the first k < P rows (a truncated
    file), those probes if k = P − 1 (an interruption between the writes of the two files
    leaves the arrays one probe ahead), else None: it must raise."""
    k = len(rows)
    if k == len(original.rows):
        return dynamics.Dynamics(rows, original.arrays, original.info)
    if k < len(original.rows) - 1 or k == 0:
        return None
    last = original.rows[k - 1]["step"]
    arrays = {name: a[:k] if name in PER_PROBE else a for name, a in original.arrays.items()}
    for name in ("h0", "h1"):
        arrays[name] = arrays[name][arrays[name][:, 0] <= last]
    return dynamics.Dynamics(rows, arrays, original.info)


def same(a, b) -> bool:
    """Equal, NaN equal to NaN, types and dtypes included."""
    if isinstance(a, dynamics.Dynamics):
        return isinstance(b, dynamics.Dynamics) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def check(mutation: Mutation, read):
    """Either an accepted result or a RunError naming the damaged file; returns which."""
    try:
        result = read()
    except RunError as error:
        assert mutation.file in str(error), (mutation.what, str(error))
        assert "\n" not in str(error)
        return "refused"
    except Exception as error:  # any other exception is the failure this test looks for
        raise AssertionError(f"{mutation.file}, {mutation.what}: {error!r}") from error
    assert any(same(result, a) for a in mutation.accepted if a is not None), (
        f"{mutation.file}, {mutation.what}: read quietly as something else"
    )
    return "as before"


def test_random_damage_to_the_probe_files_is_refused_or_harmless(probes, tmp_path, capsys):
    probes = probes.path
    original = dynamics.load(probes)
    assert len(original.rows) == 4 and "epoch" in original.rows[0]  # the files under test
    files = {name: (probes / name).read_bytes() for name in (ROWS, ARRAYS, INFO)}
    with np.load(probes / ARRAYS) as npz:
        arrays = {k: npz[k] for k in npz.files}
    rows = [json.loads(line) for line in files[ROWS].splitlines()]
    work = tmp_path / "probes"
    rng = np.random.default_rng(36)
    outcomes, through_cli = [], {}
    for _ in range(240):
        file = rng.choice([ROWS, ARRAYS, INFO])
        if file == ROWS:
            mutation = jsonl_mutation(rng, ROWS, files[ROWS], rows, {"step", "epoch"},
                                      lambda r: probes_of(original, r))  # fmt: skip
        elif file == ARRAYS:
            mutation = npz_mutation(rng, files[ARRAYS], arrays, original)
        else:
            mutation = info_mutation(rng, files[INFO], original.info, original)
        work.mkdir(exist_ok=True)
        for name, data in files.items():
            (work / name).write_bytes(mutation.data if name == mutation.file else data)
        outcomes.append(check(mutation, lambda: dynamics.load(work)))
        if outcomes[-1] == "refused" and through_cli.get(file, 0) < 2:  # and at the command line
            through_cli[file] = through_cli.get(file, 0) + 1
            capsys.readouterr()
            assert main(["dynamics", str(work)]) == 2, mutation.what
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            assert mutation.file in err
    # The mutations damage, mostly: most are refused, some are harmless.
    assert outcomes.count("refused") > 150 and outcomes.count("as before") > 5
    assert sum(through_cli.values()) == 6


def test_random_damage_to_metrics_jsonl_is_refused_or_harmless(tmp_path):
    data = "".join(json.dumps(r) + "\n" for r in METRIC_ROWS).encode()  # as the loop writes
    path = tmp_path / METRICS
    rng = np.random.default_rng(3600)
    outcomes = []
    for _ in range(120):
        mutation = jsonl_mutation(rng, METRICS, data, METRIC_ROWS, {"epoch"}, lambda r: r)
        path.write_bytes(mutation.data)
        outcomes.append(check(mutation, lambda: read_rows(path)))
    assert outcomes.count("refused") > 50 and outcomes.count("as before") > 10


# -- cases named in the issue ----------------------------------------------------------


def test_a_recorder_reopened_on_damaged_probes_refuses_them(probes, tmp_path):
    # Resuming: a Recorder opened on a directory with probes continues them, so it reads
    # them first; a row that lost a key is refused, naming the file.
    work = tmp_path / "probes"
    shutil.copytree(probes.path, work)
    lines = (work / ROWS).read_text().splitlines()
    row = json.loads(lines[1])
    del row["betti0"]
    lines[1] = json.dumps(row)
    (work / ROWS).write_text("\n".join(lines) + "\n")
    with pytest.raises(dynamics.DynamicsError, match=f"{ROWS} line 2 has other keys .*betti0"):
        dynamics.Recorder(work, DATA, **probes.recorder)
    (work / ROWS).write_bytes(b'{"step": 10, "betti0": "\xff"}\n')
    with pytest.raises(dynamics.DynamicsError, match=f"{ROWS} line 1 is truncated or not JSON"):
        dynamics.Recorder(work, DATA, **probes.recorder)


def test_load_refuses_arrays_missing_or_of_the_wrong_rank(probes, tmp_path):
    work = tmp_path / "probes"
    shutil.copytree(probes.path, work)
    with np.load(work / ARRAYS) as npz:
        arrays = {k: npz[k] for k in npz.files}
    (work / ARRAYS).write_bytes(npz_bytes({**arrays, "codes": arrays["codes"][:, :, 0]}))
    with pytest.raises(
        dynamics.DynamicsError, match=r"'codes' has shape \(4, 16\): 4 of \(16, 2\)"
    ):
        dynamics.load(work)
    # recorder.json lists every array: one missing is damage of either file.
    (work / ARRAYS).write_bytes(npz_bytes({k: v for k, v in arrays.items() if k != "labels"}))
    with pytest.raises(dynamics.DynamicsError, match=f"does not match {INFO} \\(no 'labels' array"):
        dynamics.load(work)
    # Values no probe writes: codes that are not finite, samples outside the data.
    codes = arrays["codes"].copy()
    codes[1, 2, 0] = np.nan
    (work / ARRAYS).write_bytes(npz_bytes({**arrays, "codes": codes}))
    with pytest.raises(dynamics.DynamicsError, match="'codes' holds values that are not finite"):
        dynamics.load(work)
    index = arrays["sample_index"].copy()
    index[0] = -1
    (work / ARRAYS).write_bytes(npz_bytes({**arrays, "sample_index": index}))
    with pytest.raises(dynamics.DynamicsError, match="'sample_index' holds indices outside"):
        dynamics.load(work)
    h0 = arrays["h0"].copy()
    h0[0, 0] = 7  # a step that is no probe
    (work / ARRAYS).write_bytes(npz_bytes({**arrays, "h0": h0}))
    with pytest.raises(dynamics.DynamicsError, match="'h0' holds rows tagged with a step"):
        dynamics.load(work)


def test_what_a_probe_records_at_some_steps_only_is_none_or_nan_at_the_others(tmp_path):
    # `Every(n, probe)` records at every n-th probe: the rows keep the same keys (None
    # where not measured) and the stacked arrays one entry per probe (NaN there).
    files = ProbeFiles(tmp_path, {"samples": 1}, {})
    files.append({"step": 1, "a": 1.0}, {}, {})
    files.append({"step": 2, "a": 2.0, "b": 3.0}, {"m": np.ones(2)}, {})
    files.append({"step": 3, "a": 4.0}, {}, {})
    assert read_jsonl(tmp_path / ROWS) == [
        {"step": 1, "a": 1.0, "b": None},
        {"step": 2, "a": 2.0, "b": 3.0},
        {"step": 3, "a": 4.0, "b": None},
    ]
    with np.load(tmp_path / ARRAYS) as npz:
        np.testing.assert_array_equal(npz["m"], [[np.nan] * 2, [1, 1], [np.nan] * 2])


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sealed_step(tmp_path: Path) -> Checkpoints:
    """Checkpoints with one small step (1) saved and sealed."""
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    checkpoints.save(1, {"a": jnp.arange(3.0)}, {"weight": 0.05, "hidden": (8, 8)})
    checkpoints.close()
    return checkpoints


def test_a_damaged_manifest_is_a_damaged_checkpoint(tmp_path):
    checkpoints = sealed_step(tmp_path)
    assert checkpoints.problem(1) is None
    assert checkpoints.config(1) == {"weight": 0.05, "hidden": [8, 8]}
    path = tmp_path / "checkpoints" / "1" / MANIFEST
    sealed = json.loads(path.read_text())
    # A changed value: the manifest's own checksum no longer matches.
    path.write_text(json.dumps({**sealed, "config": {"weight": 0.2, "hidden": [8, 8]}}))
    assert checkpoints.problem(1) == "its manifest is damaged (it does not match its own checksum)"
    with pytest.raises(CheckpointError, match="does not match its own checksum"):
        checkpoints.config(1)
    # Without its config (a manifest of an older jgeo, without a checksum, too).
    for manifest in [{k: v for k, v in sealed.items() if k != "config"},
                     {"step": 1, "files": sealed["files"]}]:  # fmt: skip
        path.write_text(json.dumps(manifest))
        assert "its manifest is damaged (keys" in checkpoints.problem(1)
        with pytest.raises(CheckpointError, match="its manifest is damaged|is damaged"):
            checkpoints.config(1)
    # An older jgeo's manifest, whole, still verifies.
    path.write_text(json.dumps({k: v for k, v in sealed.items() if k != "sha256"}))
    assert checkpoints.problem(1) is None


@pytest.mark.parametrize("name", ["abc", "12x", "007", "²"])
def test_a_misnamed_checkpoint_step_is_named(tmp_path, name):
    checkpoints = sealed_step(tmp_path)
    (tmp_path / "checkpoints" / ".DS_Store").write_text("")  # hidden files are left alone
    (tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp").mkdir()  # as are orbax's temporaries
    assert checkpoints.steps() == [1]
    (tmp_path / "checkpoints" / name).mkdir()
    with pytest.raises(CheckpointError, match=f"checkpoints/{name} is not a checkpoint step"):
        checkpoints.steps()


@pytest.fixture
def tiny_file_system(tmp_path):
    """A 64 KiB tmpfs (mounted as root); skipped where the machine does not allow it."""
    point = tmp_path / "fs"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_disk_that_fills_during_a_save_is_one_error_without_orbax_tracebacks(
    tiny_file_system, monkeypatch, caplog, capfd
):
    # The room is checked before saving; here the disk fills after that check (another
    # writer), in orbax's background threads, which log their tracebacks through absl.
    checkpoints = Checkpoints(tiny_file_system / "checkpoints")
    monkeypatch.setattr(checkpoints, "_check_space", lambda *_: None)
    tree = {"a": jnp.asarray(np.random.default_rng(0).normal(size=100_000))}
    with (
        caplog.at_level(logging.INFO),
        pytest.raises(CheckpointError, match="could not be written"),
    ):
        checkpoints.save(1, tree, {})
    checkpoints.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_manifest_checksum_is_of_what_reads_back(tmp_path):
    # The checksum covers the manifest as it reads back (tuples as lists): a fresh save
    # verifies, and the digest is the one the reader recomputes.
    checkpoints = sealed_step(tmp_path)
    manifest = json.loads((tmp_path / "checkpoints" / "1" / MANIFEST).read_text())
    body = {k: manifest[k] for k in ("step", "config", "files")}
    assert (
        manifest["sha256"] == hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    )
    assert checkpoints.problem(1) is None

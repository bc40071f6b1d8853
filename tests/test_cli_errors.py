"""Every bad input of the command line: one line on stderr naming the problem, exit
code 2, no traceback, and nothing left in the run directory. Adding a case is one row."""

import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

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
WITH_NAN = POINTS.copy()
WITH_NAN[[3, 7]] = np.nan


def setup_run_file(name: str, text: str):
    def setup(tmp: Path) -> None:
        (tmp / "run").mkdir(exist_ok=True)
        (tmp / "run" / name).write_text(text)

    return setup


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
]  # fmt: skip


def resolve(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("TMP", str(tmp)).replace("RUN", str(tmp / "run")) for a in args]


@pytest.mark.parametrize("setup, args, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, setup, args, message):
    monkeypatch.chdir(tmp_path)  # the default --out (runs/...) lands here
    if setup is not None:
        setup(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = resolve(args, tmp_path)
    if args[0] == "train" and "--out" not in args:
        args += ["--out", str(tmp_path / "run")]
    assert main([*args, "--no-progress"] if args[0] == "train" else args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    # A refused command writes nothing: no config.json, no new files (a run directory
    # that existed before keeps the lock file it was opened with, which holds no data).
    after = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.name != ".lock"]
    assert sorted(after) == before


@pytest.mark.parametrize("command", ["train", "report", "dynamics"])
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

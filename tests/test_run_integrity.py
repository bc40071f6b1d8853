"""Runs that never lie: damaged checkpoints are detected by their checksums, a run
cannot be relabelled, and one process at a time writes a run directory."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN

from jgeo._io import RunLocked, run_lock
from jgeo.cli import main
from jgeo.train import CheckpointError, ConfigError, load_run, make_config, read_rows, train
from jgeo.train._checkpoint import MANIFEST

TINY = TINY_RUN


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 3-epoch run (checkpoints 2 and 3), copied by each test that changes it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(make_config(TINY), out, progress=False, checkpoint_seconds=0)
    return out


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def flip_a_byte(step_dir: Path) -> Path:
    """Change one byte in the middle of the step's largest data file, keeping its size."""
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.name != MANIFEST]
    target = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def rows_without_time(out: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k != "seconds"} for r in read_rows(out / "metrics.jsonl")
    ]


def test_every_checkpoint_is_sealed_with_checksums_and_its_config(trained):
    for step in ["2", "3"]:
        manifest = json.loads((trained / "checkpoints" / step / MANIFEST).read_text())
        assert make_config(manifest["config"]) == make_config(TINY)
        assert len(manifest["files"]) >= 2
        assert all(len(digest) == 64 for digest in manifest["files"].values())


def test_a_flipped_byte_is_found_and_training_resumes_from_the_last_sound_checkpoint(
    trained, run, capsys
):
    flip_a_byte(run / "checkpoints" / "3")
    # The report refuses the damaged model, naming the step and the fix.
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "checkpoints/3 is damaged" in err and "does not match its checksum" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    # Training sets step 3 aside, resumes from step 2 and ends exactly as before.
    train(make_config(TINY), run, progress=False)
    assert "checkpoint 3 is damaged" in capsys.readouterr().err
    assert (run / "damaged-checkpoints" / "3").is_dir()
    assert rows_without_time(run) == rows_without_time(trained)
    (_, _, before), (_, _, after) = load_run(trained), load_run(run)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(before(x), after(x))


def test_when_no_checkpoint_verifies_training_stops_with_exit_code_2(run, capsys):
    flip_a_byte(run / "checkpoints" / "3")
    (run / "checkpoints" / "2" / MANIFEST).unlink()  # as if killed before sealing it
    argv = ["train", "--config", str(write_toml(run.parent, TINY)), "--out", str(run)]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert (
        "no checkpoint in" in err and "step 3: file" in err and "step 2: it has no manifest" in err
    )
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        train(make_config(TINY), run, progress=False)


def write_toml(folder: Path, values: dict) -> Path:
    path = folder / "run.toml"
    lines = [
        f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in values.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_run_cannot_be_relabelled_by_deleting_its_config(run, capsys):
    # Trained at the isometry default weight 0.05; asked to resume as 0.2 without config.json.
    (run / "config.json").unlink()
    with pytest.raises(
        ConfigError, match=r"checkpoints .* different configuration \(weight: 0.05 → 0.2\)"
    ):
        train(make_config({**TINY, "weight": 0.2}), run, progress=False)
    assert not (run / "config.json").exists()
    # The report takes the configuration from the checkpoint and restores config.json.
    config, _, _ = load_run(run)
    assert config.weight == 0.05
    assert json.loads((run / "config.json").read_text())["weight"] == 0.05
    # A config.json edited to say otherwise is refused.
    edited = json.loads((run / "config.json").read_text()) | {"weight": 0.2}
    (run / "config.json").write_text(json.dumps(edited))
    assert main(["report", str(run)]) == 2
    assert (
        "disagrees with the configuration its checkpoint was trained with"
        in capsys.readouterr().err
    )


HOLDER = """
import sys, time
from jgeo._io import run_lock
with run_lock(sys.argv[1], "a test holder"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_one_writer_per_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        # A live holder: refused, naming it; nothing of the run is written.
        assert main(["train", "--out", str(out), "--epochs", "1", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"in use by another jgeo process (`a test holder`, pid {holder.pid}" in err
        assert not (out / "config.json").exists()
        assert main(["report", str(out)]) == 2 and "in use" in capsys.readouterr().err
        with pytest.raises(RunLocked):
            with run_lock(out, "second"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A dead holder (kill -9) leaves its file but no lock behind.
    assert (out / ".lock").exists()
    with run_lock(out, "after the holder died"):
        # In this process too, one holder: a second is refused, naming the first.
        with pytest.raises(RunLocked, match="in use by `after the holder died` in this process"):
            with run_lock(out, "second in this process"):
                pass
    # A holder that lends (a run, to its own Recorder) lends to one holder inside it.
    with run_lock(out, "a run", lend=True):
        with pytest.raises(RunLocked, match="in use by `a run`"):  # a run inside the run
            with run_lock(out, "another run"):
                pass
        with run_lock(out, "the run's recorder", borrow=True):
            with pytest.raises(RunLocked, match="in use by `the run's recorder`"):
                with run_lock(out, "a user's recorder", borrow=True):
                    pass
        with run_lock(out, "the next recorder", borrow=True):  # given back at the first's end
            pass


@pytest.mark.slow
def test_ctrl_c_says_where_the_run_stopped_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    # Far more epochs than run before the signal, which must stop it mid-run. Twice in a
    # clean-clone CI run it did not (exit 0 after all of 400 epochs; then a run of 100,000
    # still going 60 s after the signal): the KeyboardInterrupt had landed in jax's
    # garbage-collector callback, where Python drops it. The loop now remembers the signal
    # (`_io.remembered_interrupts`; test_train.py drops one on purpose).
    config = write_toml(tmp_path, {**TINY, "epochs": 100_000})
    command = [
        sys.executable,
        "-m",
        "jgeo.cli",
        "train",
        "--config",
        str(config),
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while len(read_rows_safely(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    (line,) = lines
    assert "interrupted during epoch" in line and "Rerun the same command to resume" in line
    kept = int(line.split("checkpoint ")[1].split()[0])
    assert kept >= 2 and (out / "checkpoints" / str(kept) / MANIFEST).exists()


def read_rows_safely(out: Path) -> list:
    try:
        return read_rows(out / "metrics.jsonl")
    except Exception:  # written atomically, but may not exist yet
        return []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/PID/maps")
def test_ctrl_c_while_the_command_imports_jgeo_ends_it_with_one_line(tmp_path):
    # Once, Ctrl-C in the first seconds of `jgeo train` (importing jgeo and jax) gave a
    # traceback and exit code -2, or landed in jax's garbage-collector callback, where
    # Python dropped it, and the run trained to its end. The console entry point
    # (`_jgeo_command`) now remembers it from its first line.
    config = write_toml(tmp_path, TINY)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "_jgeo_command", "train", "--config", str(config),
               "--out", str(out), "--no-progress"]  # fmt: skip
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + 60
    while "jaxlib" not in maps.read_text() and time.monotonic() < deadline:  # importing jax
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (130, "jgeo train: interrupted.\n")
    assert not out.exists()  # interrupted before the run began


def test_a_save_cut_short_leaves_no_warning_on_resume(trained, run, caplog):
    # A run killed (SIGTERM) while orbax saved step 3 leaves its temporary directory; the
    # resumed run saving step 3 again made orbax log a warning that it "already exists".
    shutil.rmtree(run / "checkpoints" / "3")
    unfinished = run / "checkpoints" / "3.orbax-checkpoint-tmp"
    (unfinished / "default").mkdir(parents=True)
    train(make_config(TINY), run, progress=False)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not unfinished.exists() and (run / "checkpoints" / "3" / MANIFEST).exists()
    assert rows_without_time(run) == rows_without_time(trained)

"""Probing after training (`jgeo probe`): activations saved by a script that does not
import jgeo give the rows of a live Recorder fed the same codes; a `jgeo train` run's
kept checkpoints give the probes the run recorded live at those epochs. Bad inputs:
test_cli_errors.py."""

import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TINY_RUN

from jgeo import dynamics
from jgeo.cli import main
from jgeo.experiment import probe_checkpoints, run
from jgeo.train import make_config

# A stand-in for a PyTorch run: numpy only, one file per step, two layers and labels.
WRITER = r"""
import sys
import numpy as np

rng = np.random.default_rng(0)
labels = rng.integers(0, 3, 40)
angle = np.linspace(0, 2 * np.pi, 40, endpoint=False)
for k, step in enumerate((100, 200, 300, 400, 500)):
    circle = np.stack([np.cos(angle), (1 + k) * np.sin(angle)], axis=1)
    hidden = np.tanh(rng.normal(size=(40, 4, 3)) + circle[:, :1, None])
    code = circle + 0.05 * rng.normal(size=(40, 2))
    np.savez(f"{sys.argv[1]}/step_{step:06d}.npz", hidden=hidden.astype(np.float32),
             code=code.astype(np.float32), labels=labels)
assert "jgeo" not in sys.modules
"""


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def assert_same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        np.testing.assert_array_equal(value, b[name], err_msg=name)


@pytest.mark.slow
def test_saved_activations_give_the_rows_of_a_live_recorder(tmp_path, capsys):
    acts = tmp_path / "acts"
    acts.mkdir()
    subprocess.run([sys.executable, "-c", WRITER, str(acts)], check=True)
    out = tmp_path / "probed"
    assert main(["probe", str(acts), "--out", str(out), "--samples", "16"]) == 0
    assert f"`jgeo dynamics {out}`" in capsys.readouterr().out
    probed = dynamics.load(out)

    # The same codes fed to a live Recorder: data the indices, encode a lookup.
    labels = np.load(acts / "step_000100.npz")["labels"]

    def encode(params, x):
        i = x[0].astype(jnp.int32)
        return {name: value[i] for name, value in params.items()}

    index = np.arange(40)[:, None]
    with dynamics.Recorder(tmp_path / "live", index, encode=encode, labels=labels,
                           samples=16) as recorder:  # fmt: skip
        for path in sorted(acts.glob("step_*.npz")):
            with np.load(path) as npz:
                recorder(int(path.stem[5:]), {k: npz[k] for k in npz.files if k != "labels"})
    live = dynamics.load(tmp_path / "live")

    assert [r["step"] for r in probed.rows] == [100, 200, 300, 400, 500]
    assert probed.layers == ["code", "hidden"] and probed.info["layers"]["hidden"] == 12
    assert {"code/betti1", "hidden/cka_previous", "code/nc1"} <= probed.rows[0].keys()
    assert without_seconds(probed.rows) == without_seconds(live.rows)
    assert_same_arrays(probed.arrays, live.arrays)
    assert probed.info == live.info
    # The fixed samples are spread over the files' order: maxmin landmarks of the indices,
    # no gap wider than twice the even spacing 40 / 16.
    assert np.max(np.diff(probed.arrays["sample_index"])) <= 2 * 40 / 16


@pytest.mark.slow
def test_a_runs_kept_checkpoints_give_the_probes_it_recorded_live(tmp_path):
    config = make_config({**TINY_RUN, "probe_every": 1})
    run(config, tmp_path / "run", progress=False, report=False, checkpoint_seconds=0)
    out = probe_checkpoints(tmp_path / "run", tmp_path / "probed")
    live, probed = dynamics.load(tmp_path / "run"), dynamics.load(out)
    # The run keeps its last two checkpoints: epochs 2 and 3 of 3, with every probe.
    assert [r["epoch"] for r in live.rows] == [1, 2, 3]
    assert [r["epoch"] for r in probed.rows] == [2, 3]
    assert "geodesic_ratio" in probed.rows[0] and probed.info == live.info
    # Equal but for the time taken and, at the first kept epoch, the CKA to a previous
    # probe the re-probe never saw (epoch 1's checkpoint is gone); its CKA to the first
    # probe is to the first kept checkpoint.
    expected = without_seconds(live.rows[1:])
    expected[0]["cka_previous"] = None
    expected[0]["cka_initial"] = None
    expected[1]["cka_initial"] = expected[1]["cka_previous"]
    assert without_seconds(probed.rows) == expected
    kept = np.isin(live.arrays["steps"], probed.arrays["steps"])
    for name, (_, _, kind) in live.info["arrays"].items():
        value = live.arrays[name]
        value = value[kept] if kind == "stacked" else value
        value = value[np.isin(value[:, 0], probed.arrays["steps"])] if kind == "ragged" else value
        np.testing.assert_array_equal(probed.arrays[name], value, err_msg=name)

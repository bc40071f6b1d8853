"""Scale-out on a jax.sharding mesh. The multi-device checks run in a fresh process with
4 simulated CPU devices (XLA_FLAGS is read once, when JAX starts)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import jgeo
from jgeo.experiment import run
from jgeo.train import ConfigError, make_config, train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def four_devices():
    """Results of tests/_sharded_run.py: through `jax.distributed.initialize` (kernel,
    training) and without it (geodesic solves), merged."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    script = Path(__file__).with_name("_sharded_run.py")
    result = {}
    for mode in [str(_free_port()), "local"]:
        done = subprocess.run(
            [sys.executable, str(script), mode],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return result


@pytest.mark.slow
def test_sharded_kernels_equal_unsharded_and_stay_sharded(four_devices):
    assert four_devices["devices"] == 4 and four_devices["process_index"] == 0
    assert four_devices["kernel_max_difference"] == 0.0
    assert four_devices["kernel_output_spec"] == "P('data',)"


@pytest.mark.slow
@pytest.mark.parametrize("solve", ["exp", "distance"])
def test_sharded_geodesic_solves_equal_unsharded_and_stay_sharded(four_devices, solve):
    # float32 (no x64 in the subprocess). Observed: identical results; the bound leaves
    # room for a backend that reorders a reduction.
    assert four_devices[f"{solve}_max_difference"] < 1e-6
    assert four_devices[f"{solve}_output_spec"] == "P('data',)"


@pytest.mark.slow
def test_failed_solves_in_a_sharded_batch_are_reported_not_raised(four_devices):
    assert four_devices["failed_pairs"] > 0  # the case exercises failures
    assert four_devices["same_failures"]


@pytest.mark.slow
def test_four_device_training_matches_one_device(four_devices):
    one, four = four_devices["rows_1"], four_devices["rows_4"]
    assert [r["epoch"] for r in four] == [1, 2, 3]
    for a, b in zip(one, four):
        for key in ["loss", "recon_mse", "regularizer", "mcn", "vor", "logdet_var"]:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-4, err_msg=key)


def test_more_devices_than_jax_sees_is_a_clear_config_error(tmp_path):
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count=64"):
        jgeo.make_mesh(64)
    config = make_config(dict(data="swissroll", n=128, epochs=1, batch_size=64, devices=64))
    with pytest.raises(ConfigError, match="JAX sees"):
        train(config, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="multiple of `devices`"):
        make_config(dict(batch_size=100, devices=8))


def test_shard_batch_needs_a_divisible_batch_axis():
    mesh = jgeo.make_mesh(1)
    assert jgeo.shard_batch(mesh, np.ones((3, 2))).shape == (3, 2)
    with pytest.raises(ValueError, match="batch axis"):
        jgeo.shard_batch(mesh, np.float32(1.0))


@pytest.mark.slow
def test_only_process_zero_writes_run_files(tmp_path, monkeypatch):
    # A second process of a multi-host run: it trains (collectives need every process)
    # and takes part in orbax checkpoints, but writes no run file of its own.
    monkeypatch.setattr("jgeo._io.jax", SimpleNamespace(process_index=lambda: 1))
    config = make_config(dict(data="swissroll", n=128, hidden=[16, 16], epochs=2,
                              batch_size=64, eval_points=32, probe_every=1))  # fmt: skip
    report = run(config, tmp_path, progress=False)  # with the probes' Recorder
    assert report["figures"] == [] and report["recon_mse"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]

"""The persistent compilation cache: opt-in for the library, on for the command unless
`JGEO_COMPILATION_CACHE=0`, and a `JAX_COMPILATION_CACHE_DIR` already set wins."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax.experimental.compilation_cache import compilation_cache

import jgeo
from jgeo._compilation_cache import enable_for_command


@pytest.fixture(autouse=True)
def restore_jax_cache(monkeypatch):
    # conftest points the suite's cache at .pytest_cache; put it back after each test.
    monkeypatch.delenv("JGEO_COMPILATION_CACHE", raising=False)
    directory = jax.config.jax_compilation_cache_dir
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    yield
    if jax.config.jax_compilation_cache_dir != directory:
        jax.config.update("jax_compilation_cache_dir", directory)
        compilation_cache.reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)


def test_a_given_directory_is_used_and_returned(tmp_path):
    path = jgeo.enable_compilation_cache(tmp_path / "xla", min_compile_time_secs=0.0)
    assert path == tmp_path / "xla" and path.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(path)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    # A program compiled now is written there, although the suite's cache was open.
    jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) * 20261206.0)(jnp.ones(3)))
    assert any(path.iterdir())


def test_the_default_directory_is_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    jax.config.update("jax_compilation_cache_dir", None)
    path = jgeo.enable_compilation_cache()
    assert path == tmp_path / "jgeo" / "xla" and path.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(path)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.2


def test_a_directory_jax_is_configured_with_wins():
    # conftest sets JAX_COMPILATION_CACHE_DIR, as a user may: the command keeps it.
    configured = jax.config.jax_compilation_cache_dir
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    assert configured
    assert enable_for_command() == Path(configured)
    assert jax.config.jax_compilation_cache_dir == configured
    assert jax.config.jax_persistent_cache_min_compile_time_secs == min_time


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_jgeo_compilation_cache_0_turns_it_off(tmp_path, monkeypatch, value):
    monkeypatch.setenv("JGEO_COMPILATION_CACHE", value)
    before = jax.config.jax_compilation_cache_dir
    assert jgeo.enable_compilation_cache(tmp_path / "xla") is None
    assert enable_for_command() is None
    assert jax.config.jax_compilation_cache_dir == before
    assert not (tmp_path / "xla").exists()


def test_import_jgeo_leaves_the_cache_off():
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    script = "import jax, jgeo; print(jax.config.jax_compilation_cache_dir)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "None"


def test_the_command_runs_without_a_cache_where_none_can_be_made(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    jax.config.update("jax_compilation_cache_dir", None)
    with pytest.raises(OSError):
        jgeo.enable_compilation_cache()
    assert enable_for_command() is None
    assert jax.config.jax_compilation_cache_dir is None


@pytest.mark.parametrize(("level", "opt_out", "quieted"), [
    ("1", None, True), ("2", None, False), ("0", None, False), ("1", "0", False),
])  # fmt: skip
def test_the_command_quiets_xla_only_at_jax_default_level(monkeypatch, level, opt_out, quieted):
    # Loading from the cache makes XLA log lines the command's stderr has no room for.
    calls = []
    monkeypatch.setattr("jgeo._compilation_cache._quiet_xla_log", lambda: calls.append(1))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    if opt_out is not None:
        monkeypatch.setenv("JGEO_COMPILATION_CACHE", opt_out)
    enable_for_command()
    assert calls == ([1] if quieted else [])


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf"), "1", True])
def test_a_bad_minimum_compile_time_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="`min_compile_time_secs` must be a finite number"):
        jgeo.enable_compilation_cache(tmp_path / "xla", min_compile_time_secs=bad)
    assert not (tmp_path / "xla").exists()  # refused before anything is written

"""The `Similarity` probe on a tiny three-layer model recorded by a `Recorder`: what it
records equals the measures applied to the recorded codes, to a reference lined up by
the samples' data indices, and across layers."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jgeo import dynamics, representation as rep
from jgeo._io import RunError
from jgeo.report import compare_runs

RNG = np.random.default_rng(0)
DATA = RNG.normal(size=(60, 5)).astype(np.float32)
W = {name: RNG.normal(size=shape).astype(np.float32) / 2
     for name, shape in (("a", (5, 6)), ("b", (6, 4)), ("c", (4, 3)))}  # fmt: skip
DRIFT = {name: RNG.normal(size=w.shape).astype(np.float32) / 4 for name, w in W.items()}


def encode(params, x):
    first = jnp.tanh(x @ params["a"])
    second = jnp.tanh(first @ params["b"])
    return {"first": first, "second": second, "out": second @ params["c"]}


def params_at(step: int, seed_shift: float = 0.0) -> dict:
    """Parameters that move along a fixed direction, as training would."""
    return {k: W[k] + (0.1 * step + seed_shift) * DRIFT[k] for k in W}


def record(out, probes, steps=4):
    with dynamics.Recorder(out, DATA, encode=encode, probes=probes, samples=16) as recorder:
        for step in range(1, steps + 1):
            recorder(step, params_at(step))
    return dynamics.load(out)


@pytest.fixture(scope="module")
def reference_codes():
    """Every input's codes under other parameters: another network on the same inputs."""
    return {k: np.asarray(v) for k, v in encode(params_at(0, 3.0), jnp.asarray(DATA)).items()}


@pytest.fixture(scope="module")
def recorded_dir(tmp_path_factory, reference_codes):
    measures = {"cka": rep.linear_cka, "procrustes": rep.procrustes_distance}
    reference = {k: v for k, v in reference_codes.items() if k != "out"}
    probes = [dynamics.Codes(), dynamics.Similarity(measures, reference=reference)]
    out = tmp_path_factory.mktemp("similarity") / "run"
    record(out, probes)
    return out


@pytest.fixture(scope="module")
def recorded(recorded_dir):
    return dynamics.load(recorded_dir)


def test_the_probe_records_the_measures_of_the_recorded_codes(recorded, reference_codes):
    names = sorted(recorded.layers)
    assert names == ["first", "out", "second"]
    index = recorded.arrays["sample_index"]
    for layer in names:
        shown = recorded.layer(layer)
        codes = shown.arrays["codes"]
        assert shown.rows[0]["cka_previous"] is None and shown.rows[0]["cka_initial"] is None
        for p in range(1, len(codes)):
            row = shown.rows[p]
            expected = float(rep.linear_cka(codes[p - 1], codes[p]))
            assert row["cka_previous"] == pytest.approx(expected, abs=1e-5)
            assert row["cka_initial"] == pytest.approx(
                float(rep.linear_cka(codes[0], codes[p])), abs=1e-5
            )
            assert row["procrustes_previous"] == pytest.approx(
                float(rep.procrustes_distance(codes[p - 1], codes[p])), abs=1e-3
            )
        if layer == "out":  # no reference given for this layer
            assert "cka_reference" not in shown.rows[0]
            continue
        reference = reference_codes[layer][index]
        for p, row in enumerate(shown.rows):
            expected = float(rep.linear_cka(reference, codes[p]))
            assert row["cka_reference"] == pytest.approx(expected, abs=1e-5)
    # Across layers: row by row, in sorted order, the layer × layer CKA matrix per probe.
    matrix = np.stack([recorded.arrays[f"{layer}/cka_layers"] for layer in names], axis=1)
    assert matrix.shape == (4, 3, 3)
    np.testing.assert_allclose(matrix, np.swapaxes(matrix, 1, 2), atol=1e-5)
    np.testing.assert_allclose(np.diagonal(matrix, axis1=1, axis2=2), 1, atol=1e-5)
    last = {layer: recorded.arrays[f"{layer}/codes"][-1] for layer in names}
    assert matrix[-1, 0, 2] == pytest.approx(
        float(rep.linear_cka(last["first"], last["second"])), abs=1e-5
    )
    declared = next(p for p in recorded.info["probes"] if p["probe"] == "Similarity")
    assert declared["options"]["measures"] == "cka,procrustes"
    assert declared["scalars"]["procrustes_previous"]["title"] == "procrustes to previous probe"


def test_a_recording_is_a_reference_by_its_directory(tmp_path, recorded):
    # The same data, samples and seed: the other recording probed the same inputs.
    first = record(tmp_path / "a", [dynamics.Codes()], steps=2)
    probe = dynamics.Similarity(previous=False, initial=False, reference=tmp_path / "a")
    second = record(tmp_path / "b", [dynamics.Codes(), probe], steps=3)
    for layer in second.layers:
        theirs = first.arrays[f"{layer}/codes"][-1]
        ours = second.arrays[f"{layer}/codes"]
        values = second.series(f"{layer}/cka_reference")
        expected = [float(rep.linear_cka(theirs, c)) for c in ours]
        np.testing.assert_allclose(values, expected, atol=1e-5)
    assert values[1] == pytest.approx(1.0, abs=1e-5)  # step 2 of both: the same parameters


def test_bad_references_and_measures_are_named(tmp_path):
    with pytest.raises(ValueError, match="`measures` must map names"):
        dynamics.Similarity({"no name": rep.cka})
    with pytest.raises(ValueError, match="`previous` must be True or False"):
        dynamics.Similarity(previous=1)
    short = dynamics.Similarity(reference=np.ones((10, 3)))
    with pytest.raises(ValueError, match="`reference` for layer 'first' holds 10 codes"):
        record(tmp_path / "short", [short], steps=1)
    with pytest.raises(ValueError, match="`reference` .*nowhere.*does not exist"):
        record(tmp_path / "none", [dynamics.Similarity(reference=tmp_path / "nowhere")], steps=1)
    record(tmp_path / "uncoded", [dynamics.Similarity()], steps=1)
    with pytest.raises(ValueError, match="holds no codes of layer 'first': record it with the"):
        record(tmp_path / "ref", [dynamics.Similarity(reference=tmp_path / "uncoded")], steps=1)
    with pytest.raises(RunError, match="uncoded holds no codes of its fixed samples"):
        compare_runs([tmp_path / "uncoded", tmp_path / "uncoded2"], tmp_path / "c")


def test_the_page_draws_convergence_and_the_layer_matrices(recorded_dir, recorded):
    from jgeo.report import figures

    drawn = figures(recorded_dir)
    names = sorted(recorded.layers)
    heat = drawn["layer-similarity"]
    last = np.stack([recorded.arrays[f"{layer}/cka_layers"][-1] for layer in names])
    np.testing.assert_allclose(np.asarray(heat.data[0].z), last)
    assert list(heat.data[0].x) == names and len(heat.frames) == 4
    lines = {trace.name: np.asarray(trace.y) for trace in drawn["convergence"].data}
    assert sorted(lines) == names
    for layer, values in lines.items():
        codes = recorded.arrays[f"{layer}/codes"]
        expected = [float(rep.linear_cka(c, codes[-1])) for c in codes]
        np.testing.assert_allclose(values, expected, atol=1e-5)
        assert values[-1] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_jgeo_compare_two_recordings(tmp_path, recorded_dir, recorded, capsys):
    from jgeo.cli import main

    with dynamics.Recorder(tmp_path / "other", DATA, encode=encode, samples=16,
                           probes=[dynamics.Codes()]) as recorder:  # fmt: skip
        for step in (2, 4, 6):  # steps 2 and 4 shared with the first recording
            recorder(step, params_at(step, 1.0))
    other = dynamics.load(tmp_path / "other")
    out = tmp_path / "compared"
    assert main(["compare", str(recorded_dir), str(tmp_path / "other"), "--out", str(out)]) == 0
    assert "compare.json" in capsys.readouterr().out
    result = json.loads((out / "compare.json").read_text())
    (pair,) = result["pairs"]
    assert result["measure"] == "linear CKA" and pair["steps"] == [2, 4]
    assert pair["layers_a"] == pair["layers_b"] == recorded.layers and pair["samples"] == 16
    first, second = recorded.arrays, other.arrays
    for i, a in enumerate(pair["layers_a"]):
        for j, b in enumerate(pair["layers_b"]):
            expected = rep.linear_cka(first[f"{a}/codes"][-1], second[f"{b}/codes"][-1])
            assert pair["final"]["matrix"][i][j] == pytest.approx(float(expected), abs=1e-5)
            expected = rep.linear_cka(first[f"{a}/codes"][1], second[f"{b}/codes"][0])  # step 2
            assert pair["matrices"][0][i][j] == pytest.approx(float(expected), abs=1e-5)
    assert pair["final"]["steps"] == [4, 6] and (out / "compare.png").stat().st_size > 0
    # another measure, by name
    assert main(["compare", str(recorded_dir), str(tmp_path / "other"), "--out", str(out),
                 "--measure", "procrustes"]) == 0  # fmt: skip
    result = json.loads((out / "compare.json").read_text())
    expected = rep.procrustes_distance(first["first/codes"][-1], second["first/codes"][-1])
    assert result["pairs"][0]["final"]["matrix"][0][0] == pytest.approx(float(expected), abs=1e-4)

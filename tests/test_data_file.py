"""`jgeo train --data FILE`: your own vectors or images, scaled by recorded scalars, and
a run that notices when its file has changed."""

import json

import numpy as np
import pytest
from helpers import TINY_RUN

from jgeo import data, dynamics
from jgeo.cli import main
from jgeo.experiment import run
from jgeo.train import build, load_run, make_config, read_rows, train
from jgeo.train._config import with_data_file

RNG = np.random.default_rng(0)


@pytest.mark.slow
def test_vectors_with_labels_train_and_reload_with_the_recorded_scaling(tmp_path, capsys):
    x = 3.0 + 2.0 * RNG.normal(size=(300, 5))
    labels = (x[:, 0] > 3).astype(np.int64)
    np.savez(tmp_path / "mine.npz", x=x, labels=labels)
    run = tmp_path / "run"
    settings = {k: v for k, v in TINY_RUN.items() if k not in ("data", "n")}
    config = make_config({**settings, "data": str(tmp_path / "mine.npz"), "epochs": 2})
    train(config, run, progress=False)
    stored = json.loads((run / "config.json").read_text())
    assert stored["data"] == str(tmp_path / "mine.npz")
    shift, scale = stored["data_scaling"]
    assert abs(shift - x.mean()) < 1e-9 and abs(scale - x.std()) < 1e-9
    assert len(stored["data_sha256"]) == 64
    loaded, dataset, _ = load_run(run)
    np.testing.assert_allclose(dataset.x, ((x - shift) / scale).astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(dataset.labels, labels)
    assert loaded.data_scaling == (shift, scale)
    # The file changes: the run refuses to resume or report on other data.
    np.savez(tmp_path / "mine.npz", x=x[::-1], labels=labels)
    assert main(["report", str(run)]) == 2
    assert "has changed since the run was trained" in capsys.readouterr().err
    argv = ["train", "--data", str(tmp_path / "mine.npz"), "--out", str(run), "--no-progress"]
    assert main(argv) == 2


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(64, 8, 8), (64, 8, 8, 3)], ids=["gray", "colour"])
def test_images_train_the_conv_model(tmp_path, shape):
    images = RNG.uniform(0, 255, size=shape)
    np.save(tmp_path / "images.npy", images)
    dataset = data.load(str(tmp_path / "images.npy"))
    assert dataset.image_shape == shape[1:3] if len(shape) == 3 else shape[1:]
    assert dataset.x.shape == (64, int(np.prod(shape[1:])))
    assert 0 <= dataset.x.min() and dataset.x.max() <= 1  # images: min and range
    # The conv model's probes, report and figures on colour images; gray ones train only.
    colour = len(shape) == 4
    config = make_config({"data": str(tmp_path / "images.npy"), "model": "conv", "epochs": 1,
                          "batch_size": 32, "probe_every": int(colour),
                          "eval_points": 32})  # fmt: skip
    report = run(config, tmp_path / "run", progress=False, report=colour)
    rows = read_rows(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 1 and np.isfinite(rows[0]["recon_mse"])
    assert (tmp_path / "run" / "figures" / "interpolation.png").exists() == colour
    if colour:
        probe = dynamics.load(tmp_path / "run").rows[0]
        assert probe["epoch"] == 1 and probe["mcn"] >= 1
        # The report says how the pixels were scaled, and the error in the file's units.
        spread = images.max() - images.min()
        assert report["scaling"].startswith(f"x ↦ (x − {images.min():.6g}) / {spread:.6g}")
        in_units = report["recon_mse_data_units"] / report["recon_mse"]
        assert in_units == pytest.approx(spread**2, rel=1e-12)


def test_bernoulli_reads_a_file_of_flat_intensities_as_intensities(tmp_path):
    # Flat vectors are standardised under a Gaussian likelihood; a Bernoulli one reads them
    # as intensities, scaled by min and range like images (it refused them once, quoting
    # the range after standardising).
    x = RNG.uniform(0.1, 0.9, size=(200, 16))
    np.save(tmp_path / "flat.npy", x)
    for likelihood, expected in [("gaussian", (x.mean(), x.std())),
                                 ("bernoulli", (x.min(), x.max() - x.min()))]:  # fmt: skip
        config = with_data_file(make_config({"data": str(tmp_path / "flat.npy"),
                                             "likelihood": likelihood}))  # fmt: skip
        np.testing.assert_allclose(config.data_scaling, expected, rtol=1e-12)
    dataset, _, _ = build(config)  # the Bernoulli range check passes
    assert dataset.x.min() == 0 and dataset.x.max() == pytest.approx(1, abs=1e-6)

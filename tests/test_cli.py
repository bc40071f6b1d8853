import json
import re

import pytest

from jgeo.cli import main


@pytest.mark.slow
def test_demo_prints_sphere_curvature_against_closed_form(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    match = re.search(r"Gaussian curvature\s+(\S+)\s+closed form\s+(\S+)", out)
    assert match and abs(float(match[1]) - 0.25) < 1e-10 and float(match[2]) == 0.25
    gauss, autodiff = re.findall(r"scalar curvature via .*? mean\s+(\S+)", out)
    assert abs(float(gauss) - float(autodiff)) < 1e-8


@pytest.mark.slow
def test_the_main_job_runs_the_embedded_default(tmp_path, monkeypatch, capsys):
    # `jgeo train` with no options, as in the README's Quick start.
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--no-progress"]) == 0
    run = tmp_path / "runs" / "digits-isometry-s0"
    report = json.loads((run / "report.json").read_text())
    assert report["regularizer"] == "isometry" and report["data"] == "digits"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == report["epochs"]
    # Isometry regularization: the metric is close to a multiple of the identity.
    assert report["mcn"] < 2 and report["vor"] < 0.1
    assert "recon_mse" in capsys.readouterr().out

import re

from jgeo.cli import main


def test_demo_prints_sphere_curvature_against_closed_form(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    match = re.search(r"Gaussian curvature\s+(\S+)\s+closed form\s+(\S+)", out)
    assert match and abs(float(match[1]) - 0.25) < 1e-10 and float(match[2]) == 0.25
    gauss, autodiff = re.findall(r"scalar curvature via .*? mean\s+(\S+)", out)
    assert abs(float(gauss) - float(autodiff)) < 1e-8

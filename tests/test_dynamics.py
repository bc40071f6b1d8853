"""Learning-dynamics probes: known values on known decoders, topology, storage, report."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgeo import dynamics, experiment
from jgeo.cli import main
from jgeo.dynamics._samples import maxmin_landmarks
from jgeo.experiment import run
from jgeo.report import trajectory_lengths
from jgeo.train import learning_rate_schedule, make_config, steps_per_epoch


def _layout(d: int, samples: int = 40) -> dynamics.Layout:
    index = np.arange(samples)
    return dynamics.Layout(layer="", dim=d, samples=samples, labels=None, num_classes=0,
                           decoded=True, every=1, seed=0, rng=np.random.default_rng(0),
                           sample_index=index, random_index=index)  # fmt: skip


def _inputs(codes, decode) -> dynamics.ProbeInputs:
    """What a Recorder would hand a probe of `codes` under `decode`, at a first probe."""
    return dynamics.ProbeInputs(
        codes=codes, random_codes=codes, labels=None, random_labels=None,
        previous_codes=codes, initial_codes=codes, first=jnp.array(True),
        layers={"": codes}, params=None, decode=decode,
        key=jax.random.key(0), step=jnp.array(1), num_classes=0, layer="",
    )  # fmt: skip


@pytest.mark.parametrize("d", [2, 3])
def test_a_linear_decoder_has_constant_volume_zero_curvature_and_straight_geodesics(d):
    a = jax.random.normal(jax.random.key(0), (5, d))
    probe = dynamics.PullbackGeometry(pairs=3, grid=6).prepare(_layout(d))
    x = jax.random.normal(jax.random.key(1), (40, d))
    out = jax.jit(lambda x: probe(_inputs(x, lambda z: a @ z + 1)))(x)
    log_volume = 0.5 * np.linalg.slogdet(np.asarray(a.T @ a))[1]
    assert out["logvol_mean"] == pytest.approx(log_volume, abs=1e-4)
    assert out["logvol_var"] < 1e-8
    assert out["mcn"] == pytest.approx(np.linalg.cond(np.asarray(a.T @ a)), rel=1e-3)
    assert out["curvature_abs_mean"] < 1e-4
    assert out["geodesic_ratio"] == pytest.approx(1.0, abs=1e-4)
    assert out["geodesics_converged"] == 3 and out["pairs"].shape == (3, 2)
    if d == 2:  # the fields on the grid over the codes
        assert out["log_volume"].shape == (6, 6)
        np.testing.assert_allclose(out["log_volume"], log_volume, atol=1e-4)
        np.testing.assert_allclose(out["gaussian_curvature"], 0.0, atol=1e-4)
        lo, hi = np.asarray(x).min(0), np.asarray(x).max(0)
        np.testing.assert_allclose(out["extent"][::2], lo - 0.1 * (hi - lo), rtol=1e-5)
    else:
        assert "log_volume" not in out


@pytest.mark.slow
def test_curvature_probe_of_a_sphere_patch_is_one():
    # The decoder (u, v) ↦ a point of the unit sphere: Gaussian curvature 1 everywhere.
    def sphere(z):
        lat, lon = z
        return jnp.stack([jnp.cos(lat) * jnp.cos(lon), jnp.cos(lat) * jnp.sin(lon), jnp.sin(lat)])

    probe = dynamics.PullbackGeometry(pairs=3, grid=6).prepare(_layout(2))
    x = 0.5 * jax.random.uniform(jax.random.key(2), (40, 2), minval=-1)
    out = probe(_inputs(x, sphere))
    assert out["curvature_mean"] == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(out["gaussian_curvature"], 1.0, rtol=1e-3)
    assert np.all(np.asarray(out["ratios"]) <= 1 + 1e-4)  # great circles beat coordinate lines


def _circle(n, radius=1.0, centre=(0.0, 0.0)):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)], -1)


@pytest.mark.parametrize(
    "points, betti",
    [
        (_circle(60), (1, 1)),
        (np.concatenate([_circle(80), _circle(40, 0.5)]), (2, 2)),
        (np.concatenate([_circle(40, 0.3), _circle(40, 0.3, (2.0, 0.0))]), (2, 2)),
        (np.random.default_rng(0).normal(size=(100, 2)) * 0.1, (1, 0)),
    ],
)
def test_betti_numbers_of_known_shapes(points, betti):
    topo = dynamics.topology(points)
    assert (topo.betti0, topo.betti1) == betti
    # Scale-free: the same shape ten times larger has the same diagrams, and so has it at
    # scales whose squared distances underflow or overflow float64 (1e-160, 1e200: once
    # Betti (1, 0) and NaN distances).
    for scale in [10, 1e-160, 1e200]:
        np.testing.assert_allclose(dynamics.topology(scale * points).h1, topo.h1, atol=1e-5)


def test_topology_rejects_diverged_codes_and_records_collapsed_ones():
    with pytest.raises(ValueError, match="NaN"):
        dynamics.topology(np.array([[0.0, 0.0], [np.nan, 1.0], [1.0, 1.0]]))
    # Codes collapsed to one point are one component without loops, not a failed probe
    # (which would stop the training run that records it).
    topo = dynamics.topology(np.ones((5, 2)))
    assert (topo.betti0, topo.betti1, topo.h0_persistence, topo.h1_persistence) == (1, 0, 0, 0)
    assert topo.h0.shape == (4, 2) and topo.h1.shape == (0, 2)


def test_maxmin_landmarks_cover_the_data_evenly():
    x = np.random.default_rng(0).normal(size=(500, 2))
    index = maxmin_landmarks(x, 30)
    chosen = x[index]
    gaps = np.linalg.norm(chosen[:, None] - chosen[None], axis=-1) + np.eye(30) * 1e9
    cover = np.linalg.norm(x[:, None] - chosen[None], axis=-1).min(1).max()
    # Farthest-point sampling: every point is closer to a landmark than any two landmarks.
    assert len(set(index.tolist())) == 30 and cover <= gaps.min() + 1e-12


RUN = dict(data="circles", n=1000, regularizer="none", epochs=30, landscape_every=10)


@pytest.fixture(scope="module")
def circles_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("circles")
    run(make_config(RUN), out, progress=False, report=False)
    return out


@pytest.mark.slow
def test_two_circles_end_with_two_components_and_two_loops(circles_run):
    record = dynamics.load(circles_run)
    assert [r["epoch"] for r in record.rows] == list(range(1, 31))
    assert (record.rows[-1]["betti0"], record.rows[-1]["betti1"]) == (2, 2)
    assert record.arrays["codes"].shape == (30, 128, 2)
    assert record.arrays["log_volume"].shape == (30, 16, 16)
    assert record.rows[-1]["cka_previous"] > 0.99  # the representation has settled
    # A map R² → R² has a flat pullback metric: curvature is rounding noise after epoch 1.
    assert np.nanmax(record.series("curvature_abs_mean")[1:]) < 1e-3
    # The loss landscape every tenth epoch, beside the learning rate of the schedule.
    sharpness = record.series("sharpness")
    assert np.isfinite(sharpness).tolist() == [epoch % 10 == 0 for epoch in range(1, 31)]
    assert np.all(sharpness[9::10] > 0) and np.all(record.series("hessian_trace")[9::10] > 0)
    schedule = learning_rate_schedule(make_config(RUN), 1000)
    np.testing.assert_allclose(record.series("learning_rate"),
                               [schedule(r["step"]) for r in record.rows], rtol=1e-6)  # fmt: skip


@pytest.mark.slow
def test_the_report_page_shows_every_figure(circles_run):
    assert main(["dynamics", str(circles_run)]) == 0
    page = (circles_run / "index.html").read_text()
    names = ["scalars.png", "fields.png", "fields.gif", "trajectories.png", "persistence.png",
             "landscape.png"]  # fmt: skip
    for name in names:
        assert f'href="figures/dynamics_{name}"' in page
        assert (circles_run / "figures" / f"dynamics_{name}").stat().st_size > 1000
    assert page.count("<tr>") == 31  # header + one row per probe
    lengths = trajectory_lengths(dynamics.load(circles_run), lambda z: 2.0 * z)
    codes = dynamics.load(circles_run).arrays["codes"]
    euclidean = np.linalg.norm(np.diff(codes, axis=0), axis=-1).sum(0)
    np.testing.assert_allclose(lengths, 2.0 * euclidean, rtol=1e-4)


def test_jgeo_train_options_make_the_recorder_measure_classes_and_landscape(tmp_path, monkeypatch):
    # What `--class-geodesics` and `--landscape-every` ask of the run's Recorder (the
    # measurements themselves: test_recorder.py, test_landscape.py and the circles run).
    asked = []
    monkeypatch.setattr(experiment, "run", lambda config, out, **_: asked.append(config) or {})
    argv = ["train", "--class-geodesics", "--probe-every", "2", "--landscape-every", "4",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    (config,) = asked
    assert config.probe_class_geodesics and config.landscape_every == 4
    with experiment.probe_recorder(config, tmp_path / "run") as recorder:
        per_epoch = steps_per_epoch(config, 1797)
        kinds = [type(probe).__name__ for probe in recorder.probes]
        assert "ClassGeodesics" in kinds and recorder.every == 2 * per_epoch
        (landscape,) = [p for p in recorder.probes if isinstance(p, dynamics.Every)]
        assert landscape.n == 4 * per_epoch and isinstance(landscape.probe, dynamics.LossLandscape)
        (rate,) = [p for p in recorder.probes if isinstance(p, dynamics.LearningRate)]
        assert rate.learning_rate(0) == 0  # the run's schedule warms up from 0


@pytest.mark.slow
def test_volume_regularization_evens_out_volume_over_twenty_probes(tmp_path):
    config = dict(data="swissroll", n=600, regularizer="volume", weight=0.1, epochs=20)
    run(make_config(config), tmp_path, progress=False, report=False)
    variance = dynamics.load(tmp_path).series("logvol_var")
    assert len(variance) == 20
    assert variance[-1] < 0.25 * variance[:5].max()


@pytest.mark.slow
def test_missing_or_damaged_dynamics_files_get_clear_errors(circles_run, tmp_path, capsys):
    with pytest.raises(dynamics.DynamicsError, match="does not exist"):
        dynamics.load(tmp_path)
    for name in ["dynamics.jsonl", "dynamics.npz", "recorder.json", "config.json"]:
        (tmp_path / name).write_bytes((circles_run / name).read_bytes())
    rows = (tmp_path / "dynamics.jsonl").read_text()
    lines = rows.splitlines(keepends=True)
    (tmp_path / "dynamics.jsonl").write_text("".join(lines[:14]) + lines[14][:30])  # cut mid-line
    with pytest.raises(dynamics.DynamicsError, match="line 15 is truncated"):
        dynamics.load(tmp_path)
    assert main(["dynamics", str(tmp_path)]) == 2
    assert "truncated" in capsys.readouterr().err
    (tmp_path / "dynamics.jsonl").write_text(rows)
    blob = (tmp_path / "dynamics.npz").read_bytes()
    (tmp_path / "dynamics.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(dynamics.DynamicsError, match="dynamics.npz is damaged"):
        dynamics.load(tmp_path)
    # One probe more in the rows than in the arrays (an interruption between the two
    # writes) is not an error: the common probes are returned.
    (tmp_path / "dynamics.npz").write_bytes(blob)
    extra = {**json.loads(lines[-1]), "epoch": 31, "step": 10**6}
    (tmp_path / "dynamics.jsonl").write_text(rows + json.dumps(extra) + "\n")
    assert len(dynamics.load(tmp_path).rows) == 30
    # A truncated metrics.jsonl beside sound probe files: one line, exit code 2.
    (tmp_path / "dynamics.jsonl").write_text(rows)
    metrics = (circles_run / "metrics.jsonl").read_text()
    (tmp_path / "metrics.jsonl").write_text(metrics[: len(metrics) // 2])
    capsys.readouterr()
    assert main(["dynamics", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl line" in err and "is truncated" in err and len(err.splitlines()) == 1


def test_betti0_of_a_high_dimensional_gaussian_is_one():
    # 128 points of N(0, I₁₆) lie further apart than 0.1 × the diameter: every point was
    # its own component at that scale, none held 5 % of the points, and Betti-0 read 0.
    topo = dynamics.topology(np.random.default_rng(0).normal(size=(128, 16)))
    assert topo.betti0 == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_betti0_counts_the_persistent_clusters_of_ripsers_h0(seed):
    from ripser import ripser
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    from jgeo.dynamics._topology import cluster_lifetimes

    rng = np.random.default_rng(seed)
    blobs = np.concatenate([c + 0.1 * rng.normal(size=(30, 5)) for c in 3 * np.eye(5)[:3]])
    outliers = 3 * np.eye(5)[3:]  # two single points as far out as the blobs
    points = np.concatenate([blobs, outliers])
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    distances /= distances.max()
    deaths = ripser(distances, maxdim=0, distance_matrix=True)["dgms"][0][:, 1]
    deaths = deaths[np.isfinite(deaths)]
    # The single-linkage merge heights are ripser's H0 deaths (computed in float32).
    heights = linkage(squareform(distances, checks=False), method="single")[:, 2]
    np.testing.assert_allclose(np.sort(heights), np.sort(deaths), atol=1e-6)
    # A cluster is born at a merge and dies at a later one, one of ripser's deaths.
    clusters = cluster_lifetimes(distances, 0.05 * len(points))
    assert np.all(np.min(np.abs(clusters[:, 1][:, None] - deaths[None]), axis=1) < 1e-6)
    assert np.all(np.isin(clusters[:, 0], heights)) and np.all(clusters[:, 1] >= clusters[:, 0])
    # The blobs alone: Betti-0 is ripser's count of bars beyond the threshold, 1 + 2.
    topo = dynamics.topology(blobs)
    assert topo.betti0 == 1 + np.sum(topo.h0[:, 1] - topo.h0[:, 0] > 0.1) == 3
    # The two outliers have long bars in ripser's diagram, but are not clusters.
    topo = dynamics.topology(points)
    assert topo.betti0 == 3 and 1 + np.sum(topo.h0[:, 1] - topo.h0[:, 0] > 0.1) == 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(threshold=1.5), r"`threshold` must be in \[0, 1\]"),
        (dict(min_component=-0.1), r"`min_component` must be in \[0, 1\]"),
    ],
)
def test_topology_names_bad_thresholds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dynamics.topology(_circle(20), **kwargs)

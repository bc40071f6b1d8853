"""The `jgeo` command.

- `jgeo train [options]`: train a geometry-regularized autoencoder (the main job); with
  no options, the embedded default (digits, isometry, 2-D latent).
- `jgeo report DIR`: the report, figures and page (`DIR/index.html`) of a run, redrawn
  from `report.json` and `report.npz` while its config and checkpoints are unchanged.
- `jgeo dynamics DIR [DIR ...]`: the learning dynamics' figures and page; several runs
  on one page (`--out`), on shared axes.
- `jgeo probe INPUT --out OUT`: the learning-dynamics probes after training, over saved
  activations (`step_*.npz`, from any framework) or a run's kept checkpoints.
- `jgeo compare A B [...] --out OUT`: the similarity of the layers of recordings of the
  same inputs (seeds, widths, architectures) at shared steps and at the end.
- `jgeo demo` (or plain `jgeo`): curvature of a sphere against the closed form, and of a
  random decoder by two independent methods.

Exit codes: 0 success; 1 training diverged (NaN loss); 2 anything the user can fix —
bad options, config files, data, a run directory that is unusable, locked by another
process, or holds damaged files (one line on stderr naming the problem and the fix,
never a traceback); 130 interrupted by Ctrl-C, at any moment of the command (one line;
for `jgeo train`, where it stopped and how to resume). The console script enters through
`_jgeo_command`, which catches Ctrl-C while jgeo is imported.
"""

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The application stack of `jgeo train`, `report` and `dynamics` (the `train` extra).
APPLICATION = ("flax", "orbax", "sklearn", "matplotlib", "ripser", "tqdm", "plotly")
APPLICATION_COMMANDS = ("train", "report", "dynamics", "probe", "compare")


def missing_application() -> str | None:
    """The first package of the `train` extra that is not installed, or None."""
    return next((m for m in APPLICATION if importlib.util.find_spec(m) is None), None)


def demo(seed: int = 0) -> int:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import jgeo

    jax.config.update("jax_enable_x64", True)
    print(f"jgeo {jgeo.__version__} · jax {jax.__version__} on {jax.default_backend()}\n")

    radius = 2.0

    def sphere(q):  # spherical coordinates (θ, φ) on the sphere of radius 2
        theta, phi = q
        return radius * jnp.array(
            [jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)]
        )

    metric = jgeo.Pullback(sphere)
    x = jnp.array([0.7, 0.3])
    print(f"Sphere of radius {radius} as the pullback of its embedding, at (θ, φ) = {x.tolist()}:")
    rows = [
        ("Gaussian curvature", jgeo.gaussian_curvature(metric, x), 1 / radius**2),
        ("scalar curvature", jgeo.scalar_curvature(metric, x), 2 / radius**2),
        ("Γ^θ_φφ", jgeo.christoffel(metric, x)[0, 1, 1], -jnp.sin(0.7) * jnp.cos(0.7)),
        ("log volume", jgeo.log_volume(metric, x), jnp.log(radius**2 * jnp.sin(0.7))),
    ]
    for name, value, expected in rows:
        print(f"  {name:<20} {float(value): .12f}   closed form {float(expected): .12f}")

    d, big_d = 3, 64
    decoder = eqx.nn.MLP(d, big_d, 64, depth=2, activation=jnp.tanh, key=jr.key(seed))
    metric = jgeo.Pullback(decoder)
    points = jr.normal(jr.key(seed + 1), (512, d))
    print(f"\nRandom tanh decoder R^{d} → R^{big_d}, 512 latent points (jit ∘ vmap):")
    for method in ["auto", "autodiff"]:
        kernel = jax.jit(
            jax.vmap(lambda m, z: jgeo.scalar_curvature(m, z, method=method), in_axes=(None, 0))
        )
        jax.block_until_ready(kernel(metric, points))
        start = time.perf_counter()
        scalars = jax.block_until_ready(kernel(metric, points))
        elapsed = 1e3 * (time.perf_counter() - start)
        label = "Gauss equation" if method == "auto" else "nested autodiff"
        print(
            f"  scalar curvature via {label:<16} mean {float(scalars.mean()): .6f}  "
            f"range [{float(scalars.min()): .4f}, {float(scalars.max()): .4f}]  {elapsed:.1f} ms"
        )
    return 0


def _train_parser(sub) -> argparse.ArgumentParser:
    from .data import DATASETS
    from .nn._autoencoder import MODELS
    from .train._config import REGULARIZER_NAMES

    p = sub.add_parser("train", help="train a geometry-regularized autoencoder (the main job)")
    p.add_argument(
        "--data",
        metavar="NAME|FILE",
        help=f"{', '.join(DATASETS)} (default digits), or a .npz (x, labels, color) or "
        ".npy (x) file",
    )
    p.add_argument("--regularizer", choices=REGULARIZER_NAMES, help="default isometry")
    p.add_argument("--weight", type=float, help="regularizer weight")
    p.add_argument("--warmup", type=float, help="fraction of training to ramp the weight up over")
    p.add_argument(
        "--reg-fraction",
        type=float,
        help="fraction of each batch the regularizer is evaluated on (cost ∝ fraction)",
    )
    p.add_argument("--latent-dim", type=int, help="latent dimension d (default 2)")
    p.add_argument("--epochs", type=int, help="passes over the data")
    p.add_argument("--seed", type=int, help="the run is a deterministic function of it")
    p.add_argument("--model", choices=MODELS, help="ae (default), vae, or conv (images)")
    p.add_argument(
        "--likelihood",
        choices=("gaussian", "bernoulli"),
        help="the decoder's likelihood: gaussian (MSE; metric JᵀJ, the default) or bernoulli "
        "(cross-entropy on intensities in [0, 1], a data file scaled by its min and range; "
        "the Fisher–Rao pullback metric)",
    )
    p.add_argument("--batch-size", type=int, help="points per optimiser step")
    p.add_argument("--learning-rate", type=float, help="peak of the warm-up + cosine schedule")
    p.add_argument(
        "--n", type=int, help="number of data points (a random subset of digits or a file)"
    )
    p.add_argument("--noise", type=float, help="std of Gaussian noise added to the data")
    p.add_argument(
        "--probe-every",
        type=int,
        help="record learning-dynamics probes every N epochs (default 1; 0: off)",
    )
    p.add_argument(
        "--class-geodesics",
        action="store_true",
        default=None,
        dest="probe_class_geodesics",
        help="probes also solve the geodesics between class centres (labelled data; slower)",
    )
    p.add_argument(
        "--landscape-every",
        type=int,
        metavar="N",
        help="record the loss landscape (sharpness, Hessian trace) every N epochs "
        "(a multiple of --probe-every; default 0: off)",
    )
    p.add_argument("--devices", type=int, help="train data-parallel over N devices (default 1)")
    p.add_argument("--config", metavar="FILE.toml", help="config file; options given here win")
    p.add_argument(
        "--out", metavar="DIR", help="run directory (default runs/DATA-REGULARIZER-sSEED)"
    )
    p.add_argument(
        "--keep-every",
        type=int,
        default=None,
        metavar="N",
        help="also keep the checkpoint of every N-th epoch for good, to probe the run again "
        "with `jgeo probe` (default: keep the last two only). Each holds the parameters and "
        "Adam's moments, about 12 bytes a parameter (a few MiB for the default model): the "
        "command prints what they took",
    )
    p.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=None,
        metavar="S",
        help="save a checkpoint at the end of the first epoch S seconds after the last one "
        "(default 30; 0: every epoch); the last epoch and Ctrl-C always save",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _with_defaults(p)
    return p


def _with_defaults(parser: argparse.ArgumentParser) -> None:
    """Each option's help ends with its default, read from `TrainConfig` (one source)."""
    from .train import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    for action in parser._actions:
        if action.dest not in fields or action.help is None or "default" in action.help:
            continue
        default = fields[action.dest].default
        if action.dest in ("weight", "warmup"):
            default = "the regularizer's own"
        elif action.dest == "n":
            default = "all of a file or digits, 2000 of a synthetic set"
        elif isinstance(default, bool):
            default = "off"
        action.help += f" (default {default})"


_NOT_CONFIG = {
    "command",
    "config",
    "out",
    "no_progress",
    "checkpoint_seconds",
    "keep_every",
    "seed_demo",
    "dir",
}


def _say(text: str) -> None:
    """`text` as one line on stderr: newlines in it (a path can hold one) are escaped."""
    print(text.replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)


def _fail(command: str, error: BaseException) -> int:
    _say(f"jgeo {command}: error: {error}")
    return 2


def _os_error(command: str, error: OSError) -> int:
    """A file-system failure (full disk, read-only mount, permissions) as one line."""
    from ._io import reason

    fix = "free space or choose a writable --out directory (a rerun resumes the run)"
    return _fail(command, f"cannot write the run: {reason(error)}. To go on, {fix}.")


def train_command(args) -> int:
    from ._io import RunError
    from .experiment import run
    from .train import (
        CHECKPOINT_SECONDS,
        TrainingDiverged,
        TrainingInterrupted,
        load_config,
        make_config,
    )
    from .train._loop import check_checkpointing

    overrides = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG and v is not None}
    if args.out is not None and not args.out.strip():  # once silently the default
        return _fail("train", "--out is empty: give a directory path, or leave --out out for "
                     "runs/<data>-<regularizer>-s<seed>.")  # fmt: skip
    try:
        config = load_config(args.config, overrides) if args.config else make_config(overrides)
        seconds = CHECKPOINT_SECONDS if args.checkpoint_seconds is None else args.checkpoint_seconds
        check_checkpointing(seconds, args.keep_every or 0)  # refused before the header
        out = args.out or f"runs/{Path(config.data).stem}-{config.regularizer}-s{config.seed}"
        regularizer = config.regularizer
        if regularizer != "none":
            regularizer += f" (weight {config.weight}, warm-up {config.warmup:.0%})"
        model = (
            config.model
            if config.likelihood == "gaussian"
            else f"{config.model} ({config.likelihood})"
        )
        print(f"jgeo train → {out}: {config.data}, {model}, regularizer {regularizer}, "
              f"d = {config.latent_dim}, {config.epochs} epochs, seed {config.seed}")  # fmt: skip
        report = run(
            config,
            out,
            progress=not args.no_progress,
            checkpoint_seconds=seconds,
            keep_every=args.keep_every or 0,
        )
    except RunError as error:
        return _fail("train", error)
    except OSError as error:
        return _os_error("train", error)
    except TrainingDiverged as error:
        _say(f"jgeo train: stopped: {error}")
        return 1
    except TrainingInterrupted as error:
        _say(f"jgeo train: {error}")
        return 130
    _print_report(out, report, trained=True)
    if args.keep_every:
        _print_kept(Path(out) / "checkpoints")
    return 0


def _print_kept(directory: Path) -> None:
    """The disk cost of the checkpoints a run kept (`--keep-every`)."""
    kept = [step for step in directory.iterdir() if step.name.isdigit()]
    size = sum(f.stat().st_size for step in kept for f in step.rglob("*") if f.is_file())
    print(f"kept {len(kept)} checkpoints in {directory}: {size / 2**20:.3g} MiB "
          f"({size / max(len(kept), 1) / 2**20:.3g} MiB each); probe them again with "
          f"`jgeo probe {directory.parent} --out DIR`")  # fmt: skip


def _print_report(out, report: dict, *, trained: bool) -> None:
    keys = ["recon_mse", "recon_mse_data_units", "mcn", "vor", "logdet_var", "geodesic_ratio",
            "spearman_geodesic"]  # fmt: skip
    values = "  ".join(f"{k} {report[k]:.4g}" for k in keys if k in report)
    run_files = "metrics.jsonl, checkpoints/, " if trained else ""  # `jgeo report` reads them
    print(f"{values}\nwrote {out}/report.json, {run_files}figures/ "
          f"({', '.join(report.get('figures', []))})")  # fmt: skip
    if (Path(out) / "dynamics.jsonl").exists():
        print(f"probes in {out}/dynamics.jsonl: draw them with `jgeo dynamics {out}`")


def report_command(args) -> int:
    from ._io import RunError, run_lock
    from .report import results_current, write_page, write_run_report

    dirs = args.dir
    try:
        _check_page_dirs(dirs, args.out)
        for run_dir in dirs:
            with run_lock(run_dir, f"jgeo report {run_dir}", create=False):
                if args.recompute or not results_current(run_dir):
                    from .train import load_run  # flax and orbax: only to recompute

                    report = write_run_report(run_dir, *load_run(run_dir))
                    _print_report(run_dir, report, trained=False)
                    continue
                if len(dirs) == 1 and args.out is None:
                    page = write_page(run_dir)
            print(
                f"{run_dir}: its config and checkpoints are those of report.json: redrew the "
                "page from report.json and report.npz (--recompute computes them again)"
            )
        if len(dirs) > 1 or args.out is not None:
            page = write_page(dirs, args.out)
        else:
            page = Path(dirs[0]) / "index.html"
    except RunError as error:
        return _fail("report", error)
    except OSError as error:
        return _os_error("report", error)
    print(f"wrote {page}")
    return 0


def _check_page_dirs(dirs: list[str], out: str | None) -> None:
    """Several runs go on one page, which needs its own directory; each run once."""
    from ._io import RunError

    if len(dirs) > 1 and out is None:
        raise RunError(
            f"{len(dirs)} runs go on one page: name its directory with --out DIR "
            "(for example --out runs/compare)."
        )
    resolved = {}
    for run_dir in dirs:
        if Path(run_dir).resolve() in resolved:
            raise RunError(f"{run_dir} is given twice: name each run once.")
        resolved[Path(run_dir).resolve()] = run_dir
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise RunError(f"--out {out} is a file: name a directory for the page.")


def dynamics_command(args) -> int:
    from ._io import RunError, run_lock
    from .report import write_dynamics_report, write_page

    dirs = args.dir
    try:
        _check_page_dirs(dirs, args.out)
        if len(dirs) == 1 and args.out is None:
            with run_lock(dirs[0], f"jgeo dynamics {dirs[0]}", create=False):
                page = write_dynamics_report(dirs[0])
            print(f"wrote {page} and {Path(dirs[0]) / 'figures'}/dynamics_*.png")
            return 0
        for run_dir in dirs:  # named as `jgeo dynamics DIR` names it when it is no run
            with run_lock(run_dir, f"jgeo dynamics {run_dir}", create=False):
                pass
        page = write_page(dirs, args.out)
    except RunError as error:
        return _fail("dynamics", error)
    except OSError as error:
        return _os_error("dynamics", error)
    print(f"wrote {page}")
    return 0


def probe_command(args) -> int:
    from ._io import RunError, reason

    source, out = Path(args.input), Path(args.out)
    # a `jgeo train` run: its checkpoints, or a config.json beside no activation files
    run = (source / "checkpoints").exists() or (
        (source / "config.json").exists() and not any(source.glob("step_*.npz"))
    )
    try:
        if run:
            from .experiment import probe_checkpoints

            if args.seed is not None:
                raise RunError(
                    f"--seed applies to activation files: {source} is a `jgeo train` run, "
                    "probed with its own seed (its data and samples depend on it); leave it out."
                )
            probe_checkpoints(source, out, samples=args.samples)
        else:
            from .dynamics import probe_activations

            given = {"samples": args.samples, "seed": args.seed}
            probe_activations(source, out, **{k: v for k, v in given.items() if v is not None})
    except RunError as error:
        return _fail("probe", error)
    except OSError as error:
        fix = "free space or choose a writable --out directory, and delete what it holds"
        return _fail("probe", f"cannot write the probes: {reason(error)}. To go on, {fix}.")
    print(f"wrote {out}/dynamics.jsonl, dynamics.npz and recorder.json: draw them with "
          f"`jgeo dynamics {out}`")  # fmt: skip
    return 0


# `jgeo compare --measure`: name → (function of `jgeo.representation`, its options, label).
MEASURES = {
    "cka": ("linear_cka", {}, "linear CKA"),
    "cka-debiased": ("cka", {"debiased": True}, "debiased linear CKA"),
    "cka-rbf": ("cka", {"kernel": "rbf"}, "RBF CKA"),
    "procrustes": ("procrustes_distance", {}, "Procrustes distance"),
    "cca-distance": ("shape_distance", {"alpha": 0.0}, "CCA distance"),
    "svcca": ("svcca", {}, "SVCCA"),
    "pwcca": ("pwcca", {}, "PWCCA"),
    "rsa": ("rsa", {}, "RSA (Spearman, Euclidean)"),
}


def compare_command(args) -> int:
    import functools

    from . import representation
    from ._io import RunError
    from .report import compare_runs

    function, options, name = MEASURES[args.measure]
    measure = functools.partial(getattr(representation, function), **options)
    try:
        result = compare_runs(args.dirs, args.out, measure=measure, name=name)
    except RunError as error:
        return _fail("compare", error)
    except OSError as error:
        return _os_error("compare", error)
    print(f"wrote {result} and {result.with_name('compare.png')} ({name})")
    return 0


def main(argv: list[str] | None = None, *, interrupted: Callable[[], bool] = bool) -> int:
    """Run the `jgeo` command with `argv` (default: the process's arguments); return its
    exit code. A Ctrl-C at any moment ends it with exit code 130 and one line on stderr:
    the handler that remembers it is in place for the whole command, and `interrupted()`
    says whether one came before (the console entry point, `_jgeo_command`, catches those
    while `jgeo` is imported)."""
    from ._io import remembered_interrupts

    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    with remembered_interrupts() as check:
        try:
            if interrupted():
                raise KeyboardInterrupt
            code = _run(argv, command)
            if code == 0:
                check()  # one that landed where Python drops exceptions (a gc callback)
            return code
        except KeyboardInterrupt:  # outside a training loop (which says where it stopped)
            print(f"jgeo {command or 'demo'}: interrupted.", file=sys.stderr)
            return 130


def _run(argv: list[str], command: str | None) -> int:
    from ._compilation_cache import enable_for_command

    enable_for_command()  # unless JGEO_COMPILATION_CACHE=0: see docs/faq.md
    parser = argparse.ArgumentParser(
        prog="jgeo", description="Riemannian geometry of learned latent spaces."
    )
    sub = parser.add_subparsers(dest="command")
    missing = missing_application()
    if missing is not None and command in APPLICATION_COMMANDS:
        print(
            f"jgeo {command}: needs the application packages, but {missing} is not installed: "
            'pip install "jgeo[train]" (the core, `import jgeo`, works without them).',
            file=sys.stderr,
        )
        return 2
    if missing is None:
        _train_parser(sub)
    else:  # listed in --help; running it says what to install (above)
        sub.add_parser("train", help='train an autoencoder (needs pip install "jgeo[train]")')
    report_parser = sub.add_parser(
        "report", help="the report, figures and page (DIR/index.html) of a finished run"
    )
    report_parser.add_argument(
        "dir", metavar="DIR", nargs="+", help="a run; several: one page, on shared axes (--out)"
    )
    report_parser.add_argument(
        "--recompute",
        action="store_true",
        help="evaluate the model again even if its config and checkpoints did not change",
    )
    report_parser.add_argument("--out", metavar="DIR", help="the page's directory (several runs)")
    dynamics_parser = sub.add_parser(
        "dynamics", help="draw the learning dynamics of a run: its page DIR/index.html"
    )
    dynamics_parser.add_argument(
        "dir", metavar="DIR", nargs="+", help="a run; several: one page, on shared axes (--out)"
    )
    dynamics_parser.add_argument("--out", metavar="DIR", help="the page's directory (several runs)")
    probe_parser = sub.add_parser(
        "probe",
        help="run the probes after training: over saved activations (INPUT/step_*.npz, one "
        "array per layer) or the checkpoints a `jgeo train` run kept",
    )
    probe_parser.add_argument("input", metavar="INPUT")
    probe_parser.add_argument(
        "--out", metavar="OUT", required=True, help="the probe files' directory"
    )
    probe_parser.add_argument(
        "--samples", type=int, help="fixed samples (default 128; a run's own probe_samples)"
    )
    probe_parser.add_argument(
        "--seed", type=int, help="seed of the samples and probes (activations only; default 0)"
    )
    compare_parser = sub.add_parser(
        "compare",
        help="the similarity of the layers of two or more recordings of the same inputs "
        "(other seeds, widths, architectures) at the steps they share and at the end",
    )
    compare_parser.add_argument("dirs", metavar="DIR", nargs="+", help="probe directories")
    compare_parser.add_argument(
        "--out", metavar="OUT", required=True, help="where compare.json and compare.png go"
    )
    compare_parser.add_argument(
        "--measure",
        choices=list(MEASURES),
        default="cka",
        help="the similarity measure (default cka)",
    )
    demo_parser = sub.add_parser("demo", help="print a short curvature demo (the default)")
    demo_parser.add_argument("--seed", type=int, default=0, dest="seed_demo")
    args = parser.parse_args(argv)
    commands = {"train": train_command, "report": report_command, "dynamics": dynamics_command,
                "probe": probe_command, "compare": compare_command}  # fmt: skip
    if args.command in commands:
        return commands[args.command](args)
    return demo(getattr(args, "seed_demo", 0))


if __name__ == "__main__":
    sys.exit(main())

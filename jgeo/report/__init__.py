"""The report layer: figures and HTML pages drawn from the files a run leaves — the
probe files of `jgeo.dynamics` and, where there is one, the `jgeo.train` run around
them (`report.json` and the run's figures). It sits above both packages, which do not
import it."""

from ._compare import compare_runs as compare_runs
from ._dynamics import (
    trajectory_lengths as trajectory_lengths,
    write_dynamics_report as write_dynamics_report,
)
from ._page import figures as figures, write_page as write_page
from ._results import results_current as results_current
from ._run import evaluate_run as evaluate_run, write_run_report as write_run_report

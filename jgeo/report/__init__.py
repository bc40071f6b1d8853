"""The report layer: figures and HTML pages drawn from the files a run leaves — the
probe files of `jgeo.dynamics` and, where there is one, the `jgeo.train` run around
them. It sits above both packages, which do not import it."""

from ._dynamics import (
    trajectory_lengths as trajectory_lengths,
    write_dynamics_report as write_dynamics_report,
)

"""Learning dynamics of representations: probes recorded during training.

A `Recorder` probes the representation of any model from any JAX training loop (and
`jgeo train` records through one): on a probe set fixed for the run (`probe_set`) it
records the codes of fixed samples (trajectories), their persistent homology (Betti
numbers), linear CKA to the previous probe, the intrinsic dimension, effective rank
and (with labels) class separation of a random sample's codes (`jgeo.representation`)
and, given a decoder, the metric summary, active dimensions, curvature and
geodesic/straight ratios of its pullback metric. `load(dir)` reads them
back; `jgeo dynamics DIR` draws them (`jgeo.report.write_dynamics_report`).

This package does not import `jgeo.train` (nor does `jgeo.train` import it): the
training loop calls callbacks, and a `Recorder` is one.
"""

from ._probes import (
    ProbeSet as ProbeSet,
    grid_points as grid_points,
    measure_geometry as measure_geometry,
    probe_set as probe_set,
    summarise as summarise,
)
from ._recorder import Recorder as Recorder
from ._store import (
    Dynamics as Dynamics,
    DynamicsError as DynamicsError,
    load as load,
)
from ._topology import Topology as Topology, topology as topology

"""Learning dynamics of latent geometry: probes recorded during training.

`jgeo train` probes the latent space every `probe_every` epochs on a probe set fixed
for the run (`probe_set`): metric summary, curvature, geodesic/straight ratios, the
codes of fixed samples (trajectories), their persistent homology (Betti numbers) and
linear CKA to the previous probe. `load(run_dir)` reads them back; `jgeo dynamics DIR`
draws them (`write_dynamics_report`).
"""

from ._probes import (
    ProbeSet as ProbeSet,
    grid_points as grid_points,
    measure_geometry as measure_geometry,
    probe_set as probe_set,
    summarise as summarise,
)
from ._report import (
    trajectory_lengths as trajectory_lengths,
    write_dynamics_report as write_dynamics_report,
)
from ._store import (
    Dynamics as Dynamics,
    DynamicsError as DynamicsError,
    Recorder as Recorder,
    load as load,
)
from ._topology import Topology as Topology, linear_cka as linear_cka, topology as topology

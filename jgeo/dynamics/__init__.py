"""Learning dynamics of representations: probes recorded during training, or after it.

A probe (`AbstractProbe`) is a pure, jit-compatible measurement of one layer's
representation at one step: it maps `ProbeInputs` (the codes of fixed samples and of a
random sample, labels, the parameters, a decoder, a key) to a dict of arrays, and
declares how its scalars are drawn. A `Recorder` runs a list of probes on every layer of
any model from any JAX training loop — `jgeo train` records through one — and writes
what they measure to a directory; `load(dir)` reads it back; `jgeo dynamics DIR` draws
it, with a panel per declared scalar; `probe_activations` runs the probes after training
over saved activations of any framework (`jgeo probe`). The built-in probes: `Codes`
(trajectories), `PersistentHomology`, `Similarity` (and `CKAToPrevious`),
`IntrinsicDimension`, `Rank`, `ClassStructure`, `PullbackGeometry`, `LocalSpectrum`,
`ClassGeodesics`, `LossLandscape` and `LearningRate`; `Every(n, probe)` runs one less
often.

This package does not import `jgeo.train` (nor does `jgeo.train` import it): the
training loop calls callbacks, and a `Recorder` is one.
"""

from ._classes import ClassGeodesics as ClassGeodesics, ClassStructure as ClassStructure
from ._codes import Codes as Codes
from ._dimension import IntrinsicDimension as IntrinsicDimension, Rank as Rank
from ._geometry import PullbackGeometry as PullbackGeometry, grid_points as grid_points
from ._loss_landscape import LearningRate as LearningRate, LossLandscape as LossLandscape
from ._probe import (
    AbstractProbe as AbstractProbe,
    Every as Every,
    Layout as Layout,
    ProbeInputs as ProbeInputs,
    Scalar as Scalar,
)
from ._recorder import Recorder as Recorder, default_probes as default_probes
from ._saved import (
    probe_activations as probe_activations,
    probe_directory as probe_directory,
)
from ._similarity import CKAToPrevious as CKAToPrevious, Similarity as Similarity
from ._spectrum import LocalSpectrum as LocalSpectrum
from ._store import (
    Dynamics as Dynamics,
    DynamicsError as DynamicsError,
    load as load,
)
from ._topology import (
    PersistentHomology as PersistentHomology,
    Topology as Topology,
    topology as topology,
)

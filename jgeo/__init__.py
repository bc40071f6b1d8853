"""jgeo: Riemannian geometry of learned latent spaces, in JAX."""

import importlib.metadata

from . import (
    diagnostics as diagnostics,
    optim as optim,
    regularizers as regularizers,
    sharding as sharding,
    stats as stats,
)
from ._bvp import (
    AbstractBVPSolver as AbstractBVPSolver,
    BVPResult as BVPResult,
    BVPSolution as BVPSolution,
    ClosedForm as ClosedForm,
    EnergyBVP as EnergyBVP,
    Hybrid as Hybrid,
    ShootingBVP as ShootingBVP,
)
from ._compilation_cache import enable_compilation_cache as enable_compilation_cache
from ._connection import (
    christoffel as christoffel,
    geodesic_acceleration as geodesic_acceleration,
)
from ._curvature import (
    gaussian_curvature as gaussian_curvature,
    log_volume as log_volume,
    ricci as ricci,
    riemann as riemann,
    scalar_curvature as scalar_curvature,
    sectional_curvature as sectional_curvature,
)
from ._fisher import FisherPullback as FisherPullback, GaussianFisher as GaussianFisher
from ._geodesics import (
    Geodesic as Geodesic,
    GeodesicResult as GeodesicResult,
    ODESolver as ODESolver,
    curve_energy as curve_energy,
    curve_length as curve_length,
    exp_map as exp_map,
    geodesic as geodesic,
    parallel_transport as parallel_transport,
)
from ._graph import (
    GeodesicGraph as GeodesicGraph,
    geodesic_graph as geodesic_graph,
)
from ._local_basis import (
    LocalBasis as LocalBasis,
    local_basis as local_basis,
)
from ._log_map import (
    ConnectingGeodesic as ConnectingGeodesic,
    connecting_geodesic as connecting_geodesic,
    distance as distance,
    log_map as log_map,
)
from ._metrics import (
    AbstractMetric as AbstractMetric,
    AbstractSpaceForm as AbstractSpaceForm,
    Euclidean as Euclidean,
    MetricField as MetricField,
    PoincareBall as PoincareBall,
    PoincareHalfSpace as PoincareHalfSpace,
    Product as Product,
    StereographicSphere as StereographicSphere,
)
from ._operator import metric_operator as metric_operator
from ._pullback import (
    AbstractPullback as AbstractPullback,
    Pullback as Pullback,
    StochasticPullback as StochasticPullback,
)
from ._slq import SLQ as SLQ, SLQEstimate as SLQEstimate
from .sharding import make_mesh as make_mesh, shard_batch as shard_batch

# The application packages import on first use (`jgeo.train`, `jgeo.dynamics`, ...), so
# that `import jgeo` stays light and each package loads only what it needs.
_LAZY = ("data", "dynamics", "experiment", "landscape", "nn", "report", "representation", "train")


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


try:
    __version__ = importlib.metadata.version("jgeo")
except importlib.metadata.PackageNotFoundError:  # a source checkout on the path, not installed
    __version__ = "0+unknown"

"""The inputs every probe of a run sees: fixed samples and a uniform random sample of
the data, chosen once, a deterministic function of the data and the seed."""

from typing import NamedTuple

import numpy as np

# Farthest-point sampling visits every candidate once per sample: on larger data sets it
# runs on a fixed random subset of this many points.
LANDMARK_CANDIDATES = 20_000


class Samples(NamedTuple):
    """The data points a run's probes see.

    **Fields:**

    - `index`: data indices of the fixed samples (S,), whose codes are tracked: maxmin
      landmarks of the data, evenly spread over it, so that gaps in the sample are not
      mistaken for gaps in the data by the topology.
    - `random`: data indices of a uniform random sample (R,), for the statistics of the
      whole cloud (intrinsic dimension, rank, class structure): the landmarks are spread
      too evenly for nearest-neighbour statistics, and their classes are not in the
      data's proportions.
    - `rng`: a NumPy `Generator` left where the choice of landmarks left it: probes draw
      their fixed choices (pairs) from copies of it (`Layout.rng`).
    """

    index: np.ndarray
    random: np.ndarray
    rng: np.random.Generator


def choose_samples(x, *, samples: int, random_samples: int, seed: int) -> Samples:
    """The `Samples` of data `x` (N, ...), flattened per point for the landmarks.

    **Arguments:**

    - `x`: the data; `samples`: the number of landmarks (at most N); `random_samples`:
      the size of the random sample (at most N); `seed`: the seed of every choice.
    """
    rng = np.random.default_rng([seed, 3])
    x = np.asarray(x).reshape(len(x), -1)
    candidates = np.arange(len(x))
    if len(x) > LANDMARK_CANDIDATES:
        candidates = np.sort(rng.choice(len(x), LANDMARK_CANDIDATES, replace=False))
    first = int(rng.integers(len(candidates)))
    chosen = maxmin_landmarks(x[candidates], min(samples, len(candidates)), first)
    random = np.sort(np.random.default_rng([seed, 5]).permutation(len(x))[:random_samples])
    return Samples(np.sort(candidates[chosen]), random, rng)


def maxmin_landmarks(x, count: int, first: int = 0) -> np.ndarray:
    """Indices of `count` points of `x` (n, D) chosen by farthest-point sampling from
    `first`: each next point is the one farthest from those chosen (de Silva & Carlsson
    2004), so the landmarks cover the data at a nearly uniform spacing."""
    x = np.asarray(x, np.float64)
    chosen = [first]
    distance = np.linalg.norm(x - x[first], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(x - x[chosen[-1]], axis=1))
    return np.array(chosen)

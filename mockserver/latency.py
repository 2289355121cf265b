"""``--latency``: how long a generation waits before it is answered.

- ``off``; a fixed number of milliseconds;
- ``realistic``: each model's typical latency, scaled by steps, pixels and images;
- ``lognormal:MEDIAN,SIGMA[,SEED]``: drawn from a log-normal distribution of that median (in
  milliseconds, or ``realistic`` for each model's realistic latency) and shape *sigma*, the way
  service latencies spread (most answers near the median, a long tail of slow ones). With a
  seed, the n-th generation (counted in the state store, across every worker) waits
  :func:`lognormal_ms` of (seed, n): a run repeats exactly.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

from mockserver.rules import Generation
from mockserver.snapshot import Snapshot

LATENCY_COUNTER = "latency"  # the state store's count of delayed generations
MAX_MS = 600_000
sleep = time.sleep  # one name, so that a test can patch the clock of the delays alone


@dataclass(frozen=True)
class Lognormal:
    median: float | None  # milliseconds; None: the model's realistic latency
    sigma: float
    seed: int | None

    def draw(self, median_ms: float, number: int) -> float:
        if self.seed is None:
            return min(MAX_MS, random.lognormvariate(math.log(median_ms), self.sigma))
        return lognormal_ms(median_ms, self.sigma, self.seed, number)


def lognormal_ms(median_ms: float, sigma: float, seed: int, number: int) -> float:
    """The delay of generation *number* under *seed*: a pure function of its arguments."""
    digest = hashlib.sha256(f"latency:{seed}:{number}".encode()).digest()
    uniform = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64  # in (0, 1): inv_cdf's domain
    return min(MAX_MS, median_ms * math.exp(sigma * NormalDist().inv_cdf(uniform)))


@functools.lru_cache(maxsize=16)
def parse_lognormal(value: str) -> Lognormal:
    """``lognormal:MEDIAN,SIGMA[,SEED]``, or ValueError."""
    parts = value.removeprefix("lognormal:").split(",")
    problem = f"latency {value[:60]!r}: expected lognormal:MEDIAN,SIGMA[,SEED]"
    if len(parts) not in (2, 3):
        raise ValueError(problem)
    try:
        median = None if parts[0].strip() == "realistic" else float(parts[0])
        sigma = float(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise ValueError(problem) from None
    if median is not None and not 0 < median <= MAX_MS:
        raise ValueError(f"latency: the median {median:g} ms is out of range (0 to {MAX_MS})")
    if not 0 <= sigma <= 5 or (seed is not None and seed < 0):
        raise ValueError(f"{problem}, with SIGMA from 0 to 5 and SEED 0 or more")
    return Lognormal(median, sigma, seed)


def delay_ms(
    generation: Generation, snapshot: Snapshot, latency: str | None, number: Callable[[], int]
) -> float:
    """The wait for *generation* under *latency* (as ``--latency`` takes it); *number*() gives
    the generation's number in a seeded run."""
    if not latency:
        return 0.0
    if latency == "realistic":
        return realistic_ms(generation, snapshot)
    if latency.startswith("lognormal:"):
        shape = parse_lognormal(latency)
        median = realistic_ms(generation, snapshot) if shape.median is None else shape.median
        if median <= 0:
            return 0.0
        return shape.draw(median, number() if shape.seed is not None else 0)
    return float(latency)


def realistic_ms(generation: Generation, snapshot: Snapshot) -> float:
    """The model's typical latency scaled by steps, pixels and images."""
    model = snapshot.spec.models[generation.model]
    scale = (
        generation.num_inference_steps
        / model.quality_steps
        * generation.width
        * generation.height
        / (1024 * 1024)
        * generation.num_images
    )
    return model.entry.get("typical_latency_ms", 0) * scale


def pause(milliseconds: float) -> None:
    if milliseconds > 0:
        sleep(milliseconds / 1000)

"""Per-key request rates, as the plans in the catalog allow."""

from __future__ import annotations

import math
import threading
import time

from mockserver.problems import Problem


class RateLimiter:
    """A token bucket per key: ``requests_per_minute`` tokens, refilled continuously.

    State lives in the process, so with several server workers each enforces the limit alone.
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, key: str, plan: str, requests_per_minute: int) -> None:
        """Spend one request of *key*'s allowance, or raise a 429 with ``Retry-After``."""
        rate = requests_per_minute / 60.0
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (float(requests_per_minute), now))
            tokens = min(float(requests_per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                retry_after = math.ceil((1.0 - tokens) / rate)
                raise Problem(
                    429,
                    "rate_limited",
                    f"The {plan} plan allows {requests_per_minute} requests a minute.",
                    headers={"Retry-After": str(retry_after)},
                )
            self._buckets[key] = (tokens - 1.0, now)

"""Per-key request rates, as the plans in the catalog allow.

The algorithm is ``limits``' moving window: at most ``requests_per_minute`` requests in any 60
seconds, counted in the state store, so the budget is one per key across every worker and host
that shares the store. The answer carries the IETF RateLimit header fields
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy: "free";q=10;w=60`` and
``RateLimit: "free";r=3;t=42`` (requests remaining, seconds until the window frees one).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from mockserver.problems import Problem
from mockserver.store import StateStore, StoreUnavailable
from mockserver.store.base import WINDOW_S


@dataclass(frozen=True)
class Quota:
    """Where one key stands after a request: for the RateLimit header fields."""

    plan: str
    limit: int
    remaining: int
    reset_s: int  # seconds until the oldest request in the window leaves it

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{self.plan}";q={self.limit};w={WINDOW_S}',
            "RateLimit": f'"{self.plan}";r={self.remaining};t={self.reset_s}',
        }


class RateLimiter:
    """Spends one request of a key's allowance per call, in the shared store.

    If the store cannot be reached the request goes through (fail open): a mock that is down
    because its rate-limit store is costs a team more than a few requests over the limit.
    """

    def __init__(self, store: StateStore, clock=time.time):
        self._store = store
        self._clock = clock

    def take(self, key: str, plan: str, requests_per_minute: int) -> Quota | None:
        """Spend one request of *key*'s allowance and return the quota left, or raise a 429 with
        ``Retry-After``; ``None`` when the store is unreachable."""
        # The store sees a digest, never the key itself. Unkeyed, unlike the fingerprints in
        # logs: hosts sharing one Redis must count a key under one name, and this digest is
        # never logged, journaled or answered; only who can read the store sees it.
        identity = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        try:
            allowed, reset_at, remaining = self._store.spend(identity, requests_per_minute)
        except StoreUnavailable:
            return None
        # Retry-After rounds up, so that a client waiting that long is let through.
        reset_s = max(0, math.ceil(reset_at - self._clock()))
        quota = Quota(plan, requests_per_minute, max(0, remaining), reset_s)
        if not allowed:
            raise Problem(
                429,
                "rate_limited",
                f"The {plan} plan allows {requests_per_minute} requests a minute.",
                headers={"Retry-After": str(max(1, reset_s)), **quota.headers()},
            )
        return quota

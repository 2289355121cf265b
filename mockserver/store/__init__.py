"""Shared state: what every worker of a mock (and every host of a team's mock) must agree on.

One small interface, :class:`StateStore`, used by the rate limiter and the request journal, with
two implementations, a module each:

- :class:`EmbeddedStore`, the default: one SQLite file that all the workers of one host open
  (``:memory:`` for a single in-process app). No server to start.
- :class:`RedisStore`, for several hosts behind a load balancer: ``--state redis://HOST:PORT/DB``.

The rate-limit algorithm is the ``limits`` library's moving window; each store hands it a
``limits`` storage (``limits``' own Redis storage, or :class:`SQLiteLimitsStorage` here).

A store that cannot be reached raises :class:`StoreUnavailable`; the callers decide what to do
(the limiter lets requests through, the journal counts what it could not keep).
"""

from __future__ import annotations

from mockserver.store.base import StateStore, StoreUnavailable
from mockserver.store.embedded import EmbeddedStore
from mockserver.store.redis_store import RedisStore

__all__ = ["EmbeddedStore", "RedisStore", "StateStore", "StoreUnavailable", "open_store"]


def open_store(url: str | None) -> StateStore:
    """``redis://...`` (or ``rediss://``, ``unix://``): Redis; ``sqlite:///PATH`` or nothing:
    the embedded store (a file shared by the workers, or in memory)."""
    if not url or url == "memory":
        return EmbeddedStore(":memory:")
    if url.startswith("sqlite://"):
        return EmbeddedStore(url.removeprefix("sqlite://"))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    raise ValueError(f"--state {url!r}: expected redis://HOST:PORT/DB (or sqlite:///PATH)")

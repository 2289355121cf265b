"""A ``limits`` storage in the embedded store's SQLite file, and the moving window it keeps.

A key's window is its hits numbered in order (``seq``, one more than the last), so that every
question about it is one index lookup, however many hits the window holds: the request the
next one would push out of the last *limit* is the hit numbered ``last + 1 - limit``, and the
window's oldest hit is the first one not yet expired. Expired hits go as the key is next hit.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from limits.storage import MovingWindowSupport, Storage

if TYPE_CHECKING:
    from mockserver.store.embedded import EmbeddedStore

# Named apart from the earlier (key, at) table, so that a kept state file of an older version
# is not read with the wrong columns.
HITS_TABLE = "window_hits (key TEXT, seq INTEGER, at REAL, PRIMARY KEY (key, seq)) WITHOUT ROWID"
HITS_INDEX = "CREATE INDEX IF NOT EXISTS window_hits_by_time ON window_hits (key, at)"


def acquire(db: sqlite3.Connection, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
    """Add *amount* hits to *key*'s window if it then holds at most *limit* within *expiry*
    seconds; in a write transaction."""
    if amount > limit:
        return False
    now = time.time()
    (last,) = db.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM window_hits WHERE key = ?", (key,)
    ).fetchone()
    pushed = db.execute(
        "SELECT at FROM window_hits WHERE key = ? AND seq = ?", (key, last + amount - limit)
    ).fetchone()
    if pushed is not None and pushed[0] >= now - expiry:
        return False
    db.executemany(
        "INSERT INTO window_hits (key, seq, at) VALUES (?, ?, ?)",
        [(key, last + i, now) for i in range(1, amount + 1)],
    )
    db.execute("DELETE FROM window_hits WHERE key = ? AND at < ?", (key, now - expiry))
    return True


def moving_window(db: sqlite3.Connection, key: str, limit: int, expiry: int) -> tuple[float, int]:
    """When *key*'s window started (its oldest hit among the last *limit* not expired), and how
    many hits it holds (at most *limit*); with no hit, now and 0."""
    now = time.time()
    first = db.execute(
        "SELECT seq, at FROM window_hits WHERE key = ? AND at >= ? ORDER BY at, seq LIMIT 1",
        (key, now - expiry),
    ).fetchone()
    if first is None:
        return now, 0
    (last,) = db.execute("SELECT MAX(seq) FROM window_hits WHERE key = ?", (key,)).fetchone()
    oldest_seq = max(first[0], last + 1 - limit)
    if oldest_seq == first[0]:
        return first[1], last - first[0] + 1
    (oldest,) = db.execute(
        "SELECT at FROM window_hits WHERE key = ? AND seq = ?", (key, oldest_seq)
    ).fetchone()
    return oldest, limit


def spend(db: sqlite3.Connection, key: str, limit: int, expiry: int) -> tuple[bool, float, int]:
    """:func:`acquire` of one hit, then :func:`moving_window`, at one instant and in four
    statements rather than up to seven (each request of a limited key pays for them): whether
    the hit was let in, when the window started and how many hits it holds; in a write
    transaction."""
    now = time.time()
    since = now - expiry
    last, pushed = db.execute(
        "SELECT last, (SELECT at FROM window_hits WHERE key = ?1 AND seq = last + 1 - ?2) "
        "FROM (SELECT COALESCE(MAX(seq), 0) AS last FROM window_hits WHERE key = ?1)",
        (key, limit),
    ).fetchone()
    allowed = limit >= 1 and (pushed is None or pushed < since)
    if allowed:
        last += 1
        db.execute("INSERT INTO window_hits (key, seq, at) VALUES (?, ?, ?)", (key, last, now))
        db.execute("DELETE FROM window_hits WHERE key = ? AND at < ?", (key, since))
    # The window's first hit not expired, and the hit the last *limit* begin with.
    first = db.execute(
        "SELECT seq, at, (SELECT at FROM window_hits WHERE key = ?1 AND seq = ?3) "
        "FROM window_hits WHERE key = ?1 AND at >= ?2 ORDER BY at, seq LIMIT 1",
        (key, since, last + 1 - limit),
    ).fetchone()
    if first is None:
        return allowed, now, 0
    first_seq, first_at, oldest_at = first
    if last + 1 - limit <= first_seq:
        return allowed, first_at, last - first_seq + 1
    return allowed, oldest_at, limit


class SQLiteLimitsStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage in a SQLite file, so that every worker process of a host shares
    the same windows. Moving windows mirror ``limits``' memory and Redis storages (the last
    *limit* timestamps per key); fixed windows are a counter with an expiry."""

    STORAGE_SCHEME = ["mockserver+sqlite"]

    def __init__(self, store: EmbeddedStore, **options: Any):
        self._store = store
        super().__init__(store.url, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        with self._store.transaction() as db:
            return acquire(db, key, limit, expiry, amount)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        with self._store.reading() as db:
            return moving_window(db, key, limit, expiry)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._store.transaction() as db:
            db.execute("DELETE FROM counters WHERE key = ? AND expires <= ?", (key, now))
            db.execute(
                "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                (key, amount, now + expiry),
            )
            value: int = db.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()[
                0
            ]
            return value

    def get(self, key: str) -> int:
        with self._store.reading() as db:
            row = db.execute(
                "SELECT value FROM counters WHERE key = ? AND expires > ?", (key, time.time())
            ).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        with self._store.reading() as db:
            row = db.execute("SELECT expires FROM counters WHERE key = ?", (key,)).fetchone()
        return row[0] if row else time.time()

    def check(self) -> bool:
        try:
            with self._store.reading() as db:
                db.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        with self._store.transaction() as db:
            hits = db.execute("DELETE FROM window_hits").rowcount
            return hits + db.execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM window_hits WHERE key = ?", (key,))
            db.execute("DELETE FROM counters WHERE key = ?", (key,))

"""A ``limits`` storage in the embedded store's SQLite file."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from limits.storage import MovingWindowSupport, Storage

if TYPE_CHECKING:
    from mockserver.store.embedded import EmbeddedStore


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
        if amount > limit:
            return False
        now = time.time()
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT at FROM hits WHERE key = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                (key, limit - amount),
            ).fetchone()
            if row is not None and row[0] >= now - expiry:
                return False
            db.executemany("INSERT INTO hits (key, at) VALUES (?, ?)", [(key, now)] * amount)
            db.execute("DELETE FROM hits WHERE key = ? AND at < ?", (key, now - expiry))
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        with self._store.reading() as db:
            oldest, count = db.execute(
                "SELECT MIN(at), COUNT(*) FROM (SELECT at FROM hits WHERE key = ? AND at >= ? "
                "ORDER BY at DESC LIMIT ?)",
                (key, now - expiry, limit),
            ).fetchone()
        return (oldest, count) if count else (now, 0)

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
            hits = db.execute("DELETE FROM hits").rowcount
            return hits + db.execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM hits WHERE key = ?", (key,))
            db.execute("DELETE FROM counters WHERE key = ?", (key,))

"""Shared state: what every worker of a mock (and every host of a team's mock) must agree on.

One small interface, :class:`StateStore`, used by the rate limiter and the request journal, with
two implementations:

- :class:`EmbeddedStore`, the default: one SQLite file that all the workers of one host open
  (``:memory:`` for a single in-process app). No server to start.
- :class:`RedisStore`, for several hosts behind a load balancer: ``--state redis://HOST:PORT/DB``.

The rate-limit algorithm is the ``limits`` library's moving window; each store hands it a
``limits`` storage (``limits``' own Redis storage, or :class:`SQLiteLimitsStorage` here).

A store that cannot be reached raises :class:`StoreUnavailable`; the callers decide what to do
(the limiter lets requests through, the journal counts what it could not keep).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import deque

from limits.storage import MovingWindowSupport, Storage

log = logging.getLogger("mockserver")

JOURNAL_COLUMNS = (
    "time",
    "method",
    "path",
    "query",
    "headers",
    "body",
    "status",
    "code",
    "duration_ms",
)


class StoreUnavailable(Exception):
    """The store cannot be reached now."""


class StateStore(ABC):
    """Rate-limit counters and the request journal, shared by every worker that opens the
    same store."""

    url: str
    limits_storage: Storage  # where the rate limiter keeps its moving windows

    @abstractmethod
    def journal_add(self, row: dict, keep: int) -> None:
        """Append one journal row (a dict of :data:`JOURNAL_COLUMNS`), keeping the newest
        *keep* rows."""

    @abstractmethod
    def journal_rows(self, limit: int) -> list[dict]:
        """The newest *limit* rows, newest first, including every row whose request finished
        before the call."""

    @abstractmethod
    def journal_clear(self) -> None: ...

    @abstractmethod
    def count_unsaved(self, count: int) -> None:
        """Add *count* journal rows that could not be stored to the shared tally."""

    @abstractmethod
    def unsaved(self) -> int:
        """Journal rows that could not be stored, over all workers since the store was new."""

    def call(self, operation):
        """``operation()``, with the store's own errors raised as :class:`StoreUnavailable`."""
        return operation()

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers (used at start-up)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (files stay; the command line removes its private directory)."""


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


# --- embedded: SQLite ------------------------------------------------------------------------


class SQLiteLimitsStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage in a SQLite file, so that every worker process of a host shares
    the same windows. Moving windows mirror ``limits``' memory and Redis storages (the last
    *limit* timestamps per key); fixed windows are a counter with an expiry."""

    STORAGE_SCHEME = ["mockserver+sqlite"]

    def __init__(self, store: EmbeddedStore, **options):
        self._store = store
        super().__init__(store.url, **options)

    @property
    def base_exceptions(self):
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
            return db.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()[0]

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


class EmbeddedStore(StateStore):
    """One SQLite file shared by the workers of one host, or ``:memory:`` for one process.

    Journal rows are the hot path, since every request writes one: they are queued in memory and
    a thread writes the queue every FLUSH_S seconds in one transaction. Reading first waits for
    every worker's writer to have run once more, so that it shows every request that finished
    before the read. Rate-limit hits are written at once, in their own transaction, since they
    decide the answer.
    """

    FLUSH_S = 0.02

    def __init__(self, path: str = ":memory:"):
        self.path = path
        self.url = "memory" if path == ":memory:" else f"sqlite://{path}"
        self.shared = path != ":memory:"
        self._lock = threading.Lock()
        self._pending: deque[tuple[tuple, int]] = deque()  # append and popleft are thread-safe
        self._writer: threading.Thread | None = None  # started by the first journal row
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        for table in (
            "requests (id INTEGER PRIMARY KEY AUTOINCREMENT, " + ", ".join(JOURNAL_COLUMNS) + ")",
            # Rows that a worker flushes after a clear, for requests made before it, stay hidden.
            "cleared (at REAL)",
            # Each worker's writer stamps its last run here, so that a reader can wait for them.
            "writers (pid INTEGER PRIMARY KEY, ran REAL)",
            "tally (name TEXT PRIMARY KEY, value INTEGER)",
            "hits (key TEXT, at REAL)",
            "counters (key TEXT PRIMARY KEY, value INTEGER, expires REAL)",
        ):
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table}")
        self._db.execute("CREATE INDEX IF NOT EXISTS hits_by_key ON hits (key, at)")
        self._insert = (
            f"INSERT INTO requests ({', '.join(JOURNAL_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(JOURNAL_COLUMNS))})"
        )
        self.limits_storage = SQLiteLimitsStorage(self)

    class _Transaction:
        def __init__(self, store: EmbeddedStore, begin: str | None):
            self.store, self.begin = store, begin

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            if self.begin:
                self.store._db.execute(self.begin)
            return self.store._db

        def __exit__(self, kind, error, trace) -> None:
            try:
                if self.begin:
                    self.store._db.execute("COMMIT" if kind is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def call(self, operation):
        try:
            return operation()
        except sqlite3.Error as exc:  # a locked or full file: the callers degrade, not fail
            raise StoreUnavailable(f"{self.path}: {exc}") from exc

    def transaction(self) -> _Transaction:
        """A write transaction that holds the file's write lock from its start, so that two
        workers' read-then-write of one window cannot interleave."""
        return self._Transaction(self, "BEGIN IMMEDIATE")

    def reading(self) -> _Transaction:
        return self._Transaction(self, None)

    def journal_add(self, row: dict, keep: int) -> None:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_forever, daemon=True)
                    self._writer.start()
        self._pending.append((tuple(row[column] for column in JOURNAL_COLUMNS), keep))

    def _write_forever(self) -> None:
        while True:
            time.sleep(self.FLUSH_S)
            try:
                self._flush()
            except sqlite3.Error as exc:  # a full disk: count the rows, keep serving
                log.warning("journal: could not write to %s: %s", self.path, exc)

    def _flush(self) -> None:
        batch = [self._pending.popleft() for _ in range(len(self._pending))]
        try:
            with self.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO writers (pid, ran) VALUES (?, ?)",
                    (os.getpid(), time.time()),
                )
                db.executemany(self._insert, [row for row, _ in batch])
                if batch:
                    keep = batch[-1][1]
                    db.execute(
                        "DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?",
                        (keep,),
                    )
        except sqlite3.Error:
            self.count_unsaved(len(batch))
            raise

    def _settle(self, patience_s: float = 2.0) -> None:
        """Write what this worker holds, and wait (at most *patience_s*) until every live
        worker's writer has run since: then every request that finished before is written."""
        asked = time.time()
        self._flush()
        if not self.shared:
            return
        deadline = time.monotonic() + patience_s
        while time.monotonic() < deadline:
            with self.reading() as db:
                behind = db.execute(
                    "SELECT COUNT(*) FROM writers WHERE ran < ? AND ran > ?",
                    (asked, asked - 10 * patience_s),  # older stamps: workers gone
                ).fetchone()[0]
            if not behind:
                return
            time.sleep(self.FLUSH_S / 2)

    def journal_rows(self, limit: int) -> list[dict]:
        self._settle()
        with self.reading() as db:
            rows = db.execute(
                f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM requests "
                "WHERE time > (SELECT COALESCE(MAX(at), 0) FROM cleared) "
                "ORDER BY time DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(zip(JOURNAL_COLUMNS, row, strict=True)) for row in rows]

    def journal_clear(self) -> None:
        self._settle()
        with self.transaction() as db:
            db.execute("DELETE FROM requests")
            db.execute("DELETE FROM cleared")
            db.execute("INSERT INTO cleared (at) VALUES (?)", (time.time(),))

    def count_unsaved(self, count: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO tally (name, value) VALUES ('unsaved', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (count,),
            )

    def unsaved(self) -> int:
        with self.reading() as db:
            row = db.execute("SELECT value FROM tally WHERE name = 'unsaved'").fetchone()
        return row[0] if row else 0

    def check(self) -> None:
        with self.reading() as db:
            self.call(lambda: db.execute("SELECT 1").fetchone())

    def close(self) -> None:
        try:
            if self._writer is not None:  # a process that never journaled leaves no stamp
                self._flush()
        finally:
            self._db.close()


# --- Redis -----------------------------------------------------------------------------------


class RedisStore(StateStore):
    """State in Redis, shared by every mock process given the same URL, on any host.

    Journal rows are written as they come (one round trip, a pipeline), so that any process
    reads what any other has answered. When Redis stops answering, calls fail fast for
    RETRY_S seconds instead of each waiting for a timeout; one warning is logged per outage,
    and one line when it is reachable again.
    """

    PREFIX = "mockserver:"
    TIMEOUT_S = 0.5
    RETRY_S = 0.5

    def __init__(self, url: str):
        import redis
        from limits.storage import RedisStorage
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self._errors = redis.RedisError
        self.limits_storage = RedisStorage(
            url,
            key_prefix=self.PREFIX + "limits",
            socket_connect_timeout=self.TIMEOUT_S,
            socket_timeout=self.TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # the breaker below decides when to try again
        )
        self._redis = self.limits_storage.get_connection()
        self._journal = self.PREFIX + "journal"
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0

    def call(self, operation):
        """Run ``operation()`` against Redis, or raise :class:`StoreUnavailable` (at once
        while an outage is known, so that requests do not queue behind timeouts)."""
        if self._down_since is not None and time.monotonic() < self._retry_at:
            raise StoreUnavailable(f"{self.url} is unreachable")
        try:
            result = operation()
        except self._errors as exc:
            with self._lock:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning(
                        "state store %s unreachable (%s): rate limits are not enforced and "
                        "journal entries are counted, not kept, until it answers again",
                        redacted(self.url),
                        exc,
                    )
                self._retry_at = time.monotonic() + self.RETRY_S
            raise StoreUnavailable(f"{redacted(self.url)}: {exc}") from exc
        if self._down_since is not None:
            with self._lock:
                if self._down_since is not None:
                    log.warning(
                        "state store %s reachable again after %.1f s",
                        redacted(self.url),
                        time.monotonic() - self._down_since,
                    )
                    self._down_since = None
        return result

    def check(self) -> None:
        try:
            self._redis.ping()
        except self._errors as exc:
            raise StoreUnavailable(f"{redacted(self.url)}: {exc}") from exc

    def journal_add(self, row: dict, keep: int) -> None:
        entry = json.dumps(row, separators=(",", ":"))

        def write():
            pipe = self._redis.pipeline(transaction=False)
            pipe.lpush(self._journal, entry)
            pipe.ltrim(self._journal, 0, keep - 1)
            pipe.execute()

        self.call(write)

    def journal_rows(self, limit: int) -> list[dict]:
        rows = self.call(lambda: self._redis.lrange(self._journal, 0, limit - 1))
        return [json.loads(row) for row in rows]

    def journal_clear(self) -> None:
        self.call(lambda: self._redis.delete(self._journal))

    def count_unsaved(self, count: int) -> None:
        self.call(lambda: self._redis.incrby(self.PREFIX + "unsaved", count))

    def unsaved(self) -> int:
        return int(self.call(lambda: self._redis.get(self.PREFIX + "unsaved")) or 0)

    def close(self) -> None:
        self._redis.close()


def redacted(url: str) -> str:
    """*url* without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "…@" + rest.split("@", 1)[1]
    return scheme + sep + rest

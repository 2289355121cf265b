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

import logging
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from pathlib import Path

from limits.storage import MovingWindowSupport, Storage

log = logging.getLogger("mockserver")


class StoreUnavailable(Exception):
    """The store cannot be reached now."""


class StateStore(ABC):
    """Rate-limit counters and the request journal, shared by every worker that opens the
    same store."""

    url: str
    limits_storage: Storage  # where the rate limiter keeps its moving windows

    @abstractmethod
    def journal_add(self, entry: str, at: float, *, keep: int, max_bytes: int) -> None:
        """Append one journal entry (its JSON text, for a request answered at *at*), keeping
        the newest entries that are at most *keep* in number and *max_bytes* in length."""

    @abstractmethod
    def journal_rows(self, limit: int) -> list[str]:
        """The newest *limit* entries, newest first, including every entry whose request
        finished before the call."""

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

    Journal entries are the hot path, since every request writes one: they are queued in memory
    and a thread writes the queue every FLUSH_S seconds in one transaction. Reading first waits
    for every live worker's writer to have run once more, so that it shows every request that
    finished before the read; a worker's writer starts with its first journal entry and stamps
    itself at once, a worker that only reads stamps nothing, and the stamp of a worker that is
    gone (killed, respawned) is dropped rather than waited for. Rate-limit hits are written at
    once, in their own transaction, since they decide the answer.
    """

    FLUSH_S = 0.02

    def __init__(self, path: str = ":memory:"):
        self.path = path
        self.url = "memory" if path == ":memory:" else f"sqlite://{path}"
        self.shared = path != ":memory:"
        self._lock = threading.Lock()
        # (at, entry, keep, max_bytes); append and popleft are thread-safe
        self._pending: deque[tuple[float, str, int, int]] = deque()
        self._writer: threading.Thread | None = None  # started by the first journal entry
        self._starting = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        for table in (
            # Each entry is the JSON text that GET /__admin/requests serves; size is its length.
            "journal (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, size INTEGER, entry TEXT)",
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

    def journal_add(self, entry: str, at: float, *, keep: int, max_bytes: int) -> None:
        self.call(self._start_writer)
        self._pending.append((at, entry, keep, max_bytes))

    def _start_writer(self) -> None:
        """Start this process's writer, stamped at once: from now on a reader waits for it."""
        if self._writer is not None:
            return
        with self._starting:
            if self._writer is None:
                with self.transaction() as db:
                    db.execute(
                        "INSERT OR REPLACE INTO writers (pid, ran) VALUES (?, 0)", (os.getpid(),)
                    )
                writer = threading.Thread(target=self._write_forever, daemon=True)
                writer.start()
                self._writer = writer

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
                db.executemany(
                    "INSERT INTO journal (time, size, entry) VALUES (?, ?, ?)",
                    [(at, len(entry), entry) for at, entry, _, _ in batch],
                )
                if batch:
                    _, _, keep, max_bytes = batch[-1]
                    # The newest rows that fit both bounds stay.
                    db.execute(
                        "DELETE FROM journal WHERE id IN (SELECT id FROM (SELECT id, "
                        "ROW_NUMBER() OVER newest AS n, SUM(size) OVER newest AS total "
                        "FROM journal WINDOW newest AS (ORDER BY id DESC)) "
                        "WHERE n > ? OR total > ?)",
                        (keep, max_bytes),
                    )
        except sqlite3.Error:
            self.count_unsaved(len(batch))
            raise

    def _settle(self, patience_s: float = 2.0) -> None:
        """Write what this worker holds, and wait (at most *patience_s*) until every live
        worker's writer has run since: then every request that finished before is written."""
        asked = time.time()
        if self._writer is not None:  # a worker that never journaled holds nothing, stamps nothing
            self._flush()
        if not self.shared:
            return
        deadline = time.monotonic() + patience_s
        while True:
            with self.reading() as db:
                behind = [
                    pid for (pid,) in db.execute("SELECT pid FROM writers WHERE ran < ?", (asked,))
                ]
            gone = [pid for pid in behind if not _alive(pid)]
            if gone:
                with self.transaction() as db:
                    db.executemany("DELETE FROM writers WHERE pid = ?", [(pid,) for pid in gone])
            if len(gone) == len(behind) or time.monotonic() >= deadline:
                return
            time.sleep(self.FLUSH_S / 2)

    def journal_rows(self, limit: int) -> list[str]:
        def read():
            self._settle()
            with self.reading() as db:
                return db.execute(
                    "SELECT entry FROM journal "
                    "WHERE time > (SELECT COALESCE(MAX(at), 0) FROM cleared) "
                    "ORDER BY time DESC, id DESC LIMIT ?",
                    (limit,),
                ).fetchall()

        return [entry for (entry,) in self.call(read)]

    def journal_clear(self) -> None:
        def clear():
            self._settle()
            with self.transaction() as db:
                db.execute("DELETE FROM journal")
                db.execute("DELETE FROM cleared")
                db.execute("INSERT INTO cleared (at) VALUES (?)", (time.time(),))

        self.call(clear)

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
            if self._writer is not None:  # a process that never journaled left no stamp
                self._flush()
                with self.transaction() as db:  # and readers need not wait for it any more
                    db.execute("DELETE FROM writers WHERE pid = ?", (os.getpid(),))
        finally:
            self._db.close()


def _alive(pid: int) -> bool:
    """Whether process *pid* (of this host) still runs; a zombie, killed and not yet reaped by
    the server that will respawn it, does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # Linux: the state follows the command name in parentheses
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# --- Redis -----------------------------------------------------------------------------------


class RedisStore(StateStore):
    """State in Redis, shared by every mock process given the same URL, on any host.

    Journal entries are written as they come (one round trip, a script that also drops the
    oldest entries past either bound, keeping a running total of their bytes), so that any
    process reads what any other has answered. When Redis stops answering, calls fail fast for
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
        self._journal = self.PREFIX + "requests"
        self._journal_bytes = self.PREFIX + "requests:bytes"
        self._journal_add = self._redis.register_script(_JOURNAL_ADD)
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

    def journal_add(self, entry: str, at: float, *, keep: int, max_bytes: int) -> None:
        self.call(
            lambda: self._journal_add(
                keys=[self._journal, self._journal_bytes], args=[entry, keep, max_bytes]
            )
        )

    def journal_rows(self, limit: int) -> list[str]:
        rows = self.call(lambda: self._redis.lrange(self._journal, 0, limit - 1))
        return [row if isinstance(row, str) else row.decode() for row in rows]

    def journal_clear(self) -> None:
        self.call(lambda: self._redis.delete(self._journal, self._journal_bytes))

    def count_unsaved(self, count: int) -> None:
        self.call(lambda: self._redis.incrby(self.PREFIX + "unsaved", count))

    def unsaved(self) -> int:
        return int(self.call(lambda: self._redis.get(self.PREFIX + "unsaved")) or 0)

    def close(self) -> None:
        self._redis.close()


# Push an entry (ASCII JSON, so that its length in Lua is its length in characters) and drop the
# oldest until at most ARGV[2] entries of at most ARGV[3] bytes in all are left.
_JOURNAL_ADD = """
local count = redis.call('LPUSH', KEYS[1], ARGV[1])
local total = redis.call('INCRBY', KEYS[2], string.len(ARGV[1]))
local keep, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
while count > 0 and (count > keep or total > max_bytes) do
    total = redis.call('DECRBY', KEYS[2], string.len(redis.call('RPOP', KEYS[1])))
    count = count - 1
end
if count == 0 then redis.call('DEL', KEYS[2]) end
"""


def redacted(url: str) -> str:
    """*url* without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "…@" + rest.split("@", 1)[1]
    return scheme + sep + rest

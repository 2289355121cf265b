"""The default store: one SQLite file shared by the workers of one host (or memory)."""

from __future__ import annotations

import fcntl
import functools
import logging
import mmap
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from limits import RateLimitItemPerMinute

from mockserver.store.base import (
    WINDOW_S,
    Entry,
    StateStore,
    StoreUnavailable,
    T,
    entry_held,
    entry_text,
)
from mockserver.store.sqlite_limits import (
    HITS_INDEX,
    HITS_TABLE,
    SQLiteLimitsStorage,
)
from mockserver.store.sqlite_limits import spend as spend_window

log = logging.getLogger("mockserver")


class EmbeddedStore(StateStore):
    """One SQLite file shared by the workers of one host, or ``:memory:`` for one process.

    Journal entries are the hot path, since every request makes one, and most are never read:
    each worker holds its newest entries in memory, unmade (a function that makes the entry's
    text), at most as many as the journal keeps, since an older one could never be shown. They
    are made and written when a reader asks: the reader stamps the time it asked, and every
    worker's writer thread, which looks for that stamp every FLUSH_S seconds, writes what it
    holds in one transaction and stamps the time it ran. A read waits for every live worker's
    writer to have run since it asked, so that it shows every request that finished before it;
    a worker's writer starts with its first journal entry and stamps itself at once, a worker
    that only reads stamps nothing, and the stamp of a worker that is gone (killed, respawned)
    is dropped rather than waited for (the entries it held are lost with it). Rate-limit hits
    are written at once, in their own transaction, since they decide the answer.
    """

    FLUSH_S = 0.02

    def __init__(self, path: str = ":memory:"):
        self.path = path
        self.url = "memory" if path == ":memory:" else f"sqlite://{path}"
        self.shared = path != ":memory:"
        self._lock = threading.Lock()
        self._closed = False
        # (at, entry, keep, max_bytes), oldest first, and about how many bytes they hold
        self._pending: deque[tuple[float, Entry, int, int]] = deque()
        self._held = 0
        self._due = False  # they hold more than the journal keeps: to be written soon
        self._holding = threading.Lock()  # for the three above
        self._flushing = threading.Lock()  # one flush at a time: entries are written in order
        self._answered = 0.0  # the newest reader's stamp that this worker's writer has answered
        self._writer: threading.Thread | None = None  # started by the first journal entry
        self._starting = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        # Writers of every worker queue on this file's lock, which wakes the next one as soon as
        # it is free; SQLite's own wait for its write lock sleeps for milliseconds at a time.
        self._write_lock = (
            os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o600) if self.shared else None
        )
        # How often what fault_state reads has changed, in every worker's memory: see _Changes.
        self._changes = _Changes(self._write_lock)
        self._fault_state: tuple[tuple[int, str], tuple[str | None, bool]] | None = None
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        for table in (
            # Each entry is the JSON text that GET /__admin/requests serves; size is its length.
            "journal (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, size INTEGER, entry TEXT)",
            # Rows that a worker flushes after a clear, for requests made before it, stay hidden.
            "cleared (at REAL)",
            # Each worker's writer stamps its last run here, so that a reader can wait for them.
            "writers (pid INTEGER PRIMARY KEY, ran REAL)",
            # One row: when a reader last asked the writers to write what they hold.
            "asked (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL)",
            "tally (name TEXT PRIMARY KEY, value INTEGER)",
            HITS_TABLE,
            "counters (key TEXT PRIMARY KEY, value INTEGER, expires REAL)",
            "settings (name TEXT PRIMARY KEY, value TEXT)",
            # One row per waiting answer; a sequence's answers are taken in id order.
            "sequences (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, answer TEXT)",
        ):
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table}")
        self._db.execute(HITS_INDEX)
        self.limits_storage = SQLiteLimitsStorage(self)

    class _Transaction:
        def __init__(self, store: EmbeddedStore, begin: str | None, changes: bool = False):
            self.store, self.begin, self.changes = store, begin, changes

        def __enter__(self) -> sqlite3.Connection:
            store = self.store
            store._lock.acquire()
            if store._closed:
                store._lock.release()
                raise sqlite3.ProgrammingError(f"{store.path}: the store is closed")
            if self.begin:
                try:
                    if store._write_lock is not None:
                        fcntl.flock(store._write_lock, fcntl.LOCK_EX)
                    store._db.execute(self.begin)
                except BaseException:
                    self._release()
                    raise
            return store._db

        def __exit__(
            self,
            kind: type[BaseException] | None,
            error: BaseException | None,
            trace: TracebackType | None,
        ) -> None:
            try:
                if self.begin:
                    self.store._db.execute("COMMIT" if kind is None else "ROLLBACK")
                    if self.changes:  # once committed, and still under the write lock
                        self.store._changes.count()
            finally:
                self._release()

        def _release(self) -> None:
            if self.begin and self.store._write_lock is not None:
                fcntl.flock(self.store._write_lock, fcntl.LOCK_UN)
            self.store._lock.release()

    def call(self, operation: Callable[[], T]) -> T:
        try:
            return operation()
        except sqlite3.Error as exc:  # a locked or full file: the callers degrade, not fail
            raise StoreUnavailable(f"{self.path}: {exc}") from exc

    def transaction(self, *, changes: bool = False) -> _Transaction:
        """A write transaction that holds the file's write lock from its start, so that two
        workers' read-then-write of one window cannot interleave. *changes*: it writes what
        :meth:`fault_state` reads (settings, sequences), which every worker then reads anew."""
        return self._Transaction(self, "BEGIN IMMEDIATE", changes)

    def reading(self) -> _Transaction:
        return self._Transaction(self, None)

    def spend(self, key: str, requests_per_minute: int) -> tuple[bool, float, int]:
        # The window's name is the one limits' own strategy gives it (a plan's new limit is a
        # new window, as in Redis), and the hit and the window it leaves are one transaction.
        window = _window_name(key, requests_per_minute)

        def spend() -> tuple[bool, float, int]:
            with self.transaction() as db:
                allowed, started, count = spend_window(db, window, requests_per_minute, WINDOW_S)
            return allowed, started + WINDOW_S, requests_per_minute - count

        return self.call(spend)

    def journal_add(self, entry: Entry, at: float, *, keep: int, max_bytes: int) -> None:
        self.call(self._start_writer)
        pending = self._pending
        with self._holding:
            pending.append((at, entry, keep, max_bytes))
            self._held += entry_held(entry)
            while len(pending) > keep:  # pushed out by *keep* newer ones: never to be shown
                self._held -= entry_held(pending.popleft()[1])
            # Memory stays bounded by what the journal keeps, however large the requests.
            self._due = self._held > max_bytes

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
        while not self._closed:
            time.sleep(self.FLUSH_S)
            try:
                with self.reading() as db:
                    row = db.execute("SELECT at FROM asked").fetchone()
                if self._due or (row is not None and row[0] > self._answered):
                    self._answered = row[0] if row is not None else self._answered
                    self._flush()
            except sqlite3.Error as exc:  # a full disk: count the rows, keep serving
                log.warning("journal: could not write to %s: %s", self.path, exc)

    def _flush(self) -> None:
        """Make and write every entry this worker holds, and stamp the time it ran."""
        with self._flushing:
            with self._holding:
                held = list(self._pending)
                self._pending.clear()
                self._held, self._due = 0, False
            batch, lost = [], 0
            for at, entry, keep, max_bytes in held:
                try:
                    batch.append((at, entry_text(entry), keep, max_bytes))
                except Exception:  # one entry that cannot be made must not stop the journal
                    log.exception("journal: could not make an entry")
                    lost += 1
            if lost:
                self.count_unsaved(lost)
            self._write(batch)

    def _write(self, batch: list[tuple[float, str, int, int]]) -> None:
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
                    # The newest rows that fit both bounds stay: newest by the time of their
                    # request, as a read orders them, since workers write at different times.
                    db.execute(
                        "DELETE FROM journal WHERE id IN (SELECT id FROM (SELECT id, "
                        "ROW_NUMBER() OVER newest AS n, SUM(size) OVER newest AS total "
                        "FROM journal WINDOW newest AS (ORDER BY time DESC, id DESC)) "
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
        with self.transaction() as db:  # every writer sees it within FLUSH_S
            db.execute(
                "INSERT INTO asked (id, at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET at = MAX(at, excluded.at)",
                (asked,),
            )
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
        def read() -> list[tuple[str]]:
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
        def clear() -> None:
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

    def setting(self, name: str) -> str | None:
        with self.reading() as db:
            row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def fault_state(self, name: str) -> tuple[str | None, bool]:
        # Asked on every request, changed by an admin call now and then: read again only when
        # the change count moved. The count is read first, so that a change committed after
        # the read below moves it again, and the next request reads once more.
        stamp = (self._changes.read(), name)
        cached = self._fault_state
        if cached is not None and cached[0] == stamp:
            return cached[1]
        with self.reading() as db:
            value, waiting = db.execute(
                "SELECT (SELECT value FROM settings WHERE name = ?), "
                "EXISTS (SELECT 1 FROM sequences)",
                (name,),
            ).fetchone()
        state = (value, bool(waiting))
        self._fault_state = (stamp, state)
        return state

    def set_setting(self, name: str, value: str | None) -> None:
        with self.transaction(changes=True) as db:
            db.execute("DELETE FROM settings WHERE name = ?", (name,))
            if value is not None:
                db.execute("INSERT INTO settings (name, value) VALUES (?, ?)", (name, value))

    def increment(self, name: str) -> int:
        with self.transaction() as db:
            count = db.execute(
                "INSERT INTO tally (name, value) VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                ("counter:" + name,),
            ).fetchone()[0]
        return int(count)

    def reset_counter(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tally WHERE name = ?", ("counter:" + name,))

    def sequence_add(self, name: str, answers: list[str], *, max_total: int) -> bool:
        with self.transaction(changes=True) as db:
            (total,) = db.execute("SELECT COUNT(*) FROM sequences").fetchone()
            if total + len(answers) > max_total:
                return False
            db.executemany(
                "INSERT INTO sequences (name, answer) VALUES (?, ?)",
                [(name, answer) for answer in answers],
            )
            return True

    def sequence_take(self, names: list[str]) -> str | None:
        with self.reading() as db:  # the common case, no sequence at all, takes no write lock
            if db.execute("SELECT 1 FROM sequences LIMIT 1").fetchone() is None:
                return None
        with self.transaction(changes=True) as db:
            for name in names:
                row = db.execute(
                    "SELECT id, answer FROM sequences WHERE name = ? ORDER BY id LIMIT 1", (name,)
                ).fetchone()
                if row is not None:
                    db.execute("DELETE FROM sequences WHERE id = ?", (row[0],))
                    return str(row[1])
        return None

    def sequences(self) -> dict[str, list[str]]:
        waiting: dict[str, list[str]] = {}
        with self.reading() as db:
            for name, answer in db.execute("SELECT name, answer FROM sequences ORDER BY id"):
                waiting.setdefault(name, []).append(answer)
        return waiting

    def sequences_clear(self) -> None:
        with self.transaction(changes=True) as db:
            db.execute("DELETE FROM sequences")

    def check(self) -> None:
        with self.reading() as db:
            self.call(lambda: db.execute("SELECT 1").fetchone())

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._writer is not None:  # a process that never journaled left no stamp
                self._flush()
                with self.transaction() as db:  # and readers need not wait for it any more
                    db.execute("DELETE FROM writers WHERE pid = ?", (os.getpid(),))
        finally:
            with self._lock:  # not while a writer's transaction holds the connection
                self._closed = True
                self._db.close()
                self._changes.close()
                if self._write_lock is not None:
                    os.close(self._write_lock)


class _Changes:
    """A count of the changes to what :meth:`EmbeddedStore.fault_state` reads, kept in the first
    8 bytes of the store's lock file and mapped into each worker's memory: reading it is neither
    a query nor a system call. It is counted up under the write lock, after the change is
    committed. (A read torn by a concurrent count only makes a worker read the store once more.)
    Without a file (``:memory:``, one process) it is kept in memory alone."""

    SIZE = 8

    def __init__(self, lock_file: int | None):
        self._map: mmap.mmap | bytearray
        if lock_file is None:
            self._map = bytearray(self.SIZE)
            return
        if os.fstat(lock_file).st_size < self.SIZE:  # a new file; extending keeps what is there
            os.ftruncate(lock_file, self.SIZE)
        self._map = mmap.mmap(lock_file, self.SIZE)

    def read(self) -> int:
        return int.from_bytes(self._map[: self.SIZE], "little")

    def count(self) -> None:
        self._map[: self.SIZE] = ((self.read() + 1) % 2**64).to_bytes(self.SIZE, "little")

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()


@functools.lru_cache(maxsize=4096)  # a few keys, asked for on every request
def _window_name(key: str, requests_per_minute: int) -> str:
    return RateLimitItemPerMinute(requests_per_minute).key_for(key)


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

"""A request journal, like WireMock's: the last N requests, readable and resettable over HTTP,
so that a UI test can assert what the UI sent.

It lives in SQLite so that every server worker writes to, and reads from, the same journal.
API keys never enter it whole.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections import deque

from mockserver.auth import mask

_KEY = re.compile(r"sk_[A-Za-z0-9_\-]{2,}")
MAX_BODY_CHARS = 65536


def mask_keys(text: str) -> str:
    """*text* with every ``sk_...`` key cut down to its masked prefix."""
    return _KEY.sub(lambda m: mask(m.group(0)), text)


class Journal:
    """The last *size* requests. *path* is a SQLite file shared by the workers, or ``:memory:``.

    Recording must cost next to nothing, since every request does it: a request's row is
    appended to a list in memory, and a thread writes the list to SQLite every FLUSH_S seconds
    in one transaction. Reading first waits for every worker's writer to have run once more, so
    that the journal shows every request that finished before the read.
    """

    COLUMNS = (
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
    FLUSH_S = 0.02

    def __init__(self, path: str = ":memory:", size: int = 200):
        self.size = size
        self.shared = path != ":memory:"
        self._lock = threading.Lock()
        self._pending: deque[tuple] = deque()  # append and popleft are thread-safe
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            + ", ".join(self.COLUMNS)
            + ")"
        )
        # Rows that a worker flushes after a clear, for requests made before it, stay hidden.
        self._db.execute("CREATE TABLE IF NOT EXISTS cleared (at REAL)")
        # Each worker's writer stamps its last run here, so that a reader can wait for them all.
        self._db.execute("CREATE TABLE IF NOT EXISTS writers (pid INTEGER PRIMARY KEY, ran REAL)")
        self._insert = (
            f"INSERT INTO requests ({', '.join(self.COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(self.COLUMNS))})"
        )
        self._writer: threading.Thread | None = None  # started by the first record

    def record(self, *, method, path, query, headers, body: bytes, status, code, duration_ms):
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_forever, daemon=True)
                    self._writer.start()
        masked_headers = {name: mask_keys(value) for name, value in headers.items()}
        text = mask_keys(body[:MAX_BODY_CHARS].decode("utf-8", "replace"))
        self._pending.append(
            (
                time.time(),
                method,
                path,
                query,
                json.dumps(masked_headers),
                text,
                status,
                code,
                round(duration_ms, 2),
            )
        )

    def _write_forever(self) -> None:
        while True:
            time.sleep(self.FLUSH_S)
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            rows = [self._pending.popleft() for _ in range(len(self._pending))]
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO writers (pid, ran) VALUES (?, ?)",
                (os.getpid(), time.time()),
            )
            self._db.executemany(self._insert, rows)
            self._db.execute(
                "DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?", (self.size,)
            )
            self._db.execute("COMMIT")

    def _settle(self, patience_s: float = 2.0) -> None:
        """Write what this worker holds, and wait (at most *patience_s*) until every live
        worker's writer has run since: then every request that finished before is written."""
        asked = time.time()
        self._flush()
        if not self.shared:
            return
        deadline = time.monotonic() + patience_s
        while time.monotonic() < deadline:
            with self._lock:
                behind = self._db.execute(
                    "SELECT COUNT(*) FROM writers WHERE ran < ? AND ran > ?",
                    (asked, asked - 10 * patience_s),  # older stamps: workers gone
                ).fetchone()[0]
            if not behind:
                return
            time.sleep(self.FLUSH_S / 2)

    def entries(self, limit: int | None = None) -> list[dict]:
        """The newest first, at most *limit* (and never more than the journal's size)."""
        self._settle()
        limit = min(limit or self.size, self.size)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(self.COLUMNS)} FROM requests "
                "WHERE time > (SELECT COALESCE(MAX(at), 0) FROM cleared) "
                "ORDER BY time DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        entries = []
        for row in rows:
            entry = dict(zip(self.COLUMNS, row, strict=True))
            entry["time"] = round(entry["time"], 3)
            entry["headers"] = json.loads(entry["headers"])
            entry["body"] = _parsed(entry["body"])
            entries.append(entry)
        return entries

    def clear(self) -> None:
        self._settle()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM requests")
            self._db.execute("DELETE FROM cleared")
            self._db.execute("INSERT INTO cleared (at) VALUES (?)", (time.time(),))
            self._db.execute("COMMIT")


def _parsed(text: str):
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return text

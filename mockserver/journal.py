"""A request journal, like WireMock's: the last N requests, readable and resettable over HTTP,
so that a UI test can assert what the UI sent.

It lives in SQLite so that every server worker writes to, and reads from, the same journal.
API keys never enter it whole.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time

from mockserver.auth import mask

_KEY = re.compile(r"sk_[A-Za-z0-9_\-]{2,}")
MAX_BODY_CHARS = 65536
_TRIM_EVERY = 64


def mask_keys(text: str) -> str:
    """*text* with every ``sk_...`` key cut down to its masked prefix."""
    return _KEY.sub(lambda m: mask(m.group(0)), text)


class Journal:
    """The last *size* requests. *path* is a SQLite file shared by the workers, or ``:memory:``."""

    def __init__(self, path: str = ":memory:", size: int = 200):
        self.size = size
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT)"
        )
        self._writes = 0

    def record(self, *, method, path, query, headers, body: bytes, status, code, duration_ms):
        text = body[:MAX_BODY_CHARS].decode("utf-8", "replace")
        try:
            parsed_body = json.loads(mask_keys(text)) if text else None
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
            parsed_body = mask_keys(text)
        entry = {
            "time": round(time.time(), 3),
            "method": method,
            "path": path,
            "query": query,
            "headers": {name: mask_keys(value) for name, value in headers.items()},
            "body": parsed_body,
            "status": status,
            "code": code,
            "duration_ms": round(duration_ms, 2),
        }
        with self._lock:
            self._db.execute("INSERT INTO requests (entry) VALUES (?)", (json.dumps(entry),))
            self._writes += 1
            if self._writes % _TRIM_EVERY == 0:
                self._trim()

    def _trim(self) -> None:
        self._db.execute(
            "DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?", (self.size,)
        )

    def entries(self, limit: int | None = None) -> list[dict]:
        """The newest first, at most *limit* (and never more than the journal's size)."""
        limit = min(limit or self.size, self.size)
        with self._lock:
            rows = self._db.execute(
                "SELECT entry FROM requests ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM requests")

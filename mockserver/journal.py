"""A request journal, like WireMock's: the last N requests, readable and resettable over HTTP,
so that a UI test can assert what the UI sent.

Rows live in the state store, so that every worker (and, with Redis, every host) writes to and
reads from the same journal. API keys never enter it whole. A row the store cannot take (Redis
down) is counted, and the count is shown beside the journal.
"""

from __future__ import annotations

import json
import re
import threading
import time

from mockserver.auth import mask
from mockserver.store import StateStore, StoreUnavailable

_KEY = re.compile(r"sk_[A-Za-z0-9_\-]{2,}")
MAX_BODY_CHARS = 65536


def mask_keys(text: str) -> str:
    """*text* with every ``sk_...`` key cut down to its masked prefix."""
    return _KEY.sub(lambda m: mask(m.group(0)), text)


class Journal:
    """The last *size* requests, kept in *store*."""

    def __init__(self, store: StateStore, size: int = 200):
        self.store = store
        self.size = size
        self._unsaved = 0  # rows this process could not store and has not yet tallied
        self._lock = threading.Lock()

    def record(self, *, method, path, query, headers, body: bytes, status, code, duration_ms):
        masked_headers = {name: mask_keys(value) for name, value in headers.items()}
        row = {
            "time": time.time(),
            "method": method,
            "path": path,
            "query": query,
            "headers": json.dumps(masked_headers),
            "body": mask_keys(body[:MAX_BODY_CHARS].decode("utf-8", "replace")),
            "status": status,
            "code": code,
            "duration_ms": round(duration_ms, 2),
        }
        try:
            self.store.journal_add(row, self.size)
            if self._unsaved:
                self._tally()
        except StoreUnavailable:
            with self._lock:
                self._unsaved += 1

    def _tally(self) -> None:
        """Hand the rows lost in an outage to the store's shared count, once it is back."""
        with self._lock:
            count, self._unsaved = self._unsaved, 0
        try:
            self.store.count_unsaved(count)
        except StoreUnavailable:
            with self._lock:
                self._unsaved += count

    def unsaved(self) -> int:
        """Rows not stored: the shared tally plus what this process still holds."""
        try:
            shared = self.store.unsaved()
        except StoreUnavailable:
            shared = 0
        return shared + self._unsaved

    def entries(self, limit: int | None = None) -> list[dict]:
        """The newest first, at most *limit* (and never more than the journal's size)."""
        entries = []
        for row in self.store.journal_rows(min(limit or self.size, self.size)):
            entry = dict(row)
            entry["time"] = round(entry["time"], 3)
            entry["headers"] = json.loads(entry["headers"])
            entry["body"] = _parsed(entry["body"])
            entries.append(entry)
        return entries

    def clear(self) -> None:
        self.store.journal_clear()


def _parsed(text: str):
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return text

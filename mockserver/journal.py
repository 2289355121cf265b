"""A request journal, like WireMock's: the last N requests, readable and resettable over HTTP,
so that a UI test can assert what the UI sent.

Entries live in the state store, so that every worker (and, with Redis, every host) writes to
and reads from the same journal. An entry the store cannot take (Redis down) is counted, and the
count is shown beside the journal.

No secret is stored, by structure rather than by what a key looks like: headers go through
:func:`~mockserver.redact.redact_headers` (the whole credential of ``Authorization`` and
``Proxy-Authorization``, cookies, headers named like credentials), the query string through
:func:`~mockserver.redact.redact_query`, and every field, the body included, loses each of the
server's own keys wherever it was pasted. Redaction comes before truncation, so that a cut
cannot leave half a key behind.

Nothing a client sends can make the journal large: each header value, the headers together, the
path, the query and the body are cut to a bound (and the entry's ``truncated`` says what was cut
and how long it was), and the store keeps the newest entries that fit in ``max_bytes`` as well
as in ``size`` rows. An entry is stored as the JSON text that ``GET /__admin/requests`` serves,
so the bound in bytes is a bound on what a read returns.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mockserver.config import JOURNAL_BYTES
from mockserver.redact import redact_headers, redact_query, text_redactor
from mockserver.store import StateStore, StoreUnavailable
from mockserver.store.base import LazyEntry

MAX_HEADER_CHARS = 8 * 1024  # one header's value
MAX_HEADERS_CHARS = 32 * 1024  # all of a request's headers, names and values
MAX_URI_CHARS = 8 * 1024  # the path, and the query string
MAX_BODY_CHARS = 64 * 1024


class Journal:
    """The newest requests, at most *size* of them and *max_bytes* in all, kept in *store*;
    *secrets* (the server's API keys) are masked wherever they appear."""

    def __init__(
        self,
        store: StateStore,
        size: int = 200,
        *,
        max_bytes: int = JOURNAL_BYTES,
        secrets: Iterable[str] = (),
    ):
        self.store = store
        self.size = size
        self.max_bytes = max_bytes
        self._hide = text_redactor(secrets)
        self._unsaved = 0  # entries this process could not store and has not yet tallied
        self._lock = threading.Lock()

    def record(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        status: int,
        code: str | None,
        duration_ms: float,
        plan: str | None = None,
        key_fingerprint: str | None = None,
        model: str | None = None,
        fault: dict | None = None,
    ) -> None:
        """Journal one request. The entry is made when the store writes it (the embedded
        store: when a reader asks), from what is given here: *body* and *fault* must not change
        after the call. Credentials are masked at once, with the fingerprints' secret in force
        now."""
        now = time.time()
        found = {"plan": plan, "key_fingerprint": key_fingerprint, "model": model, "fault": fault}
        count, headers, query = len(headers), redact_headers(headers), redact_query(query)

        def entry() -> str:
            return self._entry(
                method=method, path=path, query=query, headers=headers, header_count=count,
                body=body, status=status, code=code, duration_ms=duration_ms, at=now,
                found=found,
            )  # fmt: skip

        held = len(body) + len(path) + len(query) + sum(map(len, headers.values()))
        try:
            self.store.journal_add(
                LazyEntry(entry, held), now, keep=self.size, max_bytes=self.max_bytes
            )
            if self._unsaved:
                self._tally()
        except StoreUnavailable:
            with self._lock:
                self._unsaved += 1

    def _entry(
        self, *, method, path, query, headers, header_count, body: bytes, status, code,
        duration_ms, at, found,
    ):  # fmt: skip
        """One request as the journal keeps it: JSON text, redacted and bounded (*headers* and
        *query* come with their credentials masked; *header_count*: how many headers came)."""
        truncated: dict[str, int] = {}
        hide = self._hide

        def bounded(field: str, text: str, limit: int) -> str:
            if len(text) > limit:
                truncated[field] = len(text)
                return text[:limit]
            return text

        kept, room = {}, MAX_HEADERS_CHARS
        for name, value in headers.items():
            value = bounded(f"headers.{name}", hide(value), MAX_HEADER_CHARS)
            room -= len(name) + len(value)
            if room < 0:  # the rest is left out; the entry says how many headers there were
                truncated["headers"] = header_count
                break
            kept[name] = value
        text = hide(body.decode("utf-8", "replace"))
        cut = len(text) > MAX_BODY_CHARS
        entry = {
            "time": round(at, 3),
            "method": method,
            "path": bounded("path", hide(path), MAX_URI_CHARS),
            "query": bounded("query", hide(query), MAX_URI_CHARS),
            "headers": kept,
            "body": bounded("body", text, MAX_BODY_CHARS),
            "status": status,
            "code": code,
            "duration_ms": round(duration_ms, 2),
            # What the filters of GET /__admin/requests match: the plan of a known key, the
            # fingerprint of the key presented, the model asked for, the fault injected.
            "plan": found["plan"],
            "key_fingerprint": found["key_fingerprint"],
            "model": hide(found["model"]) if found["model"] else None,
            "fault": found["fault"],
            "truncated": truncated,
        }
        if not cut:
            entry["body"] = _parsed(entry["body"])
        try:
            return _encode(entry)
        except (ValueError, RecursionError):  # 1e400 parses as infinity, which JSON cannot carry
            entry["body"] = text[:MAX_BODY_CHARS]
            return _encode(entry)

    def _tally(self) -> None:
        """Hand the entries lost in an outage to the store's shared count, once it is back."""
        with self._lock:
            count, self._unsaved = self._unsaved, 0
        try:
            self.store.count_unsaved(count)
        except StoreUnavailable:
            with self._lock:
                self._unsaved += count

    def unsaved(self) -> int:
        """Entries not stored: the shared tally plus what this process still holds."""
        try:
            shared = self.store.unsaved()
        except StoreUnavailable:
            shared = 0
        return shared + self._unsaved

    def texts(self, limit: int | None = None) -> list[str]:
        """The newest first, at most *limit* (and never more than the journal's size), each as
        its JSON text."""
        return self.store.journal_rows(min(limit or self.size, self.size))

    def entries(self, limit: int | None = None) -> list[dict]:
        return [json.loads(text) for text in self.texts(limit)]

    def find(self, filters: Filters, limit: int | None = None) -> list[str]:
        """The newest entries (their JSON texts) that *filters* match, at most *limit*."""
        texts = self.texts()
        if filters.empty():
            return texts[:limit]
        found = [text for text in texts if filters.match(json.loads(text))]
        return found[:limit]

    def clear(self) -> None:
        self.store.journal_clear()


FILTERS = ("method", "path", "status", "code", "model", "plan", "key_fingerprint", "since")


@dataclass(frozen=True)
class Filters:
    """What ``GET /__admin/requests`` and ``POST /__admin/requests/count`` match: each given
    field equal (``method`` in any case; ``path`` exactly, or as a prefix when it ends in
    ``*``), ``since`` a time in seconds since the epoch that the request is not older than."""

    values: tuple[tuple[str, object], ...] = ()

    @classmethod
    def parse(cls, given: Mapping[str, object]) -> Filters:
        """From query parameters (text) or a JSON object; ValueError naming the bad one."""
        values = {}
        for name, value in given.items():
            if name == "limit":
                continue
            if name not in FILTERS:
                known = ", ".join(FILTERS)
                raise ValueError(f"{name[:40]!r} is not a filter; the filters are {known}")
            if name in ("status", "since"):
                number = _number(value)
                if number is None or (name == "status" and not float(number).is_integer()):
                    raise ValueError(f"{name} must be a number, not {str(value)[:40]!r}")
                value = int(number) if name == "status" else number
            elif not isinstance(value, str) or not value or len(value) > MAX_URI_CHARS:
                raise ValueError(f"{name} must be a non-empty string")
            values[name] = value.upper() if name == "method" and isinstance(value, str) else value
        return cls(tuple(sorted(values.items())))

    def empty(self) -> bool:
        return not self.values

    def match(self, entry: dict) -> bool:
        for name, wanted in self.values:
            value = entry.get(name if name != "since" else "time")
            if name == "since":
                if value is None or value < wanted:
                    return False
            elif name == "path" and isinstance(wanted, str) and wanted.endswith("*"):
                if not str(value).startswith(wanted[:-1]):
                    return False
            elif value != wanted:
                return False
        return True


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):  # an int past a float's range is no status or time
        return value if abs(value) <= sys.float_info.max and math.isfinite(value) else None
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _encode(value) -> str:
    # ASCII, so that a client's lone surrogates are escaped rather than failing the store.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _parsed(text: str):
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return text

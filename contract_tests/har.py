"""HAR 1.2 files of the exchanges the proxy saw, every credential masked as the suite's reports
mask them: a known key as the variable that holds it, any other as ``***``."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract_tests.judge import Answer, Request
from contract_tests.redact import Credentials

CREATOR = {"name": "imageapi-contract proxy", "version": "1"}


def _headers(headers: dict[str, str], credentials: Credentials) -> list[dict[str, str]]:
    return [
        {"name": name, "value": credentials.mask_header(name, value)}
        for name, value in headers.items()
    ]


def entry(
    request: Request,
    answer: Answer,
    *,
    base_url: str,
    started: float,
    elapsed_ms: float,
    credentials: Credentials,
    streamed: int | None = None,
) -> dict[str, Any]:
    """One HAR entry; *credentials* must have noted the request's credentials already. An
    answer the proxy *streamed* through (that many bytes) is recorded without its body."""
    har_request: dict[str, Any] = {
        "method": request.method,
        "url": base_url.rstrip("/") + credentials.mask_url(request.path),
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(request.headers, credentials),
        "queryString": [],
        "headersSize": -1,
        "bodySize": len(request.body),
    }
    if request.body:
        har_request["postData"] = {
            "mimeType": request.header("Content-Type") or "",
            "text": credentials.redact(request.body.decode("utf-8", "replace")),
        }
    size = len(answer.body) if streamed is None else streamed
    content: dict[str, Any] = {
        "size": size,
        "mimeType": answer.header("Content-Type") or "",
        "text": credentials.redact(answer.body.decode("utf-8", "replace")),
    }
    if streamed is not None:
        content["comment"] = "streamed through, not recorded"
    return {
        "startedDateTime": datetime.fromtimestamp(started, UTC).isoformat(),
        "time": round(elapsed_ms, 3),
        "request": har_request,
        "response": {
            "status": answer.status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": _headers(answer.headers, credentials),
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": size,
        },
        "cache": {},
        "timings": {"send": 0, "wait": round(elapsed_ms, 3), "receive": 0},
    }


class HarRecorder:
    """Collects entries, at most *limit* of them (the rest are counted, not kept: memory stays
    bounded), and writes the file on ``save``."""

    def __init__(self, path: Path, limit: int = 1000):
        self.path = Path(path)
        self.limit = limit
        self.entries: list[dict[str, Any]] = []
        self.dropped = 0
        self._lock = threading.Lock()

    def add(self, har_entry: dict[str, Any]) -> None:
        with self._lock:
            if len(self.entries) < self.limit:
                self.entries.append(har_entry)
            else:
                self.dropped += 1

    def save(self) -> None:
        with self._lock:
            document = {"log": {"version": "1.2", "creator": CREATOR, "entries": self.entries}}
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_text(json.dumps(document, ensure_ascii=False))
            os.replace(temporary, self.path)


def load(path: Path) -> list[dict[str, Any]]:
    """The entries of the HAR file at *path*."""
    entries: list[dict[str, Any]] = json.loads(Path(path).read_text())["log"]["entries"]
    return entries

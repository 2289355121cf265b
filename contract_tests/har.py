"""The proxy's record of what it saw: a HAR 1.2 file (http://www.softwareishard.com/blog/har-12-spec/).

Credentials are masked as everywhere in the suite (:mod:`contract_tests.redact`): the
``Authorization`` value, cookies, secret-named headers and query parameters, and any sent
credential that turns up in a body. A body that is not UTF-8 is kept in base64
(``content.encoding``), so the answers' bytes come back exactly. At most *limit* entries are
kept (the first ones): the file does not grow without bound.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from contract_tests.judge import Answer, Request
from contract_tests.redact import Credentials

CREATOR = {"name": "imageapi-contract proxy", "version": "1"}


def _content(body: bytes, credentials: Credentials) -> dict[str, Any]:
    try:
        return {"text": credentials.redact(body.decode("utf-8"))}
    except UnicodeDecodeError:
        return {"text": base64.b64encode(body).decode(), "encoding": "base64"}


def _headers(headers: dict[str, str], credentials: Credentials) -> list[dict[str, str]]:
    return [{"name": n, "value": credentials.mask_header(n, v)} for n, v in headers.items()]


def entry(
    request: Request, answer: Answer, started: float, elapsed: float, credentials: Credentials
) -> dict[str, Any]:
    """One HAR entry for an exchange."""
    url = "http://upstream" + credentials.mask_url(request.path)
    query = urlsplit(url).query
    media_type = request.header("Content-Type") or ""
    har_request: dict[str, Any] = {
        "method": request.method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(request.headers, credentials),
        "queryString": [{"name": n, "value": v} for n, v in parse_qsl(query)],
        "headersSize": -1,
        "bodySize": len(request.body),
    }
    if request.body:
        har_request["postData"] = {"mimeType": media_type, **_content(request.body, credentials)}
    content = {
        "size": len(answer.body),
        "mimeType": answer.header("Content-Type") or "",
        **_content(answer.body, credentials),
    }
    wait_ms = round(elapsed * 1000, 3)
    return {
        "startedDateTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
        + f".{int(started % 1 * 1000):03d}Z",
        "time": wait_ms,
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
            "bodySize": len(answer.body),
        },
        "cache": {},
        "timings": {"send": 0, "wait": wait_ms, "receive": 0},
    }


class HarRecorder:
    """Collects entries (thread-safe) and writes the HAR file, replacing it whole."""

    def __init__(self, path: str, *, limit: int = 1000):
        self.path = path
        self.limit = limit
        self.entries: list[dict[str, Any]] = []
        self.dropped = 0
        self.lock = threading.Lock()

    def add(
        self,
        request: Request,
        answer: Answer,
        started: float,
        elapsed: float,
        credentials: Credentials,
    ) -> None:
        made = entry(request, answer, started, elapsed, credentials)
        with self.lock:
            if len(self.entries) < self.limit:
                self.entries.append(made)
            else:
                self.dropped += 1

    def document(self) -> dict[str, Any]:
        with self.lock:
            comment = f"{self.dropped} later exchanges not recorded" if self.dropped else ""
            return {
                "log": {
                    "version": "1.2",
                    "creator": CREATOR,
                    "entries": list(self.entries),
                    "comment": comment,
                }
            }

    def write(self) -> None:
        partial = self.path + ".partial"
        with open(partial, "w", encoding="utf-8") as out:
            json.dump(self.document(), out)
        os.replace(partial, self.path)

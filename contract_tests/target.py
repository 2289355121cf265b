"""Targets: where requests go. One interface, two small adapters: a WSGI app in-process, or a
deployment by base URL. Every exchange is recorded so that a failure can print a curl command
that repeats it (with every credential masked), every billable request is reserved against one
budget shared by all workers, and a 429 (or a busy 503) is checked and waited out rather than
failed."""

from __future__ import annotations

import fcntl
import json
import shlex
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict
from werkzeug.test import Client

from contract_tests.redact import Credentials
from contract_tests.spec import GENERATE


# pytest.skip.Exception is pytest's documented name for its skip exception, an attribute of a
# function that mypy cannot see.
class BudgetExhausted(pytest.skip.Exception):  # type: ignore[name-defined]
    """The run may make no more billable requests (``--max-billable``): the test is skipped."""

    def __init__(self, message: str):
        super().__init__(message)


EMPTY = {"reserved": 0, "made": 0, "waited": 0}


class Billing:
    """The billable budget of the whole run, shared by all pytest-xdist workers through a small
    file under an exclusive lock: a request is reserved before it is sent, so none is sent over
    the budget, whichever worker sends it. A request that made images (a 2xx from generate) is
    counted as made."""

    def __init__(self, limit: int | None, path: Path):
        self.limit = limit
        self.path = path
        self.path.touch(exist_ok=True)

    @contextmanager
    def _counts(self):
        with self.path.open("r+") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            counts = {**EMPTY, **json.loads(file.read() or "{}")}
            yield counts
            file.seek(0)
            file.truncate()
            file.write(json.dumps(counts))

    def reserve(self) -> None:
        """Call before a request that is expected to make images; skips the test when the
        budget is spent."""
        with self._counts() as counts:
            if self.limit is not None and counts["reserved"] >= self.limit:
                raise BudgetExhausted(f"the budget of {self.limit} billable requests is spent")
            counts["reserved"] += 1

    def record(self, method: str, path: str, status: int) -> None:
        if method == "POST" and path == GENERATE and 200 <= status < 300:
            with self._counts() as counts:
                counts["made"] += 1

    def note_wait(self) -> None:
        """A 429 or a busy 503 was waited out."""
        with self._counts() as counts:
            counts["waited"] += 1

    def counts(self) -> dict[str, int]:
        """Requests reserved and made, and answers waited out, by all workers so far."""
        with self._counts() as counts:
            return dict(counts)


@dataclass
class Reply:
    status: int
    headers: CaseInsensitiveDict
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict
    body: bytes | None
    status: int | None = None


@dataclass
class Target:
    """Sends requests to the API under test.

    *retry_delay(reply) -> seconds or None* checks a 429 against the contract (it raises if the
    429 is not one the contract allows) and says how long to wait for it or for a 503 that asks
    to try again, None for any other answer; the request is then sent again,
    at most *max_wait* seconds in all, each new try of a generation reserved as billable.
    """

    base_url: str
    billing: Billing
    credentials: Credentials = field(default_factory=Credentials)
    retry_delay: Callable[[Reply], float] | None = None
    max_wait: float = 120.0
    exchanges: list[Exchange] = field(default_factory=list, repr=False)  # the whole run's

    def request(
        self, method: str, path: str, *, headers=None, json_body=None, data=None, wait=True
    ) -> Reply:
        """Send a request; a 429 or a busy 503 is waited out unless *wait* is false."""
        headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.credentials.note_request(path, headers)

        def send() -> Reply:
            exchange = Exchange(method, path, headers, data)
            self.exchanges.append(exchange)
            reply = self._send(method, path, headers, data)
            exchange.status = reply.status
            self.billing.record(method, path, reply.status)
            return reply

        if not wait:
            return send()
        return self.retrying(send, billable=method == "POST" and path == GENERATE)

    def retrying(self, send, *, billable: bool, to_reply=lambda reply: reply):
        """*send()* until its answer is not one to wait out (see *retry_delay*), waiting as each
        asks, at most *max_wait* seconds in all; a billable request is reserved again for
        each new try. *to_reply* turns what *send* returns into a Reply."""
        waited = 0.0
        while True:
            response = send()
            reply = to_reply(response)
            delay = None if self.retry_delay is None else self.retry_delay(reply)
            if delay is None or waited + delay > self.max_wait:
                return response
            if billable:
                self.billing.reserve()
            self.billing.note_wait()
            time.sleep(delay)
            waited += delay

    def generate(self, body, key: str | None, **kwargs) -> Reply:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.request("POST", GENERATE, headers=headers, json_body=body, **kwargs)

    def _send(self, method, path, headers, data) -> Reply:
        raise NotImplementedError

    def curl(self, exchange: Exchange) -> str:
        """A shell command that repeats *exchange*, every credential masked: a known key as the
        variable that holds it (``$IMAGEAPI_KEY_PRO``), any other as ``***``."""
        url = shlex.quote(self.base_url + self.credentials.mask_url(exchange.path))
        parts = ["curl", "-i", "-X", exchange.method, url]
        for name, value in exchange.headers.items():
            masked = self.credentials.mask_header(name, value)
            quote = '"' if "$" in masked else "'"
            parts += ["-H", f"{quote}{name}: {masked}{quote}"]
        if exchange.body is not None:
            text = self.credentials.redact(exchange.body.decode("utf-8", "backslashreplace"))
            if len(text) > 2000:
                text = text[:2000] + "...(truncated)"
            parts += ["--data-binary", shlex.quote(text)]
        return " ".join(parts)


class WsgiTarget(Target):
    """A WSGI app called in-process: no network, no server to start."""

    def __init__(self, app, billing: Billing, **kwargs):
        super().__init__("http://localhost", billing, **kwargs)
        self.app = app
        self._client = Client(app)

    def _send(self, method, path, headers, data) -> Reply:
        response = self._client.open(path, method=method, headers=headers, data=data)
        return Reply(
            response.status_code, CaseInsensitiveDict(response.headers), response.get_data()
        )


class HttpTarget(Target):
    """A deployment reached over HTTP."""

    def __init__(self, base_url: str, billing: Billing, timeout: float = 120, **kwargs):
        super().__init__(base_url.rstrip("/"), billing, **kwargs)
        self.session = requests.Session()
        self.timeout = timeout

    def _send(self, method, path, headers, data) -> Reply:
        response = self.session.request(
            method, self.base_url + path, headers=headers, data=data, timeout=self.timeout
        )
        return Reply(response.status_code, response.headers, response.content)

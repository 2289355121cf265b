"""Targets: where requests go. One interface, two small adapters: a WSGI app in-process, or a
deployment by base URL. Every exchange is recorded so that a failure can print a curl command
that repeats it, and every billable success is counted against the budget."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

import requests
from requests.structures import CaseInsensitiveDict
from werkzeug.test import Client

from contract_tests.spec import GENERATE


class BudgetExhausted(Exception):
    """The run may make no more billable requests (``--max-billable``)."""


@dataclass
class Billing:
    """Counts requests that made images (a 2xx from generate); the budget caps the planned ones."""

    limit: int | None = None
    made: int = 0

    def reserve(self) -> None:
        """Call before a request that is expected to succeed."""
        if self.limit is not None and self.made >= self.limit:
            raise BudgetExhausted(f"the budget of {self.limit} billable requests is spent")

    def record(self, method: str, path: str, status: int) -> None:
        if method == "POST" and path == GENERATE and 200 <= status < 300:
            self.made += 1


@dataclass
class Reply:
    status: int
    headers: CaseInsensitiveDict
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def json(self):
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
    """Sends requests to the API under test."""

    base_url: str
    billing: Billing
    secrets: dict[str, str] = field(default_factory=dict)  # key -> the variable that holds it
    exchanges: list[Exchange] = field(default_factory=list)

    def request(self, method: str, path: str, *, headers=None, json_body=None, data=None) -> Reply:
        headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        exchange = Exchange(method, path, headers, data)
        self.exchanges.append(exchange)
        reply = self._send(method, path, headers, data)
        exchange.status = reply.status
        self.billing.record(method, path, reply.status)
        return reply

    def generate(self, body, key: str | None, **kwargs) -> Reply:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.request("POST", GENERATE, headers=headers, json_body=body, **kwargs)

    def _send(self, method, path, headers, data) -> Reply:
        raise NotImplementedError

    def curl(self, exchange: Exchange) -> str:
        """A shell command that repeats *exchange*; keys from the environment stay variables."""
        parts = ["curl", "-i", "-X", exchange.method, shlex.quote(self.base_url + exchange.path)]
        for name, value in exchange.headers.items():
            quoted = shlex.quote(f"{name}: {value}")
            for secret, variable in self.secrets.items():
                if secret in value:
                    quoted = '"' + f"{name}: {value}".replace(secret, f"${variable}") + '"'
            parts += ["-H", quoted]
        if exchange.body is not None:
            text = exchange.body.decode("utf-8", "backslashreplace")
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

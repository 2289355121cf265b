"""A pytest plugin for the tests of a client of the Image API: ``pytest -p mockserver.testing``.

The ``imageapi_mock`` fixture starts the real mock server (``python -m mockserver``: the
placeholder backend, rate limits on, faults off) on a free port once per session, and before
each test empties its journal, drops its sequences and turns its faults off. It gives the URL,
the development keys, and what a test asserts with or arranges::

    def test_my_client_retries_once_after_a_429(imageapi_mock):
        imageapi_mock.fail_next(1, "429")
        MyClient(imageapi_mock.url, imageapi_mock.keys["basic"]).generate("a red fox")
        assert imageapi_mock.count(path="/api/v1/generate") == 2

The server is the one under test only in name: it is told apart by nothing but its port, and
stopped at the end of the session.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from mockserver.config import DEV_KEYS
from mockserver.redact import fingerprint

START_S = 60.0


class ImageApiMock:
    """A running mock and its admin surface."""

    def __init__(self, url: str):
        self.url = url
        self.keys = {plan: key for key, plan in DEV_KEYS.items()}  # plan -> key

    def key_fingerprint(self, key: str) -> str:
        """What the journal shows of *key* (``key_fingerprint``)."""
        return fingerprint(key)

    def requests(self, **filters) -> list[dict]:
        """The journal's entries that *filters* match (method, path, status, code, model,
        plan, key_fingerprint, since), newest first."""
        query = urllib.parse.urlencode({name: str(value) for name, value in filters.items()})
        return self._admin("GET", "/__admin/requests?" + query)["requests"]

    def count(self, **filters) -> int:
        """How many requests *filters* match."""
        return self._admin("POST", "/__admin/requests/count", filters)["count"]

    def fail_next(
        self,
        n: int,
        status: str | int,
        *,
        key: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next *n* API requests (of *key*, and *method* *path*, when given) get *status*:
        ``429`` or ``503``, or a transport fault (``reset``, ``empty``, ``truncate``,
        ``slow-body``); then the server answers as usual."""
        sequence: dict[str, object] = {"answers": [str(status)] * n}
        if key is not None:
            sequence["key"] = key
        if method is not None or path is not None:
            sequence.update(method=method or "POST", path=path or "/api/v1/generate")
        self._admin("POST", "/__admin/sequences", sequence)

    def faults(self, spec: str | None) -> None:
        """Seeded faults for the rest of the test, e.g. ``rate=0.2,kinds=reset+503,seed=1``
        (None: off). The request count starts again, so the same seed repeats."""
        self._admin("PUT", "/__admin/faults", {"faults": spec})

    def reset(self) -> None:
        """An empty journal, no sequences, no faults: what each test starts with."""
        self._admin("DELETE", "/__admin/requests")
        self._admin("DELETE", "/__admin/sequences")
        self._admin("PUT", "/__admin/faults", {"faults": None})

    def _admin(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        call = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            call.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(call, timeout=30) as answer:
                text = answer.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:500]
            raise AssertionError(f"{method} {path}: {error.code} {detail}") from None
        return json.loads(text) if text else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            printed = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"the mock server exited: {printed[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/__admin/state", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the mock server at {url} did not start in {START_S:g} s")


@pytest.fixture(scope="session")
def imageapi_mock_server() -> Iterator[ImageApiMock]:
    """The mock, started once for the session; ``imageapi_mock`` resets it for each test."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", str(port), "--workers", "1", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process)
        yield ImageApiMock(url)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture
def imageapi_mock(imageapi_mock_server: ImageApiMock) -> ImageApiMock:
    """The session's mock, with an empty journal, no sequences and no faults."""
    imageapi_mock_server.reset()
    return imageapi_mock_server

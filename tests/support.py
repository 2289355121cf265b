"""Helpers the tests share: keys, ports, a real server in a subprocess, the contract suite run
against a URL. Fixtures are in conftest.py; helpers are imported from here."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from mockserver.config import DEV_KEYS

ROOT = Path(__file__).resolve().parent.parent
KEY_FOR_PLAN = {plan: key for key, plan in DEV_KEYS.items()}


def make_generation(**overrides):
    """A valid Generation for backend tests, with *overrides*."""
    from mockserver.rules import Generation

    values = dict(
        prompt="a red fox",
        model="sdxl-lightning",
        width=512,
        height=512,
        num_inference_steps=8,
        negative_prompt=None,
        seed=42,
        output_format="png",
        num_images=1,
    )
    values.update(overrides)
    return Generation(**values)


def auth(plan: str = "enterprise") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY_FOR_PLAN[plan]}"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mockserver", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def fresh_python(code: str) -> str:
    """What *code* prints in a new interpreter from the repository root: for what an import
    pulls in, which this process has long since imported."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    url: str,
    process: subprocess.Popen,
    timeout: float = 30.0,
    output: Callable[[], str] | None = None,
) -> None:
    """Wait until the server *process* answers at *url*; *output*: what it printed so far,
    when something else reads its output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            printed = output() if output else process.stdout.read()
            raise RuntimeError(f"server exited: {printed}")
        try:
            requests.get(url + "/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start in {timeout} s")


class RunningServer:
    """``python -m mockserver`` in a subprocess, as ``make run`` starts it. What it prints (its
    access log among it) is read as it comes, so that a busy server never blocks on a full pipe;
    ``output()`` is what it printed so far."""

    def __init__(self, *args: str, env: dict | None = None, ready_within: float = 30.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "mockserver", "--port", str(self.port), *args]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, so that stop() reaches the workers
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wait_until_ready(ready_within)

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.append(line)

    def output(self) -> str:
        return "".join(self._lines)

    def _wait_until_ready(self, timeout: float) -> None:
        try:
            wait_for(self.url, self.process, timeout, self.output)
        except RuntimeError:
            self.stop()
            raise

    def alive(self) -> bool:
        response = requests.get(self.url + "/api/v1/models", headers=auth(), timeout=10)
        return response.status_code == 200

    def stop(self) -> str:
        """Stop the server and its workers; return all it printed."""
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        if self._reader.is_alive() or self.process.poll() is None:
            # Workers left behind would hold stdout open, and the reader would wait forever.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self._reader.join()
        self.process.stdout.close()  # read to its end; closed, it leaves no ResourceWarning
        return self.output()


def run_contract_suite(
    *args: str,
    paths=("contract_tests",),
    env: dict[str, str] | None = None,
    ci: bool = True,
    timeout: float = 1800,
) -> subprocess.CompletedProcess:
    """The contract suite (or *paths* of it) in a pytest of its own, from the repository root,
    without the cache provider; with *ci*, on the CI profile (derandomized, so that a failure
    repeats). *env* replaces the environment; returns what it printed and its exit code."""
    env = dict(os.environ if env is None else env)
    if ci:
        env["CI"] = "true"
    else:
        env.pop("CI", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", *paths, "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def assert_contract_suite_passes(base_url: str) -> None:
    """The contract tests that reach a backend (tests/backend_tests.py) run against the server at
    *base_url*: each runs and passes. (What the server refuses before a backend is called does
    not depend on the backend.) Their fixed cases all run; their properties on the quick profile
    (5 derandomized examples each, against 100 in-process): a backend's part is its images,
    and each example is a real generation, about a second each on the CPU here."""
    from tests.backend_tests import BACKEND_TESTS

    result = run_contract_suite(
        "-q", "--base-url", base_url, "--dev-keys", "--request-timeout", "300",
        "--hypothesis-profile=quick", paths=BACKEND_TESTS,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:]
    assert "passed" in summary and "failed" not in summary and "skipped" not in summary, summary
    assert "billable requests made: " in result.stdout


def spec_with_ref(folder: Path, ref: str, name: str = "openapi.yaml") -> Path:
    """A copy of the project's spec in *folder* whose Model schema is ``$ref: <ref>``."""
    text = (ROOT / "openapi.yaml").read_text()
    anchor = "    Model:\n"
    start = text.index(anchor) + len(anchor)
    end = start
    for line in text[start:].splitlines(keepends=True):  # the schema: lines indented deeper
        if line.strip() and not line.startswith("      "):
            break
        end += len(line)
    path = folder / name
    path.write_text(text[:start] + f"      $ref: '{ref}'\n" + text[end:])
    return path


def alias_bomb(levels: int, per_level: int = 9) -> str:
    """A "billion laughs" YAML spec: each level a list of *per_level* aliases of the one before,
    so that the last expands to per_level**levels values (40 KB of text at 8 levels)."""
    lines = ["openapi: 3.1.0", 'info: {title: bomb, version: "1"}', "paths: {}", "x-bomb:"]
    lines.append('  l0: &l0 ["' + "x" * 40 + '"]')
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * per_level)
        lines.append(f"  l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def counting_listener():
    """A loopback port, and the list of requests made to it (for "nothing was fetched")."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    requests_made: list[bytes] = []

    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                requests_made.append(conn.recv(1000))

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield sock.getsockname()[1], requests_made
    finally:
        sock.close()


@contextlib.contextmanager
def fingerprints_keyed_with(secret: str):
    """Key this process's fingerprints of keys (``mask``) with *secret*, for the block only."""
    from mockserver import redact

    saved = redact._keyed
    redact.use_fingerprint_secret(secret)
    try:
        yield
    finally:
        redact._keyed = saved

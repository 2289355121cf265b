"""`make contract-prism`: the contract suite against Prism mocking the same openapi.yaml.

Prism serves the spec's examples and checks request bodies and the presence of a token; it
enforces no keys, no plans and makes no images. The suite must fail against it, and this script
says where. It exits 0 when the suite fails (as it must) and 1 if the suite passed.
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_prism(prism: str, port: int) -> subprocess.Popen:
    command = [prism, "mock", "-h", "127.0.0.1", "-p", str(port), str(ROOT / "openapi.yaml")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("Prism did not start")


def summarise(junit: Path) -> tuple[int, int, list[tuple[str, str]]]:
    passed, failed, failures = 0, 0, []
    for case in ET.parse(junit).iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if case.find("skipped") is not None:
            continue
        if problem is None:
            passed += 1
            continue
        failed += 1
        message = (problem.get("message") or "").splitlines()
        first = next((line for line in message if line.strip()), "")
        failures.append((f"{case.get('classname').split('.')[-1]}::{case.get('name')}", first))
    return passed, failed, failures


FINDINGS = [
    ("expected 401, got", "accepts any token: unknown, malformed and altered keys all get answers"),
    ("the response echoes", "answers valid requests with its one canned example (flux-schnell, "
     "16x16, 8 steps) whatever model, size, steps or seed was asked, so no plan is enforced"),
    ("step-cap-exceeded", "answers every refusal with the spec's one 400 example "
     "(step_cap_exceeded), whatever the fault"),
    ("without required `Allow`", "sends 405 without an Allow header"),
    ("timed out", "never answers some malformed JSON bodies"),
    ("'string'", "serves a made-up catalog ('string' ids) instead of the spec's models"),
    ("expected 404, got 200", "answers unknown model ids with 200"),
    ("expected 413", "puts no limit on the body size"),
    ("stoplight.io/prism/errors", "sends its own errors, with no documented code"),
    ("distinct failures", "several of the above at once (a property test)"),
]  # fmt: skip


def findings(failures: list[tuple[str, str]]) -> collections.Counter:
    found = collections.Counter()
    for _, message in failures:
        label = next((text for needle, text in FINDINGS if needle in message), None)
        found[label or f"other: {message[:100]}"] += 1
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prism", default=str(ROOT / ".tools/node_modules/.bin/prism"))
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait per request")
    args = parser.parse_args()
    port = free_port()
    prism = start_prism(args.prism, port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            junit = Path(tmp) / "prism.xml"
            command = [
                sys.executable, "-m", "pytest", "contract_tests", "-q", "-p", "no:cacheprovider",
                "--base-url", f"http://127.0.0.1:{port}", "--dev-keys",
                "--request-timeout", str(args.timeout), f"--junitxml={junit}",
            ]  # fmt: skip
            result = subprocess.run(
                command, cwd=ROOT, env={**os.environ, "CI": "true"}, capture_output=True, text=True
            )
            passed, failed, failures = summarise(junit)
    finally:
        prism.terminate()
        prism.wait(timeout=30)

    print(
        f"Contract suite against Prism 5.16 mocking openapi.yaml: {failed} failed, {passed} passed"
    )
    by_module = collections.Counter(name.split("::")[0] for name, _ in failures)
    for module, count in sorted(by_module.items()):
        print(f"  {module}: {count} failed")
    print("\nWhat Prism gets wrong (failed tests):")
    for finding, count in findings(failures).most_common():
        print(f"  {count:3}  {finding}")
    if os.environ.get("VERBOSE"):
        print("\nFirst failure of each test:")
        for name, first in failures:
            print(f"  {name}: {first[:150]}")
    if result.returncode == 0:
        print(
            "\nThe suite passed against Prism: it cannot tell a mock from a server. That is a bug."
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

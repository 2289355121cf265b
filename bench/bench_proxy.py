"""The validating proxy's cost: latency added per 1024x1024 generation, p50 and p99, at
concurrency 1 and 8, with each image's structure checked (the default), decoded pixel by pixel,
or not checked, against the mock.

    python bench/bench_proxy.py [--requests 200] [--json results.json]

The mock runs without rate limits, under granian, as ``make run`` starts it; each proxy is
``imageapi-contract proxy`` in its own process. Direct and proxied requests alternate in the
same loop, so that both see the same machine; the added latency is proxied minus direct at each
percentile, and is also shown as a share of the mock's own time (the goal: under 10%).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk_test_enterprise_0123456789abcdef"
# How the proxy checks each image: its structure (the default), every pixel, not at all.
IMAGE_CHECKS = {
    "structure": [],
    "decode": ["--decode-images"],
    "none": ["--no-image-checks"],
}
BODY = {"model": "sdxl-lightning", "width": 1024, "height": 1024, "num_inference_steps": 8}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], ready_url: str, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(ready_url, timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"{command[:4]} did not start")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def timed(session: requests.Session, url: str, number: int) -> float:
    body = {**BODY, "prompt": f"bench {number}"}
    started = time.perf_counter()
    answer = session.post(
        url + "/api/v1/generate", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    )
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200 or answer.headers.get("Imageapi-Contract-Violations", "0") != "0":
        raise RuntimeError(f"{url}: {answer.status_code} {answer.headers}")
    return elapsed


def measure(direct: str, proxied: str, requests_n: int, concurrency: int) -> dict[str, float]:
    """p50 and p99 of direct and proxied generations, sent alternately by *concurrency*
    threads, each with its own connections."""
    times: dict[str, list[float]] = {"direct": [], "proxied": []}
    sessions = [requests.Session() for _ in range(concurrency)]

    def one(number: int) -> None:
        session = sessions[number % concurrency]
        for name, url in (("direct", direct), ("proxied", proxied)):
            times[name].append(timed(session, url, number))

    for number in range(4 * concurrency):  # warm up both paths and their connections
        one(number)
    times = {"direct": [], "proxied": []}
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests_n)))
    result = {}
    for name, values in times.items():
        cuts = statistics.quantiles(values, n=100)
        result[f"{name}_p50_ms"] = round(statistics.median(values), 2)
        result[f"{name}_p99_ms"] = round(cuts[98], 2)
    for cut in ("p50", "p99"):
        added = result[f"proxied_{cut}_ms"] - result[f"direct_{cut}_ms"]
        result[f"added_{cut}_ms"] = round(added, 2)
        result[f"added_{cut}_share"] = round(added / result[f"direct_{cut}_ms"], 3)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per row, direct and proxied")
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    args = parser.parse_args()
    port = free_port()
    mock_url = f"http://127.0.0.1:{port}"
    mock = start(
        [sys.executable, "-m", "mockserver", "--port", str(port), "--no-rate-limits"],
        mock_url + "/",
    )
    rows = []
    try:
        for checks, options in IMAGE_CHECKS.items():
            proxy_port = free_port()
            proxy_url = f"http://127.0.0.1:{proxy_port}"
            command = [
                sys.executable, "-m", "contract_tests.cli", "proxy", "--upstream", mock_url,
                "--port", str(proxy_port), *options,
            ]  # fmt: skip
            proxy = start(
                command, proxy_url + "/__contract/summary", {"IMAGEAPI_KEY_ENTERPRISE": KEY}
            )
            try:
                for concurrency in (1, 8):
                    row = {"image_checks": checks, "concurrency": concurrency}
                    row |= measure(mock_url, proxy_url, args.requests, concurrency)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                stop(proxy)
    finally:
        stop(mock)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

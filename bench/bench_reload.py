"""A normal request's latency while the spec on disk is good, and while it is broken.

Reloads run in a watcher thread, not in requests, and a refused file is not read again until it
changes: so the p50 and p99 of ``GET /api/v1/models`` should be the same in both phases. One
server (2 workers), one client on one connection, sequential requests.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support import KEY_FOR_PLAN, free_port, wait_for  # noqa: E402


def latencies(session: requests.Session, url: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {KEY_FOR_PLAN['enterprise']}"}
    out = []
    for _ in range(count):
        started = time.perf_counter()
        reply = session.get(url + "/api/v1/models", headers=headers, timeout=30)
        out.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 200, reply.text
    return out


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return (
        f"{name:<22} n={len(values)} p50 {statistics.median(values):.2f} ms  p99 {p99:.2f} ms  "
        f"max {ordered[-1]:.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    spec = folder / "openapi.yaml"
    good = (ROOT / "openapi.yaml").read_text()
    spec.write_text(good)
    port = free_port()
    command = [sys.executable, "-m", "mockserver", "--port", str(port), "--workers", "2"]
    command += ["--spec", str(spec), "--quiet", "--no-rate-limits"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, server, 60, output=lambda: "")
        session = requests.Session()
        latencies(session, url, 200)  # warm-up
        with_good = latencies(session, url, args.requests)
        spec.write_text(good.replace("openapi: 3.1.0", "openapi: [broken", 1))
        time.sleep(3)  # both workers' watchers have seen it and refused it
        with_broken = latencies(session, url, args.requests)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    print(summary("spec good", with_good))
    print(summary("spec broken on disk", with_broken))
    refused = output.count("kept the previous spec")
    print(f"refusals logged: {refused} (one per worker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench-slow`: a normal request's latency while slow clients trickle their bodies in.

The mock runs as `make run` runs it (granian, 2 workers). Then, for --duration seconds:
  - --slow connections (half with a valid key, half without) each send a POST head and then its
    body at one byte a second; a connection the server closes is opened again at once, so that
    --slow of them are pending all the time; none lasts more than 60 s;
  - one client sends normal requests back to back (GET /api/v1/models and a small
    POST /api/v1/generate in turn) and records each one's latency (a timeout counts as --timeout).
The same probe runs first with no slow clients, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import threading
import time
from collections import Counter

from bench_server import free_port, start

KEY = "sk_test_basic_0123456789abcdef"
SLOW_BODY = b'{"prompt": "' + b"s" * 200 + b'"}'
PROBE_BODY = json.dumps({"prompt": "probe", "width": 256, "height": 256}).encode()
MAX_CONNECTION_S = 60


async def slow_client(port: int, with_key: bool, stop: float, outcomes: Counter) -> None:
    while time.monotonic() < stop:
        opened = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            outcomes["connect_error"] += 1
            await asyncio.sleep(0.1)
            continue
        key = f"Authorization: Bearer {KEY}\r\n" if with_key else ""
        writer.write(
            (
                "POST /api/v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"{key}Content-Type: application/json\r\n"
                f"Content-Length: {len(SLOW_BODY)}\r\n\r\n"
            ).encode()
        )
        answer = asyncio.ensure_future(reader.read(4096))
        sent = 0
        while not answer.done() and sent < len(SLOW_BODY):
            end = min(stop, opened + MAX_CONNECTION_S)
            if time.monotonic() >= end:
                break
            try:
                writer.write(SLOW_BODY[sent : sent + 1])
                await writer.drain()
            except OSError:
                break
            sent += 1
            await asyncio.wait([answer], timeout=1.0)
        if answer.done() and not answer.exception():
            status = answer.result()[9:12].decode() or "closed"
        else:
            answer.cancel()
            status = "pending_at_end"
        outcomes[status] += 1
        writer.close()


def run_slow_clients(port: int, count: int, stop: float, outcomes: Counter) -> threading.Thread:
    async def main():
        await asyncio.gather(
            *(slow_client(port, index % 2 == 0, stop, outcomes) for index in range(count))
        )

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    return thread


def probe(port: int, seconds: float, timeout: float) -> dict:
    latencies, statuses = [], Counter()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    stop = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < stop:
        turn += 1
        started = time.perf_counter()
        try:
            if turn % 2:
                connection.request("GET", "/api/v1/models", headers=headers)
            else:
                connection.request("POST", "/api/v1/generate", PROBE_BODY, headers)
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
            latencies.append(time.perf_counter() - started)
        except OSError:
            statuses["timeout_or_error"] += 1
            latencies.append(timeout)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "statuses": dict(statuses),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=64, help="slow connections (default 64)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of probing")
    parser.add_argument("--timeout", type=float, default=5, help="a probe's timeout, seconds")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    port = free_port()
    command = [sys.executable, "-m", "mockserver", "--port", str(port)]
    server = start([*command, "--workers", str(args.workers)], f"http://127.0.0.1:{port}/")
    try:
        quiet = probe(port, min(args.duration, 10), args.timeout)
        print("no slow clients:    ", json.dumps(quiet))
        outcomes: Counter = Counter()
        stop = time.monotonic() + args.duration
        slow = run_slow_clients(port, args.slow, stop, outcomes)
        time.sleep(1)  # let every slow connection send its head
        loaded = probe(port, args.duration - 1, args.timeout)
        slow.join(timeout=args.timeout + 5)
        print(f"{args.slow} slow clients:", json.dumps(loaded))
        print("slow connections ended with:", json.dumps(dict(outcomes)))
        print(f"RESULT p99 {quiet['p99_ms']} ms alone, {loaded['p99_ms']} ms with {args.slow} slow")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

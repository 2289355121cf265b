"""`make bench`: requests/s and latency of the mock under granian, side by side with Prism.

Both servers serve the same openapi.yaml on this machine, under the same wrk load, one target at a
time, in rounds that take the targets in turn (the median round is shown):
  - generate: POST /api/v1/generate, 1024x1024 sdxl-lightning, a distinct prompt per request;
  - unauthorized: the same request without a key (401).
The mock validates the body, checks the key, plan and caps, and draws a real 1024x1024 PNG;
Prism checks that a Bearer header is present and returns the spec's example.

The mock runs three ways: without rate limits (as Prism, which has none), and with limits on in
the embedded store (SQLite, the default) and in Redis (--state redis://, a redis-server started
here). With limits, each connection has its own key, on a plan whose limit the load stays under,
so that every request pays for the limit check and none is refused; the difference to the
first row is the store's cost per request.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk_test_basic_0123456789abcdef"
LOAD_SCRIPT = Path(__file__).with_name("load.lua")
SANITY_BODY = {
    "model": "sdxl-lightning",
    "width": 1024,
    "height": 1024,
    "num_inference_steps": 8,
    "prompt": "sanity check",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"{url}: server did not start")


def start(command: list[str], url: str) -> subprocess.Popen:
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: its workers' CPU time is counted
    )  # fmt: skip
    wait_for(url, process)
    return process


def cpu_seconds(process_group: int) -> float:
    """User and system CPU time of every live process in *process_group* (Linux /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == process_group:  # pgrp; utime and stime follow at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def check_target(url: str) -> dict:
    """One request of each kind, to be sure the load measures what it claims."""
    body = SANITY_BODY
    ok = requests.post(
        url + "/api/v1/generate", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )
    denied = requests.post(url + "/api/v1/generate", json=body)
    image = ok.json()["images"][0]["data_url"] if ok.status_code == 200 else ""
    return {
        "generate_status": ok.status_code,
        "image_bytes": len(image) * 3 // 4,
        "unauthorized_status": denied.status_code,
    }


def run_wrk(url: str, scenario: str, seconds: int, connections: int, keys=()) -> dict:
    env = {**os.environ, "BENCH_AUTH": f"Bearer {KEY}" if scenario == "generate" else ""}
    env["BENCH_KEYS"] = ",".join(keys)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    output = subprocess.run(
        [*command, "-s", str(LOAD_SCRIPT), url],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    return {
        "requests_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "requests": raw["requests"],
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["socket_errors"],
    }


def measure_all(targets: dict, seconds: int, connections: int, rounds: int) -> dict:
    """Every target started at once, then *rounds* rounds of wrk runs, each round taking the
    targets in a different order: on a machine whose load drifts (other jobs), no target gets
    all the quiet minutes. Each figure is the round whose rate was the median (and the median
    of the requests per CPU-second)."""
    processes = {}
    try:
        for name, (command, url, _) in targets.items():
            processes[name] = start(command, url)
        results = {}
        for name, (_, url, keys) in targets.items():
            results[name] = {"sanity": check_target(url)}
            run_wrk(url, "generate", 2, connections, keys)  # warm-up
        runs = {(name, scenario): [] for name in targets for scenario in SCENARIOS}
        order = list(targets)
        for round_index in range(rounds):
            turn = order[round_index % len(order) :] + order[: round_index % len(order)]
            for name in turn:
                _, url, keys = targets[name]
                for scenario in SCENARIOS:
                    used = cpu_seconds(processes[name].pid)
                    run = run_wrk(url, scenario, seconds, connections, keys)
                    used = cpu_seconds(processes[name].pid) - used
                    # Requests per CPU-second of the server's own processes: what a request
                    # costs, which other work on the machine changes far less than the rate.
                    run["requests_per_cpu_s"] = run["requests"] / used if used else 0.0
                    runs[name, scenario].append(run)
        for (name, scenario), measured in runs.items():
            measured.sort(key=lambda run: run["requests_per_s"])
            per_cpu = sorted(run["requests_per_cpu_s"] for run in measured)
            results[name][scenario] = {
                **measured[len(measured) // 2],
                "requests_per_cpu_s": per_cpu[len(per_cpu) // 2],  # its own median
                "rounds_requests_per_s": [round(run["requests_per_s"]) for run in measured],
                "rounds_requests_per_cpu_s": [round(value) for value in per_cpu],
            }
        return results
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)


SCENARIOS = ("generate", "unauthorized")
GOALS = {"generate": 2.0, "unauthorized": 4.0}  # times Prism's rate


def limited_setup(directory: Path, connections: int) -> tuple[Path, Path, list[str]]:
    """A copy of openapi.yaml whose enterprise plan allows more than the load sends, and a key
    file with one enterprise key per connection (and the sanity check's basic key)."""
    text = (ROOT / "openapi.yaml").read_text()
    plan = "id: enterprise\n      name: Enterprise\n      requests_per_minute: 1200"
    assert plan in text, "the enterprise plan moved in openapi.yaml"
    spec = directory / "openapi.yaml"
    spec.write_text(text.replace(plan, plan.replace("1200", "1000000")))
    keys = [f"sk_bench_{i:04d}_0123456789abcdef" for i in range(connections)]
    keys_file = directory / "keys.json"
    keys_file.write_text(json.dumps({KEY: "basic", **dict.fromkeys(keys, "enterprise")}))
    return spec, keys_file, keys


def start_redis(directory: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"redis://127.0.0.1:{port}/0"
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)


def run_targets(args, scratch: Path, redis_url: str) -> dict:
    spec, keys_file, keys = limited_setup(scratch, args.connections)
    prism_port = free_port()

    def mock(*options: str) -> tuple[list[str], str, list[str]]:
        port = free_port()
        command = [sys.executable, "-m", "mockserver", "--port", str(port)]
        command += ["--workers", str(args.workers), *options]
        return command, f"http://127.0.0.1:{port}", keys if "--rate-limits" in options else []

    limited = ("--rate-limits", "--spec", str(spec), "--keys", str(keys_file))
    targets = {
        "mock": mock("--no-rate-limits"),
        "mock, limits, embedded": mock(*limited),
        "mock, limits, redis": mock(*limited, "--state", redis_url),
        "prism": (
            [
                args.prism,
                "mock",
                "-h",
                "127.0.0.1",
                "-p",
                str(prism_port),
                str(ROOT / "openapi.yaml"),
            ],
            f"http://127.0.0.1:{prism_port}",
            [],
        ),
    }
    load_before = os.getloadavg()[0]
    measured = measure_all(targets, args.seconds, args.connections, args.rounds)
    return {
        "setup": f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds (the "
        f"median shown), {os.cpu_count()} CPUs, mock with {args.workers} granian workers; "
        f"load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (other work on this machine slows both sides)",
        "targets": measured,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prism", default=shutil.which("prism"), help="path to the prism binary")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per target and scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "server.json")
    args = parser.parse_args()
    if not args.prism or not Path(args.prism).exists():
        parser.error("Prism not found: run `make bench`, which installs it")

    scratch = Path(tempfile.mkdtemp(prefix="bench-server-"))
    redis, redis_url = start_redis(scratch)
    try:
        results = run_targets(args, scratch, redis_url)
    finally:
        redis.terminate()
        redis.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    targets = results["targets"]

    print(f"\n{results['setup']}\n")
    print(
        "| target | scenario | requests/s | p50 ms | p99 ms | non-2xx | vs Prism "
        "| requests per CPU-s | vs Prism |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        prism = results["targets"]["prism"][scenario]
        for name in targets:
            r = results["targets"][name][scenario]
            r["ratio_to_prism"] = r["requests_per_s"] / prism["requests_per_s"]
            r["cpu_ratio_to_prism"] = r["requests_per_cpu_s"] / (prism["requests_per_cpu_s"] or 1)
            print(
                f"| {name} | {scenario} | {r['requests_per_s']:.0f} | {r['p50_ms']:.2f} "
                f"| {r['p99_ms']:.2f} | {r['non_2xx']} | {r['ratio_to_prism']:.2f}x "
                f"| {r['requests_per_cpu_s']:.0f} | {r['cpu_ratio_to_prism']:.2f}x |"
            )
    base = targets["mock"]["generate"]["requests_per_s"]
    for name in ("mock, limits, embedded", "mock, limits, redis"):
        rate = targets[name]["generate"]["requests_per_s"]
        targets[name]["store_cost_us"] = 1e6 / rate - 1e6 / base
        print(
            f"{name}: the store costs {targets[name]['store_cost_us']:.0f} µs of machine time "
            f"per request ({rate / base:.2f}x the rate without limits)"
        )
    for name in targets:
        print(f"{name} sanity: {results['targets'][name]['sanity']}")
    # What `make run` serves (limits on, the embedded store) against Prism, with the goals.
    served = targets["mock, limits, embedded"]
    for scenario, goal in GOALS.items():
        ratio, per_cpu = served[scenario]["ratio_to_prism"], served[scenario]["cpu_ratio_to_prism"]
        verdict = "met" if ratio >= goal else "NOT met"
        print(
            f"as `make run` serves, {scenario}: {ratio:.2f}x Prism's rate (goal {goal:.1f}x: "
            f"{verdict}); {per_cpu:.2f}x its requests per CPU-second"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwritten to {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

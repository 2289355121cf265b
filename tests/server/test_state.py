"""Shared state: one rate-limit budget per key and one journal across workers, processes and
hosts (a real redis-server, started here), surviving spec reloads, and no 5xx when Redis dies."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from mockserver import core
from mockserver.app import create_app
from mockserver.backends.placeholder import PlaceholderBackend
from mockserver.config import DEV_KEYS, Config
from mockserver.snapshot import Snapshot
from tests.support import ROOT, RunningServer, auth, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
MODELS = "/api/v1/models"


class RedisServer:
    """A redis-server of our own on a free port, its files in a temp dir, no persistence."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed: `make test` installs it (apt redis-server)")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


def spec_copy(directory: Path) -> Path:
    path = directory / "openapi.yaml"
    shutil.copy(ROOT / "openapi.yaml", path)
    return path


def touch_and_wait_for_reload(spec: Path, servers: list[RunningServer]) -> None:
    """Edit the spec (a comment), then wait until every worker of every server serves it."""
    spec.write_text(spec.read_text() + "# touched mid-window\n")
    deadline = time.monotonic() + 60  # a reload parses and checks the spec: seconds when busy
    for server in servers:
        seen = 0
        while seen < 6:  # consecutive answers, new connections: every worker has reloaded
            assert time.monotonic() < deadline, "the spec was not reloaded"
            text = requests.get(server.url + "/openapi.yaml", timeout=10).text
            seen = seen + 1 if text.endswith("# touched mid-window\n") else 0
            time.sleep(0.05 if seen else 0.3)


def spend(servers: list[RunningServer], count: int, plan: str = "free") -> list:
    """*count* GETs spread over *servers*, each on a new connection (so over their workers)."""
    responses = []
    for i in range(count):
        server = servers[i % len(servers)]
        headers = {**auth(plan), "X-Via": f"server-{i % len(servers)}"}
        responses.append(requests.get(server.url + MODELS, headers=headers, timeout=10))
    return responses


def statuses(responses) -> list[int]:
    return [r.status_code for r in responses]


def assert_limited(response, limit: int = 10) -> None:
    assert response.status_code == 429
    assert json.loads(response.text)["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.headers["RateLimit-Policy"] == f'"free";q={limit};w=60'
    assert response.headers["RateLimit"] == f'"free";r=0;t={retry_after}'


def test_two_processes_on_one_redis_share_one_budget_one_journal_and_survive_restarts(
    redis_server, tmp_path
):
    spec = spec_copy(tmp_path)
    servers = [
        RunningServer("--workers", "2", "--spec", str(spec), "--state", redis_server.url)
        for _ in range(2)
    ]
    try:
        requests.delete(servers[0].url + "/__admin/requests", timeout=10)
        first = spend(servers, 16)
        assert statuses(first) == [200] * 10 + [429] * 6
        assert first[0].headers["RateLimit-Policy"] == '"free";q=10;w=60'
        assert [r.headers["RateLimit"].split(";")[1] for r in first[:10]] == [
            f"r={n}" for n in range(9, -1, -1)
        ]
        for response in first[10:]:
            assert_limited(response)

        touch_and_wait_for_reload(spec, servers)
        after_reload = spend(servers, 4)
        assert statuses(after_reload) == [429] * 4

        journal = requests.get(servers[1].url + "/__admin/requests", timeout=10).json()
        api_entries = [e for e in journal["requests"] if e["path"] == MODELS]
        assert len(api_entries) == 20
        assert {e["headers"]["X-Via"] for e in api_entries} == {"server-0", "server-1"}
        assert journal["unsaved"] == 0
    finally:
        for server in servers:
            server.stop()

    # A mock restarted on the same Redis remembers the window.
    restarted = RunningServer("--workers", "1", "--spec", str(spec), "--state", redis_server.url)
    try:
        assert_limited(spend([restarted], 1)[0])
        assert spend([restarted], 1, plan="pro")[0].status_code == 200
    finally:
        restarted.stop()


def test_the_default_embedded_store_shares_the_budget_across_workers(tmp_path):
    """No --state: limits are on, and the workers share a private SQLite file (0600 in a 0700
    directory) that is removed when the server stops."""
    spec = spec_copy(tmp_path)
    server = RunningServer("--workers", "2", "--spec", str(spec), env={"TMPDIR": str(tmp_path)})
    try:
        [directory] = tmp_path.glob("mockserver-state-*")
        requests.delete(server.url + "/__admin/requests", timeout=10)
        first = spend([server], 15)
        assert statuses(first) == [200] * 10 + [429] * 5
        for response in first[10:]:
            assert_limited(response)
        touch_and_wait_for_reload(spec, [server])
        assert statuses(spend([server], 3)) == [429] * 3
        journal = requests.get(server.url + "/__admin/requests", timeout=10).json()
        assert len([e for e in journal["requests"] if e["path"] == MODELS]) == 18

        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        files = list(directory.iterdir())
        assert {f.name for f in files} >= {"state.sqlite", "state.sqlite-wal"}
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    finally:
        output = server.stop()
    assert not directory.exists(), output


def test_redis_killed_under_load_costs_no_5xx_and_recovers(redis_server, tmp_path):
    server = RunningServer("--workers", "2", "--state", redis_server.url)
    outcomes: list[tuple[float, int, bool]] = []  # (time, status, the limiter reached Redis)
    stop = threading.Event()

    def load():
        with requests.Session() as session:
            while not stop.is_set():
                response = session.get(server.url + MODELS, headers=auth("pro"), timeout=10)
                limited = "RateLimit" in response.headers
                outcomes.append((time.monotonic(), response.status_code, limited))
                time.sleep(0.02)

    threads = [threading.Thread(target=load) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        redis_server.kill()
        killed = time.monotonic()
        time.sleep(2.0)
        restarting = time.monotonic()
        redis_server.start()  # a fresh server on the same port, answering when this returns
        restarted = time.monotonic()
        time.sleep(4.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    try:
        journal = requests.get(server.url + "/__admin/requests", timeout=10).json()
        state = requests.get(server.url + "/__admin/state", timeout=10).json()
    finally:
        output = server.stop()

    assert len(outcomes) > 100
    assert not [o for o in outcomes if o[1] >= 500], "a 5xx while Redis was down"
    during = [o for o in outcomes if killed + 0.1 < o[0] < restarting]
    assert during and all(status == 200 and not limited for _, status, limited in during), [
        o for o in during if o[1] != 200 or o[2]
    ]
    recovered = min(t for t, _, limited in outcomes if limited and t > restarting)
    recovery = max(0.0, recovered - restarted)
    print(f"\nrate limits enforced again {recovery:.2f} s after Redis came back")
    assert recovery < 3.0
    assert journal["unsaved"] >= len(during) // 2  # counted, not lost silently
    assert journal["requests"] and state["reachable"] is True
    warnings = output.count("unreachable")
    assert 1 <= warnings <= 2, output  # one per worker for the outage, not one per request
    assert "reachable again" in output


def test_an_unreachable_state_url_stops_start_up_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "--state", f"redis://127.0.0.1:{free_port()}/0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "state store unreachable" in result.stderr and "Traceback" not in result.stderr


def test_retry_after_is_when_the_window_lets_the_key_in_again(spec):
    client = create_app(Config(rate_limits=True), spec=spec).test_client()
    started = time.time()
    for _ in range(10):
        assert client.get(MODELS, headers=auth("free")).status_code == 200
    time.sleep(1.5)
    response = client.get(MODELS, headers=auth("free"))
    assert_limited(response)
    expected = 60 - (time.time() - started)
    assert abs(int(response.headers["Retry-After"]) - expected) <= 1


def test_a_reload_keeps_the_windows(tmp_path, spec):
    path = spec_copy(tmp_path)
    app = create_app(Config(rate_limits=True, spec_path=path))
    client = app.test_client()
    runtime = app.extensions["imageapi"]
    before = runtime.current()
    assert statuses([client.get(MODELS, headers=auth("free")) for _ in range(11)]) == [200] * 10 + [
        429
    ]
    path.write_text(path.read_text() + "# touched\n")
    deadline = time.monotonic() + 30  # the watcher reloads in the background
    while runtime.current() is before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runtime.current() is not before  # it did reload
    assert_limited(client.get(MODELS, headers=auth("free")))


def test_the_core_generates_without_flask(spec):
    snapshot = Snapshot(spec, DEV_KEYS, scenarios=False)
    admitted = []
    result = core.generate(
        {"prompt": "a fox", "width": 256, "height": 256},
        "free",
        snapshot=snapshot,
        backend=PlaceholderBackend(),
        admit=lambda: admitted.append(True),
    )
    assert (result["width"], result["height"], len(result["images"])) == (256, 256, 1)
    assert admitted == [True]


@pytest.mark.parametrize("kind", ["embedded", "redis"])
def test_both_stores_bound_the_journal_in_rows_and_bytes(kind, tmp_path, request):
    from mockserver.store import open_store

    if kind == "redis":
        url = request.getfixturevalue("redis_server").url
    else:
        url = f"sqlite://{tmp_path / 'state.sqlite'}"
    store = open_store(url)
    try:
        for i in range(300):
            entry = json.dumps({"i": i, "filler": "f" * (i % 7) * 1000})
            store.journal_add(entry, time.time(), keep=200, max_bytes=50_000)
        rows = store.journal_rows(1000)
        assert sum(len(row) for row in rows) <= 50_000
        assert [json.loads(row)["i"] for row in rows] == list(range(299, 299 - len(rows), -1))
        assert len(rows) > 10  # and not emptied
        for i in range(300):
            store.journal_add(json.dumps({"i": i}), time.time(), keep=20, max_bytes=50_000)
        assert len(store.journal_rows(1000)) == 20
        store.journal_clear()
        assert store.journal_rows(1000) == []
        store.journal_add('{"i":0}', time.time(), keep=20, max_bytes=100)
        store.journal_add("x" * 200, time.time(), keep=20, max_bytes=100)  # larger than the bound
        assert store.journal_rows(10) == []
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["embedded", "redis"])
def test_a_journal_entry_is_made_once_and_only_if_it_can_still_be_shown(kind, tmp_path, request):
    """The embedded store makes an entry when a read asks for it, never one that newer entries
    pushed out first; Redis makes each at once. Either way a read shows the same rows."""
    from mockserver.store import open_store
    from mockserver.store.base import LazyEntry

    if kind == "redis":
        url = request.getfixturevalue("redis_server").url
    else:
        url = f"sqlite://{tmp_path / 'state.sqlite'}"
    store = open_store(url)
    made: list[int] = []

    def entry(i: int) -> LazyEntry:
        return LazyEntry(lambda: made.append(i) or json.dumps({"i": i}), held=10)

    try:
        for i in range(50):
            store.journal_add(entry(i), time.time(), keep=20, max_bytes=50_000)
        assert made == ([] if kind == "embedded" else list(range(50)))
        rows = store.journal_rows(1000)
        assert [json.loads(row)["i"] for row in rows] == list(range(49, 29, -1))
        assert sorted(made) == (list(range(30, 50)) if kind == "embedded" else list(range(50)))
        assert store.journal_rows(1000) == rows  # made once: a second read makes nothing more
        assert len(made) == (20 if kind == "embedded" else 50)
    finally:
        store.close()


def test_the_embedded_store_holds_unmade_entries_only_up_to_the_journal_s_bytes(tmp_path):
    """Entries holding more than the journal's byte bound are made and written by the writer
    without waiting for a read: large requests do not pile up in memory."""
    from mockserver.store import open_store
    from mockserver.store.base import LazyEntry

    store = open_store(f"sqlite://{tmp_path / 'state.sqlite'}")
    made: list[int] = []
    try:
        for i in range(10):
            text = json.dumps({"i": i})
            store.journal_add(
                LazyEntry(lambda i=i, text=text: made.append(i) or text, held=30_000),
                time.time(), keep=200, max_bytes=100_000,
            )  # fmt: skip
        deadline = time.monotonic() + 5
        while not made and time.monotonic() < deadline:
            time.sleep(0.01)
        assert made == list(range(10))  # all of them, in order, by the writer alone
    finally:
        store.close()


def test_every_worker_sees_a_fault_state_change_made_by_another_at_its_next_request(tmp_path):
    """Each worker keeps the fault state between requests and reads it again only when the
    change count shared through the lock file moved: every kind of change, by any worker, is
    seen at once by the others, and a read that changes nothing reads the same."""
    from mockserver.store import open_store

    url = f"sqlite://{tmp_path / 'state.sqlite'}"
    worker, other = open_store(url), open_store(url)
    try:
        assert worker.fault_state("faults") == (None, False)
        other.set_setting("faults", "503:0.5:seed=1")
        assert worker.fault_state("faults") == ("503:0.5:seed=1", False)
        assert worker.fault_state("faults") == ("503:0.5:seed=1", False)  # kept, and still true
        assert worker.fault_state("other") == (None, False)  # a name of its own
        assert other.sequence_add("key:x", ["503"], max_total=10)
        assert worker.fault_state("faults") == ("503:0.5:seed=1", True)
        assert worker.sequence_take(["key:x"]) == "503"  # taking the last answer is a change
        assert other.fault_state("faults") == ("503:0.5:seed=1", False)
        other.sequence_add("key:y", ["429"], max_total=10)
        worker.fault_state("faults")
        other.sequences_clear()
        worker.set_setting("faults", None)
        assert worker.fault_state("faults") == other.fault_state("faults") == (None, False)
        reopened = open_store(url)  # a respawned worker starts from the count as it stands
        try:
            assert reopened.fault_state("faults") == (None, False)
            reopened.set_setting("faults", "off")
            assert worker.fault_state("faults") == ("off", False)
        finally:
            reopened.close()
    finally:
        worker.close()
        other.close()

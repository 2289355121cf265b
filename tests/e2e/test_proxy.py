"""The validating proxy as users run it: ``imageapi-contract proxy`` in its own process, over
loopback, in front of the mock, of the project's mutants and of upstreams that are down or
slow; what it records replayed by the mock's replay backend, byte for byte."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest
import requests
from PIL import Image
from werkzeug.serving import make_server

import tests.mutants as mutants
from contract_tests.judge import Judge
from contract_tests.spec import load_contract
from mockserver.app import create_app
from tests.mutants import probes
from tests.mutants.probes import PROBES, Probe
from tests.mutants.registry import JUDGED, MUTANTS
from tests.support import KEY_FOR_PLAN, ROOT, RunningServer, assert_contract_suite_passes, free_port

GENERATE = "/api/v1/generate"
MODELS = "/api/v1/models"
KEY_ENV = {f"IMAGEAPI_KEY_{plan.upper()}": key for plan, key in KEY_FOR_PLAN.items()}
KEY_PLANS = {key: plan for plan, key in KEY_FOR_PLAN.items()}
UNKNOWN_SECRET = "sk_live_not_a_key_but_a_secret_42"


class ProxyProcess:
    """``python -m contract_tests.cli proxy`` in a subprocess, ready when its summary answers."""

    def __init__(self, upstream: str, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "contract_tests.cli", "proxy", "--upstream", upstream,
            "--port", str(self.port), *args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **KEY_ENV, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the proxy exited: {self.process.stdout.read()}")
            try:
                requests.get(self.url + "/__contract/summary", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the proxy did not start")

    def summary(self) -> dict:
        return requests.get(self.url + "/__contract/summary", timeout=10).json()

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a service manager stops it; its exit status and what it printed."""
        self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output


@contextmanager
def serving(app):
    """*app* over loopback HTTP in a thread; yields its base URL."""

    def bodiless(environ, start_response):
        # A request without Content-Length has no body: the mutants read to the end of the input,
        # which on a kept-alive connection would wait for the next request.
        if not int(environ.get("CONTENT_LENGTH") or 0):
            environ["wsgi.input"] = io.BytesIO(b"")
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, bodiless, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class Switch:
    """A WSGI app that forwards to whichever app is set: one upstream, many mutants."""

    def __init__(self, app=None):
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def bearer(plan: str = "enterprise") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY_FOR_PLAN[plan]}"}


def generation(body: dict, plan: str = "enterprise"):
    return ("POST", GENERATE, {**bearer(plan), "Content-Type": "application/json"}, body)


SMALL = {"width": 256, "height": 256}


def send(url: str, request) -> requests.Response:
    method, path, headers, body = request
    data = None if body is None else json.dumps(body).encode()
    return requests.request(method, url + path, headers=headers, data=data, timeout=60)


@pytest.fixture(scope="module")
def mutant_proxies(tmp_path_factory):
    """One switchable upstream, a soft and a hard proxy in front of it, each with its log."""
    folder = tmp_path_factory.mktemp("proxy")
    upstream = Switch()
    with serving(upstream) as url:
        soft = ProxyProcess(url, "--mode", "soft", "--log", str(folder / "soft.jsonl"))
        hard = ProxyProcess(url, "--mode", "hard", "--log", str(folder / "hard.jsonl"))
        try:
            yield upstream, soft, hard, {soft: folder / "soft.jsonl", hard: folder / "hard.jsonl"}
        finally:
            soft.stop()
            hard.stop()


@pytest.fixture(scope="module")
def judge():
    return Judge(load_contract(), dict(KEY_PLANS))


def send_probe(url: str, probe: Probe) -> requests.Response:
    return requests.request(
        probe.method, url + probe.path, headers=dict(probe.headers), data=probe.body, timeout=60
    )


@pytest.mark.parametrize("name", sorted(JUDGED))
def test_the_proxy_names_the_promise_each_mutant_breaks(mutant_proxies, judge, name):
    """Each mutant that breaks a promise within one exchange, as the upstream: the exchanges
    that show it (found by judging the mutant in-process, over the probes) go through both
    proxies, which must name the promise: in the soft one's log, in the hard one's 502."""
    upstream, soft, hard, logs = mutant_proxies
    promise = JUDGED[name]
    upstream.app = MUTANTS[name].factory()
    shown = probes.revealing(judge, upstream.app, promise)
    assert shown, f"no probe shows {name} breaking {promise}: add one to tests/mutants/probes.py"
    probe = PROBES[shown]

    def named_in_log(proxy, exchange) -> set[str]:
        before = logs[proxy].read_text().count("\n") if logs[proxy].exists() else 0
        answer = exchange()
        lines = logs[proxy].read_text().splitlines()[before:]
        return answer, {v["promise"] for line in lines for v in json.loads(line)["violations"]}

    answer, named = named_in_log(soft, lambda: send_probe(soft.url, probe))
    assert int(answer.headers["Imageapi-Contract-Violations"]) >= 1, (name, answer.status_code)
    assert promise in named, f"{name}: the soft proxy's log names {named}, not {promise}"
    assert answer.status_code != 502, "soft mode passes the answer through"

    refused, named = named_in_log(hard, lambda: send_probe(hard.url, probe))
    assert refused.status_code == 502, (name, refused.status_code)
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert promise in named, f"{name}: the hard proxy's log names {named}, not {promise}"
    if probe.method == "HEAD":
        return  # the 502's head alone: no document
    document = refused.json()
    assert document["code"] == "contract_violation"
    assert promise in {v["promise"] for v in document["violations"]}, document
    assert all(v["reason"] and v["spec"] for v in document["violations"]), document


def test_the_probes_through_the_proxy_find_nothing_wrong_with_the_mock(mutant_proxies):
    """The control: every probe, through the hard proxy, to the mock itself, passes unchanged."""
    upstream, _, hard, _ = mutant_proxies
    upstream.app = create_app()
    for name, probe in PROBES.items():
        answer = send_probe(hard.url, probe)
        assert answer.headers["Imageapi-Contract-Violations"] == "0", (name, answer.text[:300])
        assert answer.status_code != 502, name


def test_a_correct_upstream_gets_no_violation_and_an_exit_status_of_0():
    with serving(create_app()) as url:
        proxy = ProxyProcess(url, "--mode", "hard")
        for request in (
            generation({"prompt": "fine", **SMALL}),
            ("GET", MODELS, {}, None),
            generation({"prompt": "p", "num_inference_steps": 9}),
        ):
            answer = send(proxy.url, request)
            assert answer.headers["Imageapi-Contract-Violations"] == "0", answer.text[:300]
            assert answer.status_code != 502
        assert proxy.summary()["exchanges"] == 3
        code, output = proxy.stop()
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["violations"] == 0


def test_a_broken_promise_makes_the_exit_status_1(mutant_proxies):
    with serving(mutants.one_image_only()) as url:
        proxy = ProxyProcess(url)
        send(proxy.url, generation({"prompt": "p", "num_images": 2, **SMALL}))
        code, output = proxy.stop()
    assert code == 1, output
    assert json.loads(output.strip().splitlines()[-1])["promises"] == {"num-images": 1}


def test_an_upstream_that_is_down_is_a_502_at_once():
    proxy = ProxyProcess(f"http://127.0.0.1:{free_port()}", "--timeout", "5")
    try:
        started = time.monotonic()
        answer = requests.get(proxy.url + MODELS, headers=bearer(), timeout=30)
        assert time.monotonic() - started < 5, "the proxy waited on an upstream that is down"
        assert answer.status_code == 502
        assert answer.json()["code"] == "upstream_unreachable"
    finally:
        proxy.stop()


def test_a_kept_connection_the_upstream_closed_is_replaced():
    """An upstream that closes a kept-alive connection after each answer (without saying so,
    as an idle timeout does): the proxy's next exchange finds it closed and goes over a new
    connection, and the client never sees the difference."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    served = []

    def answer_once_per_connection():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                served.append(request.split(b" ")[1])
                page = b"page %d" % len(served)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                   b"Content-Length: %d\r\n\r\n%s" % (len(page), page))  # fmt: skip

    threading.Thread(target=answer_once_per_connection, daemon=True).start()
    proxy = ProxyProcess(f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        pages = [requests.get(proxy.url + f"/page/{i}", timeout=30) for i in range(3)]
        assert [(a.status_code, a.text) for a in pages] == [
            (200, "page 1"),
            (200, "page 2"),
            (200, "page 3"),
        ], [a.text[:200] for a in pages]
        assert served == [b"/page/0", b"/page/1", b"/page/2"]
        assert proxy.summary()["upstream_errors"] == {}
    finally:
        proxy.stop()
        listener.close()


def test_a_request_the_proxy_cannot_read_is_a_problem():
    """Bytes that are not an HTTP/1.x request get the proxy's own problem, never a dropped
    connection or a 5xx; nothing reaches the upstream."""
    import socket

    proxy = ProxyProcess(f"http://127.0.0.1:{free_port()}")
    try:
        for raw, status in (
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 400),
            (b"GET /api/v1/models HTTP/1.1\r\nno colon\r\n\r\n", 400),
            (b"GET /api/v1/models HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431),
            (b"POST /api/v1/generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as client:
                client.sendall(raw)
                reply = b""
                while chunk := client.recv(65536):
                    reply += chunk
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 %d " % status), (raw[:40], head)
            assert b"Content-Type: application/problem+json" in head
            assert json.loads(body)["code"] == "request_not_forwardable", body
    finally:
        proxy.stop()


def test_a_slow_upstream_is_a_504_after_the_timeout():
    def slow(environ, start_response):
        time.sleep(5)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    with serving(slow) as url:
        proxy = ProxyProcess(url, "--timeout", "1")
        try:
            answer = requests.get(proxy.url + MODELS, headers=bearer(), timeout=30)
            assert answer.status_code == 504
            assert answer.json()["code"] == "upstream_timeout"
        finally:
            proxy.stop()


def test_an_answer_over_the_limit_is_refused():
    with serving(create_app()) as url:
        proxy = ProxyProcess(url, "--max-answer-mb", "0.001")  # about 1 KiB: the catalog is more
        try:
            answer = requests.get(proxy.url + MODELS, headers=bearer(), timeout=30)
            assert answer.status_code == 502
            assert answer.json()["code"] == "upstream_answer_too_large"
        finally:
            proxy.stop()


def test_answers_the_judge_does_not_read_stream_through(tmp_path):
    """An answer the judge does not read (a page outside the API) streams through whatever its
    size: past --max-answer-mb, with or without a Content-Length, byte for byte; and the
    client has its first bytes before the upstream has sent its last (nothing holds it whole).
    The API's own answers are still bounded (test_an_answer_over_the_limit_is_refused)."""
    big = os.urandom(3 * 1024 * 1024)  # three times the bound below
    release = threading.Event()

    def upstream(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/big":
            start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(len(big)))])  # fmt: skip
            return [big]
        if path == "/chunked":  # no Content-Length: werkzeug sends it chunked
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return (big[i : i + 65536] for i in range(0, len(big), 65536))
        start_response("200 OK", [("Content-Type", "text/plain")])

        def held():
            yield b"first\n"
            release.wait(30)  # until the client has had the first line
            yield b"last\n"

        return held()

    with serving(upstream) as url:
        proxy = ProxyProcess(url, "--mode", "hard", "--max-answer-mb", "1", "--record",
                             str(tmp_path / "t.har"))  # fmt: skip
        try:
            for path in ("/big", "/chunked"):
                answer = requests.get(proxy.url + path, timeout=60)
                assert answer.status_code == 200, (path, answer.text[:200])
                assert answer.content == big, path
                assert answer.headers["Imageapi-Contract-Violations"] == "0"
            with requests.get(proxy.url + "/held", stream=True, timeout=30) as answer:
                lines = answer.iter_lines()
                assert next(lines) == b"first"
                release.set()
                assert next(lines) == b"last"
        finally:
            release.set()
            code, output = proxy.stop()
    assert code == 0, output
    sizes = [
        e["response"]["content"]["size"]
        for e in json.loads((tmp_path / "t.har").read_text())["log"]["entries"]
    ]
    assert sizes == [len(big), len(big), len(b"first\nlast\n")], "the HAR counts what went through"


def test_the_mocks_own_pages_pass_through_unjudged():
    """The docs and the spec are not the API's routes: passed on as they are, no violation."""
    with serving(create_app()) as url:
        proxy = ProxyProcess(url, "--mode", "hard")
        try:
            for path in ("/openapi.json", "/docs"):
                direct = requests.get(url + path, timeout=30)
                answer = requests.get(proxy.url + path, timeout=30)
                assert answer.status_code == direct.status_code == 200, path
                assert answer.content == direct.content, path
                assert answer.headers["Imageapi-Contract-Violations"] == "0", path
        finally:
            proxy.stop()


def red_images(app):
    """The mock, its images replaced by plain red ones of the same size and format: pictures
    the placeholder would never draw, as a real deployment's are."""

    def wsgi(environ, start_response):
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        body = b"".join(app(environ, capture))
        if captured["status"].startswith("200") and environ["PATH_INFO"] == GENERATE:
            result = json.loads(body)
            for image in result["images"]:
                buffer = io.BytesIO()
                colour = (200, image["seed"] % 256, 0)
                Image.new("RGB", (result["width"], result["height"]), colour).save(
                    buffer, format=result["output_format"].upper()
                )
                kind = image["media_type"]
                image["data_url"] = (
                    f"data:{kind};base64,{base64.b64encode(buffer.getvalue()).decode()}"
                )
            body = json.dumps(result).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return wsgi


def images_of(answer: requests.Response) -> list[bytes]:
    return [
        base64.b64decode(image["data_url"].partition(",")[2]) for image in answer.json()["images"]
    ]


def test_record_then_replay_gives_the_same_image_bytes(tmp_path):
    har = tmp_path / "traffic.har"
    log = tmp_path / "violations.jsonl"
    asked = {"prompt": "a red barn", "seed": 7, "num_images": 2, **SMALL}
    with serving(red_images(create_app())) as url:
        proxy = ProxyProcess(url, "--record", str(har), "--log", str(log))
        recorded = send(proxy.url, generation(asked))
        send(proxy.url, ("GET", MODELS, {"Authorization": f"Bearer {UNKNOWN_SECRET}"}, None))
        summary = proxy.summary()
        code, output = proxy.stop()
    assert recorded.status_code == 200 and code == 0, output
    entries = json.loads(har.read_text())["log"]["entries"]
    assert json.loads(har.read_text())["log"]["version"] == "1.2" and len(entries) == 2

    server = RunningServer("--backend", "replay", "--backend-option", f"har={har}")
    try:
        replayed = send(server.url, generation(asked))
        fewer = send(server.url, generation({**asked, "num_images": 1}))
        other = send(server.url, generation({**asked, "prompt": "not recorded"}))
    finally:
        server.stop()
    assert images_of(replayed) == images_of(recorded), "the replay is not byte-exact"
    assert images_of(fewer) == images_of(recorded)[:1]
    assert images_of(other)[0] != images_of(recorded)[0], "an unrecorded prompt falls back"

    # No key in clear anywhere the proxy writes: the HAR, the log, the summary, its output.
    written = (
        har.read_text() + json.dumps(summary) + output + (log.read_text() if log.exists() else "")
    )
    for secret in [*KEY_FOR_PLAN.values(), UNKNOWN_SECRET]:
        assert secret not in written, "a key in clear"
    assert "$IMAGEAPI_KEY_ENTERPRISE" in har.read_text()


def test_no_key_in_the_log_of_broken_exchanges(tmp_path):
    log = tmp_path / "violations.jsonl"
    with serving(mutants.problem_status_disagrees()) as url:
        proxy = ProxyProcess(url, "--log", str(log), "--mode", "hard")
        for authorization in (
            f"Bearer {KEY_FOR_PLAN['free']}",
            f"Bearer {UNKNOWN_SECRET}",
            UNKNOWN_SECRET,
        ):
            send(
                proxy.url,
                (
                    "GET",
                    f"{MODELS}/dall-e?api_key={UNKNOWN_SECRET}",
                    {"Authorization": authorization},
                    None,
                ),
            )
        summary = proxy.summary()
        code, output = proxy.stop()
    assert code == 1 and summary["broken_exchanges"] == 3, summary
    written = log.read_text() + json.dumps(summary) + output
    for secret in [*KEY_FOR_PLAN.values(), UNKNOWN_SECRET]:
        assert secret not in written


def test_the_contract_suite_through_the_proxy_finds_no_violation(tmp_path):
    """The whole contract suite, run through the proxy against the mock: the suite passes and
    the proxy, judging every exchange, finds no broken promise."""
    log = tmp_path / "violations.jsonl"
    server = RunningServer()
    proxy = ProxyProcess(server.url, "--log", str(log))
    try:
        assert_contract_suite_passes(proxy.url)
        summary = proxy.summary()
    finally:
        code, output = proxy.stop()
        server.stop()
    assert summary["exchanges"] > 100, summary
    assert summary["violations"] == 0, log.read_text()[:3000]
    assert code == 0, output

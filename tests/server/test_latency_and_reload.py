"""Realistic timing, and a spec edited while the server runs."""

from __future__ import annotations

import json
import time

import pytest
import requests

from mockserver.app import create_app
from mockserver.config import Config, parse_latency
from tests.support import (
    ROOT,
    RunningServer,
    alias_bomb,
    auth,
    counting_listener,
    free_port,
    run_cli,
    spec_with_ref,
)


def test_parse_latency():
    assert parse_latency("off") is None
    assert parse_latency("realistic") == "realistic"
    assert parse_latency("250") == "250.0"
    with pytest.raises(ValueError):
        parse_latency("-5")


def _timed_post(client, body):
    started = time.perf_counter()
    reply = client.post("/api/v1/generate", json=body, headers=auth())
    assert reply.status_code == 200
    return time.perf_counter() - started


def test_a_fixed_latency_delays_every_generation(spec):
    client = create_app(Config(latency="150"), spec=spec).test_client()
    assert _timed_post(client, {"prompt": "p", "width": 256, "height": 256}) >= 0.15


def test_realistic_latency_follows_the_catalog(spec):
    client = create_app(Config(latency="realistic"), spec=spec).test_client()
    model = spec.models["sdxl-turbo"]
    body = {"prompt": "p", "model": "sdxl-turbo", "width": 512, "height": 512}
    expected = model.entry["typical_latency_ms"] / 1000 * (512 * 512) / (1024 * 1024)
    assert _timed_post(client, body) >= expected
    assert expected > 0.05


def test_no_latency_by_default(spec):
    assert Config().latency is None


def _edit_cap(text: str, cap: int) -> str:
    rule = (
        "const: sdxl-lightning\n              then:\n                properties:\n"
        "                  num_inference_steps:\n                    maximum: 50"
    )
    catalog = (
        "      max_steps: 50\n      negative_prompt: true\n      plans: [basic, pro, enterprise]"
    )
    assert rule in text and catalog in text
    text = text.replace(rule, rule.replace("maximum: 50", f"maximum: {cap}"))
    return text.replace(catalog, catalog.replace("max_steps: 50", f"max_steps: {cap}"))


def test_editing_the_spec_while_the_server_runs(tmp_path):
    original = (ROOT / "openapi.yaml").read_text()
    spec = tmp_path / "openapi.yaml"
    spec.write_text(original)
    server = RunningServer("--workers", "2", "--spec", str(spec))
    body = {"prompt": "p", "model": "sdxl-lightning", "num_inference_steps": 30}

    def status_until(expected, seconds=30.0):  # a reload runs beside requests: under load, slower
        deadline = time.monotonic() + seconds
        while True:
            statuses = {
                requests.post(
                    server.url + "/api/v1/generate", json=body, headers=auth()
                ).status_code
                for _ in range(6)  # both workers
            }
            if statuses == {expected} or time.monotonic() > deadline:
                return statuses
            time.sleep(0.3)

    try:
        assert status_until(200) == {200}
        spec.write_text(_edit_cap(original, 20))
        assert status_until(400) == {400}
        spec.write_text(original.replace("openapi: 3.1.0", "openapi: [broken"))
        time.sleep(1.5)
        assert status_until(400) == {400}  # a broken edit is ignored; the last good spec serves
        spec.write_text(original)
        assert status_until(200) == {200}
    finally:
        output = server.stop()
    assert "kept the previous spec" in output


def test_a_spec_that_reaches_outside_or_explodes_stops_start_up_with_one_line(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(8))
    with counting_listener() as (port, requests_made):
        remote = spec_with_ref(tmp_path, f"http://127.0.0.1:{port}/evil.yaml", name="remote.yaml")
        for path, reason in [
            (bomb, "alias bomb"),
            (remote, "by URL"),
            (spec_with_ref(tmp_path, "/etc/passwd", name="local.yaml"), "another file"),
        ]:
            result = run_cli("--spec", str(path), "--port", str(free_port()))
            assert result.returncode == 2, result.stderr
            [line] = result.stderr.strip().splitlines()
            assert line.startswith("mockserver: cannot start: ") and reason in line, line
    assert requests_made == []


def test_a_hot_reloaded_bomb_or_remote_ref_keeps_the_old_spec_and_says_so_once(tmp_path):
    original = (ROOT / "openapi.yaml").read_text()
    path = tmp_path / "openapi.yaml"
    path.write_text(original)
    server = RunningServer("--workers", "1", "--spec", str(path))

    def models_answer_quickly():
        for _ in range(10):
            started = time.monotonic()
            reply = requests.get(server.url + "/api/v1/models", headers=auth(), timeout=10)
            assert reply.status_code == 200
            assert time.monotonic() - started < 5  # not 23 s, as an expanding bomb took

    def wait_for_line(text: str, count: int = 1, seconds: float = 30.0) -> int:
        deadline = time.monotonic() + seconds
        while server.output().count(text) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return server.output().count(text)

    try:
        with counting_listener() as (port, requests_made):
            path.write_text(alias_bomb(8))
            assert wait_for_line("kept the previous spec") == 1
            models_answer_quickly()
            spec_with_ref(tmp_path, f"http://127.0.0.1:{port}/evil.yaml")
            assert wait_for_line("kept the previous spec", 2) == 2
            models_answer_quickly()
            served = requests.get(server.url + "/openapi.json", timeout=10).json()
            assert "x-bomb" not in served and "evil" not in json.dumps(served)
            path.write_text(original.replace("openapi: 3.1.0", "openapi: 3.1.0\n# edited", 1))
            assert wait_for_line("reloaded it") == 1
            time.sleep(2)  # two more checks of the file: nothing new to say
        assert requests_made == []
    finally:
        output = server.stop()
    assert output.count("kept the previous spec") == 2, output
    assert output.count("reloaded it") == 1, output
    assert "alias bomb" in output and "by URL" in output

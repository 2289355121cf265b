"""Reloads off the request path: a watcher thread loads an edited spec in the background and
swaps the snapshot whole; a refused edit leaves the old spec serving, and each outcome is
logged once with the spec's version."""

from __future__ import annotations

import logging
import time

import pytest

from mockserver.app import create_app
from mockserver.config import Config
from tests.support import ROOT, auth

SPEC_TEXT = (ROOT / "openapi.yaml").read_text()
VERSION_LINE = "  version: "


def with_version(version: str) -> str:
    start = SPEC_TEXT.index(VERSION_LINE)
    end = SPEC_TEXT.index("\n", start)
    return SPEC_TEXT[:start] + f"{VERSION_LINE}'{version}'" + SPEC_TEXT[end:]


def wait_until(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def live(tmp_path, monkeypatch):
    """An app following a spec copy, its runtime, and how often it has read the file."""
    path = tmp_path / "openapi.yaml"
    path.write_text(with_version("1.0-test"))
    app = create_app(Config(spec_path=path))
    runtime = app.extensions["imageapi"]
    runtime.live.CHECK_EVERY_S = 0.05
    reads = []
    load = runtime.live._load
    monkeypatch.setattr(runtime.live, "_load", lambda: reads.append(1) or load())
    return path, app, runtime, reads


def test_a_good_edit_is_loaded_in_the_background_and_logged_once(live, caplog):
    path, app, runtime, reads = live
    client = app.test_client()
    before = runtime.current()
    path.write_text(with_version("2.0-test"))
    with caplog.at_level(logging.INFO, logger="mockserver"):
        assert wait_until(lambda: runtime.current() is not before)
        time.sleep(0.3)  # several more checks: the file did not change again
    assert client.get("/openapi.json").get_json()["info"]["version"] == "2.0-test"
    reloaded = [r.getMessage() for r in caplog.records if "reloaded" in r.getMessage()]
    assert len(reloaded) == 1 and "'2.0-test'" in reloaded[0] and "'1.0-test'" in reloaded[0]
    assert reads == [1]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("openapi: [broken", "not valid YAML"),
        ("$ref: 'http://127.0.0.1:9/evil.yaml'", "by URL"),
        ("$ref: '/etc/passwd'", "another file"),
    ],
)
def test_a_refused_edit_keeps_the_old_spec_is_logged_once_and_not_reread(
    live, caplog, edit, reason
):
    path, app, runtime, reads = live
    client = app.test_client()
    before = runtime.current()
    text = with_version("3.0-test").replace("    Model:\n", f"    Model:\n      {edit}\n", 1)
    if edit.startswith("openapi"):
        text = with_version("3.0-test").replace("openapi: 3.1.0", edit)
    with caplog.at_level(logging.INFO, logger="mockserver"):
        path.write_text(text)
        assert wait_until(lambda: runtime.live.reload_error is not None)
        time.sleep(0.5)  # ten more checks of an unchanged, refused file
    assert runtime.current() is before
    assert reads == [1]
    [line] = [r.getMessage() for r in caplog.records if "kept the previous spec" in r.getMessage()]
    assert reason in line and "'1.0-test'" in line and "\n" not in line
    reply = client.get("/api/v1/models", headers=auth())
    assert reply.status_code == 200
    assert client.get("/openapi.json").get_json()["info"]["version"] == "1.0-test"


def test_requests_never_read_the_file(live):
    path, app, runtime, reads = live
    runtime.live.CHECK_EVERY_S = 3600  # once its current wait is over, the watcher sleeps
    client = app.test_client()
    time.sleep(runtime.live.__class__.CHECK_EVERY_S + 0.5)
    path.write_text(with_version("4.0-test"))
    for _ in range(20):
        assert client.get("/api/v1/models", headers=auth()).status_code == 200
    assert reads == []


def test_an_app_built_without_reload_starts_no_watcher(tmp_path):
    path = tmp_path / "openapi.yaml"
    path.write_text(SPEC_TEXT)
    app = create_app(Config(spec_path=path, reload=False))
    app.test_client().get("/api/v1/models", headers=auth())
    assert app.extensions["imageapi"].live._watcher is None

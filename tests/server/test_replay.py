"""The replay backend in the mock: recorded images where the request matches, the placeholder
or a documented 503 elsewhere; wrong options are refused when the server starts."""

from __future__ import annotations

import base64
import json

import pytest
from werkzeug.test import Client

from mockserver.app import create_app
from mockserver.backends import BackendError, load_backend
from mockserver.backends.replay import ReplayBackend
from tests.support import auth

JSON = "application/json"
RECORDED = b"\x89PNG not really, but bytes the placeholder never makes"


def har(tmp_path, **overrides):
    body = {"prompt": "a barn", "seed": 5, "width": 256, "height": 256}
    result = {
        "model": "flux-schnell", "width": 256, "height": 256, "num_inference_steps": 8,
        "seed": 5, "output_format": "png",
        "images": [{"seed": 5, "media_type": "image/png",
                    "data_url": "data:image/png;base64," + base64.b64encode(RECORDED).decode()}],
    }  # fmt: skip
    result.update(overrides)
    entry = {
        "request": {"method": "POST", "url": "http://up.test/api/v1/generate",
                    "postData": {"mimeType": "application/json", "text": json.dumps(body)}},
        "response": {"status": 200, "content": {"mimeType": JSON, "text": json.dumps(result)}},
    }  # fmt: skip
    path = tmp_path / "traffic.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry, {"request": {}}]}}))
    return path


def generate(app, body):
    return Client(app).post("/api/v1/generate", json=body, headers=auth())


def test_a_matching_generation_gets_the_recorded_bytes(tmp_path):
    app = create_app(backend=ReplayBackend(har=str(har(tmp_path))))
    reply = generate(app, {"prompt": "a barn", "seed": 5, "width": 256, "height": 256})
    assert reply.status_code == 200
    data_url = reply.get_json()["images"][0]["data_url"]
    assert base64.b64decode(data_url.partition(",")[2]) == RECORDED


@pytest.mark.parametrize(
    "changed", [{"seed": 6}, {"prompt": "a house"}, {"num_inference_steps": 4}, {"width": 512}]
)
def test_anything_else_falls_back_to_the_placeholder(tmp_path, changed):
    app = create_app(backend=ReplayBackend(har=str(har(tmp_path))))
    reply = generate(app, {"prompt": "a barn", "seed": 5, "width": 256, "height": 256, **changed})
    assert reply.status_code == 200
    data_url = reply.get_json()["images"][0]["data_url"]
    assert base64.b64decode(data_url.partition(",")[2]) != RECORDED


def test_the_unavailable_fallback_is_the_documented_503(tmp_path):
    backend = ReplayBackend(har=str(har(tmp_path)), fallback="unavailable")
    reply = generate(create_app(backend=backend), {"prompt": "elsewhere"})
    assert reply.status_code == 503
    assert reply.get_json()["code"] == "model_unavailable"
    assert reply.headers["Retry-After"].isdigit()


def test_the_backend_is_found_by_name(tmp_path):
    assert isinstance(load_backend("replay", har=str(har(tmp_path))), ReplayBackend)


@pytest.mark.parametrize(
    "options",
    [{}, {"har": "/no/such/file.har"}, {"har": "HAR", "fallback": "404-problem"}],
)
def test_wrong_options_are_refused(tmp_path, options):
    if options.get("har") == "HAR":
        options = {**options, "har": str(har(tmp_path))}
    with pytest.raises(BackendError):
        ReplayBackend(**options)

"""Prefer-header scenarios: every documented response of every operation, on demand."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from mockserver.app import create_app
from mockserver.config import Config
from mockserver.scenarios import parse_prefer
from tests.support import auth

URL_FOR = {"/api/v1/models/{model_id}": "/api/v1/models/sdxl-lightning"}
REQUIRED_HEADERS = {401: "WWW-Authenticate", 405: "Allow", 429: "Retry-After", 503: "Retry-After"}


def documented(spec):
    for path, item in spec.document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                yield path, method.upper(), int(status), response


def test_parse_prefer():
    assert parse_prefer("code=429") == {"code": "429"}
    assert parse_prefer('code=400, example="stepCapExceeded"; x=1') == {
        "code": "400",
        "example": "stepCapExceeded",
    }
    assert parse_prefer("respond-async, wait=10") == {"respond-async": "", "wait": "10"}


def test_every_documented_status_can_be_forced(client, spec):
    count = 0
    for path, method, status, response in documented(spec):
        url = URL_FOR.get(path, path)
        reply = client.open(url, method=method, headers={"Prefer": f"code={status}"})
        assert reply.status_code == status, (method, path, status)
        [(media_type, content)] = response["content"].items()
        assert reply.mimetype == media_type
        errors = list(Draft202012Validator(content["schema"]).iter_errors(reply.get_json()))
        assert not errors, (method, path, status, errors)
        for name in response.get("headers", {}):
            assert reply.headers.get(name), (method, path, status, name)
        if status in REQUIRED_HEADERS:
            assert REQUIRED_HEADERS[status] in response.get("headers", {})
        assert reply.headers["Preference-Applied"] == f"code={status}"
        count += 1
    assert count >= 20


def test_the_allow_header_of_a_forced_405_is_the_routes(client):
    reply = client.get("/api/v1/models", headers={"Prefer": "code=405"})
    assert reply.status_code == 405
    assert "GET" in reply.headers["Allow"] and "POST" not in reply.headers["Allow"]


@pytest.mark.parametrize(
    ("example", "status", "code"),
    [
        ("stepCapExceeded", 400, "step_cap_exceeded"),
        ("unknownModel", 400, "unknown_model"),
        ("missingApiKey", 401, "missing_api_key"),
        ("invalidApiKey", 401, "invalid_api_key"),
    ],
)
def test_a_named_example(client, example, status, code):
    reply = client.post(
        "/api/v1/generate", json={"prompt": "p"}, headers={"Prefer": f"example={example}"}
    )
    assert reply.status_code == status
    assert reply.get_json()["code"] == code


def test_an_undocumented_choice_is_a_clear_400(client):
    reply = client.post("/api/v1/generate", json={"prompt": "p"}, headers={"Prefer": "code=418"})
    assert reply.status_code == 400
    body = reply.get_json()
    assert (body["code"], body["field"]) == ("invalid_request", "Prefer")
    assert "418" in body["detail"] and "429" in body["detail"]
    reply = client.get("/api/v1/models", headers={"Prefer": "example=nothingLikeThis"})
    assert reply.status_code == 400 and reply.get_json()["field"] == "Prefer"


def test_other_preferences_change_nothing(client):
    reply = client.get("/api/v1/models", headers={**auth(), "Prefer": "return=minimal"})
    assert reply.status_code == 200
    assert "Preference-Applied" not in reply.headers


def test_scenarios_can_be_turned_off(spec):
    client = create_app(Config(scenarios=False), spec=spec).test_client()
    reply = client.get("/api/v1/models", headers={**auth(), "Prefer": "code=503"})
    assert reply.status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/generate", "/api/v1/models"])
def test_a_code_of_thousands_of_digits_is_a_short_400_without_a_key(client, path):
    method = "POST" if path.endswith("generate") else "GET"
    reply = client.open(path, method=method, json={}, headers={"Prefer": "code=" + "4" * 4301})
    assert reply.status_code == 400
    body = reply.get_json()
    assert (body["code"], body["field"]) == ("invalid_request", "Prefer")
    assert "characters)" in body["detail"] and len(reply.data) < 1000


def test_an_example_of_30000_backslashes_gives_a_short_answer(client):
    prefer = 'example="' + "\\" * 30_000 + '"'
    reply = client.post("/api/v1/generate", json={"prompt": "p"}, headers={"Prefer": prefer})
    assert reply.status_code == 400
    assert len(reply.data) < 1000, len(reply.data)
    assert "Preference-Applied" not in reply.headers


@pytest.mark.parametrize(
    ("prefer", "applied"),
    [
        ("respond-async, code=429, wait=10", "code=429"),
        (
            'code=400, example="stepCapExceeded"; x=1, return=minimal',
            "code=400, example=stepCapExceeded",
        ),
        ("example=unknownModel, " + "x" * 60_000, "example=unknownModel"),
    ],
)
def test_preference_applied_names_only_what_was_applied(client, prefer, applied):
    reply = client.post("/api/v1/generate", json={"prompt": "p"}, headers={"Prefer": prefer})
    assert reply.status_code in (400, 429)
    assert reply.headers["Preference-Applied"] == applied


def test_only_the_start_of_a_long_prefer_header_is_read():
    assert parse_prefer("code=429, " + "a=b, " * 10_000 + "example=late") == {
        "code": "429",
        "a": "b",
    }
    assert parse_prefer('example="a\\"b"') == {"example": 'a"b'}
    assert parse_prefer('example="unclosed') == {"example": '"unclosed'}


def test_a_journal_limit_of_thousands_of_digits_is_a_short_400(client):
    reply = client.get("/__admin/requests?limit=" + "9" * 5000)
    assert reply.status_code == 200  # more than the journal holds: the whole journal
    reply = client.get("/__admin/requests?limit=" + "0" * 5000)
    assert reply.status_code == 400 and len(reply.data) < 1000
    assert client.get("/__admin/requests?limit=0001").status_code == 200

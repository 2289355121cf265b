"""Redaction by structure: keys of any shape are masked whole, wherever they sit."""

from __future__ import annotations

import base64
import logging

import pytest

from mockserver.redact import mask, redact_headers, redact_query, redact_text, text_redactor
from tests.support import KEY_FOR_PLAN, auth

KEYS = [
    "sk_test_pro_0123456789abcdef",
    "alice-3f9a5d2e7b",  # no sk_ prefix, from a --keys file
    "sk_live_abc.SECRETPART.xyz",  # dotted: every part is secret
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",  # a JWT
]
BASIC = base64.b64encode(b"alice:hunter2-SECRETPART").decode()


def parts(secret: str) -> list[str]:
    """Pieces of a secret that must not survive: its dotted parts and its longer fragments."""
    pieces = [piece for piece in secret.replace("_", ".").split(".") if len(piece) >= 6]
    return [secret, *pieces, secret[-10:]]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("header", ["Authorization", "proxy-authorization"])
def test_the_whole_credential_is_masked_and_the_scheme_kept(key, header):
    redacted = redact_headers({header: f"Bearer {key}", "Content-Type": "application/json"})
    assert redacted[header] == f"Bearer {mask(key)}"
    assert redacted["Content-Type"] == "application/json"
    for piece in parts(key):
        assert piece not in str(redacted)


def test_basic_credentials_and_bare_values_are_masked():
    redacted = redact_headers({"Authorization": f"Basic {BASIC}", "Proxy-Authorization": "k3y"})
    assert redacted["Authorization"] == f"Basic {mask(BASIC)}"
    assert redacted["Proxy-Authorization"] == mask("k3y")
    assert BASIC not in str(redacted)


def test_cookie_values_are_masked_and_names_kept():
    redacted = redact_headers(
        {"Cookie": "session=abc123SECRET; theme=dark", "Set-Cookie": "sid=XYZSECRET; HttpOnly"}
    )
    assert redacted["Cookie"].startswith("session=[redacted ")
    assert " theme=[redacted " in redacted["Cookie"]
    assert "SECRET" not in str(redacted)
    assert redacted["Set-Cookie"].endswith("; HttpOnly")


@pytest.mark.parametrize(
    "name",
    ["api_key", "apikey", "key", "token", "access_token", "secret", "client_secret", "password",
     "signature", "X-Amz-Signature", "auth", "session_id"],
)  # fmt: skip
def test_credential_like_query_parameters_are_masked(name):
    redacted = redact_query(f"page=2&{name}=SECRETPART123&q=fox")
    assert "SECRETPART123" not in redacted
    assert "page=2" in redacted and "q=fox" in redacted


@pytest.mark.parametrize("query", ["", "page=2&q=fox", "monkey=1&keyboard=2", "tokenizer=x"])
def test_other_query_strings_are_left_alone(query):
    assert redact_query(query) == query


def test_text_loses_every_given_secret_even_one_inside_another():
    text = f"sent {KEYS[2]} and {KEYS[1]}; also sk_live_abc"
    redacted = redact_text(text, [KEYS[1], KEYS[2], "sk_live_abc", ""])
    for secret in KEYS[1:3]:
        for piece in parts(secret):
            assert piece not in redacted
    assert mask(KEYS[2]) in redacted  # the longer secret is masked whole, not piece by piece


def test_the_401_log_line_shows_no_part_of_the_key(client, caplog):
    """The server's own logs go through the same masking."""
    secret = "alice-3f9a5d2e7bSECRETPART"
    with caplog.at_level(logging.INFO, logger="mockserver"):
        client.get("/api/v1/models", headers={"Authorization": f"Bearer {secret}"})
        client.get("/api/v1/models", headers={"Authorization": f"Basic {BASIC}"})
    assert "401" in caplog.text
    for piece in [*parts(secret), BASIC, "alice"]:
        assert piece not in caplog.text
    assert KEY_FOR_PLAN["pro"] not in caplog.text


@pytest.mark.parametrize("name", ["X-Api-Key", "api-key", "X-Auth-Token", "X-Amz-Security-Token"])
def test_headers_named_like_credentials_are_masked_whole(name):
    redacted = redact_headers({name: "SECRETPART123", "X-Request-Id": "r-1", "Keep-Alive": "5"})
    assert redacted[name] == mask("SECRETPART123")
    assert redacted["X-Request-Id"] == "r-1" and redacted["Keep-Alive"] == "5"


def test_a_prepared_redactor_masks_as_redact_text_does():
    redact = text_redactor(KEYS)
    text = f"a {KEYS[0]} b {KEYS[2]} c"
    assert redact(text) == redact_text(text, KEYS) == f"a {mask(KEYS[0])} b {mask(KEYS[2])} c"
    assert text_redactor([])(text) == text


def test_a_path_cannot_forge_an_access_log_line_or_reach_the_terminal(client, caplog):
    """Decoded control characters in a path (%0a, %1b, %00) are escaped in the log line."""
    forged = "/x%0a08:99:99%20POST%20/api/v1/generate%20200%201.0%20ms%20enterprise%1b[31m%00"
    with caplog.at_level(logging.INFO, logger="mockserver.access"):
        assert client.get(forged).status_code == 404
    (line,) = [record.getMessage() for record in caplog.records]
    assert "\n" not in line and "\x1b" not in line and "\x00" not in line
    assert (
        line.startswith("GET /x\\n08:99:99 POST /api/v1/generate") and "\\x1b[31m\\x00 404" in line
    )


def test_a_path_starting_with_two_slashes_is_not_routed(client):
    """Routing would read ``//api/v1/models`` as ``/api/v1/models``; like ``/api//v1/models`` it
    is no route of the API."""
    answer = client.get("/", environ_overrides={"PATH_INFO": "//api/v1/models"}, headers=auth())
    assert answer.status_code == 404 and answer.get_json()["code"] == "not_found"

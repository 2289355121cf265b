"""API keys: every way to get a 401, and what a 401 says."""

from __future__ import annotations

import pytest

from mockserver.auth import KeyStore, mask
from mockserver.problems import Problem
from tests.support import KEY_FOR_PLAN, auth, fingerprints_keyed_with

VALID = KEY_FOR_PLAN["pro"]


@pytest.mark.parametrize(
    ("header", "code", "error"),
    [
        (None, "missing_api_key", None),
        ("", "missing_api_key", None),
        ("Bearer", "missing_api_key", "invalid_request"),
        ("Bearer ", "missing_api_key", "invalid_request"),
        (f"Basic {VALID}", "missing_api_key", "invalid_request"),
        (VALID, "missing_api_key", "invalid_request"),
        (f"Bearer  {VALID}", "missing_api_key", "invalid_request"),
        (f"Bearer {VALID} x", "missing_api_key", "invalid_request"),
        (f"Bearer {VALID[:-1]}", "invalid_api_key", "invalid_token"),
        (f"Bearer {VALID}0", "invalid_api_key", "invalid_token"),
        ("Bearer sk_live_unknown", "invalid_api_key", "invalid_token"),
    ],
)
def test_every_bad_authorization_is_401_with_a_challenge(client, header, code, error):
    headers = {} if header is None else {"Authorization": header}
    for path, method in [("/api/v1/generate", "post"), ("/api/v1/models", "get")]:
        response = getattr(client, method)(path, json={"prompt": "p"}, headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] == code
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="imageapi"')
        assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
        assert VALID not in response.get_data(as_text=True)


def test_scheme_is_case_insensitive(client):
    response = client.get("/api/v1/models", headers={"Authorization": f"bearer {VALID}"})
    assert response.status_code == 200


def test_auth_is_checked_before_the_body(client):
    response = client.post(
        "/api/v1/generate", data=b"{not json", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 401


def test_unknown_key_is_never_echoed_whole(client):
    secret = "sk_live_" + "s3cr3t" * 8
    body = client.get("/api/v1/models", headers={"Authorization": f"Bearer {secret}"}).get_data(
        as_text=True
    )
    assert secret not in body
    assert mask(secret) in body


def test_keystore_maps_keys_to_plans():
    store = KeyStore({"sk_a": "free", "sk_b": "pro"})
    assert store.authenticate("Bearer sk_b") == ("sk_b", "pro")
    with pytest.raises(Problem) as raised:
        store.authenticate("Bearer sk_c")
    assert raised.value.status == 401


def test_mask_shows_nothing_of_the_key():
    with fingerprints_keyed_with("a fixed secret, so that the hex digits are known"):
        for key in ("sk_test_free_0123456789abcdef", "alice-3f9a8b7c", "short"):
            shown = mask(key)
            assert key[:4] not in shown and key[-4:] not in shown
            assert shown == mask(key) != mask(key + "x")  # a fingerprint tells keys apart


def test_keys_file_replaces_the_development_keys(tmp_path, spec):
    from mockserver.app import create_app
    from mockserver.config import Config, load_keys

    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("sk_custom_team_key: basic\n")
    client = create_app(Config(keys=load_keys(keys_file)), spec=spec).test_client()
    assert (
        client.get(
            "/api/v1/models", headers={"Authorization": "Bearer sk_custom_team_key"}
        ).status_code
        == 200
    )
    assert client.get("/api/v1/models", headers=auth("basic")).status_code == 401


def test_keys_file_must_be_a_mapping(tmp_path):
    from mockserver.config import load_keys

    bad = tmp_path / "keys.json"
    bad.write_text('["sk_a"]')
    with pytest.raises(ValueError, match="mapping"):
        load_keys(bad)

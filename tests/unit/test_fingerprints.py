"""What logs, the journal and a 401 show of a key is a fingerprint keyed with the server's
secret (HMAC-SHA256): without the secret, trying short keys offline against it finds nothing."""

from __future__ import annotations

import hashlib
import hmac

from mockserver.app import create_app
from mockserver.config import Config
from mockserver.redact import mask, text_redactor
from tests.support import fingerprints_keyed_with

KEY = "sk_abc"  # short enough to find by trying every key, were the fingerprint unkeyed
SECRET = "the server's secret, 64 hex digits in a served mock"


def hmac_fingerprint(secret: str, key: str) -> str:
    digest = hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()
    return f"[redacted {digest[:8]}]"


def test_a_fingerprint_is_an_hmac_of_the_key_with_the_servers_secret():
    with fingerprints_keyed_with(SECRET):
        assert mask(KEY) == hmac_fingerprint(SECRET, KEY)
        assert mask(KEY) != f"[redacted {hashlib.sha256(KEY.encode()).hexdigest()[:8]}]"
    with fingerprints_keyed_with(SECRET + " and another"):
        assert mask(KEY) != hmac_fingerprint(SECRET, KEY)


def test_a_redactor_prepared_under_one_secret_masks_with_it():
    with fingerprints_keyed_with(SECRET):
        redact = text_redactor([KEY])
    assert redact(f"my key is {KEY}") == f"my key is {hmac_fingerprint(SECRET, KEY)}"


def test_an_app_keys_its_fingerprints_with_the_configured_secret(spec):
    with fingerprints_keyed_with("a placeholder, replaced by the app's"):
        client = create_app(Config(fingerprint_secret=SECRET), spec=spec).test_client()
        answer = client.get("/api/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 401
    assert hmac_fingerprint(SECRET, KEY) in answer.get_json()["detail"]

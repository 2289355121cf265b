"""The request journal: what the UI sent, newest first, keys masked, resettable."""

from __future__ import annotations

import requests

from mockserver.app import create_app
from mockserver.auth import mask
from mockserver.config import Config
from mockserver.journal import Journal, mask_keys
from mockserver.store import EmbeddedStore
from tests.conftest import KEY_FOR_PLAN, auth


def test_mask_keys():
    key = "sk_test_pro_0123456789abcdef"
    assert mask_keys(f"Bearer {key}") == f"Bearer {mask(key)}"
    live = "sk_live_abcdefgh12345"
    assert mask_keys(f'{{"note": "{live}"}}') == f'{{"note": "{mask(live)}"}}'


def test_requests_are_journaled_with_keys_masked(spec):
    client = create_app(Config(journal_size=3), spec=spec).test_client()
    client.post("/api/v1/generate", json={"prompt": "first"}, headers=auth("pro"))
    client.post("/api/v1/generate", json={"prompt": "p", "num_inference_steps": 0}, headers=auth())
    client.get("/api/v1/models", headers={"Authorization": "Bearer sk_wrong_key_123"})
    entries = client.get("/__admin/requests").get_json()["requests"]
    assert [e["status"] for e in entries] == [401, 400, 200]
    assert entries[0]["code"] == "invalid_api_key"
    assert entries[1]["code"] == "step_cap_exceeded"
    assert entries[1]["body"] == {"prompt": "p", "num_inference_steps": 0}
    assert entries[2]["body"] == {"prompt": "first"}
    assert entries[2]["method"] == "POST" and entries[2]["path"] == "/api/v1/generate"
    text = client.get("/__admin/requests").get_data(as_text=True)
    assert KEY_FOR_PLAN["pro"] not in text and "sk_wrong_key_123" not in text
    assert entries[2]["headers"]["Authorization"] == f"Bearer {mask(KEY_FOR_PLAN['pro'])}"


def test_the_journal_keeps_the_last_n_and_can_be_cleared():
    journal = Journal(EmbeddedStore(), size=5)
    for i in range(200):
        journal.record(
            method="GET", path=f"/{i}", query="", headers={}, body=b"", status=200, code=None,
            duration_ms=1,
        )  # fmt: skip
    assert [e["path"] for e in journal.entries()] == ["/199", "/198", "/197", "/196", "/195"]
    assert len(journal.entries(limit=2)) == 2
    journal.clear()
    assert journal.entries() == []


def test_delete_resets_it(client):
    client.get("/api/v1/models", headers=auth())
    assert client.get("/__admin/requests").get_json()["requests"]
    assert client.delete("/__admin/requests").status_code == 204
    assert client.get("/__admin/requests").get_json()["requests"] == []


def test_the_workers_of_a_server_share_one_journal(server):
    requests.delete(server.url + "/__admin/requests", timeout=10)
    for i in range(12):
        requests.post(
            server.url + "/api/v1/generate",
            json={"prompt": f"request {i}", "width": 256, "height": 256},
            headers=auth(),
            timeout=30,
        )
    prompts = [
        e["body"]["prompt"]
        for e in requests.get(server.url + "/__admin/requests", timeout=10).json()["requests"]
    ]
    assert prompts == [f"request {i}" for i in reversed(range(12))]

"""A served mock keys its fingerprints with a secret its command line draws and hands to every
worker: within one server's life a key has one fingerprint, in the banner, the 401 answers of
every worker and the journal; the next server gives it another."""

from __future__ import annotations

import re

import requests

from tests.support import RunningServer

TEAM_KEY = "sk_team_alice_3f9a1c2e"
FINGERPRINT = re.compile(r"\[redacted [0-9a-f]{8}\]")


def fingerprints_of_one_server(keys_file) -> tuple[str, str]:
    """(the unknown key's fingerprint, the team key's) as one server shows them."""
    server = RunningServer("--workers", "2", "--keys", str(keys_file), "--no-rate-limits")
    try:
        unknown = set()
        for _ in range(24):  # each call its own connection, which either worker may take
            answer = requests.get(
                server.url + "/api/v1/models",
                headers={"Authorization": "Bearer sk_unknown_0123"},
                timeout=30,
            )
            assert answer.status_code == 401
            unknown |= set(FINGERPRINT.findall(answer.json()["detail"]))
        assert len(unknown) == 1, unknown
        for _ in range(6):
            answer = requests.get(
                server.url + "/api/v1/models",
                headers={"Authorization": f"Bearer {TEAM_KEY}"},
                timeout=30,
            )
            assert answer.status_code == 200
        journal = requests.get(server.url + "/__admin/requests?limit=6", timeout=30).json()
        journaled = {entry["headers"]["Authorization"] for entry in journal["requests"]}
    finally:
        output = server.stop()
    assert TEAM_KEY not in output
    banner = re.search(r"pro\s+(\[redacted [0-9a-f]{8}\])", output)
    assert banner, output
    assert journaled == {f"Bearer {banner.group(1)}"}
    return unknown.pop(), banner.group(1)


def test_a_key_has_one_fingerprint_across_workers_and_another_in_the_next_server(tmp_path):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(f"{TEAM_KEY}: pro\n")
    first = fingerprints_of_one_server(keys_file)
    second = fingerprints_of_one_server(keys_file)
    assert first[0] != second[0] and first[1] != second[1]

"""The real server under granian: bad input over the wire, schemathesis."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support import ROOT, RunningServer, auth

GENERATE = "/api/v1/generate"


def raw_request(server, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
        return b"".join(chunks)


BAD_BODIES = [
    (b'{"prompt": "p"', "application/json", 400),
    (b'{"prompt": "\xc3\x28"}', "application/json", 400),
    (b'{"prompt": "p", "num_inference_steps": 8.5}', "application/json", 400),
    (b'{"prompt": "p", "num_inference_steps": "8"}', "application/json", 400),
    (b'{"prompt": "p", "width": 99999}', "application/json", 400),
    (b'{"prompt": "p", "extra": 1}', "application/json", 400),
    (b'{"prompt": "p", "seed": ' + b"7" * 4400 + b"}", "application/json", 400),
    (b'{"prompt": "p", "seed": 1' + b"0" * 400 + b"}", "application/json", 400),
    (b'{"prompt": "p"}', "text/plain", 415),
    (b"x" * (10 * 1024 * 1024), "application/json", 413),
]


@pytest.mark.parametrize(("data", "content_type", "status"), BAD_BODIES)
def test_bad_input_is_a_problem_and_the_server_keeps_serving(server, data, content_type, status):
    response = requests.post(
        server.url + GENERATE,
        data=data,
        headers={**auth(), "Content-Type": content_type},
        timeout=30,
    )
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"]
    assert server.alive()


def test_chunked_bodies_are_read_and_limited(server):
    def chunked(body: bytes) -> bytes:
        head = (
            f"POST {GENERATE} HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: {auth()['Authorization']}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        return head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"

    ok = raw_request(server, chunked(b'{"prompt": "chunked", "width": 256, "height": 256}'))
    assert ok.startswith(b"HTTP/1.1 200")
    too_big = raw_request(server, chunked(b'{"prompt": "' + b"a" * 200_000 + b'"}'))
    assert too_big.startswith(b"HTTP/1.1 413")
    assert server.alive()


def test_every_status_over_http(server):
    url = server.url
    checks = [
        (requests.post(url + GENERATE, json={"prompt": "p"}, headers=auth()), 200),
        (requests.post(url + GENERATE, json={"prompt": "p"}), 401),
        (
            requests.post(
                url + GENERATE, json={"prompt": "p", "model": "flux-dev"}, headers=auth("free")
            ),
            403,
        ),
        (
            requests.post(
                url + GENERATE, json={"prompt": "p", "num_inference_steps": 9}, headers=auth()
            ),
            400,
        ),
        (requests.get(url + "/api/v1/models/none", headers=auth()), 404),
        (requests.put(url + GENERATE, json={}, headers=auth()), 405),
        (
            requests.post(
                url + GENERATE, data="p", headers={**auth(), "Content-Type": "text/plain"}
            ),
            415,
        ),
    ]
    for response, status in checks:
        assert response.status_code == status, response.text
        if status >= 400:
            assert response.headers["Content-Type"] == "application/problem+json"
    assert checks[1][0].headers["WWW-Authenticate"].startswith("Bearer")
    assert "POST" in checks[5][0].headers["Allow"]


def test_a_cap_edited_in_openapi_yaml_changes_the_server(tmp_path):
    """No Python edit: the cap for sdxl-lightning, lowered from 50 to 12 in the YAML text."""
    text = (ROOT / "openapi.yaml").read_text()
    rule = (
        "const: sdxl-lightning\n              then:\n                properties:\n"
        "                  num_inference_steps:\n                    maximum: 50"
    )
    catalog = "negative_prompt: true\n      plans: [basic, pro, enterprise]"
    assert rule in text
    edited = text.replace(rule, rule.replace("maximum: 50", "maximum: 12"))
    edited = edited.replace(
        "      max_steps: 50\n      " + catalog, "      max_steps: 12\n      " + catalog
    )
    spec = tmp_path / "openapi.yaml"
    spec.write_text(edited)
    server = RunningServer("--workers", "1", "--spec", str(spec))
    try:
        body = {"prompt": "p", "model": "sdxl-lightning"}
        ok = requests.post(
            server.url + GENERATE, json={**body, "num_inference_steps": 12}, headers=auth()
        )
        over = requests.post(
            server.url + GENERATE, json={**body, "num_inference_steps": 13}, headers=auth()
        )
        model = requests.get(server.url + "/api/v1/models/sdxl-lightning", headers=auth()).json()
    finally:
        server.stop()
    assert ok.status_code == 200
    assert over.status_code == 400 and over.json()["code"] == "step_cap_exceeded"
    assert model["max_steps"] == 12


def test_a_spec_edited_in_one_place_only_does_not_start(tmp_path):
    catalog = (
        "      max_steps: 50\n      negative_prompt: true\n      plans: [basic, pro, enterprise]"
    )
    text = (ROOT / "openapi.yaml").read_text()
    assert catalog in text
    text = text.replace(catalog, catalog.replace("max_steps: 50", "max_steps: 12"))
    spec = tmp_path / "openapi.yaml"
    spec.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "--spec", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "catalog and request schema disagree" in result.stderr


@pytest.mark.parametrize("plan", ["free", "enterprise"])
def test_schemathesis_finds_no_failure(server, plan):
    """`st run openapi.yaml --url URL` with schemathesis.toml, as a team would run it."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "run",
            str(ROOT / "openapi.yaml"),
            "--url",
            server.url,
            "--seed",
            "1",
            "--max-examples",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        # schemathesis.toml sends the key in IMAGEAPI_KEY_ENTERPRISE.
        env={**os.environ, "IMAGEAPI_KEY_ENTERPRISE": auth(plan)["Authorization"].split()[1]},
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "No issues found" in result.stdout

"""A corpus of hostile and malformed requests, sent raw to the real server under granian: no
answer is a 5xx, and the server keeps serving after each one."""

from __future__ import annotations

import contextlib
import re
import socket

import pytest

from tests.support import KEY_FOR_PLAN

KEY = KEY_FOR_PLAN["enterprise"]
GENERATE = "/api/v1/generate"


def post(
    body: bytes, *, content_type="application/json", extra="", key=True, path=GENERATE
) -> bytes:
    authorization = f"Authorization: Bearer {KEY}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}"
        "Connection: close\r\n\r\n"
    ).encode() + body


def get(target: str | bytes, extra: str = "", method: str = "GET") -> bytes:
    target = target.encode() if isinstance(target, str) else target
    return (
        method.encode()
        + b" "
        + target
        + f" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n{extra}"
        "Connection: close\r\n\r\n".encode()
    )


MODELS = "/api/v1/models"
JSON = "application/json"
DIGITS = "4" * 4301  # past Python's limit on the digits int() reads
SLASHES = "\\" * 30_000
LONG_LENGTH = (
    b"POST /api/v1/generate HTTP/1.1\r\nHost: l\r\nContent-Length: " + b"9" * 30
    + b"\r\nConnection: close\r\n\r\n{}"
)  # fmt: skip

# (name, raw request, the statuses it may get; None: the server may also just close)
CORPUS = [
    ("bad json", post(b'{"prompt": "p"'), {400}),
    ("invalid utf-8", post(b'{"prompt": "\xc3\x28"}'), {400}),
    ("lone surrogate", post(b'{"prompt": "\\ud800"}'), {200, 400}),
    ("non-ascii prompt", post('{"prompt": "un renard roux 🦊 狐"}'.encode()), {200}),
    ("nul in json", post(b'{"prompt": "a\x00b"}'), {400}),
    ("deep nesting", post(b"[" * 100_000 + b"]" * 100_000), {400, 413}),
    ("float for integer", post(b'{"prompt": "p", "width": 512.0}'), {200, 400}),
    ("huge integer", post(b'{"prompt": "p", "seed": 1' + b"0" * 5000 + b"}"), {400}),
    ("10 MB body", post(b"x" * (10 * 1024 * 1024)), {413}),
    ("wrong media type", post(b'{"prompt": "p"}', content_type="text/plain"), {415}),
    ("no key, bad body", post(b"{", key=False), {401}),
    ("non-ascii key", get("/api/v1/models", "Authorization: Bearer cl\xe9\r\n"), {400, 401}),
    ("basic auth", get("/api/v1/models", "Authorization: Basic YTpi\r\n"), {401}),
    ("prefer garbage", get("/api/v1/models", "Prefer: code=999, example=\x01\r\n"), {200, 400}),
    ("header 100 KB", get("/api/v1/models", f"X-Big: {'b' * 100_000}\r\n"), {431}),
    ("header 600 KB", get("/api/v1/models", f"X-Big: {'b' * 600_000}\r\n"), {431, None}),
    ("uri 9 KB", get("/api/v1/models?q=" + "a" * 9000), {414}),
    ("uri 70 KB", get("/api/v1/models?q=" + "a" * 70_000), {414, None}),
    ("leading double slash", get("//api/v1/models"), {404}),
    ("inner double slash", get("/api//v1/models", "Host: evil.example\r\n"), {404}),
    ("double slash, foreign host", get("//evil.example/x", "X-Forwarded-Host: evil\r\n"), {404}),
    ("docs traversal", get("/docs/../../etc/passwd"), {404}),
    ("docs traversal encoded", get("/docs/%2e%2e/%2e%2e/etc/passwd"), {404}),
    ("docs traversal backslash", get("/docs/..%5c..%5cetc%5cpasswd"), {404}),
    ("percent-encoded bad utf-8", get("/api/v1/models/%ff%fe"), {404}),
    ("encoded surrogate", get("/api/v1/models/%ed%a0%80"), {404}),
    ("raw non-ascii path", get(b"/api/v1/models/\xc3\xa9"), {400, 404, None}),
    ("odd method", get("/api/v1/models", method="PROPFIND"), {405}),
    ("trace", get("/api/v1/models", method="TRACE"), {405}),
    ("made-up method", get(GENERATE, method="BREW"), {405}),
    ("options", get(GENERATE, method="OPTIONS"), {200}),
    ("absolute-form target", get("http://evil.example/api/v1/models"), {200, 400}),
    (
        "smuggling: CL and TE",
        b"POST /api/v1/generate HTTP/1.1\r\nHost: l\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
        {400, 401, None},
    ),
    (
        "smuggling: two lengths",
        b"POST /api/v1/generate HTTP/1.1\r\nHost: l\r\nContent-Length: 4\r\n"
        b"Content-Length: 40\r\nConnection: close\r\n\r\n{}{}",
        {400, None},
    ),
    (
        "bad chunk size",
        b"POST /api/v1/generate HTTP/1.1\r\nHost: l\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        {400, 401, None},
    ),
    (
        "negative length",
        b"POST /api/v1/generate HTTP/1.1\r\nHost: l\r\nContent-Length: -1\r\n\r\n",
        {400, None},
    ),
    ("header without colon", get("/api/v1/models", "NoColonHere\r\n"), {400, None}),
    ("nul in header", get("/api/v1/models", "X-A: a\x00b\r\n"), {400, None}),
    ("http/1.0", b"GET /api/v1/models HTTP/1.0\r\n\r\n", {401}),
    ("garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64, {400, None}),
    ("expect 100-continue", post(b'{"prompt": "p"}', extra="Expect: 100-continue\r\n"), {200}),
    ("cut-off head", b"GET /api/v1/models HTTP/1.1\r\nHost: l", {None}),
    # Every header value is parsed with bounds: none reaches int(), a regex or a decoder whole.
    ("prefer code of 4301 digits", post(b"{}", key=False, extra=f"Prefer: code={DIGITS}\r\n"),
     {400}),
    ("prefer code of 4301 digits, models", get(MODELS, f"Prefer: code={DIGITS}\r\n"), {400}),
    ("prefer example of 30000 backslashes",
     post(b"{}", extra=f'Prefer: example="{SLASHES}"\r\n'), {400}),
    ("prefer 60 KB of preferences", get(MODELS, f"Prefer: code=200, {'a=b, ' * 10_000}\r\n"),
     {200}),
    ("prefer unclosed quote", get(MODELS, 'Prefer: example="abc\r\n'), {400}),
    ("bearer of 60 KB", get(MODELS, f"Authorization: Bearer {'a' * 60_000}\r\n"), {401}),
    ("bearer of 60 KB of spaces", get(MODELS, f"Authorization: Bearer {' ' * 60_000}x\r\n"), {401}),
    ("content-type of 60 KB", post(b"{}", content_type=JSON + "; a=b" * 10_000), {200, 400, 415}),
    ("content-type quotes", post(b"{}", content_type=JSON + '; a="' + '\\"' * 10_000),
     {200, 400, 415}),
    ("content-length of 30 digits", LONG_LENGTH, {400, 413, None}),
    ("accept of 60 KB", get(MODELS, f"Accept: {'text/html;q=0.1, ' * 3500}\r\n"), {200}),
    ("origin of 60 KB", get(MODELS, f"Origin: http://{'a' * 60_000}\r\n"), {200}),
    ("journal limit of 5000 digits", get("/__admin/requests?limit=" + "0" * 5000), {400}),
    ("journal limit of 5000 nines", get("/__admin/requests?limit=" + "9" * 5000), {200}),
    ("query of 8000 percent escapes", get(MODELS + "?" + "%ff" * 2600), {200}),
    ("journal count, a status of 400 digits",
     post(b'{"status": 1' + b"0" * 400 + b"}", path="/__admin/requests/count"), {400}),
]  # fmt: skip


def send(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with contextlib.suppress(OSError):  # the server may refuse mid-request and close
            sock.sendall(payload)  # no half-close: hyper would take it for a hang-up
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


@pytest.mark.parametrize(("name", "payload", "allowed"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_gets_no_5xx_and_the_server_lives(server, name, payload, allowed):
    answer = send(server.port, payload)
    # The last status line: an `Expect: 100-continue` answer starts with a 100.
    statuses = re.findall(rb"^HTTP/1\.[01] (\d{3})", answer, re.MULTILINE)
    status = int(statuses[-1]) if statuses else None
    assert status in allowed, answer[:300]
    head, _, _ = answer.partition(b"\r\n\r\n")
    assert b"evil" not in head.lower()  # nothing built from what the client named as host
    if status is not None and status >= 400 and answer.partition(b"\r\n\r\n")[2]:
        # Every refusal with a body that the app shapes is a problem document, and a short one:
        # what a client sent is quoted in part, never echoed whole.
        assert b"application/problem+json" in head.lower()
        assert len(answer) < 4096, answer[:300]
    # Preference-Applied names only what was applied: never the client's header echoed back.
    applied = re.search(rb"(?im)^preference-applied: (.*)$", head)
    assert applied is None or len(applied.group(1)) < 100
    assert server.alive()

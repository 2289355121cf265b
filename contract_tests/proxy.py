"""``imageapi-contract proxy``: a validating proxy that judges real traffic against the contract.

    imageapi-contract proxy --upstream https://staging.example [--port 8080] [--mode soft|hard]
        [--log violations.jsonl] [--record traffic.har]

Every request is forwarded as it was sent (its bytes and headers, less the hop-by-hop ones) and
every exchange is judged by :mod:`contract_tests.judge`. In ``soft`` mode the answer passes
through with ``Imageapi-Contract-Violations: N``; in ``hard`` mode a broken answer is replaced
by a 502 problem naming the promises. Broken exchanges go to a JSON Lines log; the summary is
served on ``GET /__contract/summary`` and printed on exit, and the exit status is 1 if any
promise was broken. Keys are masked everywhere (``contract_tests.redact``): a key of
``IMAGEAPI_KEY_<PLAN>`` as that variable's name, any other credential as ``***``.

Bounded: an answer the judge reads (a refusal's problem, a 200 of the API's operations) is read
whole before a byte goes on, up to ``--max-answer-mb``; any other (the docs, the spec) streams
through a chunk at a time, whatever its size. At most ``--max-concurrent`` exchanges are in
flight (others wait for a slot up to ``--timeout`` seconds, then get a 503), the upstream has
``--timeout`` seconds to answer; an upstream that is down or too slow gets a 502 or 504 problem
with its own code, never a hang. Connections to the upstream are kept alive and reused.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socketserver
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from http.client import (
    HTTPConnection,
    HTTPException,
    HTTPResponse,
    HTTPSConnection,
    InvalidURL,
    RemoteDisconnected,
)
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from contract_tests.har import HarRecorder, entry
from contract_tests.judge import Answer, Judge, Request, Violation
from contract_tests.redact import Credentials
from contract_tests.spec import load_contract

KEY_VARIABLE = "IMAGEAPI_KEY_{}"
VIOLATIONS_HEADER = "Imageapi-Contract-Violations"
SUMMARY_PATH = "/__contract/summary"
JUDGED_BYTES = 64 * 1024 + 1  # the API's limit, and one byte more
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "host",
    "expect",  # 100-continue: the proxy answers it itself, having read the body
}  # fmt: skip
PROBLEM_BASE = "https://imageapi.org/problems/proxy/"
STREAM_CHUNK = 64 * 1024  # what is held of an answer that streams through, at a time
MAX_LINE = 65536  # the longest request line, header line or chunk-size line read
MAX_HEAD_BYTES = 64 * 1024  # a request's header fields, as the mock's own limit
# A kept-alive connection the upstream closed while it was idle fails in one of these ways.
STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, RemoteDisconnected)


def plan_keys(environ: dict[str, str] | None = None) -> dict[str, str]:
    """key -> plan, from the IMAGEAPI_KEY_<PLAN> variables."""
    environ = dict(os.environ if environ is None else environ)
    return {
        environ[KEY_VARIABLE.format(plan.upper())]: plan
        for plan in load_contract().plans
        if environ.get(KEY_VARIABLE.format(plan.upper()))
    }


def problem(status: int, code: str, detail: str, **extra: Any) -> tuple[int, list, bytes]:
    document = {
        "type": PROBLEM_BASE + code.replace("_", "-"),
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return status, [("Content-Type", "application/problem+json")], json.dumps(document).encode()


class Summary:
    """What the proxy has seen, counted; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exchanges = 0
        self.broken = 0
        self.upstream_errors: Counter[str] = Counter()
        self.promises: Counter[str] = Counter()

    def add(self, violations: list[Violation]) -> None:
        with self.lock:
            self.exchanges += 1
            self.broken += bool(violations)
            self.promises.update(v.promise for v in violations)

    def add_error(self, code: str) -> None:
        with self.lock:
            self.upstream_errors[code] += 1

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "exchanges": self.exchanges,
                "broken_exchanges": self.broken,
                "violations": sum(self.promises.values()),
                "promises": dict(self.promises.most_common()),
                "upstream_errors": dict(self.upstream_errors),
            }


class Upstream:
    """Kept-alive connections to the upstream, reused from one exchange to the next (opening a
    connection costs as much as the rest of a proxied exchange); at most *size* are kept idle."""

    def __init__(self, url: str, timeout: float, size: int):
        parts = urlsplit(url)
        self.kind = SecureConnection if parts.scheme == "https" else Connection
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")  # a deployment mounted under a path
        self.timeout = timeout
        self.size = size
        self.idle: list[HTTPConnection] = []
        self.lock = threading.Lock()

    def take(self, fresh: bool = False) -> tuple[HTTPConnection, bool]:
        """A connection (a *fresh* one if asked) and whether it was kept from an earlier
        exchange (then the upstream may have closed it meanwhile)."""
        with self.lock:
            if self.idle and not fresh:
                return self.idle.pop(), True
        connection = self.kind(self.host, self.port, timeout=self.timeout)
        try:
            connection.connect()  # http.client sets TCP_NODELAY
        except TimeoutError:
            raise
        except OSError as exc:
            raise UpstreamUnreachable(type(exc).__name__) from exc
        return connection, False

    def give_back(self, connection: HTTPConnection) -> None:
        with self.lock:
            if len(self.idle) < self.size:
                self.idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()


class Proxy:
    """The proxy: forwards each exchange (``serve``), judges it, answers the client."""

    def __init__(
        self,
        upstream: str,
        *,
        mode: str = "soft",
        keys: dict[str, str] | None = None,
        log: Path | None = None,
        record: Path | None = None,
        timeout: float = 130.0,
        max_answer_bytes: int = 64 * 1024 * 1024,
        max_concurrent: int = 16,
        check_images: bool = True,
        decode_images: bool = False,
    ):
        self.upstream_url = upstream.rstrip("/")
        self.mode = mode
        self.keys = dict(plan_keys() if keys is None else keys)
        self.judge = Judge(
            load_contract(), self.keys, check_images=check_images, decode_images=decode_images
        )
        self.summary = Summary()
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.log_path = log
        self.log_lock = threading.Lock()
        self.recorder = HarRecorder(record) if record else None
        self.upstream = Upstream(upstream, timeout, max_concurrent)

    def credentials(self) -> Credentials:
        """A fresh masker per exchange (what it remembers stays bounded): the known keys as
        their variables' names."""
        return Credentials(
            {key: KEY_VARIABLE.format(plan.upper()) for key, plan in self.keys.items()}
        )

    def serve(self, client: Handler) -> None:
        """Answer the request *client* has read the head of."""
        if client.command == "GET" and client.path == SUMMARY_PATH:
            client.answer(200, [("Content-Type", "application/json")], self.summary_body())
            return
        if not self.slots.acquire(timeout=self.timeout):
            client.drain()
            status, headers, body = problem(503, "proxy_busy", "Too many exchanges in flight.")
            client.answer(status, [*headers, ("Retry-After", "1")], body)
            return
        try:
            self.exchange(client)
        finally:
            self.slots.release()

    def summary_body(self) -> bytes:
        return json.dumps(self.summary.as_dict()).encode()

    def exchange(self, client: Handler) -> None:
        # The judge needs the body up to one byte past the API's limit (beyond it only its
        # size matters): that much is held, the rest streams through to the upstream.
        chunked = "chunked" in (client.headers.get("Transfer-Encoding") or "").lower()
        body = client.body(chunked)
        head = b""
        started = time.time()
        try:
            for chunk in body:
                head += chunk
                if len(head) >= JUDGED_BYTES:
                    break
            request = Request(client.command, client.path, _joined(client.headers.items()), head)
            response, connection = self.forward(request, head, body, chunked)
        except OutOfBounds as refusal:
            self.summary.add_error(refusal.code)
            client.drain()
            client.answer(*problem(refusal.status, refusal.code, refusal.detail))
            return
        try:
            self.answer(client, request, response, started)
        finally:
            # Read to its end, the connection can carry the next exchange; else it is closed.
            reusable = _read_to_end(response) and not response.will_close
            response.close()
            if reusable:
                self.upstream.give_back(connection)
            else:
                connection.close()

    def forward(
        self, request: Request, head: bytes, body: Iterator[bytes], chunked: bool
    ) -> tuple[HTTPResponse, HTTPConnection]:
        """Send the request upstream and read the answer's head; OutOfBounds for an upstream
        that is down, slow or breaks off, or a request that cannot be sent on."""
        streamed = chunked or len(head) >= JUDGED_BYTES
        while True:
            try:
                connection, kept = self.upstream.take(fresh=streamed)
            except TimeoutError:
                raise OutOfBounds(504, "upstream_timeout", self.timeout_detail()) from None
            except UpstreamUnreachable as exc:
                detail = f"The upstream could not be reached: {exc}."
                raise OutOfBounds(502, "upstream_unreachable", detail) from None
            try:
                self.send(connection, request, head, body, chunked)
                return connection.getresponse(), connection
            except (ValueError, InvalidURL) as exc:  # a target or header http.client refuses
                connection.close()
                detail = f"The request cannot be sent on: {exc}."[:300]
                raise OutOfBounds(400, "request_not_forwardable", detail) from None
            except TimeoutError:
                connection.close()
                raise OutOfBounds(504, "upstream_timeout", self.timeout_detail()) from None
            except (OSError, HTTPException) as exc:
                connection.close()
                # A kept connection the upstream closed while idle: once more on a new one, if
                # the body is still all here.
                if kept and not streamed and isinstance(exc, STALE):
                    continue
                detail = f"The upstream broke off: {type(exc).__name__}."
                raise OutOfBounds(502, "upstream_failed", detail) from None

    def send(
        self,
        connection: HTTPConnection,
        request: Request,
        head: bytes,
        body: Iterator[bytes],
        chunked: bool,
    ) -> None:
        connection.putrequest(
            request.method,
            self.upstream.prefix + request.path,
            skip_accept_encoding=True,  # the client's Accept-Encoding, or none, goes on
        )
        for name, value in request.headers.items():
            if name.lower() not in HOP_BY_HOP and not (
                chunked and name.lower() == "content-length"
            ):
                # A field value has no surrounding whitespace (RFC 9110 5.5): stripped, as any
                # server would read it, so that a client's stray trailing space can be sent on.
                connection.putheader(name, value.strip(" \t"))
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        if chunked or len(head) >= JUDGED_BYTES:
            connection.endheaders()
            for chunk in itertools.chain([head], body):
                if chunk:
                    connection.send(b"%X\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                connection.send(b"0\r\n\r\n")
        else:
            connection.endheaders(head or None)

    def timeout_detail(self) -> str:
        return f"The upstream did not answer within {self.timeout} s."

    def answer(
        self, client: Handler, request: Request, response: HTTPResponse, started: float
    ) -> None:
        """Judge the upstream's answer and pass it on: read whole (up to the bound) when the
        judge reads its body, else streamed through as it comes."""
        headers = response.getheaders()
        status = response.status
        whole = self.judge.reads_body(request, status)
        body, streamed = b"", None
        try:
            if whole:
                body = self.read_whole(response, headers)
            elif request.method.upper() == "HEAD" and response.will_close:
                body = self.after_head(response)
        except OutOfBounds as refusal:
            self.summary.add_error(refusal.code)
            client.answer(*problem(refusal.status, refusal.code, refusal.detail))
            return
        elapsed_ms = (time.time() - started) * 1000
        answer = Answer(status, _joined(headers), body)
        violations = self.judge.verdict(request, _decoded(answer, self.max_answer_bytes))
        self.summary.add(violations)
        credentials = self.credentials()
        credentials.note_request(request.path, request.headers)
        if violations:
            self.write_log(request, answer, violations, credentials)
        count = (VIOLATIONS_HEADER, str(len(violations)))
        passed = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        if self.mode == "hard" and violations:
            status, replaced, document = problem(
                502,
                "contract_violation",
                f"The upstream answered {answer.status}, breaking {len(violations)} promise(s).",
                violations=[credentials_redacted(v.as_dict(), credentials) for v in violations],
                upstream_status=answer.status,
            )
            client.answer(status, [*replaced, count], document)
        elif whole:
            passed = [(k, v) for k, v in passed if k.lower() != "content-length"]
            client.answer(status, [*passed, count], body)
        else:
            streamed = self.stream(client, request, response, [*passed, count])
        if self.recorder is not None:
            self.recorder.add(
                entry(
                    request,
                    answer,
                    base_url=self.upstream_url,
                    started=started,
                    elapsed_ms=elapsed_ms,
                    credentials=credentials,
                    streamed=streamed,
                )
            )

    def read_whole(self, response: HTTPResponse, headers: list[tuple[str, str]]) -> bytes:
        declared = next((v for k, v in headers if k.lower() == "content-length"), "")
        if declared.strip().isdigit() and int(declared) > self.max_answer_bytes:
            raise self.too_large()
        chunks, size = [], 0
        try:
            while chunk := response.read1(STREAM_CHUNK):
                size += len(chunk)
                if size > self.max_answer_bytes:
                    raise self.too_large()
                chunks.append(chunk)
        except TimeoutError:
            raise OutOfBounds(504, "upstream_timeout", self.timeout_detail()) from None
        except (OSError, HTTPException) as exc:
            detail = f"The upstream broke off: {type(exc).__name__}."
            raise OutOfBounds(502, "upstream_failed", detail) from None
        return b"".join(chunks)

    def after_head(self, response: HTTPResponse) -> bytes:
        """What an upstream that closes the connection sent after a HEAD answer's head: a body
        it should not have sent (bounded; never passed on). An upstream that keeps the
        connection open cannot be read to its end without waiting, and is not asked."""
        try:
            return response.fp.read(self.max_answer_bytes) if response.fp else b""
        except (OSError, HTTPException):
            return b""

    def too_large(self) -> OutOfBounds:
        detail = f"The upstream's answer is over {self.max_answer_bytes} bytes."
        return OutOfBounds(502, "upstream_answer_too_large", detail)

    def stream(
        self,
        client: Handler,
        request: Request,
        response: HTTPResponse,
        headers: list[tuple[str, str]],
    ) -> int:
        """Pass an answer the judge does not read on as it comes, a chunk at a time (memory
        stays bounded whatever its size); the bytes sent."""
        length = response.length  # None: the upstream did not say (chunked, or until close)
        bodiless = request.method.upper() == "HEAD" or status_has_no_body(response.status)
        if not bodiless and length is not None:
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(length)))
        elif not bodiless:
            headers.append(("Transfer-Encoding", "chunked"))
        client.start(response.status, headers)
        sent = 0
        try:
            while not bodiless and (chunk := response.read1(STREAM_CHUNK)):
                client.wfile.write(
                    b"%X\r\n%s\r\n" % (len(chunk), chunk) if length is None else chunk
                )
                sent += len(chunk)
            if not bodiless and length is None:
                client.wfile.write(b"0\r\n\r\n")
        except (OSError, HTTPException) as exc:
            # The head has gone: the client can only be told by the connection's end.
            code = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_failed"
            self.summary.add_error(code)
            client.close_connection = True
        return sent

    def write_log(
        self,
        request: Request,
        answer: Answer,
        violations: list[Violation],
        credentials: Credentials,
    ) -> None:
        if self.log_path is None:
            return
        line = {
            "time": time.time(),
            "method": request.method,
            "path": credentials.mask_url(request.path),
            "status": answer.status,
            "violations": [v.as_dict() for v in violations],
        }
        text = credentials.redact(json.dumps(line))
        with self.log_lock, self.log_path.open("a") as log:
            log.write(text + "\n")

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.save()
        self.upstream.close()


class Handler(BaseHTTPRequestHandler):
    """One client connection, kept alive across its requests (HTTP/1.1); each request is
    handed to the proxy whatever its method."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # an answer's last segment goes at once
    server: Server

    def setup(self) -> None:
        # A client that sends nothing is let go after the upstream's timeout.
        self.request.settimeout(self.server.proxy.timeout)
        super().setup()

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            if len(self.raw_requestline) > MAX_LINE:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():  # it has answered (send_error)
                return
            self.server.proxy.serve(self)
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    def parse_request(self) -> bool:
        """The request line and header fields (http.server's own parser goes through the email
        package: a quarter of the proxy's time). False when it has answered a refusal."""
        self.command = ""  # what send_error reads, before the request line is known
        words = self.raw_requestline.decode("latin-1").rstrip("\r\n").split(" ")
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0") or not words[1]:
            self.send_error(400, "Bad request line")  # not echoed: it may carry a credential
            return False
        self.command, self.path, self.request_version = words
        fields, size = Fields(), 0
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            size += len(line)
            if len(line) > MAX_LINE or size > MAX_HEAD_BYTES:
                self.send_error(431, "Request header fields too large")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():
                self.send_error(400, "Bad header field")
                return False
            fields.append((name, value.strip(" \t\r\n")))
        self.headers = fields  # type: ignore[assignment]  # what the handler reads: get, items
        connection = (fields.get("Connection") or "").lower()
        self.close_connection = "close" in connection or (
            self.request_version == "HTTP/1.0" and "keep-alive" not in connection
        )
        if (fields.get("Expect") or "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def body(self, chunked: bool) -> Iterator[bytes]:
        """The request's body as it arrives: Content-Length bytes, or chunks."""
        if chunked:
            while True:
                line = self.rfile.readline(MAX_LINE).split(b";")[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise OutOfBounds(
                        400, "request_not_forwardable", f"A chunk size of {line[:20]!r}."
                    ) from None
                if size == 0:
                    while self.rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    return
                while size > 0:
                    chunk = self.rfile.read(min(size, STREAM_CHUNK))
                    if not chunk:
                        return
                    size -= len(chunk)
                    yield chunk
                self.rfile.readline(MAX_LINE)
        try:
            left = max(int(self.headers.get("Content-Length") or 0), 0)
        except ValueError:
            left = 0
        while left > 0:
            chunk = self.rfile.read(min(left, STREAM_CHUNK))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    def drain(self) -> None:
        """A request answered without its body read to the end: the connection is closed after
        the answer (what is left of the body cannot be told from a next request)."""
        if self.headers.get("Transfer-Encoding") or int(self.headers.get("Content-Length") or 0):
            self.close_connection = True

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """The whole answer in one write (head and body: one segment on the wire)."""
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        if self.command == "HEAD":  # the same head, no content (RFC 9110 9.3.2)
            body = b""
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The refusals of a request http.server cannot read: problems, as every refusal."""
        self.close_connection = True
        detail = message or _reason(code)
        self.answer(*problem(code, "request_not_forwardable", f"{detail}."))

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the proxy's output is its summary (and a request line could carry a
        credential in its query)."""


class Fields(list[tuple[str, str]]):
    """A request's header fields in their order, looked up without case."""

    def get(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self if key.lower() == lowered), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self)


class Connection(HTTPConnection):
    """http.client's connection, sending a request's head and a body held in memory in one
    write: one segment on the wire, not two (the upstream reads the request at once)."""

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes):
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
            return
        buffer = self._buffer  # type: ignore[attr-defined]  # http.client's head so far
        buffer.extend((b"", b""))
        head = b"\r\n".join(buffer)
        del buffer[:]
        self.send(head + message_body)


class SecureConnection(Connection, HTTPSConnection):
    """The same over TLS."""


class Server(socketserver.ThreadingTCPServer):
    """A thread per client connection."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], proxy: Proxy):
        self.proxy = proxy
        super().__init__(address, Handler)


class OutOfBounds(Exception):
    """The proxy's own answer: the upstream is down, slow, breaks off or answers too much, or
    the request cannot be sent on."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class UpstreamUnreachable(Exception):
    """No connection to the upstream could be opened."""


def credentials_redacted(document: dict[str, str], credentials: Credentials) -> dict[str, str]:
    return {name: credentials.redact(value) for name, value in document.items()}


def status_has_no_body(status: int) -> bool:
    return 100 <= status < 200 or status in (204, 304)


def _read_to_end(response: HTTPResponse) -> bool:
    """Whether all of *response* has been read (``read1`` leaves the last call's answer open
    when it ended exactly at Content-Length)."""
    return response.isclosed() or response.length == 0


def _joined(items: list[tuple[str, str]]) -> dict[str, str]:
    """Header fields as one dict, a repeated field's values joined by commas (RFC 9110 5.3)."""
    joined: dict[str, str] = {}
    for name, value in items:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _decoded(answer: Answer, limit: int) -> Answer:
    """The answer as the judge reads it: a gzip or deflate body decompressed, to at most
    *limit* bytes (what is forwarded stays as it came)."""
    encoding = (answer.header("Content-Encoding") or "").strip().lower()
    wbits = {"gzip": 31, "deflate": 15}.get(encoding)
    if wbits is None or not answer.body:
        return answer
    try:
        body = zlib.decompressobj(wbits).decompress(answer.body, limit)
    except zlib.error:
        return answer
    return Answer(answer.status, answer.headers, body)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="imageapi-contract proxy", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--upstream", required=True, help="the API to forward to, e.g. http://127.0.0.1:8000"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free one)")
    p.add_argument("--mode", choices=["soft", "hard"], default="soft")
    p.add_argument("--log", type=Path, help="append each broken exchange to this JSON Lines file")
    p.add_argument("--record", type=Path, help="write the exchanges as a HAR 1.2 file on exit")
    p.add_argument(
        "--timeout", type=float, default=130.0, help="seconds the upstream has to answer"
    )
    p.add_argument("--max-answer-mb", type=float, default=64.0, help="largest answer read (MiB)")
    p.add_argument("--max-concurrent", type=int, default=16, help="exchanges in flight at once")
    p.add_argument(
        "--no-image-checks", action="store_true", help="do not check the images' bytes at all"
    )
    p.add_argument(
        "--decode-images",
        action="store_true",
        help="decode every image's pixels (by default: format, size and a whole file, cheaply)",
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if urlsplit(args.upstream).scheme not in ("http", "https"):
        print("imageapi-contract proxy: --upstream must be an http(s) URL", file=sys.stderr)
        return 2
    proxy = Proxy(
        args.upstream,
        mode=args.mode,
        log=args.log,
        record=args.record,
        timeout=args.timeout,
        max_answer_bytes=int(args.max_answer_mb * 1024 * 1024),
        max_concurrent=args.max_concurrent,
        check_images=not args.no_image_checks,
        decode_images=args.decode_images,
    )
    server = Server((args.host, args.port), proxy)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.server_address[1]
    print(f"imageapi-contract proxy: http://{args.host}:{port} -> {args.upstream}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        proxy.close()
    summary = proxy.summary.as_dict()
    print(json.dumps(summary), flush=True)
    return 1 if summary["violations"] else 0

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

Bounded: an answer is read whole (it is judged before a byte goes on) up to ``--max-answer-mb``,
at most ``--max-concurrent`` exchanges are in flight (others wait for a slot up to
``--timeout`` seconds, then get a 503), the upstream has ``--timeout`` seconds to answer; an
upstream that is down or too slow gets a 502 or 504 problem with its own code, never a hang.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from werkzeug.serving import WSGIRequestHandler, make_server

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
}  # fmt: skip
PROBLEM_BASE = "https://imageapi.org/problems/proxy/"


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


class Proxy:
    """The proxy as a WSGI app."""

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
    ):
        self.upstream = upstream.rstrip("/")
        self.mode = mode
        self.keys = dict(plan_keys() if keys is None else keys)
        self.judge = Judge(load_contract(), self.keys, check_images=check_images)
        self.summary = Summary()
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.log_path = log
        self.log_lock = threading.Lock()
        self.recorder = HarRecorder(record) if record else None
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_concurrent),
            follow_redirects=False,
        )
        self.client.headers.clear()  # forward the client's headers, not httpx's own defaults

    def credentials(self) -> Credentials:
        """A fresh masker per exchange (what it remembers stays bounded): the known keys as
        their variables' names."""
        return Credentials(
            {key: KEY_VARIABLE.format(plan.upper()) for key, plan in self.keys.items()}
        )

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "GET" and environ.get("PATH_INFO") == SUMMARY_PATH:
            body = json.dumps(self.summary.as_dict()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if not self.slots.acquire(timeout=self.timeout):
            status, headers, body = problem(503, "proxy_busy", "Too many exchanges in flight.")
            headers.append(("Retry-After", "1"))
        else:
            try:
                status, headers, body = self.exchange(environ)
            finally:
                self.slots.release()
        start_response(
            f"{status} {_reason(status)}", [*headers, ("Content-Length", str(len(body)))]
        )
        return [body]

    def exchange(self, environ) -> tuple[int, list, bytes]:
        try:
            length = max(int(environ.get("CONTENT_LENGTH") or 0), 0)
        except ValueError:
            length = 0
        stream = environ["wsgi.input"]
        # The judge needs the body up to one byte past the API's limit (beyond it only its
        # size matters): that much is held, the rest streams through.
        head = stream.read(min(length, JUDGED_BYTES)) if length else b""
        rest = length - len(head)

        def rest_of_body():
            yield head
            left = rest
            while left > 0:
                chunk = stream.read(min(left, 64 * 1024))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

        raw = head
        path = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        if not environ.get("RAW_URI") and environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {
            name[5:].replace("_", "-").title(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").title()] = environ[name]
        request = Request(environ["REQUEST_METHOD"], path, headers, raw)
        started = time.time()
        try:
            answer = self.forward(request, rest_of_body() if rest > 0 else head)
        except httpx.TimeoutException:
            self.summary.add_error("upstream_timeout")
            return problem(
                504, "upstream_timeout", f"The upstream did not answer within {self.timeout} s."
            )
        except AnswerTooLarge:
            self.summary.add_error("upstream_answer_too_large")
            return problem(
                502,
                "upstream_answer_too_large",
                f"The upstream's answer is over {self.max_answer_bytes} bytes.",
            )
        except httpx.LocalProtocolError as exc:
            self.summary.add_error("request_not_forwardable")
            return problem(400, "request_not_forwardable", f"The request cannot be sent on: {exc}.")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            code = (
                "upstream_unreachable" if isinstance(exc, httpx.ConnectError) else "upstream_failed"
            )
            self.summary.add_error(code)
            return problem(
                502, code, f"The upstream could not be reached or broke off: {type(exc).__name__}."
            )
        elapsed_ms = (time.time() - started) * 1000
        violations = self.judge.verdict(request, _decoded(answer))
        self.summary.add(violations)
        credentials = self.credentials()
        credentials.note_request(request.path, request.headers)
        if violations:
            self.write_log(request, answer, violations, credentials)
        if self.recorder is not None:
            self.recorder.add(
                entry(
                    request,
                    answer,
                    base_url=self.upstream,
                    started=started,
                    elapsed_ms=elapsed_ms,
                    credentials=credentials,
                )
            )
        passed = [
            (k, v)
            for k, v in answer.headers.items()
            if k.lower() not in HOP_BY_HOP | {"content-length"}
        ]
        if self.mode == "hard" and violations:
            status, refusal, document = problem(
                502,
                "contract_violation",
                f"The upstream answered {answer.status}, breaking {len(violations)} promise(s).",
                violations=[credentials_redacted(v.as_dict(), credentials) for v in violations],
                upstream_status=answer.status,
            )
            return status, [*refusal, (VIOLATIONS_HEADER, str(len(violations)))], document
        return answer.status, [*passed, (VIOLATIONS_HEADER, str(len(violations)))], answer.body

    def forward(self, request: Request, content: Any) -> Answer:
        # A field value has no surrounding whitespace (RFC 9110 5.5): stripped, as any server
        # would read it, so that a client's stray trailing space can be sent on.
        headers = [
            (k, v.strip(" \t")) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
        ]
        upstream = self.client.build_request(
            request.method,
            self.upstream + request.path,
            headers=headers,
            content=content or None,
        )
        response = self.client.send(upstream, stream=True)
        try:
            chunks, size = [], 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > self.max_answer_bytes:
                    raise AnswerTooLarge
                chunks.append(chunk)
        finally:
            response.close()
        return Answer(response.status_code, dict(response.headers.multi_items()), b"".join(chunks))

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
        self.client.close()


class QuietHandler(WSGIRequestHandler):
    """No access log: the proxy's output is its summary (and a request line could carry a
    credential in its query)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class AnswerTooLarge(Exception):
    """The upstream's answer is larger than the proxy reads."""


def credentials_redacted(document: dict[str, str], credentials: Credentials) -> dict[str, str]:
    return {name: credentials.redact(value) for name, value in document.items()}


def _decoded(answer: Answer) -> Answer:
    """The answer as the judge reads it: a gzip or deflate body decompressed (bounded by what
    was read; what is forwarded stays as it came)."""
    encoding = (answer.header("Content-Encoding") or "").strip().lower()
    try:
        if encoding == "gzip":
            return Answer(answer.status, answer.headers, gzip.decompress(answer.body))
        if encoding == "deflate":
            return Answer(answer.status, answer.headers, zlib.decompress(answer.body))
    except (OSError, zlib.error, EOFError):
        pass
    return answer


def _reason(status: int) -> str:
    from http import HTTPStatus

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
    p.add_argument("--no-image-checks", action="store_true", help="do not decode the images")
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
    )
    server = make_server(args.host, args.port, proxy, threaded=True, request_handler=QuietHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]  # threaded=True: a ThreadingMixIn

    def stop(signum, frame):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"imageapi-contract proxy: http://{args.host}:{server.server_port} -> {args.upstream}",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        proxy.close()
    summary = proxy.summary.as_dict()
    print(json.dumps(summary), flush=True)
    return 1 if summary["violations"] else 0

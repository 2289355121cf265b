"""The mock behind a small WSGI proxy, and the edits of requests and answers the mutants are
made of. Every mutant is one of these proxies, breaking one promise and keeping the rest."""

from __future__ import annotations

import json
from http import HTTPStatus
from io import BytesIO

from jsonschema import Draft202012Validator

from mockserver.app import create_app
from mockserver.config import DEV_KEYS
from mockserver.spec import load_spec

GENERATE = "/api/v1/generate"


MODELS = "/api/v1/models"


ENTERPRISE_KEY = next(key for key, plan in DEV_KEYS.items() if plan == "enterprise")


SPEC = load_spec()


VALID_BODY = Draft202012Validator(SPEC.request_schema)


def _valid(body) -> bool:
    """Most mutants break one promise about valid requests and keep the rest intact."""
    return body is not None and VALID_BODY.is_valid(body)


def proxy(edit_request=None, edit_response=None, answer=None):
    """The mock, with *edit_request(environ, body) -> body* applied to each JSON request body
    and *edit_response(environ, request, status, headers, body) -> (status, headers, body)*
    to each response; *request* is the JSON body the client sent (None if there was none).
    *answer(environ, request) -> (status, headers, body) | None* answers in the mock's place."""
    app = create_app()

    def wsgi(environ, start_response):
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or -1)
        try:
            sent = json.loads(raw) if raw else None
        except ValueError:
            sent = None
        if not isinstance(sent, dict):
            sent = None
        if edit_request is not None:
            edited = edit_request(environ, sent)
            if edited is not None:
                raw = json.dumps(edited).encode()
        environ["wsgi.input"] = BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        answered = answer(environ, sent) if answer is not None else None
        if answered is not None:
            status, headers, body = answered
        else:
            captured = {}

            def capture(status, headers, exc_info=None):
                captured["status"], captured["headers"] = status, headers

            body = b"".join(app(environ, capture))
            status, headers = captured["status"], captured["headers"]
        if edit_response is not None:
            status, headers, body = edit_response(environ, sent, status, headers, body)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return wsgi


def _is_generate(environ) -> bool:
    return environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == GENERATE


def _header(environ, name: str) -> str | None:
    if name.lower() == "content-type":
        return environ.get("CONTENT_TYPE")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def _problem(status: int, code: str, *, field=None, headers=()):
    """A response as the mock would shape it."""
    body = {
        "type": "https://imageapi.org/problems/" + code.replace("_", "-"),
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": code,
        "code": code,
    }
    if field:
        body["field"] = field
    headers = [("Content-Type", "application/problem+json"), *headers]
    return f"{status} {HTTPStatus(status).phrase}", headers, json.dumps(body).encode()


def _edit_headers(edit):
    """A response edit of the headers only: *edit(environ, status, headers) -> headers*."""

    def edit_response(environ, sent, status, headers, body):
        return status, edit(environ, status, headers), body

    return edit_response


def _edit_problems(edit):
    """A response edit applied to the JSON of every problem: *edit(problem)*."""

    def edit_response(environ, sent, status, headers, body):
        # (a HEAD's problem has no body to edit)
        if body and any(k.lower() == "content-type" and "problem" in v for k, v in headers):
            problem = json.loads(body)
            edit(problem)
            body = json.dumps(problem).encode()
        return status, headers, body

    return edit_response


def _edit_success(edit):
    """A response edit applied to the JSON of successful generations only."""

    def edit_response(environ, sent, status, headers, body):
        if _is_generate(environ) and status.startswith("200"):
            result = json.loads(body)
            edit(sent or {}, result)
            body = json.dumps(result).encode()
        return status, headers, body

    return edit_response


def _set_header(name, value, *, only_if=lambda environ: True):
    def edit_request(environ, body):
        if only_if(environ):
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        return None

    return edit_request


def _replace_header(name: str, value, *, only_if=lambda environ, status: True):
    """Set response header *name* to *value(environ)* (or drop it when that is None)."""

    def edit(environ, status, headers):
        if not only_if(environ, status):
            return headers
        kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
        new = value(environ)
        return kept if new is None else [*kept, (name, new)]

    return proxy(edit_response=_edit_headers(edit))


def _status_code(status: str) -> int:
    return int(status.split()[0])

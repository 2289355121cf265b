"""The HTTP layer: a Flask app of three blueprints (``api``, ``admin``, ``docs``) over one
:class:`~mockserver.runtime.Runtime`, with every refusal sent as ``application/problem+json``
(the guard's included: see :mod:`mockserver.guard`) and one access log line per request."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from mockserver.admin import create_admin
from mockserver.api import API_PREFIX, create_api, current_call
from mockserver.backends import ImageBackend, load_backend
from mockserver.config import Config
from mockserver.docs import create_docs
from mockserver.guard import REFUSAL
from mockserver.problems import PROBLEM_MEDIA_TYPE, Problem
from mockserver.redact import text_redactor, use_fingerprint_secret
from mockserver.runtime import Runtime
from mockserver.snapshot import modified, to_json
from mockserver.spec import ApiSpec, load_spec
from mockserver.store import StateStore
from mockserver.transport import TransportFaults

log = logging.getLogger("mockserver")
access_log = logging.getLogger("mockserver.access")


class MockFlask(Flask):
    """Flask, told that every view and hook of this app is a plain function: Flask otherwise
    asks ``inspect`` whether each one is a coroutine function, on every call (seven times a
    request here)."""

    def ensure_sync(self, func):
        return func


def create_app(
    config: Config | None = None,
    spec: ApiSpec | None = None,
    backend: ImageBackend | None = None,
    store: StateStore | None = None,
) -> MockFlask:
    """Build the mock server.

    *spec* defaults to loading ``config.spec_path`` (and then follows edits of that file when
    ``config.reload`` is on); *backend* to the one ``config.backend`` names in the
    ``mockserver.backends`` entry-point group; *store* to the one ``config.state`` names.
    """
    config = config or Config.from_env()
    if config.fingerprint_secret:  # before anything masks a key: the server's, in each worker
        use_fingerprint_secret(config.fingerprint_secret)
    follow = Path(config.spec_path) if config.reload and spec is None else None
    stamp = modified(follow)  # before reading: an edit made meanwhile is then seen as one
    loaded = spec or load_spec(config.spec_path, config.spec_root)
    backend = backend or load_backend(config.backend, spec=loaded, **config.backend_options)
    runtime = Runtime(config, loaded, backend, store, spec_path=follow, spec_stamp=stamp)

    app = MockFlask(__name__)
    app.url_map.merge_slashes = False  # `//` is a 404, not a redirect built from the Host header
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes + 1
    app.extensions["imageapi"] = runtime
    app.before_request(_begin)  # first, before any blueprint's hooks
    app.register_blueprint(create_api(runtime))
    app.register_blueprint(create_admin(runtime))
    app.register_blueprint(create_docs(runtime))
    app.after_request(_cors(config.cors_origins, loaded.document["x-imageapi-cors"]))
    app.after_request(_log_access(text_redactor(config.keys)))
    app.register_error_handler(Problem, _problem_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    # A reset, empty, cut or slow answer; wrapping wsgi_app is Flask's documented way.
    app.wsgi_app = TransportFaults(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _begin() -> None:
    """Start the request's clock, and answer a refusal the guard handed over."""
    current_call()
    refusal = request.environ.get(REFUSAL)
    if refusal is not None:
        raise refusal
    if request.environ.get("PATH_INFO", "").startswith("//"):  # routing would drop the slashes
        raise NotFound()


LOGGED_PATH_CHARS = 200
# A path may carry decoded control characters (%0a, %1b): escaped, they cannot forge a log line
# or reach a terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def printable(text: str) -> str:
    """*text* with control characters (and backslashes, so the escapes are unambiguous) escaped."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


def _log_access(hide):
    """One line per request: method, path (without its query, the server's keys masked wherever
    they were pasted), status, milliseconds, plan and error code. Never a header or a query."""

    def log_access(response: Response) -> Response:
        if access_log.isEnabledFor(logging.INFO):
            call = current_call()
            path = hide(request.path)
            if len(path) > LOGGED_PATH_CHARS:
                path = path[:LOGGED_PATH_CHARS] + "..."
            path = printable(path)
            access_log.info(
                "%s %s %d %.1f ms %s%s",
                request.method,
                path,
                response.status_code,
                (time.perf_counter() - call.started) * 1000,
                call.plan or "-",
                f" {call.problem_code}" if call.problem_code else "",
            )
        return response

    return log_access


# The mock's own request header on top of the spec's: Prefer picks a scenario (mock mode).
MOCK_ALLOW_HEADERS = ["Prefer"]


def _cors(origins: list[str], rules: dict):
    """CORS for browser clients on the API routes: any origin with ``*``, else those listed.

    The headers allowed and exposed and the preflight's max-age are the spec's
    ``x-imageapi-cors``. Preflights are answered by Flask's automatic OPTIONS, before
    authentication, and allow the route's own methods.
    """
    any_origin = "*" in origins
    allowed = frozenset(origins)
    allow_headers = ", ".join([*rules["allow_headers"], *MOCK_ALLOW_HEADERS])
    expose_headers = ", ".join(rules["expose_headers"])
    max_age = str(rules["max_age"])

    def add_cors_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        # By path, not blueprint: a 404 or 405 under the API is readable by the page too.
        if not origin or not request.path.startswith(API_PREFIX + "/"):
            return response
        if not any_origin:
            response.vary.add("Origin")
            if origin not in allowed:
                return response
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
        headers["Access-Control-Expose-Headers"] = expose_headers
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers["Access-Control-Allow-Methods"] = headers.get("Allow", "")
            headers["Access-Control-Allow-Headers"] = allow_headers
            headers["Access-Control-Max-Age"] = max_age
        return response

    return add_cors_headers


def _problem_response(problem: Problem) -> Response:
    current_call().problem_code = problem.code
    response = Response(to_json(problem.to_dict(request.path)), status=problem.status)
    response.mimetype = PROBLEM_MEDIA_TYPE
    response.headers.update(problem.headers)
    return response


_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def _http_error(error: HTTPException) -> Response:
    headers = {}
    if isinstance(error, MethodNotAllowed):
        allow = ", ".join(error.valid_methods or [])
        headers["Allow"] = allow
        detail = f"{request.method} is not allowed here; this route accepts {allow}."
    elif isinstance(error, NotFound):
        detail = "There is no such route."
    elif isinstance(error, RequestEntityTooLarge):
        limit = current_app.extensions["imageapi"].config.max_body_bytes
        detail = f"The body may be at most {limit} bytes."
    else:
        detail = error.description or error.name
    status = error.code or 500
    code = _HTTP_CODES.get(status, error.name.lower().replace(" ", "_").replace("'", ""))
    return _problem_response(Problem(status, code, detail, headers=headers))


def _internal_error(error: Exception) -> Response:
    # The route, not the path: a path may carry what a client should not have sent.
    route = request.url_rule or "an unrouted path"
    log.exception("unhandled error on %s %s", request.method, route)
    return _problem_response(
        Problem(500, "internal_error", "The server failed to answer this request.")
    )

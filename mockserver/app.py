"""The HTTP layer: a Flask app that serves the spec's routes and turns every refusal into
``application/problem+json``."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from mockserver.auth import KeyStore, mask
from mockserver.backends import BackendUnavailable, ImageBackend, load_backend
from mockserver.config import Config
from mockserver.docs import register_docs
from mockserver.journal import Journal
from mockserver.problems import PROBLEM_MEDIA_TYPE, Problem
from mockserver.ratelimit import RateLimiter
from mockserver.rules import check_plan, resolve_generation
from mockserver.scenarios import Scenarios
from mockserver.spec import ApiSpec, load_spec
from mockserver.validation import RequestValidator, parse_json

log = logging.getLogger("mockserver")

API_PREFIX = "/api/v1/"


class ImageApi:
    """What the routes need, built once at start-up from the spec and the config."""

    def __init__(self, spec: ApiSpec, config: Config, backend: ImageBackend):
        unknown = {plan for plan in config.keys.values() if plan not in spec.plans}
        if unknown:
            raise ValueError(f"API keys name plans the spec does not define: {sorted(unknown)}")
        self.spec = spec
        self.config = config
        self.keys = KeyStore(config.keys)
        self.validator = RequestValidator(spec.request_schema)
        self.backend = backend
        self.scenarios = Scenarios(spec.document) if config.scenarios else None
        self.limiter = RateLimiter() if config.rate_limits else None
        catalog = [model.entry for model in spec.models.values()]
        self.model_list = _json({"default_model": spec.default_model, "data": catalog})
        self.model_bodies = {model.id: _json(model.entry) for model in spec.models.values()}
        self.spec_json = _json(spec.document)
        self.spec_yaml = Path(config.spec_path).read_bytes()

    def openapi_json(self) -> Response:
        return Response(self.spec_json, mimetype="application/json")

    def openapi_yaml(self) -> Response:
        return Response(self.spec_yaml, mimetype="application/yaml")

    def scenario(self) -> Response | None:
        """The documented response a ``Prefer`` header asks for, in mock mode."""
        prefer = request.headers.get("Prefer")
        if self.scenarios is None or not prefer or request.url_rule is None:
            return None
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", request.url_rule.rule)
        allow = ", ".join(sorted(request.url_rule.methods - {"HEAD"}))
        documented = self.scenarios.respond(path, request.method, prefer, allow)
        if documented is None:
            return None
        response = Response(Scenarios.encode(documented), status=documented.status)
        response.mimetype = documented.media_type
        response.headers.update(documented.headers)
        response.headers["Preference-Applied"] = prefer
        return response

    def authorize(self) -> None:
        key, plan = self.keys.authenticate(request.headers.get("Authorization"))
        g.plan = plan
        g.key = key

    def limit_rate(self) -> None:
        if self.limiter is not None:
            self.limiter.take(g.key, g.plan, self.spec.plans[g.plan].requests_per_minute)

    def generate(self) -> Response:
        if request.mimetype != "application/json":
            raise Problem(
                415,
                "unsupported_media_type",
                f"Send the body as application/json, not {request.mimetype or 'nothing'}.",
            )
        body = parse_json(self._read_body())
        self.validator.validate(body)
        generation = resolve_generation(body, self.spec)
        check_plan(g.plan, self.spec.models[generation.model])
        self.limit_rate()
        try:
            images = self.backend.generate(generation)
        except BackendUnavailable as exc:
            raise Problem(
                503, "model_unavailable", str(exc), headers={"Retry-After": str(exc.retry_after)}
            ) from exc
        self._wait_like_the_real_service(generation)
        media_type = f"image/{generation.output_format}"
        return Response(
            _json(
                {
                    "id": "gen_" + secrets.token_hex(8),
                    "created": int(time.time()),
                    "model": generation.model,
                    "width": generation.width,
                    "height": generation.height,
                    "num_inference_steps": generation.num_inference_steps,
                    "seed": generation.seed,
                    "output_format": generation.output_format,
                    "images": [
                        {
                            "media_type": media_type,
                            "seed": seed,
                            "data_url": f"data:{media_type};base64,"
                            + base64.b64encode(data).decode("ascii"),
                        }
                        for seed, data in zip(generation.image_seeds(), images, strict=True)
                    ],
                }
            ),
            mimetype="application/json",
        )

    def _read_body(self) -> bytes:
        # Werkzeug stops a body without Content-Length (chunked) at MAX_CONTENT_LENGTH and
        # returns what it read; that limit is one byte more than allowed, so that a cut-off
        # body shows itself by its length instead of being parsed.
        data = request.get_data(cache=False)
        g.body = data
        if len(data) > self.config.max_body_bytes:
            raise RequestEntityTooLarge()
        return data

    def _wait_like_the_real_service(self, generation) -> None:
        """``--latency``: off, a fixed number of milliseconds, or ``realistic``: the model's
        typical latency scaled by steps, pixels and images."""
        latency = self.config.latency
        if not latency:
            return
        if latency == "realistic":
            model = self.spec.models[generation.model]
            typical = model.entry.get("typical_latency_ms", 0)
            scale = (
                generation.num_inference_steps
                / model.quality_steps
                * generation.width
                * generation.height
                / (1024 * 1024)
                * generation.num_images
            )
            delay_ms = typical * scale
        else:
            delay_ms = float(latency)
        time.sleep(delay_ms / 1000)

    def list_models(self) -> Response:
        self.limit_rate()
        return Response(self.model_list, mimetype="application/json")

    def get_model(self, model_id: str) -> Response:
        self.limit_rate()
        body = self.model_bodies.get(model_id)
        if body is None:
            raise Problem(404, "model_not_found", f"There is no model with id {model_id[:100]!r}.")
        return Response(body, mimetype="application/json")


class LiveApi:
    """The current :class:`ImageApi`, rebuilt when ``openapi.yaml`` changes on disk.

    Each worker looks at the file's modification time at most once a second. A spec that fails
    to load or to agree with itself is logged and ignored: the last good one keeps serving.
    """

    CHECK_EVERY_S = 1.0

    def __init__(self, api: ImageApi, spec_path: Path | None):
        self.api = api
        self.spec_path = spec_path
        self.reload_error: str | None = None
        self._failed_stamp: int | None = None
        self._stamp = self._modified()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def _modified(self) -> float | None:
        try:
            return os.stat(self.spec_path).st_mtime_ns if self.spec_path else None
        except OSError:
            return None

    def current(self) -> ImageApi:
        if self.spec_path is None or time.monotonic() - self._checked < self.CHECK_EVERY_S:
            return self.api
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._modified()
            # A failed load leaves the stamp alone, so it is tried again: the file may have been
            # read half-written, and the rest can land within the same timestamp tick.
            if stamp is not None and stamp != self._stamp and self._reload(stamp):
                self._stamp = stamp
        return self.api

    def _reload(self, stamp: int) -> bool:
        old = self.api
        try:
            self.api = ImageApi(load_spec(self.spec_path), old.config, old.backend)
        except Exception as exc:
            if self.reload_error is None or stamp != self._failed_stamp:
                log.error("kept the previous spec: %s does not load: %s", self.spec_path, exc)
            self.reload_error, self._failed_stamp = str(exc), stamp
            return False
        self.reload_error = None
        log.info("reloaded %s", self.spec_path)
        return True


def create_app(
    config: Config | None = None,
    spec: ApiSpec | None = None,
    backend: ImageBackend | None = None,
) -> Flask:
    """Build the mock server.

    *spec* defaults to loading ``config.spec_path`` (and then follows edits of that file when
    ``config.reload`` is on); *backend* to the one ``config.backend`` names in the
    ``mockserver.backends`` entry-point group.
    """
    config = config or Config.from_env()
    loaded = spec or load_spec(config.spec_path)
    backend = backend or load_backend(config.backend, spec=loaded, **config.backend_options)
    live = LiveApi(
        ImageApi(loaded, config, backend),
        Path(config.spec_path) if config.reload and spec is None else None,
    )
    journal = Journal(config.journal_path, config.journal_size) if config.journal_size else None

    app = Flask(__name__)
    app.url_map.merge_slashes = False  # `//` is a 404, not a redirect built from the Host header
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes + 1
    app.extensions["imageapi"] = live
    app.after_request(_cors(config.cors_origins))

    @app.before_request
    def before():
        g.started = time.perf_counter()
        if not request.path.startswith(API_PREFIX) or request.method == "OPTIONS":
            return None
        api = live.current()
        scenario = api.scenario()
        if scenario is not None:
            return scenario
        api.authorize()
        return None

    if journal is not None:
        register_journal(app, journal)

    def route(name):
        return lambda **kwargs: getattr(live.current(), name)(**kwargs)

    app.add_url_rule("/api/v1/generate", "generate", route("generate"), methods=["POST"])
    app.add_url_rule("/api/v1/models", "list_models", route("list_models"), methods=["GET"])
    app.add_url_rule("/api/v1/models/<model_id>", "get_model", route("get_model"), methods=["GET"])
    # The spec itself, for tools and the docs page; public, outside the API routes.
    app.add_url_rule("/openapi.json", "openapi_json", route("openapi_json"), methods=["GET"])
    app.add_url_rule("/openapi.yaml", "openapi_yaml", route("openapi_yaml"), methods=["GET"])
    register_docs(app, config)
    app.register_error_handler(Problem, _problem_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    return app


ADMIN_PREFIX = "/__admin/"


def register_journal(app: Flask, journal: Journal) -> None:
    """``GET /__admin/requests`` lists the journal, newest first; ``DELETE`` empties it."""

    @app.after_request
    def record(response: Response) -> Response:
        if request.path.startswith(API_PREFIX):
            body = g.get("body")
            if body is None and (request.content_length or 0) <= request.max_content_length:
                body = request.get_data(cache=False)
            journal.record(
                method=request.method,
                path=request.path,
                query=request.query_string.decode("latin-1"),
                headers=dict(request.headers),
                body=body or b"",
                status=response.status_code,
                code=g.get("problem_code"),
                duration_ms=(time.perf_counter() - g.get("started", time.perf_counter())) * 1000,
            )
        return response

    def list_requests():
        limit = request.args.get("limit", type=int)
        entries = journal.entries(limit)
        return Response(
            _json({"requests": entries, "size": journal.size}), mimetype="application/json"
        )

    def clear_requests():
        journal.clear()
        return Response(status=204)

    app.add_url_rule(ADMIN_PREFIX + "requests", "list_requests", list_requests, methods=["GET"])
    app.add_url_rule(
        ADMIN_PREFIX + "requests", "clear_requests", clear_requests, methods=["DELETE"]
    )


CORS_ALLOW_HEADERS = "Authorization, Content-Type, Prefer"
CORS_EXPOSE_HEADERS = "Retry-After, WWW-Authenticate, Allow"
CORS_MAX_AGE = "600"


def _cors(origins: list[str]):
    """CORS for browser clients on the API routes: any origin with ``*``, else those listed.

    Preflights are answered by Flask's automatic OPTIONS, before authentication, and allow
    the route's own methods and the ``Authorization`` header.
    """
    any_origin = "*" in origins
    allowed = frozenset(origins)

    def add_cors_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if not origin or not request.path.startswith(API_PREFIX):
            return response
        if not any_origin:
            response.vary.add("Origin")
            if origin not in allowed:
                return response
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers["Access-Control-Allow-Methods"] = headers.get("Allow", "")
            headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = CORS_MAX_AGE
        return response

    return add_cors_headers


def _json(value) -> bytes:
    # ASCII output escapes what a client sent, lone surrogates included, instead of failing on it.
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def _problem_response(problem: Problem) -> Response:
    g.problem_code = problem.code
    if problem.status == 401:
        header = request.headers.get("Authorization", "")
        log.info("401 %s for key %s", problem.code, mask(header.split(" ")[-1]) if header else "-")
    response = Response(_json(problem.to_dict(request.path)), status=problem.status)
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
        limit = current_app.extensions["imageapi"].api.config.max_body_bytes
        detail = f"The body may be at most {limit} bytes."
    else:
        detail = error.description or error.name
    status = error.code or 500
    code = _HTTP_CODES.get(status, error.name.lower().replace(" ", "_").replace("'", ""))
    return _problem_response(Problem(status, code, detail, headers=headers))


def _internal_error(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _problem_response(
        Problem(500, "internal_error", "The server failed to answer this request.")
    )

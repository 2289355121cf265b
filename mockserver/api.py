"""The ``api`` blueprint: the spec's routes under ``/api/v1``.

Each request takes one spec snapshot, answers a ``Prefer`` scenario or authenticates, and hands
the work to :mod:`mockserver.core`; the rate limit is spent where the spec puts it, and its
``RateLimit`` fields go on the answer.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from mockserver import core
from mockserver.auth import bearer_token
from mockserver.faults import FAULT, STATUS_KINDS, Fault, FaultChooser, status_answer
from mockserver.latency import LATENCY_COUNTER
from mockserver.problems import Problem
from mockserver.ratelimit import Quota
from mockserver.redact import fingerprint
from mockserver.runtime import Runtime
from mockserver.scenarios import Scenarios
from mockserver.snapshot import Snapshot, to_json
from mockserver.store import StoreUnavailable
from mockserver.validation import parse_json

API_PREFIX = "/api/v1"


@dataclass
class Call:
    """What one request carries from hook to hook (``g.call``)."""

    started: float = field(default_factory=time.perf_counter)
    snapshot: Snapshot | None = None
    key: str | None = None
    plan: str | None = None
    quota: Quota | None = None
    body: bytes | None = None  # as read, for the journal
    problem_code: str | None = None
    model: str | None = None  # the model asked for, for the journal
    fault: Fault | None = None  # the fault injected into this answer, for the journal


def current_call() -> Call:
    if "call" not in g:
        g.call = Call()
    return g.call


def create_api(runtime: Runtime) -> Blueprint:
    api = Blueprint("api", __name__, url_prefix=API_PREFIX)
    config = runtime.config
    faults = runtime.faults

    @api.before_request
    def authenticate():
        if request.method == "OPTIONS":  # CORS preflight: answered before authentication
            return None
        call = current_call()
        call.snapshot = runtime.current()  # once: this request sees one spec throughout
        _inject_fault(faults, call)
        scenario = _scenario(call.snapshot.scenarios)
        if scenario is not None:
            return scenario
        call.key, call.plan = call.snapshot.keys.authenticate(request.headers.get("Authorization"))
        return None

    def admit() -> None:
        call = g.call
        if runtime.limiter is not None:
            plan = call.snapshot.spec.plans[call.plan]
            call.quota = runtime.limiter.take(call.key, call.plan, plan.requests_per_minute)

    def generation_number() -> int:
        """The generation's number in a seeded latency run, counted across workers."""
        try:
            return runtime.store.call(lambda: runtime.store.increment(LATENCY_COUNTER))
        except StoreUnavailable:
            return 0

    @api.after_request
    def rate_limit_fields(response: Response) -> Response:
        quota = current_call().quota
        if quota is not None:
            response.headers.update(quota.headers())
        return response

    @api.post("/generate")
    def generate():
        if request.mimetype != "application/json":
            raise Problem(
                415,
                "unsupported_media_type",
                f"Send the body as application/json, not {request.mimetype or 'nothing'}.",
            )
        # Werkzeug stops a body without Content-Length (chunked) at MAX_CONTENT_LENGTH and
        # returns what it read; that limit is one byte more than allowed, so that a cut-off
        # body shows itself by its length instead of being parsed.
        data = g.call.body = request.get_data(cache=False)
        if len(data) > config.max_body_bytes:
            raise RequestEntityTooLarge()
        body = parse_json(data)
        model = body.get("model") if isinstance(body, dict) else None
        g.call.model = model if isinstance(model, str) else g.call.snapshot.spec.default_model
        result = core.generate(
            body,
            g.call.plan,
            snapshot=g.call.snapshot,
            backend=runtime.backend,
            admit=admit,
            latency=config.latency,
            number=generation_number,
        )
        return Response(generation_json(result), mimetype="application/json")

    @api.get("/models")
    def list_models():
        admit()
        return Response(g.call.snapshot.model_list, mimetype="application/json")

    @api.get("/models/<model_id>")
    def get_model(model_id: str):
        g.call.model = model_id[:100]
        admit()
        body = g.call.snapshot.model_bodies.get(model_id)
        if body is None:
            raise Problem(404, "model_not_found", f"There is no model with id {model_id[:100]!r}.")
        return Response(body, mimetype="application/json")

    return api


def generation_json(result: dict) -> bytes:
    """``to_json(result)``, byte for byte, with each image's data URL joined in as it is rather
    than run through the JSON encoder, which takes longer over an image's base64 than over all
    the rest of the request. (A data URL is base64 after an ASCII media type: in JSON it needs
    no escape; one that did would be encoded as usual.)"""
    images = result["images"]
    urls = [image["data_url"] for image in images]
    if list(result)[-1] != "images" or any(
        not url.isascii() or '"' in url or "\\" in url for url in urls
    ):
        return to_json(result)
    parts = [to_json({**result, "images": None})[: -len(b"null}")], b"["]
    for index, (image, url) in enumerate(zip(images, urls, strict=True)):
        if list(image)[-1] != "data_url":
            return to_json(result)
        head = to_json({**image, "data_url": None})[: -len(b"null}")]
        parts += [b"," if index else b"", head, b'"', url.encode("ascii"), b'"}']
    parts.append(b"]}")
    return b"".join(parts)


def presented_key_fingerprint() -> str | None:
    """The fingerprint of the Bearer key the request presents, known to the server or not."""
    key = bearer_token(request.headers.get("Authorization"))
    return fingerprint(key) if key else None


def _route() -> str:
    """The OpenAPI path template of the request's route: ``/api/v1/models/{model_id}``."""
    rule = request.url_rule
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) if rule else request.path


def _inject_fault(faults: FaultChooser, call: Call) -> None:
    """Apply this request's fault (see :mod:`mockserver.faults`): raise the injected 429 or 503,
    or mark the answer for the transport fault."""
    key = bearer_token(request.headers.get("Authorization"))
    fault = faults.choose(request.headers.get("Prefer"), key, request.method, request.path)
    if fault is None:
        return
    snapshot = call.snapshot
    assert snapshot is not None  # taken when the request began
    if fault.kind in STATUS_KINDS:
        operation = snapshot.spec.document["paths"][_route()][request.method.lower()]
        if fault.kind not in operation["responses"]:
            if fault.source == "prefer":
                raise Problem(
                    400,
                    "invalid_request",
                    f"Prefer: fault={fault.kind} is not documented for {request.method} "
                    f"{_route()}.",
                    field="Prefer",
                )
            return  # the service would not answer this here: the request goes through
        call.fault = fault
        try:
            _, plan = snapshot.keys.authenticate(request.headers.get("Authorization"))
        except Problem:
            plan = None
        call.plan = plan  # for the journal
        limit = snapshot.spec.plans[plan].requests_per_minute if plan else None
        answer = status_answer(fault.kind, plan, limit)
        if fault.source == "prefer":
            answer.headers["Preference-Applied"] = f"fault={fault.kind}"
        raise answer
    call.fault = fault
    request.environ[FAULT] = fault.kind


def _scenario(scenarios: Scenarios | None) -> Response | None:
    """The documented response a ``Prefer`` header asks for, in mock mode."""
    prefer = request.headers.get("Prefer")
    if scenarios is None or not prefer or request.url_rule is None:
        return None
    path = _route()
    allow = ", ".join(sorted((request.url_rule.methods or set()) - {"HEAD"}))
    documented = scenarios.respond(path, request.method, prefer, allow)
    if documented is None:
        return None
    response = Response(Scenarios.encode(documented), status=documented.status)
    response.mimetype = documented.media_type
    response.headers.update(documented.headers)
    response.headers["Preference-Applied"] = documented.applied
    return response

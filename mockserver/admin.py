"""The ``admin`` blueprint under ``/__admin``: the request journal and the state it lives in.

    GET    /__admin/requests   the journal, newest first (?limit=N), with the count of
                               requests that could not be stored (the store was down)
    DELETE /__admin/requests   empty it
    GET    /__admin/state      which store this server shares, and whether it answers

Every API request (under ``/api/v1/``, matched to a route or not) is recorded here.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from mockserver.api import API_PREFIX, current_call
from mockserver.journal import Journal
from mockserver.problems import Problem
from mockserver.runtime import Runtime
from mockserver.snapshot import to_json
from mockserver.store import StoreUnavailable, redacted

ADMIN_PREFIX = "/__admin"


def create_admin(runtime: Runtime) -> Blueprint:
    admin = Blueprint("admin", __name__, url_prefix=ADMIN_PREFIX)
    journal = runtime.journal

    @admin.get("/state")
    def state():
        try:
            runtime.store.check()
            reachable = True
        except StoreUnavailable:
            reachable = False
        return _json(
            {
                "store": redacted(runtime.store.url),
                "reachable": reachable,
                "rate_limits": runtime.limiter is not None,
                "journal_size": journal.size if journal else 0,
                "unsaved": journal.unsaved() if journal else 0,
            }
        )

    if journal is not None:
        _journal_routes(admin, journal)
    return admin


def _journal_routes(admin: Blueprint, journal: Journal) -> None:
    @admin.after_app_request
    def record(response: Response) -> Response:
        # By path, not blueprint: a request no route matched (404, 405) is journaled too.
        if request.path.startswith(API_PREFIX + "/"):
            call = current_call()
            body = call.body
            if body is None and (request.content_length or 0) <= request.max_content_length:
                body = request.get_data(cache=False)
            journal.record(
                method=request.method,
                path=request.path,
                query=request.query_string.decode("latin-1"),
                headers=dict(request.headers),
                body=body or b"",
                status=response.status_code,
                code=call.problem_code,
                duration_ms=(time.perf_counter() - call.started) * 1000,
            )
        return response

    @admin.get("/requests")
    def list_requests():
        limit = request.args.get("limit", type=int)
        try:
            entries = journal.entries(limit)
        except StoreUnavailable as exc:
            raise _unavailable(exc) from exc
        return _json({"requests": entries, "size": journal.size, "unsaved": journal.unsaved()})

    @admin.delete("/requests")
    def clear_requests():
        try:
            journal.clear()
        except StoreUnavailable as exc:
            raise _unavailable(exc) from exc
        return Response(status=204)


def _unavailable(exc: StoreUnavailable) -> Problem:
    detail = f"The state store does not answer: {exc}"
    return Problem(503, "state_unavailable", detail, headers={"Retry-After": "1"})


def _json(value) -> Response:
    return Response(to_json(value), mimetype="application/json")

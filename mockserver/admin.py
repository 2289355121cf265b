"""The ``admin`` blueprint under ``/__admin``: the request journal and the state it lives in.

    GET    /__admin/requests   the journal, newest first (?limit=N), with the count of
                               requests that could not be stored (the store was down);
                               filtered by ?method=&path=&status=&code=&model=&plan=
                               &key_fingerprint=&since=
    POST   /__admin/requests/count   how many entries the same filters (a JSON object) match
    DELETE /__admin/requests   empty it
    GET/PUT/DELETE /__admin/faults      the seeded faults in force (see mockserver.faults)
    GET/POST/DELETE /__admin/sequences  answers waiting for a key's next requests
    GET    /__admin/state      which store this server shares, and whether it answers
    GET    /__admin/openapi.json  this surface's own OpenAPI document

Every API request (under ``/api/v1/``, matched to a route or not) is recorded here.

Who may call it: with an admin token set (``--admin-token``), only a request that sends it as
``Authorization: Bearer <token>`` (compared in constant time); without one, only clients on this
host (a loopback address) that name it so (``Host`` a loopback address or ``localhost``: a page
whose name was rebound to 127.0.0.1 sends its own name), unless the server was told
``--admin-open``. ``python -m mockserver``
refuses to listen on an address other machines can reach with neither.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from flask import Blueprint, Response, request

from mockserver.api import API_PREFIX, current_call, presented_key_fingerprint
from mockserver.auth import bearer_token, digest
from mockserver.config import Config
from mockserver.faults import MAX_SEQUENCE_ANSWERS, FaultChooser, parse_sequence
from mockserver.journal import Filters, Journal
from mockserver.problems import Problem, shown
from mockserver.redact import redacted_url
from mockserver.runtime import Runtime
from mockserver.snapshot import to_json
from mockserver.store import StateStore, StoreUnavailable
from mockserver.validation import parse_json

ADMIN_PREFIX = "/__admin"
ADMIN_SPEC_PATH = Path(__file__).with_name("admin-openapi.yaml")
ADMIN_REALM = 'Bearer realm="imageapi-admin"'


def is_loopback(host: str) -> bool:
    """Whether *host* (an address, or ``localhost``) is reachable from this machine only."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a name: it may resolve to anything
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def create_admin(runtime: Runtime) -> Blueprint:
    admin = Blueprint("admin", __name__, url_prefix=ADMIN_PREFIX)
    journal = runtime.journal
    admin.before_request(_gate(runtime.config))

    @admin.get("/state")
    def state():
        try:
            runtime.store.check()
            reachable = True
        except StoreUnavailable:
            reachable = False
        return _json(
            {
                "store": redacted_url(runtime.store.url),
                "reachable": reachable,
                "rate_limits": runtime.limiter is not None,
                "journal_size": journal.size if journal else 0,
                "unsaved": journal.unsaved() if journal else 0,
            }
        )

    @admin.get("/openapi.json")
    def admin_openapi():
        return _json(admin_document())

    _fault_routes(admin, runtime.faults, runtime.store)
    if journal is not None:
        _journal_routes(admin, journal)
    else:

        @admin.route("/requests", methods=["GET", "DELETE"])
        @admin.post("/requests/count")
        def journal_off():
            raise Problem(404, "journal_off", "This server keeps no journal (--journal-size 0).")

    return admin


def _journal_routes(admin: Blueprint, journal: Journal) -> None:
    @admin.after_app_request
    def record(response: Response) -> Response:
        # By path, not blueprint: a request no route matched (404, 405) is journaled too.
        if request.path.startswith(API_PREFIX + "/"):
            call = current_call()
            body = call.body
            fits = (request.content_length or 0) <= (request.max_content_length or 0)
            if body is None and fits:
                body = request.get_data(cache=False)
            journal.record(
                method=request.method,
                path=request.path,
                query=request.query_string.decode("latin-1"),
                # The (name, value) pairs, each name once as the environ holds one header per
                # name: what dict(request.headers) gives, without looking each one up again.
                headers=dict(request.headers.items()),
                body=body or b"",
                status=response.status_code,
                code=call.problem_code,
                duration_ms=(time.perf_counter() - call.started) * 1000,
                plan=call.plan,
                key_fingerprint=presented_key_fingerprint(),
                model=call.model,
                fault=call.fault.to_dict() if call.fault else None,
            )
        return response

    @admin.get("/requests")
    def list_requests():
        text, limit = request.args.get("limit"), None
        if text is not None:
            digits = text.lstrip("0")
            if not (text.isascii() and text.isdigit() and digits):
                raise Problem(
                    400,
                    "invalid_request",
                    f"limit must be a whole number above 0, not {shown(text)}.",
                )
            # More than nine digits is more than any journal holds, and needs no int().
            limit = int(digits) if len(digits) <= 9 else 10**9
        filters = _filters(request.args.to_dict())
        try:
            entries = journal.find(filters, limit)
        except StoreUnavailable as exc:
            raise _unavailable(exc) from exc
        # The entries are stored as the JSON they are served as: joined, not parsed again.
        tail = to_json(
            {"size": journal.size, "max_bytes": journal.max_bytes, "unsaved": journal.unsaved()}
        )
        body = b'{"requests":[' + ",".join(entries).encode("ascii") + b"]," + tail[1:]
        return Response(body, mimetype="application/json")

    @admin.post("/requests/count")
    def count_requests():
        filters = _filters(_json_body({}))
        try:
            return _json({"count": len(journal.find(filters))})
        except StoreUnavailable as exc:
            raise _unavailable(exc) from exc

    @admin.delete("/requests")
    def clear_requests():
        try:
            journal.clear()
        except StoreUnavailable as exc:
            raise _unavailable(exc) from exc
        return Response(status=204)


def _fault_routes(admin: Blueprint, faults: FaultChooser, store: StateStore) -> None:
    """The seeded faults in force, and the sequences (see :mod:`mockserver.faults`)."""

    def faults_state(plan):
        return _json({"faults": plan.text() if plan else None})

    @admin.get("/faults")
    def get_faults():
        return faults_state(_stored(faults.plan))

    @admin.put("/faults")
    def put_faults():
        given = _json_body(None)
        text = given.get("faults") if isinstance(given, dict) else 0
        if not isinstance(text, str | None):
            detail = "faults must be a string or null."
            raise Problem(400, "invalid_request", detail, field="faults")
        try:
            return faults_state(_stored(lambda: faults.set_plan(text or "off")))
        except ValueError as exc:
            raise Problem(400, "invalid_request", f"{exc}.", field="faults") from None

    @admin.delete("/faults")
    def reset_faults():
        _stored(lambda: faults.set_plan(None))
        return Response(status=204)

    @admin.get("/sequences")
    def list_sequences():
        return _json({"sequences": _stored(store.sequences)})

    @admin.post("/sequences")
    def add_sequences():
        given = _json_body(None)
        items = given.get("sequences", [given]) if isinstance(given, dict) else given
        if not isinstance(items, list):
            raise Problem(400, "invalid_request", "Send a sequence, or {sequences: [...]}.")
        try:
            parsed = [parse_sequence(item) for item in items[:MAX_SEQUENCE_ANSWERS]]
        except ValueError as exc:
            raise Problem(400, "invalid_request", f"{exc}.") from None
        for name, answers in parsed:
            if not _stored(lambda n=name, a=answers: store.sequence_add(
                    n, a, max_total=MAX_SEQUENCE_ANSWERS)):  # fmt: skip
                raise Problem(
                    409,
                    "sequences_full",
                    f"The sequences may hold {MAX_SEQUENCE_ANSWERS} answers in all; "
                    "DELETE /__admin/sequences to start again.",
                )
        return _json({"sequences": _stored(store.sequences)}, status=201)

    @admin.delete("/sequences")
    def clear_sequences():
        _stored(store.sequences_clear)
        return Response(status=204)


def _stored(operation):
    """``operation()`` on the state store, a 503 when it does not answer."""
    try:
        return operation()
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc


def _json_body(default):
    """The request's JSON object (*default* when there is no body), or a 400."""
    data = request.get_data(cache=False)
    if not data and default is not None:
        return default
    value = parse_json(data)
    if not isinstance(value, dict | list):
        raise Problem(400, "invalid_request", "The body must be a JSON object.")
    return value


def _filters(given) -> Filters:
    if not isinstance(given, dict):
        raise Problem(400, "invalid_request", "The filters are a JSON object.")
    try:
        return Filters.parse(given)
    except ValueError as exc:
        raise Problem(400, "invalid_request", f"{exc}.") from None


@functools.cache
def admin_document() -> dict:
    """The admin surface's own OpenAPI document (``/__admin/openapi.json``)."""
    return yaml.safe_load(ADMIN_SPEC_PATH.read_text(encoding="utf-8"))


def _host_name() -> str:
    """The name the client addressed, from ``Host`` (without its port or IPv6 brackets)."""
    try:
        return urlsplit("//" + request.host).hostname or ""
    except ValueError:  # an unclosed "[": no name this server answers to
        return ""


def _gate(config: Config):
    """The check every admin request passes first; see the module's docstring."""
    expected = digest(config.admin_token) if config.admin_token else None

    def check():
        if expected is None:
            if config.admin_open or (
                is_loopback(request.remote_addr or "") and is_loopback(_host_name())
            ):
                return
            raise Problem(
                403,
                "admin_forbidden",
                "The admin routes answer clients on the server's own host only, addressing it "
                "as localhost or a loopback address; start the server with --admin-token to "
                "reach them from elsewhere.",
            )
        presented = bearer_token(request.headers.get("Authorization"))
        if presented is None:
            raise Problem(
                401,
                "missing_admin_token",
                "Send the admin token as 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": ADMIN_REALM},
            )
        if not hmac.compare_digest(digest(presented), expected):
            raise Problem(
                401,
                "invalid_admin_token",
                "The admin token is not this server's.",
                headers={"WWW-Authenticate": f'{ADMIN_REALM}, error="invalid_token"'},
            )

    return check


def _unavailable(exc: StoreUnavailable) -> Problem:
    detail = f"The state store does not answer: {exc}"
    return Problem(503, "state_unavailable", detail, headers={"Retry-After": "1"})


def _json(value, status: int = 200) -> Response:
    return Response(to_json(value), status=status, mimetype="application/json")

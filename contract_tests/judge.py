"""The contract as a model: for any request, what the answer must be; for any answer, the
promises it breaks.

``Judge(contract, keys).verdict(request, reply)`` returns the broken promises, each with its id
(``PROMISES``, every one a row of PROMISES.md), a one-line reason and the spec's wording. The
expectation is computed from openapi.yaml alone (the catalog, the request schema and its
``x-problem-code`` annotations, the error table and the documented order of checks), never from
the mock: the differential test (test_judge.py) and the validating proxy (proxy.py) both use it.

Where the spec leaves a choice open the judge accepts every answer the spec allows: which of
several faults a 400 names first, whether an unknown route is refused before or after the key
is looked at, whether a key the judge does not know is valid (its plan is then unknown, and a
200, a 403 or a 401 ``invalid_api_key`` are all possible).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from contract_tests import images
from contract_tests.spec import GENERATE, MODELS, Contract

MAX_BODY = 64 * 1024  # "larger than 64 KiB" (the error table)
MODEL_PATH = MODELS + "/{model_id}"
API_PREFIX = "/api/"  # the spec's routes are under it; what is outside is not the API's
STRUCTURAL_CODES = {  # the error table's codes for faults of structure
    "type": "invalid_type",
    "required": "missing_field",
    "additionalProperties": "unknown_field",
}
OTHER_CODE = "invalid_request"  # "any other value outside its schema"
BEARER = re.compile(r"^bearer ([^\s]+)$", re.IGNORECASE)
B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750 2.1
# The documented order of checks, by the status each answers with (info.description).
RANK = {401: 0, 415: 1, 413: 2, 400: 3, 403: 4, 429: 5, 503: 6, 200: 7}
CLOCK_SKEW_S = 24 * 3600  # between the judge's clock and the target's: a day, not a factor 1000
SEEN_IDS = 10_000


@dataclass(frozen=True)
class Promise:
    row: str  # the start of the promise's row in PROMISES.md
    wording: str  # what the spec says


PROMISES: dict[str, Promise] = {
    "auth-required": Promise(
        "Every operation needs `Authorization: Bearer <key>`",
        "security: bearerAuth; every operation needs a Bearer API key",
    ),
    "auth-missing": Promise(
        "A missing or malformed header is 401 `missing_api_key`",
        "missing_api_key 401: no `Authorization: Bearer <key>` header, or a malformed one",
    ),
    "auth-unknown": Promise(
        "An unknown key is 401 `invalid_api_key`", "invalid_api_key 401: the key is not known"
    ),
    "auth-challenge": Promise(
        "Every 401 carries a `Bearer` challenge", "WWW-Authenticate: required on Unauthorized"
    ),
    "auth-valid": Promise(
        "A valid key is never answered 401", "bearerAuth: an API key sent as Bearer <key>"
    ),
    "problem-json": Promise(
        "Every 4xx/5xx is `application/problem+json`",
        "Every 4xx and 5xx answer is an RFC 9457 application/problem+json document",
    ),
    "problem-status": Promise(
        "A problem's `status` member equals the HTTP status", "Problem.status: The HTTP status code"
    ),
    "problem-type": Promise(
        "`type` is a URI", "Problem.type: A URI that identifies the problem type (format: uri)"
    ),
    "problem-instance": Promise(
        "`instance`, where given, is the request path", "Problem.instance: The request path"
    ),
    "problem-code": Promise(
        "`code` is one the spec documents for that status",
        "a stable, machine-readable code (the per-status Problem schemas' code enum)",
    ),
    "problem-field": Promise(
        "`field` names the one field at fault",
        "where one field is at fault, that `field`",
    ),
    "problem-errors": Promise(
        "When several fields are wrong, `errors` lists each",
        "When several fields are wrong, `errors` lists each.",
    ),
    "json-media-types": Promise(
        '`application/json; charset=utf-8`, `charset="utf-8"`, `Application/JSON` are JSON',
        "RFC 9110 8.3.1: media types are case-insensitive and take parameters",
    ),
    "order": Promise(
        "Checks run in order",
        "A request is checked in this order, and the first failing check answers: "
        "authentication (401), media type (415), size (413), JSON syntax (400), schema and "
        "per-model rules (400), plan (403), rate limit (429), generation (503).",
    ),
    "no-5xx": Promise(
        "Nothing a client sends causes a 5xx", "internal_error 500: a fault on the server's side"
    ),
    "unavailable": Promise(
        "`internal_error` 500 / `model_unavailable` 503 with `Retry-After`",
        "model_unavailable 503: the model cannot be served right now (see Retry-After)",
    ),
    "rate-limited": Promise(
        "A 429 is a problem `rate_limited` with `Retry-After` in whole seconds",
        "rate_limited 429: the plan's request rate is spent (see Retry-After)",
    ),
    "bad-request": Promise(
        "`invalid_request` for other values outside the schema",
        "400: the request breaks the schema or a per-model rule (the error table's codes)",
    ),
    "malformed-json": Promise(
        "`malformed_json` for a body that is not UTF-8 JSON",
        "malformed_json 400: the body is not valid UTF-8 JSON",
    ),
    "too-large": Promise(
        "`payload_too_large` 413 above 64 KiB", "payload_too_large 413: larger than 64 KiB"
    ),
    "media-type": Promise(
        "`unsupported_media_type` 415 for a body that is not `application/json`",
        "unsupported_media_type 415: the body is not application/json",
    ),
    "plan": Promise(
        "403 `model_not_in_plan` exactly when the key's plan lacks the model",
        "model_not_in_plan 403: the key's plan does not include the model",
    ),
    "generate-ok": Promise(
        "A valid body with a key whose plan includes the model gets 200",
        "generateImage 200: the generated images and the parameters that were used",
    ),
    "echo": Promise(
        "The response echoes what was used",
        "Omitted fields take the defaults shown in the schema; the response echoes what was "
        "actually used.",
    ),
    "response-schema": Promise(
        "The response has no other members", "GenerateResponse (additionalProperties: false)"
    ),
    "num-images": Promise("`num_images` images", "images: The images, `num_images` of them."),
    "image-seeds": Promise(
        "Image `i` uses seed `(seed + i) mod 2^32`", "image `i` uses seed `(seed + i) mod 2^32`"
    ),
    "images-decode": Promise(
        "Images decode, in the asked format, at the asked size",
        "output_format: The encoding of the returned images; width/height in pixels",
    ),
    "data-url": Promise(
        "`data_url` is an RFC 2397 base64 data URL",
        "Image.data_url: The image as an RFC 2397 data: URL (base64)",
    ),
    "created": Promise(
        "`created` is when it finished, in seconds since the epoch",
        "created: When the generation finished, in seconds since the Unix epoch.",
    ),
    "unique-id": Promise(
        "Each generation has its own `id`", "id: The generation's id (pattern ^gen_[0-9a-f]{16}$)"
    ),
    "catalog": Promise(
        "The served catalog is the spec's catalog",
        "listModels: The catalog of models (x-imageapi-catalog)",
    ),
    "model-by-id": Promise("`GET /models/{id}` serves that model", "getModel 200: The model."),
    "model-not-found": Promise(
        "`model_not_found` 404 for an unknown model id",
        "model_not_found 404: GET /api/v1/models/{model_id} for an unknown id",
    ),
    "not-found": Promise(
        "`not_found` 404, a problem, for a route that does not exist",
        "not_found 404: no such route",
    ),
    "method-not-allowed": Promise(
        "`method_not_allowed` 405 with `Allow`",
        "method_not_allowed 405: the route exists, the method does not (see Allow)",
    ),
    "json-utf8": Promise(
        "JSON answers are UTF-8", "RFC 8259 8.1: JSON exchanged between systems is UTF-8"
    ),
    "head": Promise(
        "HEAD is GET without a body", "RFC 9110 9.3.2: HEAD is GET without the content"
    ),
}


@dataclass(frozen=True)
class Violation:
    promise: str  # an id of PROMISES
    reason: str  # one line: what this answer did

    @property
    def wording(self) -> str:
        return PROMISES[self.promise].wording

    def as_dict(self) -> dict[str, str]:
        return {"promise": self.promise, "reason": self.reason, "spec": self.wording}


@dataclass
class Request:
    method: str
    path: str  # with the query, as sent
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)


def _header(headers: dict[str, str], name: str) -> str | None:
    """A header's value, its name matched without case (HTTP's rule)."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    @property
    def media_type(self) -> str:
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()


@dataclass
class Outcome:
    """One answer the contract allows: a status and, for a refusal, the codes and fields it may
    name; for a 200, what to check it against."""

    status: int
    promise: str  # the promise that decides this outcome
    codes: frozenset[str] = frozenset()
    fields: frozenset[str | None] = frozenset({None})
    faults: dict[str, set[str]] = field(default_factory=dict)  # field -> codes (400s)
    body: dict[str, Any] | None = None  # a valid generation body (200 of generate)
    operation: str = ""  # generate, list, get

    def describe(self) -> str:
        codes = "/".join(sorted(self.codes))
        fields = "/".join(sorted(f for f in self.fields if f))
        return " ".join(
            part for part in (str(self.status), codes, fields and f"({fields})") if part
        )


class Judge:
    """What *contract* says about an exchange. *keys* maps each known key to its plan; a key
    that is not in it is "unknown to the judge" (perhaps valid, perhaps not)."""

    def __init__(
        self,
        contract: Contract,
        keys: dict[str, str],
        *,
        check_images: bool = True,
        decode_images: bool = False,
    ):
        self.contract = contract
        self.keys = keys
        # Each image's bytes are checked for format, size and wholeness (contract_tests.images);
        # decode_images decodes the pixels too, at a few milliseconds a 1024x1024 image.
        self.check_images = check_images
        self.decode_images = decode_images
        self.validator = Draft202012Validator(contract.request_schema)
        self.fast_request = _fast_validator(contract.request_schema)
        response = contract.document["paths"][GENERATE]["post"]["responses"]["200"]
        self.fast_response = _fast_validator(response["content"]["application/json"]["schema"])
        # The ids of the last generations seen, to tell a repeated one (bounded, thread-safe).
        self.seen_ids: OrderedDict[str, None] = OrderedDict()
        self.seen_lock = threading.Lock()
        self.schema = contract.request_schema

    # What the answer must be ---------------------------------------------------------------

    def expect(self, request: Request) -> list[Outcome] | None:
        """Every outcome the contract allows for *request*, or None when the contract does
        not decide it (a CORS preflight, a mock scenario asked with ``Prefer``)."""
        method = request.method.upper()
        path = unquote(urlsplit(request.path).path)
        if method == "OPTIONS" or request.header("Prefer") is not None:
            return None
        if not path.startswith(API_PREFIX):  # the docs, the spec: a deployment's own pages
            return None
        route, model_id = self._route(path)
        auth = self._auth(request)
        # The spec does not say whether a route or method is looked at before the key.
        refused_key = [outcome for outcome in auth if outcome.status == 401]
        if route is None:
            return [Outcome(404, "not-found", frozenset({"not_found"})), *refused_key]
        allowed = self.contract.methods(route) | (
            {"HEAD"} if "GET" in self.contract.methods(route) else set()
        )
        if method not in allowed:
            return [
                Outcome(405, "method-not-allowed", frozenset({"method_not_allowed"})),
                *refused_key,
            ]
        if auth and all(outcome.status == 401 for outcome in auth):
            return auth
        plan = self.keys.get(self._token(request) or "")
        unknown_key = refused_key
        if route == MODELS:
            return [Outcome(200, "catalog", operation="list"), *unknown_key]
        if route == MODEL_PATH:
            if model_id in self.contract.models:
                found = Outcome(200, "model-by-id", operation="get", body={"id": model_id})
                return [found, *unknown_key]
            return [
                Outcome(404, "model-not-found", frozenset({"model_not_found"})),
                *unknown_key,
            ]
        return [*self._generation(request, plan), *unknown_key]

    def _route(self, path: str) -> tuple[str | None, str | None]:
        if path in (GENERATE, MODELS):
            return path, None
        prefix = MODELS + "/"
        if path.startswith(prefix) and "/" not in path[len(prefix) :] and path != prefix:
            return MODEL_PATH, path[len(prefix) :]
        return None, None

    def _token(self, request: Request) -> str | None:
        match = BEARER.match(request.header("Authorization") or "")
        return match.group(1) if match else None

    def _auth(self, request: Request) -> list[Outcome]:
        """[] for a key the judge knows; 401 outcomes otherwise (with nothing else for a
        missing or malformed header; beside the request's other outcomes for a well-formed
        key the judge does not know)."""
        header = request.header("Authorization")
        token = self._token(request)
        if header is None or token is None:
            return [Outcome(401, "auth-missing", frozenset({"missing_api_key"}))]
        if token in self.keys:
            return []
        codes = (
            {"invalid_api_key"} if B64TOKEN.match(token) else {"invalid_api_key", "missing_api_key"}
        )
        outcome = Outcome(401, "auth-unknown", frozenset(codes))
        return [outcome, Outcome(0, "auth-unknown")]  # 0: "any other outcome may follow"

    def _generation(self, request: Request, plan: str | None) -> list[Outcome]:
        media_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return [Outcome(415, "media-type", frozenset({"unsupported_media_type"}))]
        if len(request.body) > MAX_BODY:
            return [Outcome(413, "too-large", frozenset({"payload_too_large"}))]
        try:
            body = json.loads(request.body.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return [Outcome(400, "malformed-json", frozenset({"malformed_json"}))]
        faults = self.faults(body)
        if faults:
            return [
                Outcome(
                    400,
                    "bad-request",
                    frozenset(set().union(*faults.values())),
                    frozenset(faults),
                    faults=faults,
                )
            ]
        model = body.get("model", self.contract.default_model)
        ok = Outcome(200, "generate-ok", body=body, operation="generate")
        forbidden = Outcome(403, "plan", frozenset({"model_not_in_plan"}), frozenset({"model"}))
        if plan is None:  # a key the judge does not know: its plan is unknown too
            return [ok, forbidden]
        return [ok] if self.contract.plan_includes(plan, model) else [forbidden]

    def faults(self, body: Any) -> dict[Any, set[str]]:
        """Each field at fault in *body* (None for the body as a whole) and the codes the
        error table gives its faults: a structural code, or the deepest ``x-problem-code`` on
        the failing keyword's schema path, or ``invalid_request``."""
        if _fast_valid(self.fast_request, body):  # the common case, cheaply
            return {}
        found: dict[Any, set[str]] = {}
        for error in self.validator.iter_errors(body):
            found.setdefault(_field_of(error), set()).add(self._code_of(error))
        return found

    def _code_of(self, error: ValidationError) -> str:
        if error.validator in STRUCTURAL_CODES:
            return STRUCTURAL_CODES[str(error.validator)]
        code = OTHER_CODE
        node: Any = self.schema
        for key in error.absolute_schema_path:
            node = node[key]
            if isinstance(node, dict) and "x-problem-code" in node:
                code = node["x-problem-code"]
        return code

    # The verdict on an answer -------------------------------------------------------------

    def reads_body(self, request: Request, status: int) -> bool:
        """Whether ``verdict`` reads the body of an answer of *status* to *request*: a refusal's
        problem, a 200 of one of the API's operations. Any other answer is judged by its head
        alone, so the proxy can stream its body on unread."""
        if request.method.upper() == "HEAD":
            return False
        path = unquote(urlsplit(request.path).path)
        return status >= 400 or (status == 200 and self._route(path)[0] is not None)

    def verdict(self, request: Request, answer: Answer) -> list[Violation]:
        """Every promise *answer* breaks as the answer to *request*."""
        broken: list[Violation] = []
        method = request.method.upper()
        if method == "HEAD" and answer.body:
            broken.append(Violation("head", f"HEAD answered with {len(answer.body)} bytes"))
        if answer.status >= 500 and answer.status != 503:
            broken.append(Violation("no-5xx", f"the request got a {answer.status}"))
        if answer.status >= 400:
            broken += self._problem(request, answer)
        charset = _charset(answer.header("Content-Type") or "")
        if charset is not None and charset != "utf-8" and "json" in answer.media_type:
            broken.append(Violation("json-utf8", f"a JSON answer in {charset}"))
        outcomes = self.expect(request)
        if outcomes is None:
            return broken
        matching = [o for o in outcomes if o.status == answer.status]
        waited = self._retry_later(outcomes, answer)
        if waited is not None:
            return broken + waited
        if not matching:
            if answer.status < 500 or answer.status == 503:
                broken.append(self._mismatch(outcomes, request, answer))
            return broken
        return broken + self._match(matching, request, answer)

    def _mismatch(self, outcomes: list[Outcome], request: Request, answer: Answer) -> Violation:
        """The promise an answer of a status no outcome has breaks: the one of the check that
        should have answered, or the order of checks when an earlier check answered instead."""
        decided = [o for o in outcomes if o.status]
        allowed = " or ".join(o.describe() for o in decided)
        reason = f"expected {allowed}, got {answer.status}"
        statuses = {o.status for o in decided}
        if answer.status == 401:
            return Violation("auth-valid", reason)
        if request.method.upper() == "HEAD" and answer.status == 405 and 200 in statuses:
            return Violation("head", reason)  # GET is answered: so must HEAD be
        if statuses == {401}:
            return Violation("auth-required", reason)
        if 403 in statuses | {answer.status} and statuses <= {200, 403}:
            return Violation("plan", reason)
        expected = decided[0]
        if answer.status == 415 and request.header("Content-Type"):
            return Violation("json-media-types", reason)
        ranked = answer.status in RANK and expected.status in RANK
        # An earlier check answered, or the plan was looked at before the schema.
        plan_first = (answer.status, expected.status) == (403, 400)
        if ranked and (RANK[answer.status] < RANK[expected.status] or plan_first):
            return Violation("order", reason)
        return Violation(expected.promise, reason)

    def _retry_later(self, outcomes: list[Outcome], answer: Answer) -> list[Violation] | None:
        """A 429, or a generation's 503, where the contract allows one (after every check that
        comes before it); None for any other answer."""
        statuses = {o.status for o in outcomes}
        # A 429 may come wherever no check before the rate limit refuses: a success, or a 404
        # or 405, whose place in the order the spec leaves open.
        if answer.status == 429 and statuses & {200, 404, 405}:
            retry = (answer.header("Retry-After") or "").strip()
            if not retry.isdigit():
                return [Violation("rate-limited", f"a 429 with Retry-After {retry!r}")]
            return []
        generation = any(o.operation == "generate" for o in outcomes)
        if answer.status == 503 and generation:
            retry = (answer.header("Retry-After") or "").strip()
            if not retry.isdigit():
                return [Violation("unavailable", f"a 503 with Retry-After {retry!r}")]
            return []
        return None

    def _problem(self, request: Request, answer: Answer) -> list[Violation]:
        broken: list[Violation] = []
        if answer.media_type != "application/problem+json":
            return [
                Violation("problem-json", f"a {answer.status} as {answer.media_type or 'no type'}")
            ]
        if request.method.upper() == "HEAD":
            return broken
        try:
            problem = json.loads(answer.body)
        except ValueError:
            return [Violation("problem-json", f"a {answer.status} whose body is not JSON")]
        if not isinstance(problem, dict):
            return [Violation("problem-json", f"a {answer.status} whose body is not an object")]
        if problem.get("status") != answer.status:
            broken.append(
                Violation(
                    "problem-status",
                    f"status member {problem.get('status')!r} on a {answer.status}",
                )
            )
        kind = problem.get("type")
        if (
            not isinstance(kind, str)
            or not urlsplit(kind).scheme
            or not isinstance(problem.get("title"), str)
        ):
            broken.append(Violation("problem-type", f"type {kind!r} is not a URI or title missing"))
        documented = self.contract.problem_codes(answer.status)
        if problem.get("code") not in documented:
            broken.append(
                Violation(
                    "problem-code",
                    f"code {problem.get('code')!r} is not documented for {answer.status}",
                )
            )
        instance = problem.get("instance")
        raw = urlsplit(request.path).path
        paths = (raw, unquote(raw))  # as sent, or percent-decoded
        if instance is not None and not (isinstance(instance, str) and instance.endswith(paths)):
            broken.append(Violation("problem-instance", f"instance {instance!r} for {raw}"))
        if answer.status == 401:
            challenge = (answer.header("WWW-Authenticate") or "").split(" ")[0].lower()
            if challenge != "bearer":
                broken.append(Violation("auth-challenge", "a 401 without a Bearer challenge"))
        if answer.status == 405 and not answer.header("Allow"):
            broken.append(Violation("method-not-allowed", "a 405 without Allow"))
        return broken

    def _match(self, matching: list[Outcome], request: Request, answer: Answer) -> list[Violation]:
        """The broken promises of an answer with an allowed status, judged against the
        outcomes of that status (the fewest violations wins)."""
        verdicts = [self._against(outcome, request, answer) for outcome in matching]
        return min(verdicts, key=len)

    def _against(self, outcome: Outcome, request: Request, answer: Answer) -> list[Violation]:
        if outcome.status == 405:
            return self._allow(request, answer)
        if outcome.status >= 400:
            return self._refusal(outcome, request, answer)
        if request.method.upper() == "HEAD":
            return []
        try:
            result = json.loads(answer.body)
        except ValueError:
            return [Violation(outcome.promise, "a 200 whose body is not JSON")]
        if outcome.operation == "list":
            return self._catalog(result)
        if outcome.operation == "get":
            model_id = str((outcome.body or {}).get("id"))
            if result != self.contract.models.get(model_id):
                return [Violation("model-by-id", f"GET {request.path} served another model")]
            return []
        return self._generated(outcome.body or {}, result)

    def _allow(self, request: Request, answer: Answer) -> list[Violation]:
        route, _ = self._route(unquote(urlsplit(request.path).path))
        allowed = {m.strip().upper() for m in (answer.header("Allow") or "").split(",")}
        missing = self.contract.methods(route or "") - allowed
        if request.method.upper() in allowed or missing:
            return [Violation("method-not-allowed", f"Allow: {answer.header('Allow')!r}")]
        return []

    def _refusal(self, outcome: Outcome, request: Request, answer: Answer) -> list[Violation]:
        if request.method.upper() == "HEAD" or answer.media_type != "application/problem+json":
            return []  # not a problem: _problem has said so
        try:
            problem = json.loads(answer.body)
        except ValueError:
            return []
        if not isinstance(problem, dict):
            return []
        code = problem.get("code")
        if code not in outcome.codes:
            promise = (
                "order" if outcome.status == 400 and code == "malformed_json" else outcome.promise
            )
            return [Violation(promise, f"code {code!r}, expected {outcome.describe()}")]
        broken = []
        named = problem.get("field")
        if (
            outcome.status in (400, 403)
            and outcome.fields != {None}
            and named not in outcome.fields
        ):
            reason = f"field {named!r}, expected {outcome.describe()}"
            broken.append(Violation("problem-field", reason))
        if len(outcome.faults) > 1:
            listed: dict[Any, set[Any]] = {}
            errors = problem.get("errors")
            for error in errors if isinstance(errors, list) else []:
                if isinstance(error, dict):
                    listed.setdefault(error.get("field"), set()).add(error.get("code"))
            for name, codes in outcome.faults.items():
                if not listed.get(name, set()) & codes:
                    broken.append(
                        Violation(
                            "problem-errors",
                            f"errors gives {name} {sorted(listed.get(name, set()), key=str)}, "
                            f"expected one of {sorted(codes)}",
                        )
                    )
        return broken

    def _catalog(self, result: Any) -> list[Violation]:
        if not isinstance(result, dict) or not isinstance(result.get("data"), list):
            return [Violation("catalog", "the catalog is not a ModelList")]
        served = {m.get("id"): m for m in result["data"] if isinstance(m, dict)}
        if (
            served != self.contract.models
            or result.get("default_model") != self.contract.default_model
        ):
            return [Violation("catalog", "the served catalog differs from the spec's")]
        return []

    def _generated(self, body: dict[str, Any], result: Any) -> list[Violation]:
        contract = self.contract
        schema_faults = (
            []
            if _fast_valid(self.fast_response, result)
            else [e.message for e in contract.generated_validator.iter_errors(result)]
        )
        if schema_faults:
            return [
                Violation("response-schema", f"breaks GenerateResponse: {schema_faults[0][:200]}")
            ]
        expected = contract.expected_echo(body)
        width, height, output_format = (
            expected["width"],
            expected["height"],
            expected["output_format"],
        )
        broken = self._id_and_time(result)
        for name, value in expected.items():
            if result.get(name) != value:
                broken.append(
                    Violation("echo", f"{name} {result.get(name)!r}, the request implies {value!r}")
                )
        count = int(body.get("num_images", contract.default("num_images")))
        if len(result["images"]) != count:
            broken.append(Violation("num-images", f"{len(result['images'])} images, not {count}"))
        for i, image in enumerate(result["images"]):
            if image["seed"] != (result["seed"] + i) % 2**32:
                broken.append(Violation("image-seeds", f"image {i} has seed {image['seed']}"))
            if image["media_type"] != f"image/{output_format}":
                broken.append(Violation("images-decode", f"image {i} is {image['media_type']}"))
                continue
            if self.check_images:
                broken += self._image(i, image, output_format, (width, height))
        return broken

    def _id_and_time(self, result: dict[str, Any]) -> list[Violation]:
        broken = []
        if abs(result["created"] - time.time()) > CLOCK_SKEW_S:
            broken.append(
                Violation("created", f"created {result['created']} is not now, in seconds")
            )
        with self.seen_lock:
            if result["id"] in self.seen_ids:
                broken.append(Violation("unique-id", f"the id {result['id']} was given before"))
            self.seen_ids[result["id"]] = None
            if len(self.seen_ids) > SEEN_IDS:
                self.seen_ids.popitem(last=False)
        return broken

    def _image(
        self, i: int, image: dict, output_format: str, size: tuple[int, int]
    ) -> list[Violation]:
        header, _, data = image["data_url"].partition(",")
        if header != f"data:{image['media_type']};base64":
            return [Violation("data-url", f"image {i}'s data URL starts {header!r}")]
        try:
            found = images.inspect(base64.b64decode(data, validate=True), decode=self.decode_images)
        except (binascii.Error, images.ImageFault) as exc:
            return [Violation("images-decode", f"image {i} does not decode: {exc}"[:200])]
        if found != (output_format, size):
            return [
                Violation(
                    "images-decode",
                    f"image {i} is {found[0]} {found[1]}, not {output_format} {size}",
                )
            ]
        return []


def _field_of(error: ValidationError) -> Any:
    """The top-level field an error concerns (None for the body as a whole)."""
    if error.absolute_path:
        return str(error.absolute_path[0])
    if error.validator == "required" and isinstance(error.instance, dict):
        required: Any = error.validator_value
        missing = [n for n in required if n not in error.instance]
        return missing[0] if missing else None
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(name for name in error.instance if name not in known)
        # A field named "" cannot be named apart from the body as a whole.
        return extra[0] if extra and extra[0] else None
    return None


def _fast_validator(schema: dict[str, Any]) -> Any:
    """jsonschema-rs's compiled validator of *schema*: it says whether an instance is valid in
    about a microsecond; only an invalid one goes to the pure-Python validator, which explains."""
    return jsonschema_rs.Draft202012Validator(schema)


def _fast_valid(validator: Any, instance: Any) -> bool:
    """Whether the compiled *validator* accepts *instance*; False when it cannot tell (then the
    pure-Python validator decides and explains)."""
    if validator is None:
        return False
    try:
        return bool(validator.is_valid(instance))
    except (ValueError, OverflowError):  # a lone surrogate, an integer past 64 bits
        return False


def _charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type, lower-cased and unquoted, or None."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")

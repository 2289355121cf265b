"""Deliberately broken targets: the mock behind small WSGI proxies that each break one promise.

Each mutant names the contract tests that must kill it (the promise it breaks is theirs):
`make mutants` runs those tests against each mutant and prints the kill table, and
tests/test_mutants.py checks that every mutant is killed, by those tests, and that the suite
raises no false alarm against a target that bends without breaking (`EQUIVALENT`).
`python -m tests.mutants --full` runs the whole suite against each instead. The mutants live in
the test tree, not in the server. Each name is a factory of a WSGI app, for
`pytest contract_tests --app tests.mutants:NAME`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from io import BytesIO
from pathlib import Path

from jsonschema import Draft202012Validator

from mockserver.app import create_app
from mockserver.config import DEV_KEYS, MAX_BODY_BYTES
from mockserver.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
GENERATE = "/api/v1/generate"
MODELS = "/api/v1/models"
ENTERPRISE_KEY = next(key for key, plan in DEV_KEYS.items() if plan == "enterprise")
SPEC = load_spec()
VALID_BODY = Draft202012Validator(SPEC.request_schema)


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: str  # the promise, in a line
    tests: tuple[str, ...]  # the contract tests that must kill it


MUTANTS: dict[str, Mutant] = {}
EQUIVALENT: dict[str, Mutant] = {}  # bend without breaking: the suite must pass against them


def mutant(*tests: str, equivalent: bool = False):
    """Register a mutant, with the contract tests (paths or node ids) that must kill it."""

    def register(factory):
        registry = EQUIVALENT if equivalent else MUTANTS
        registry[factory.__name__] = Mutant(
            factory.__name__, factory.__doc__.strip().splitlines()[0], tests
        )
        return factory

    return register


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


# The first mutants: auth, plans, steps, defaults, seeds, images, refusals -----------------------


@mutant("contract_tests/test_auth.py::test_unknown_keys_are_401_invalid_api_key")
def accept_any_key():
    """Any Authorization header, however wrong, is let through."""
    known = {f"Bearer {key}" for key in DEV_KEYS}
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: (
                "HTTP_AUTHORIZATION" in env and env["HTTP_AUTHORIZATION"] not in known
            ),
        )
    )


@mutant("contract_tests/test_plans.py::test_every_model_on_every_plan")
def ignore_plans():
    """Every valid key may use every model."""
    known = {f"Bearer {key}" for key in DEV_KEYS}
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: env.get("HTTP_AUTHORIZATION") in known,
        )
    )


@mutant("contract_tests/test_auth.py::test_malformed_or_missing_credentials_are_401")
def public_catalog():
    """The catalog answers without a key."""
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: env["REQUEST_METHOD"] == "GET" and "HTTP_AUTHORIZATION" not in env,
        )
    )


@mutant("contract_tests/test_steps.py::test_boundaries_of_the_cap")
def lift_step_caps():
    """Steps above a model's cap are quietly clamped to it and reported as asked."""

    def edit_request(environ, body):
        model_id = body.get("model", SPEC.default_model) if body else None
        if isinstance(model_id, str) and isinstance(body.get("num_inference_steps"), int):
            model = SPEC.models.get(model_id)
            if model and body["num_inference_steps"] > model.max_steps:
                return {**body, "num_inference_steps": model.max_steps}
        return None

    def restore(sent, result):
        if "num_inference_steps" in sent:
            result["num_inference_steps"] = sent["num_inference_steps"]

    return proxy(edit_request, _edit_success(restore))


@mutant(
    "contract_tests/test_steps.py::test_omitted_steps_default_to_quality_steps_and_fast_preset_to_fast_steps"
)
def fast_steps_by_default():
    """An omitted step count gets the fast preset's steps instead of the quality steps."""

    def edit_request(environ, body):
        if _valid(body) and "num_inference_steps" not in body:
            model = SPEC.models[body.get("model", SPEC.default_model)]
            return {**body, "num_inference_steps": model.fast_steps}
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_generation.py::test_defaults")
def wrong_default_model():
    """An omitted model means another model than the spec's default."""

    def edit_request(environ, body):
        if _valid(body) and "model" not in body:
            return {**body, "model": "sdxl-turbo"}
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_generation.py::test_negative_prompt_support")
def drop_negative_prompt():
    """negative_prompt is silently dropped, so models without support accept it."""

    def edit_request(environ, body):
        if body and "negative_prompt" in body:
            return {k: v for k, v in body.items() if k != "negative_prompt"}
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_generation.py::test_defaults")
def drop_seed_from_response():
    """The response leaves out the seed it used."""
    return proxy(edit_response=_edit_success(lambda sent, result: result.pop("seed")))


@mutant("contract_tests/test_generation.py::test_the_same_seed_gives_the_same_image")
def ignore_seed():
    """The seed is echoed but not used: the same seed gives different images."""
    counter = iter(range(10**9))

    def edit_request(environ, body):
        if _valid(body) and "seed" in body:
            return {**body, "seed": next(counter) % 2**32}
        return None

    def restore(sent, result):
        if "seed" in sent:
            result["seed"] = sent["seed"]
            for i, image in enumerate(result["images"]):
                image["seed"] = (sent["seed"] + i) % 2**32

    return proxy(edit_request, _edit_success(restore))


@mutant("contract_tests/test_generation.py::test_defaults")
def corrupt_image():
    """The image data is cut short."""

    def cut(sent, result):
        for image in result["images"]:
            header, _, data = image["data_url"].partition(",")
            raw = base64.b64decode(data)
            image["data_url"] = header + "," + base64.b64encode(raw[: len(raw) // 2]).decode()

    return proxy(edit_response=_edit_success(cut))


@mutant("contract_tests/test_generation.py::test_generation_property")
def fixed_image_size():
    """Images are always 256x256, whatever size was asked and echoed."""

    def edit_request(environ, body):
        if _valid(body) and ("width" in body or "height" in body):
            return {**body, "width": 256, "height": 256}
        return None

    def restore(sent, result):
        for field in ("width", "height"):
            if field in sent:
                result[field] = sent[field]

    return proxy(edit_request, _edit_success(restore))


@mutant("contract_tests/test_generation.py::test_generation_property")
def always_png():
    """Images are PNG whatever output_format says, and labelled as asked."""

    def edit_request(environ, body):
        if _valid(body) and body.get("output_format") in ("jpeg", "webp"):
            return {**body, "output_format": "png"}
        return None

    def relabel(sent, result):
        fmt = sent.get("output_format")
        if fmt in ("jpeg", "webp"):
            result["output_format"] = fmt
            for image in result["images"]:
                image["media_type"] = f"image/{fmt}"
                image["data_url"] = image["data_url"].replace("image/png", f"image/{fmt}", 1)

    return proxy(edit_request, _edit_success(relabel))


@mutant("contract_tests/test_errors.py::test_a_body_that_is_not_json_is_415")
def errors_as_plain_json():
    """Refusals are sent as application/json instead of application/problem+json."""

    def edit_response(environ, sent, status, headers, body):
        headers = [
            (k, "application/json" if k.lower() == "content-type" and "problem" in v else v)
            for k, v in headers
        ]
        return status, headers, body

    return proxy(edit_response=edit_response)


@mutant("contract_tests/test_auth.py::test_malformed_or_missing_credentials_are_401")
def no_bearer_challenge():
    """401s come without WWW-Authenticate."""

    def edit_response(environ, sent, status, headers, body):
        return status, [(k, v) for k, v in headers if k.lower() != "www-authenticate"], body

    return proxy(edit_response=edit_response)


@mutant("contract_tests/test_errors.py::test_wrong_methods_are_405_with_allow")
def no_allow_header():
    """405s come without Allow."""

    def edit_response(environ, sent, status, headers, body):
        if status.startswith("405"):
            headers = [(k, v) for k, v in headers if k.lower() != "allow"]
        return status, headers, body

    return proxy(edit_response=edit_response)


@mutant("contract_tests/test_steps.py::test_boundaries_of_the_cap")
def wrong_error_code():
    """A step-cap refusal carries a generic code instead of the documented one."""

    def edit_response(environ, sent, status, headers, body):
        if status.startswith("400"):
            body = body.replace(b'"code":"step_cap_exceeded"', b'"code":"invalid_request"')
        return status, headers, body

    return proxy(edit_response=edit_response)


@mutant("contract_tests/test_generation.py::test_generation_property")
def crash_on_non_ascii():
    """A prompt outside ASCII makes a 500."""

    def edit_response(environ, sent, status, headers, body):
        prompt = (sent or {}).get("prompt")
        if _is_generate(environ) and isinstance(prompt, str) and not prompt.isascii():
            body = b'{"error": "internal"}'
            return "500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")], body
        return status, headers, body

    return proxy(edit_response=edit_response)


# CORS (x-imageapi-cors) ---------------------------------------------------------------------

CORS_PREFLIGHT = "contract_tests/test_cors.py::test_preflights_allow_a_key_and_json_from_any_origin"
CORS_ANSWERS = "contract_tests/test_cors.py::test_answers_are_readable_from_any_origin"


def _is_preflight(environ) -> bool:
    return environ["REQUEST_METHOD"] == "OPTIONS" and bool(
        _header(environ, "Access-Control-Request-Method")
    )


def _replace_header(name: str, value, *, only_if=lambda environ, status: True):
    """Set response header *name* to *value(environ)* (or drop it when that is None)."""

    def edit(environ, status, headers):
        if not only_if(environ, status):
            return headers
        kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
        new = value(environ)
        return kept if new is None else [*kept, (name, new)]

    return proxy(edit_response=_edit_headers(edit))


@mutant(CORS_PREFLIGHT, CORS_ANSWERS)
def no_cors():
    """No Access-Control-* header at all: browsers on other origins are locked out."""
    return proxy(
        edit_response=_edit_headers(
            lambda environ, status, headers: [
                (k, v) for k, v in headers if not k.lower().startswith("access-control-")
            ]
        )
    )


@mutant(CORS_PREFLIGHT)
def preflight_needs_a_key():
    """A preflight without a key is refused with 401 (browsers never send keys in preflights)."""

    def answer(environ, sent):
        if _is_preflight(environ) and not _header(environ, "Authorization"):
            headers = [("WWW-Authenticate", "Bearer"), ("Access-Control-Allow-Origin", "*")]
            return _problem(401, "missing_api_key", headers=headers)
        return None

    return proxy(answer=answer)


@mutant(CORS_PREFLIGHT)
def preflight_forgets_authorization():
    """Preflights allow Content-Type but not Authorization."""
    return _replace_header(
        "Access-Control-Allow-Headers",
        lambda environ: "Content-Type, Prefer" if _is_preflight(environ) else None,
        only_if=lambda environ, status: _is_preflight(environ),
    )


@mutant(CORS_PREFLIGHT)
def preflight_allows_headers_by_wildcard():
    """Preflights allow headers with '*', which the Fetch standard says excludes Authorization."""
    return _replace_header(
        "Access-Control-Allow-Headers",
        lambda environ: "*",
        only_if=lambda environ, status: _is_preflight(environ),
    )


@mutant(CORS_PREFLIGHT)
def preflight_forgets_the_method():
    """Preflights allow only OPTIONS."""
    return _replace_header(
        "Access-Control-Allow-Methods",
        lambda environ: "OPTIONS",
        only_if=lambda environ, status: _is_preflight(environ),
    )


@mutant(CORS_PREFLIGHT)
def preflight_max_age_not_as_stated():
    """Preflights are cached for 5 s instead of the spec's max_age."""
    return _replace_header(
        "Access-Control-Max-Age",
        lambda environ: "5",
        only_if=lambda environ, status: _is_preflight(environ),
    )


@mutant(CORS_ANSWERS)
def cors_only_on_success():
    """Refusals carry no Access-Control-Allow-Origin, so scripts cannot read the error."""
    return _replace_header(
        "Access-Control-Allow-Origin",
        lambda environ: None,
        only_if=lambda environ, status: not status.startswith("2"),
    )


@mutant(CORS_ANSWERS)
def exposes_no_headers():
    """Answers expose no header to scripts (Retry-After, WWW-Authenticate unreadable)."""
    return _replace_header(
        "Access-Control-Expose-Headers",
        lambda environ: None,
        only_if=lambda environ, status: not _is_preflight(environ),
    )


@mutant(CORS_ANSWERS)
def exposes_only_retry_after():
    """Answers expose Retry-After but not the other documented headers."""
    return _replace_header(
        "Access-Control-Expose-Headers",
        lambda environ: "Retry-After",
        only_if=lambda environ, status: not _is_preflight(environ),
    )


@mutant(CORS_PREFLIGHT, CORS_ANSWERS)
def echoes_the_origin_without_vary():
    """The origin is echoed instead of '*', without Vary: Origin (caches mix origins up)."""
    return _replace_header(
        "Access-Control-Allow-Origin",
        lambda environ: _header(environ, "Origin"),
        only_if=lambda environ, status: bool(_header(environ, "Origin")),
    )


@mutant(CORS_PREFLIGHT, CORS_ANSWERS)
def one_fixed_origin():
    """Only one origin is allowed, though the spec allows any."""
    return _replace_header(
        "Access-Control-Allow-Origin",
        lambda environ: "https://app.imageapi.org",
        only_if=lambda environ, status: bool(_header(environ, "Origin")),
    )


@mutant(CORS_PREFLIGHT, CORS_ANSWERS)
def wildcard_origin_with_credentials():
    """'*' with Access-Control-Allow-Credentials: true, a pair browsers refuse."""
    return _replace_header(
        "Access-Control-Allow-Credentials",
        lambda environ: "true",
        only_if=lambda environ, status: bool(_header(environ, "Origin")),
    )


# Media types, schemes and methods as HTTP defines them ------------------------------------------

HTTP = "contract_tests/test_http.py::"


@mutant(HTTP + "test_json_with_parameters_or_in_any_case_is_json")
def charset_parameter_is_415():
    """'application/json; charset=utf-8' is refused as another media type."""

    def answer(environ, sent):
        if _is_generate(environ) and ";" in (_header(environ, "Content-Type") or ""):
            return _problem(415, "unsupported_media_type")
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_json_with_parameters_or_in_any_case_is_json")
def media_type_case_sensitive():
    """'Application/JSON' is refused: the media type is compared case-sensitively."""

    def answer(environ, sent):
        media_type = (_header(environ, "Content-Type") or "").split(";")[0].strip()
        if _is_generate(environ) and media_type != media_type.lower():
            return _problem(415, "unsupported_media_type")
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_the_bearer_scheme_is_case_insensitive")
def bearer_scheme_case_sensitive():
    """'bearer <key>' is refused: the scheme is compared case-sensitively."""

    def answer(environ, sent):
        authorization = _header(environ, "Authorization") or ""
        if authorization.lower().startswith("bearer ") and not authorization.startswith("Bearer "):
            return _problem(401, "missing_api_key", headers=[("WWW-Authenticate", "Bearer")])
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_head_answers_as_get_without_a_body")
def head_not_allowed():
    """HEAD is refused with 405."""

    def answer(environ, sent):
        if environ["REQUEST_METHOD"] == "HEAD":
            return _problem(405, "method_not_allowed", headers=[("Allow", "GET, OPTIONS")])
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_head_answers_as_get_without_a_body")
def head_sends_a_body():
    """HEAD answers with the body of GET."""
    app = create_app()

    def answer(environ, sent):
        if environ["REQUEST_METHOD"] != "HEAD":
            return None
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        body = b"".join(app({**environ, "REQUEST_METHOD": "GET"}, capture))
        return captured["status"], captured["headers"], body

    return proxy(answer=answer)


@mutant(HTTP + "test_json_answers_are_utf8")
def json_in_latin1():
    """JSON answers say charset=iso-8859-1."""

    def edit(environ, status, headers):
        return [
            (k, f"{v}; charset=iso-8859-1" if k.lower() == "content-type" and "json" in v else v)
            for k, v in headers
        ]

    return proxy(edit_response=_edit_headers(edit))


# The order of checks (info.description) ---------------------------------------------------------


@mutant(HTTP + "test_authentication_is_checked_first")
def media_type_before_authentication():
    """The media type is checked before the key: a keyless text/plain body gets 415."""

    def answer(environ, sent):
        media_type = (_header(environ, "Content-Type") or "").split(";")[0].strip().lower()
        if _is_generate(environ) and media_type != "application/json":
            return _problem(415, "unsupported_media_type")
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_media_type_before_size_before_syntax_before_schema")
def size_before_media_type():
    """The size is checked before the media type."""

    def answer(environ, sent):
        too_large = int(environ["CONTENT_LENGTH"]) > MAX_BODY_BYTES
        if _is_generate(environ) and too_large and _header(environ, "Authorization"):
            return _problem(413, "payload_too_large")
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_the_size_limit_is_64_kib")
def size_limit_off_by_one():
    """A body of exactly 64 KiB is refused as too large."""

    def answer(environ, sent):
        too_large = int(environ["CONTENT_LENGTH"]) >= MAX_BODY_BYTES
        if _is_generate(environ) and too_large and _header(environ, "Authorization"):
            return _problem(413, "payload_too_large")
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_schema_and_model_rules_before_the_plan")
def plan_before_schema():
    """The plan is checked before the body's rules: an invalid body for a model outside the
    plan gets 403."""

    def answer(environ, sent):
        plan = DEV_KEYS.get((_header(environ, "Authorization") or "").partition(" ")[2])
        model = SPEC.models.get((sent or {}).get("model"))
        if _is_generate(environ) and plan and model and plan not in model.entry["plans"]:
            return _problem(403, "model_not_in_plan", field="model")
        return None

    return proxy(answer=answer)


# The error table -------------------------------------------------------------------------------


@mutant(HTTP + "test_each_fault_has_its_documented_code")
def generic_400_codes():
    """unknown_field, missing_field and invalid_type are all sent as invalid_request."""

    def edit(problem):
        if problem.get("code") in ("unknown_field", "missing_field", "invalid_type"):
            problem["code"] = "invalid_request"

    return proxy(edit_response=_edit_problems(edit))


@mutant(HTTP + "test_missing_and_unknown_keys_have_their_codes")
def unknown_key_reported_as_missing():
    """An unknown key gets missing_api_key instead of invalid_api_key."""

    def edit(problem):
        if problem.get("code") == "invalid_api_key":
            problem["code"] = "missing_api_key"

    return proxy(edit_response=_edit_problems(edit))


@mutant(HTTP + "test_several_faults_are_each_listed")
def no_errors_list():
    """Several faults, but only the first is reported (no `errors`)."""
    return proxy(edit_response=_edit_problems(lambda problem: problem.pop("errors", None)))


@mutant("contract_tests/test_errors.py::test_unknown_fields_are_refused")
def no_field_in_problems():
    """Problems do not name the field at fault."""
    return proxy(edit_response=_edit_problems(lambda problem: problem.pop("field", None)))


@mutant(HTTP + "test_missing_and_unknown_keys_have_their_codes")
def problem_status_disagrees():
    """A problem's `status` member is 400 whatever the HTTP status."""
    return proxy(edit_response=_edit_problems(lambda problem: problem.update(status=400)))


@mutant("contract_tests/test_errors.py::test_an_unknown_model_id_is_404")
def unknown_model_id_is_200():
    """GET /api/v1/models/{unknown} answers with the default model."""

    def edit_request(environ, body):
        if environ["PATH_INFO"].startswith(MODELS + "/no-such"):
            environ["PATH_INFO"] = f"{MODELS}/{SPEC.default_model}"
        return None

    return proxy(edit_request)


@mutant(HTTP + "test_every_model_is_served_by_id")
def every_id_is_the_default_model():
    """GET /api/v1/models/{id} answers with the default model for every known id."""

    def edit_request(environ, body):
        if environ["PATH_INFO"].startswith(MODELS + "/"):
            environ["PATH_INFO"] = f"{MODELS}/{SPEC.default_model}"
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_errors.py::test_the_catalog_is_served_as_the_spec_states_it")
def catalog_drift():
    """The served catalog gives the default model a higher step cap than the spec."""

    def edit_response(environ, sent, status, headers, body):
        if environ["PATH_INFO"] == MODELS and status.startswith("200"):
            listing = json.loads(body)
            for model in listing["data"]:
                if model["id"] == SPEC.default_model:
                    model["max_steps"] += 1
            body = json.dumps(listing).encode()
        return status, headers, body

    return proxy(edit_response=edit_response)


# Generation details stated in descriptions ------------------------------------------------------


@mutant(HTTP + "test_ids_are_unique_and_created_is_now")
def one_generation_id():
    """Every generation has the same id."""
    return proxy(edit_response=_edit_success(lambda s, r: r.update(id="gen_0123456789abcdef")))


@mutant(HTTP + "test_ids_are_unique_and_created_is_now")
def created_in_milliseconds():
    """`created` is in milliseconds, not seconds."""
    return proxy(edit_response=_edit_success(lambda s, r: r.update(created=r["created"] * 1000)))


@mutant(HTTP + "test_ids_are_unique_and_created_is_now")
def fixed_seed_when_omitted():
    """An omitted seed is always 42, not chosen at random."""

    def edit_request(environ, body):
        if _valid(body) and "seed" not in body:
            return {**body, "seed": 42}
        return None

    return proxy(edit_request)


@mutant(HTTP + "test_image_seeds_wrap_around_2_to_the_32")
def image_seeds_do_not_wrap():
    """Image i's seed is seed + i, past 2^32 - 1."""

    def edit(sent, result):
        for i, image in enumerate(result["images"]):
            image["seed"] = result["seed"] + i

    return proxy(edit_response=_edit_success(edit))


@mutant(HTTP + "test_image_seeds_wrap_around_2_to_the_32")
def one_image_only():
    """num_images is echoed but one image is made."""

    def edit_request(environ, body):
        if _valid(body) and body.get("num_images", 1) > 1:
            return {**body, "num_images": 1}
        return None

    return proxy(edit_request)


# 429 ----------------------------------------------------------------------------------------------


def _rate_limited_every_third(headers):
    """Every third GET of the catalog with a known key gets a 429 with *headers* (an unknown
    key is refused first, as the order of checks says)."""
    counter = itertools.count(1)
    known = {f"Bearer {key}" for key in DEV_KEYS}

    def answer(environ, sent):
        catalog = environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"].startswith(MODELS)
        if catalog and _header(environ, "Authorization") in known and next(counter) % 3 == 0:
            return _problem(429, "rate_limited", headers=headers)
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_every_model_is_served_by_id")
def rate_limited_without_retry_after():
    """Some requests get a 429 that does not say when to try again."""
    return _rate_limited_every_third([])


@mutant(HTTP + "test_every_model_is_served_by_id")
def rate_limited_with_a_date():
    """Some requests get a 429 whose Retry-After is not whole seconds as the spec says."""
    return _rate_limited_every_third([("Retry-After", "soon")])


@mutant(
    HTTP + "test_every_model_is_served_by_id",
    "contract_tests/test_errors.py::test_the_catalog_is_served_as_the_spec_states_it",
    equivalent=True,
)
def rate_limited_politely():
    """Some requests get a 429 with Retry-After, as the contract allows: no test may fail."""
    return _rate_limited_every_third([("Retry-After", "0")])


# Second round: details of the error table, media types, CORS and prose promises --------------

ERR = "contract_tests/test_errors.py::"
CORS_GENERATED = "contract_tests/test_cors.py::test_generated_images_are_readable_from_any_origin"


def _status_code(status: str) -> int:
    return int(status.split()[0])


@mutant(ERR + "test_unknown_routes_are_404_not_found")
def unknown_routes_are_html():
    """A route that does not exist gets the framework's HTML 404 page, not a problem."""

    def edit_response(environ, sent, status, headers, body):
        if status.startswith("404") and b'"not_found"' in body:
            page = b"<!doctype html><title>404 Not Found</title><h1>Not Found</h1>"
            return status, [("Content-Type", "text/html; charset=utf-8")], page
        return status, headers, body

    return proxy(edit_response=edit_response)


@mutant(ERR + "test_an_unknown_model_id_is_404")
def unknown_model_id_is_not_found():
    """An unknown model id gets the generic `not_found` code instead of `model_not_found`."""

    def edit(problem):
        if problem.get("code") == "model_not_found":
            problem["code"] = "not_found"

    return proxy(edit_response=_edit_problems(edit))


@mutant(HTTP + "test_authentication_is_checked_first")
def model_lookup_before_authentication():
    """GET /api/v1/models/{unknown} without a key is 404: the model is looked up before the
    key is checked."""

    def answer(environ, sent):
        path = environ["PATH_INFO"]
        unknown = path.startswith(MODELS + "/") and path[len(MODELS) + 1 :] not in SPEC.models
        if unknown and not _header(environ, "Authorization"):
            return _problem(404, "model_not_found")
        return None

    return proxy(answer=answer)


@mutant(ERR + "test_wrong_methods_are_405_with_allow")
def allow_lists_only_options():
    """405s say `Allow: OPTIONS`, leaving out the method the route does accept."""
    return _replace_header(
        "Allow", lambda environ: "OPTIONS", only_if=lambda environ, status: status.startswith("405")
    )


@mutant(ERR + "test_a_problem_instance_is_the_request_path")
def instance_is_the_route_template():
    """A problem's `instance` is the route's template (`/api/v1/models/{model_id}`), not the
    request path."""

    def edit(problem):
        if problem.get("instance", "").startswith(MODELS + "/"):
            problem["instance"] = MODELS + "/{model_id}"

    return proxy(edit_response=_edit_problems(edit))


@mutant(ERR + "test_an_unknown_model_id_is_404")
def relative_problem_types():
    """A problem's `type` is a relative reference (`/problems/...`), not the URI the schema
    (`format: uri`) promises."""

    def edit(problem):
        problem["type"] = problem["type"].removeprefix("https://imageapi.org")

    return proxy(edit_response=_edit_problems(edit))


@mutant(HTTP + "test_several_faults_are_each_listed")
def errors_list_generic_codes():
    """Each entry of `errors` carries `invalid_request`, whatever its fault."""

    def edit(problem):
        for error in problem.get("errors", []):
            error["code"] = "invalid_request"

    return proxy(edit_response=_edit_problems(edit))


@mutant(HTTP + "test_each_fault_has_its_documented_code")
def blank_prompt_accepted():
    """A prompt of whitespace only is generated (the schema's `pattern: \\S` is not checked)."""

    def edit_request(environ, body):
        prompt = (body or {}).get("prompt")
        if isinstance(prompt, str) and prompt and not prompt.strip():
            return {**body, "prompt": "blank"}
        return None

    return proxy(edit_request)


@mutant(HTTP + "test_each_fault_has_its_documented_code")
def sizes_up_to_4096():
    """Widths and heights up to 4096 are accepted (the schema's maximum is 2048); the image is
    made at 2048 and the asked size echoed."""

    def edit_request(environ, body):
        if not body:
            return None
        edited = {
            field: 2048
            for field in ("width", "height")
            if isinstance(body.get(field), int)
            and 2048 < body[field] <= 4096
            and body[field] % 16 == 0
        }
        return {**body, **edited} if edited else None

    def restore(sent, result):
        for field in ("width", "height"):
            if field in sent:
                result[field] = sent[field]

    return proxy(edit_request, _edit_success(restore))


@mutant("contract_tests/test_steps.py::test_an_explicit_step_count_wins_over_the_preset")
def preset_overrides_explicit_steps():
    """With `"preset": "fast"` the fast steps are used even when `num_inference_steps` is
    given (and the asked steps echoed)."""

    def edit_request(environ, body):
        if _valid(body) and body.get("preset") == "fast" and "num_inference_steps" in body:
            model = SPEC.models[body.get("model", SPEC.default_model)]
            return {**body, "num_inference_steps": model.fast_steps}
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_generation.py::test_omitted_sizes_are_the_schema_defaults")
def model_sized_defaults():
    """An omitted size is 512 for the 512 px models (sd-1.5, sdxl-turbo), not the schema's
    default."""

    def edit_request(environ, body):
        if _valid(body) and body.get("model") in ("sd-1.5", "sdxl-turbo"):
            edited = {field: 512 for field in ("width", "height") if field not in body}
            return {**body, **edited} if edited else None
        return None

    return proxy(edit_request)


@mutant(HTTP + "test_ordinary_accept_headers_get_json")
def accept_lists_are_406():
    """An Accept header other than `application/json` or `*/*` (a list, a parameter, another
    case) gets a 406."""

    def answer(environ, sent):
        accept = _header(environ, "Accept")
        if accept and accept not in ("*/*", "application/json"):
            return _problem(406, "not_acceptable")
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_json_with_parameters_or_in_any_case_is_json")
def quoted_charset_is_415():
    """`application/json; charset="utf-8"` (a quoted parameter value) is refused with 415."""

    def answer(environ, sent):
        if _is_generate(environ) and '"' in (_header(environ, "Content-Type") or ""):
            return _problem(415, "unsupported_media_type")
        return None

    return proxy(answer=answer)


def _as_json(environ):
    environ["CONTENT_TYPE"] = "application/json"


@mutant(ERR + "test_a_body_that_is_not_json_is_415")
def json_suffix_types_are_json():
    """`application/*+json` bodies (`application/vnd.api+json`) are read as JSON, as Flask's
    `request.is_json` does, though the API takes `application/json` only."""

    def edit_request(environ, body):
        media_type = (_header(environ, "Content-Type") or "").split(";")[0].strip().lower()
        if media_type.startswith("application/") and media_type.endswith("+json"):
            _as_json(environ)
        return None

    return proxy(edit_request)


@mutant(ERR + "test_a_body_that_is_not_json_is_415")
def missing_content_type_is_json():
    """A body without a Content-Type is read as JSON."""

    def edit_request(environ, body):
        if _is_generate(environ) and not _header(environ, "Content-Type"):
            _as_json(environ)
        return None

    return proxy(edit_request)


@mutant(CORS_GENERATED)
def cors_missing_on_generated_images():
    """A successful generation carries no CORS headers (its handler builds its own response):
    a page on another origin cannot read its images."""
    return proxy(
        edit_response=_edit_headers(
            lambda environ, status, headers: (
                headers
                if not (_is_generate(environ) and status.startswith("2"))
                else [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            )
        )
    )


@mutant(CORS_ANSWERS)
def cors_missing_on_early_refusals():
    """Refusals made before the route's handler (405, 413, 415) carry no CORS headers."""
    return proxy(
        edit_response=_edit_headers(
            lambda environ, status, headers: (
                headers
                if _status_code(status) not in (405, 413, 415)
                else [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            )
        )
    )


def _rate_limit_fields(window: int):
    """Answers to a known key carry the RateLimit fields of its plan, with *window* as `w`."""
    rates = {plan_id: plan.requests_per_minute for plan_id, plan in SPEC.plans.items()}

    def edit(environ, status, headers):
        plan = DEV_KEYS.get((_header(environ, "Authorization") or "").partition(" ")[2])
        if plan is None or not status.startswith("2"):
            return headers
        return [
            *headers,
            ("RateLimit-Policy", f'"{plan}";q={rates[plan]};w={window}'),
            ("RateLimit", f'"{plan}";r={rates[plan] - 1};t=0'),
        ]

    return proxy(edit_response=_edit_headers(edit))


RATE_LIMIT_FIELDS = "contract_tests/test_http.py::test_rate_limit_fields_state_the_plan"


@mutant(RATE_LIMIT_FIELDS)
def rate_limit_window_in_minutes():
    """RateLimit-Policy gives the window in minutes (`w=1`), not seconds."""
    return _rate_limit_fields(1)


@mutant(RATE_LIMIT_FIELDS, equivalent=True)
def rate_limit_fields_as_documented():
    """Answers carry RateLimit-Policy and RateLimit as documented: no test may fail."""
    return _rate_limit_fields(60)


@mutant(HTTP + "test_every_model_is_served_by_id")
def rate_limit_reset_disagrees_with_retry_after():
    """Some requests get a 429 whose RateLimit `t` is not its Retry-After."""
    return _rate_limited_every_third([("Retry-After", "0"), ("RateLimit", '"enterprise";r=0;t=30')])


@mutant("contract_tests/test_generation.py::test_defaults")
def uppercase_generation_ids():
    """Generation ids are in upper-case hex (`gen_4F1C...`), outside the documented pattern."""

    def upper(sent, result):
        result["id"] = "gen_" + result["id"].removeprefix("gen_").upper()

    return proxy(edit_response=_edit_success(upper))


@mutant(ERR + "test_negative_prompts_are_bounded")
def unbounded_negative_prompt():
    """A negative prompt longer than the schema's `maxLength` is accepted (cut to it)."""
    limit = SPEC.request_schema["properties"]["negative_prompt"]["maxLength"]

    def edit_request(environ, body):
        negative = (body or {}).get("negative_prompt")
        if isinstance(negative, str) and len(negative) > limit:
            return {**body, "negative_prompt": negative[:limit]}
        return None

    return proxy(edit_request)


# Running the suite against them ---------------------------------------------------------------


def run_suite(name: str, full: bool = False) -> tuple[int, str, float]:
    """Run the contract tests that must kill mutant *name* (all of them with *full*) against
    it; return pytest's exit code, the first failure and the seconds it took."""
    entry = MUTANTS.get(name) or EQUIVALENT[name]
    tests = ["contract_tests"] if full else list(entry.tests)
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider",
            "--app", f"tests.mutants:{name}",
            # A kill needs the first failing example, not the smallest: no shrinking.
            *(["-x"] if full else ["--hypothesis-profile=quick"]),
        ],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "CI": "true"}, timeout=600,
    )  # fmt: skip
    return result.returncode, first_failure(result.stdout), time.monotonic() - started


def first_failure(output: str) -> str:
    """The first failing test, with the schemathesis check or assertion that failed it."""
    lines = output.splitlines()
    test = next(
        (line.split(" - ")[0] for line in lines if line.startswith(("FAILED", "ERROR"))), ""
    )
    why = next(
        (
            line.strip(" |")
            for line in lines
            if line.strip(" |").startswith(("- ST", "E  ")) and "Traceback" not in line
        ),
        "",
    )
    return f"{test.split('::', 1)[-1]}: {why[:160]}" if test else output[-300:]


def run_all(names=None, workers: int = 2, full: bool = False) -> dict[str, tuple[int, str, float]]:
    names = list(names or [*MUTANTS, *EQUIVALENT])
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda name: run_suite(name, full), names)
        return dict(zip(names, results, strict=True))


def kill_table(results: dict[str, tuple[int, str, float]]) -> tuple[str, bool]:
    """The table `make mutants` prints, and whether every mutant was killed (and no equivalent
    target was)."""
    rows, good = [], True
    for name, (code, first, seconds) in results.items():
        if name in EQUIVALENT:
            ok = code == 0
            verdict = "passed" if ok else "FALSE ALARM"
            why = EQUIVALENT[name].breaks if ok else first
        else:
            ok = code == 1
            verdict = "killed" if ok else "SURVIVED"
            why = first if ok else f"{MUTANTS[name].breaks} (pytest exit {code})"
        good &= ok
        rows.append(f"{verdict:11} {name:38} {seconds:5.1f}s  {why}")
    killed = sum(code == 1 for name, (code, _, _) in results.items() if name in MUTANTS)
    mutants = sum(name in MUTANTS for name in results)
    rows.append(f"\n{killed}/{mutants} mutants killed")
    return "\n".join(rows), good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--full", action="store_true", help="run the whole suite per mutant")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    table, good = kill_table(run_all(args.names, args.workers, args.full))
    print(table)
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())

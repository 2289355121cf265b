"""Mutants of HTTP as it is defined: media types, methods, the order in which checks are made."""

from __future__ import annotations

from mockserver.app import create_app
from mockserver.config import DEV_KEYS, MAX_BODY_BYTES
from tests.mutants.proxies import (
    MODELS,
    SPEC,
    _edit_headers,
    _header,
    _is_generate,
    _problem,
    proxy,
)
from tests.mutants.registry import ERR, HTTP, mutant


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

"""Mutants of refusals: the error table, problem details, unknown routes and models."""

from __future__ import annotations

import json

from tests.mutants.proxies import (
    MODELS,
    SPEC,
    _edit_problems,
    _edit_success,
    _replace_header,
    proxy,
)
from tests.mutants.registry import ERR, HTTP, mutant


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


@mutant("contract_tests/test_errors.py::test_wrong_methods_are_405_with_allow")
def no_allow_header():
    """405s come without Allow."""

    def edit_response(environ, sent, status, headers, body):
        if status.startswith("405"):
            headers = [(k, v) for k, v in headers if k.lower() != "allow"]
        return status, headers, body

    return proxy(edit_response=edit_response)


@mutant(HTTP + "test_each_fault_has_its_documented_code")
def generic_400_codes():
    """unknown_field, missing_field and invalid_type are all sent as invalid_request."""

    def edit(problem):
        if problem.get("code") in ("unknown_field", "missing_field", "invalid_type"):
            problem["code"] = "invalid_request"

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

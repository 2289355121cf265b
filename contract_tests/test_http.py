"""HTTP's own rules as this API uses them, and the promises openapi.yaml makes in prose: media
types with parameters, case-insensitive schemes and media types, HEAD, the order in which a
request is checked, the error table's codes, the size limit's boundary."""

from __future__ import annotations

import json
import time

import pytest

from contract_tests.checks import assert_generated, assert_problem, rate_limit_fields
from contract_tests.plugin import key_for, key_including
from contract_tests.spec import GENERATE, MODELS, load_contract

OVER_THE_CAP = {"prompt": "p", "num_inference_steps": 0}
MAX_BODY = 64 * 1024  # "larger than 64 KiB" (the 413 response and the error table)
WINDOW_S = 60  # "requests_per_minute ... in any 60 seconds" (info.description, Rate limits)
CONTRACT = load_contract()
WIDTHS, HEIGHTS = CONTRACT.size_range("width"), CONTRACT.size_range("height")


def bearer(contract, keys, model=None) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key_including(contract, keys, model or contract.default_model)}"
    }


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/json ; charset=utf-8",
        'application/json; charset="utf-8"',  # a quoted value is the same value (RFC 9110 5.6.6)
        "Application/JSON",
    ],
)
def test_json_with_parameters_or_in_any_case_is_json(target, contract, keys, content_type):
    """Media types are case-insensitive and take parameters (RFC 9110 8.3.1): the body is read
    as JSON (the per-model rule answers), not refused as another media type."""
    headers = {**bearer(contract, keys), "Content-Type": content_type}
    reply = target.request(
        "POST", GENERATE, headers=headers, data=json.dumps(OVER_THE_CAP).encode()
    )
    assert_problem(reply, 400, contract.step_cap_code, contract, field="num_inference_steps")


def test_a_charset_parameter_generates(target, contract, keys, reserve_billable):
    headers = {**bearer(contract, keys), "Content-Type": "application/json; charset=utf-8"}
    body = {"prompt": "charset", "width": 256, "height": 256}
    reserve_billable()
    reply = target.request("POST", GENERATE, headers=headers, data=json.dumps(body).encode())
    assert_generated(reply, body, contract)


@pytest.mark.parametrize(
    "accept",
    [
        "application/json, text/plain, */*",  # axios
        "application/json;q=0.9, */*;q=0.8",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/*",
        "application/json, application/problem+json",
    ],
)
def test_ordinary_accept_headers_get_json(target, contract, keys, accept):
    """What ordinary clients send as Accept gets the documented answers (the spec documents no
    406): the catalog as JSON, a refusal as a problem."""
    headers = {**bearer(contract, keys), "Accept": accept}
    reply = target.request("GET", MODELS, headers=headers)
    assert reply.status == 200, f"Accept: {accept} got {reply.status}: {reply.body[:200]!r}"
    assert reply.media_type == "application/json"
    reply = target.request("POST", GENERATE, headers=headers, json_body=OVER_THE_CAP)
    assert_problem(reply, 400, contract.step_cap_code, contract)


def test_rate_limit_fields_state_the_plan(target, contract, keys):
    """Where an answer carries RateLimit-Policy and RateLimit (a target that counts requests),
    they name the key's plan, its `requests_per_minute` per 60-second window, and where the key
    stands in it."""
    for plan in contract.catalog["plans"]:
        key = keys.get(plan["id"])
        if not key:
            continue
        reply = target.request("GET", MODELS, headers={"Authorization": f"Bearer {key}"})
        assert reply.status == 200, reply.status
        policy = rate_limit_fields(reply.headers.get("RateLimit-Policy"))
        state = rate_limit_fields(reply.headers.get("RateLimit"))
        assert (policy is None) == (state is None), (
            f"RateLimit-Policy and RateLimit come together: {dict(reply.headers)}"
        )
        if policy is None or state is None:
            continue
        quota = plan["requests_per_minute"]
        assert policy == {"name": plan["id"], "q": quota, "w": WINDOW_S}, (
            f"the {plan['id']} plan's policy is {quota} requests per {WINDOW_S} s: "
            f"{reply.headers['RateLimit-Policy']!r}"
        )
        assert state["name"] == plan["id"], reply.headers["RateLimit"]
        assert 0 <= state["r"] < quota and 0 <= state["t"] <= WINDOW_S, reply.headers["RateLimit"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(target, contract, keys, scheme):
    """Authentication schemes are case-insensitive (RFC 9110 11.1)."""
    key = key_including(contract, keys, contract.default_model)
    reply = target.request("GET", MODELS, headers={"Authorization": f"{scheme} {key}"})
    assert reply.status == 200, f"{scheme} <key> got {reply.status}: {reply.body[:200]!r}"


def test_head_answers_as_get_without_a_body(target, contract, keys):
    """HEAD is GET without the content (RFC 9110 9.3.2)."""
    for path in (MODELS, f"{MODELS}/{contract.default_model}"):
        get = target.request("GET", path, headers=bearer(contract, keys))
        head = target.request("HEAD", path, headers=bearer(contract, keys))
        assert head.status == get.status == 200, (head.status, get.status)
        assert head.body == b"", f"HEAD {path} sent a body"
        assert head.media_type == get.media_type == "application/json"
    refused = target.request("HEAD", MODELS)
    assert refused.status == 401 and refused.body == b""


def test_json_answers_are_utf8(target, contract, keys):
    """JSON is UTF-8 (RFC 8259); a charset parameter, if any, says so."""
    replies = [
        target.request("GET", MODELS, headers=bearer(contract, keys)),
        target.request("GET", MODELS),
        target.generate(OVER_THE_CAP, key_including(contract, keys, contract.default_model)),
    ]
    for reply in replies:
        _, _, parameters = reply.headers.get("Content-Type", "").partition(";")
        for parameter in filter(None, (p.strip() for p in parameters.split(";"))):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset":
                assert value.strip().strip('"').lower() == "utf-8", reply.headers["Content-Type"]
        reply.body.decode("utf-8")


# The order of checks (info.description: "A request is checked in this order") ---------------


def test_authentication_is_checked_first(target, contract, keys):
    unknown = {"Authorization": "Bearer sk_unknown_0000000000000000"}
    for headers in ({}, unknown):
        # an unknown model id is looked up only for a known key
        reply = target.request("GET", f"{MODELS}/no-such-model", headers=headers)
        assert_problem(reply, 401, None, contract)
        for content_type, data in (
            ("text/plain", b"x"),
            ("application/json", b"{" * (MAX_BODY + 1)),
            ("application/json", b"{"),
            ("application/json", json.dumps(OVER_THE_CAP).encode()),
        ):
            reply = target.request(
                "POST", GENERATE, headers={**headers, "Content-Type": content_type}, data=data
            )
            assert_problem(reply, 401, None, contract)


def test_media_type_before_size_before_syntax_before_schema(target, contract, keys):
    auth = bearer(contract, keys)
    huge_bad_json = b"{" * (MAX_BODY + 1)
    cases = [
        ("text/plain", huge_bad_json, 415, "unsupported_media_type"),
        ("application/json", huge_bad_json, 413, "payload_too_large"),
        ("application/json", b'{"prompt": "p", "num_inference_steps": 0,', 400, "malformed_json"),
    ]
    for content_type, data, status, code in cases:
        reply = target.request(
            "POST", GENERATE, headers={**auth, "Content-Type": content_type}, data=data
        )
        assert_problem(reply, status, code, contract)


def test_schema_and_model_rules_before_the_plan(target, contract, keys):
    """A request both invalid and outside the key's plan is a 400, not a 403."""
    for plan in contract.plans:
        outside = [m for m in contract.models if not contract.plan_includes(plan, m)]
        if outside and keys.get(plan):
            key = key_for(keys, plan)
            body = {"prompt": "p", "model": outside[0], "num_inference_steps": 0}
            assert_problem(target.generate(body, key), 400, contract.step_cap_code, contract)
            return
    pytest.skip("no key for a plan that lacks some model")


# The error table (info.description) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({}, "missing_field", "prompt"),
        ({"prompt": "p", "sampler": "euler"}, "unknown_field", "sampler"),
        ({"prompt": "p", "width": "512"}, "invalid_type", "width"),
        ({"prompt": "p", "num_inference_steps": 8.5}, "invalid_type", "num_inference_steps"),
        ({"prompt": "p", "width": 100}, "invalid_request", "width"),
        ({"prompt": "p", "width": 520}, "invalid_request", "width"),
        ({"prompt": "p", "height": HEIGHTS[0] + HEIGHTS[2] // 2}, "invalid_request", "height"),
        ({"prompt": "p", "width": WIDTHS[1] + WIDTHS[2]}, "invalid_request", "width"),
        ({"prompt": "p", "height": HEIGHTS[1] * 2}, "invalid_request", "height"),
        ({"prompt": "p", "height": HEIGHTS[0] - HEIGHTS[2]}, "invalid_request", "height"),
        ({"prompt": "p" * 2001}, "invalid_request", "prompt"),
        ({"prompt": " \t\n "}, "invalid_request", "prompt"),  # `pattern: \S`
        ({"prompt": "p", "model": "dall-e"}, "unknown_model", "model"),
    ],
)
def test_each_fault_has_its_documented_code(target, contract, keys, body, code, field):
    assert code in contract.problem_codes(400), f"the spec no longer documents {code}"
    reply = target.generate(body, key_including(contract, keys, contract.default_model))
    assert_problem(reply, 400, code, contract, field=field)


def test_missing_and_unknown_keys_have_their_codes(target, contract):
    assert_problem(target.request("GET", MODELS), 401, "missing_api_key", contract)
    unknown = {"Authorization": "Bearer sk_unknown_0000000000000000"}
    assert_problem(target.request("GET", MODELS, headers=unknown), 401, "invalid_api_key", contract)


def test_several_faults_are_each_listed(target, contract, keys):
    """ "When several fields are wrong, `errors` lists each." """
    body = {"prompt": "p", "width": 100, "height": "tall", "sampler": "euler"}
    problem = assert_problem(
        target.generate(body, key_including(contract, keys, contract.default_model)),
        400,
        None,
        contract,
    )
    listed = {error.get("field"): error.get("code") for error in problem.get("errors", [])}
    expected = {"width": "invalid_request", "height": "invalid_type", "sampler": "unknown_field"}
    assert {field: listed.get(field) for field in expected} == expected, problem


def test_the_size_limit_is_64_kib(target, contract, keys):
    """64 KiB is read (then the step cap answers), one byte more is 413."""
    auth = {**bearer(contract, keys), "Content-Type": "application/json"}
    body = json.dumps(OVER_THE_CAP).encode()
    for size, status, code in (
        (MAX_BODY, 400, contract.step_cap_code),
        (MAX_BODY + 1, 413, "payload_too_large"),
    ):
        padded = body[:-1] + b" " * (size - len(body)) + b"}"
        assert len(padded) == size
        reply = target.request("POST", GENERATE, headers=auth, data=padded)
        assert_problem(reply, status, code, contract)


# Generation details stated in descriptions ------------------------------------------------------


def test_ids_are_unique_and_created_is_now(target, contract, keys, reserve_billable):
    key = key_including(contract, keys, contract.default_model)
    body = {"prompt": "ids", "width": 256, "height": 256}
    results = []
    for _ in range(2):
        reserve_billable()
        results.append(assert_generated(target.generate(body, key), body, contract))
    assert results[0]["id"] != results[1]["id"], "two generations share an id"
    assert results[0]["seed"] != results[1]["seed"], "an omitted seed is not chosen at random"
    for result in results:
        assert abs(result["created"] - time.time()) < 3600, f"created {result['created']}"


def test_image_seeds_wrap_around_2_to_the_32(target, contract, keys, reserve_billable):
    """Image i uses seed (seed + i) mod 2^32."""
    key = key_including(contract, keys, contract.default_model)
    body = {"prompt": "wrap", "seed": 2**32 - 1, "num_images": 2, "width": 256, "height": 256}
    reserve_billable()
    result = assert_generated(target.generate(body, key), body, contract)
    assert [image["seed"] for image in result["images"]] == [2**32 - 1, 0]


def test_every_model_is_served_by_id(target, contract, keys):
    for model_id, model in contract.models.items():
        reply = target.request("GET", f"{MODELS}/{model_id}", headers=bearer(contract, keys))
        assert reply.status == 200, (model_id, reply.status)
        assert reply.json() == model

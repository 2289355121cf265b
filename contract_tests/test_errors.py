"""Refusals at the HTTP level: every one a problem+json with a documented code."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract_tests.checks import assert_problem
from contract_tests.plugin import key_including
from contract_tests.spec import GENERATE, MODELS, load_contract
from contract_tests.strategies import examples


def auth(contract, keys):
    return {"Authorization": f"Bearer {key_including(contract, keys, contract.default_model)}"}


def test_malformed_json_is_400(target, contract, keys):
    @settings(max_examples=examples(30))
    @given(
        raw=st.sampled_from([b"{", b"{'prompt': 'p'}", b"[" * 50, b"", b'{"prompt": "\xff"}'])
        | st.binary(max_size=40)
    )
    def check(raw):
        try:
            json.loads(raw)
            return  # some random bytes are valid JSON; those are other tests' business
        except ValueError:
            pass
        headers = {**auth(contract, keys), "Content-Type": "application/json"}
        reply = target.request("POST", GENERATE, headers=headers, data=raw)
        assert_problem(reply, 400, None, contract)

    check()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        # JSON-based types are not application/json: the request body is that one media type
        "application/vnd.api+json",
        "application/merge-patch+json",
        "text/json",
        None,  # no Content-Type: the body is not sniffed
    ],
)
def test_a_body_that_is_not_json_is_415(target, contract, keys, content_type):
    assert list(contract.request_media_types) == ["application/json"]
    headers = auth(contract, keys)
    if content_type is not None:
        headers["Content-Type"] = content_type
    reply = target.request("POST", GENERATE, headers=headers, data=b'{"prompt": "p"}')
    assert_problem(reply, 415, "unsupported_media_type", contract)


def test_unknown_fields_are_refused(target, contract, keys):
    reply = target.generate(
        {"prompt": "p", "sampler": "euler"}, key_including(contract, keys, contract.default_model)
    )
    assert_problem(reply, 400, None, contract, field="sampler")


def test_a_huge_body_is_413(target, contract, keys):
    body = {"prompt": "p" * (1024 * 1024)}
    reply = target.generate(body, key_including(contract, keys, contract.default_model))
    assert_problem(reply, 413, None, contract)


def test_wrong_methods_are_405_with_allow(target, contract, keys):
    """The 405's `Allow` names the methods the route accepts: every one the spec documents for
    it, and not the refused one."""
    model_path = f"{MODELS}/{contract.default_model}"
    for method, path, template in (
        ("GET", GENERATE, GENERATE),
        ("DELETE", GENERATE, GENERATE),
        ("PUT", GENERATE, GENERATE),
        ("POST", MODELS, MODELS),
        ("DELETE", model_path, MODELS + "/{model_id}"),
    ):
        reply = target.request(method, path, headers=auth(contract, keys))
        assert_problem(reply, 405, "method_not_allowed", contract)
        allowed = {m.strip().upper() for m in reply.headers.get("Allow", "").split(",")}
        assert method not in allowed, f"{method} {path}: Allow: {reply.headers.get('Allow')!r}"
        missing = contract.methods(template) - allowed
        assert not missing, (
            f"{method} {path}: Allow: {reply.headers.get('Allow')!r} leaves out {sorted(missing)}"
        )


def test_an_unknown_model_id_is_404(target, contract, keys):
    reply = target.request("GET", f"{MODELS}/no-such-model", headers=auth(contract, keys))
    assert "model_not_found" in contract.problem_codes(404)
    assert_problem(reply, 404, "model_not_found", contract)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/no-such-route", "/api/v2/models", f"{MODELS}/{load_contract().default_model}/x"],
)
def test_unknown_routes_are_404_not_found(target, contract, keys, path):
    """ "`not_found` 404: no such route", a problem like every refusal."""
    assert "not_found" in contract.problem_codes(404)
    reply = target.request("GET", path, headers=auth(contract, keys))
    assert_problem(reply, 404, "not_found", contract)


def test_a_problem_instance_is_the_request_path(target, contract, keys):
    """`instance` (where a problem has one) is the request path, not the route's template (a
    deployment mounted under a prefix may prepend it)."""
    bearer = auth(contract, keys)
    refusals = [
        ("GET", MODELS, {}, None, 401),
        ("GET", f"{MODELS}/no-such-model", bearer, None, 404),
        ("GET", "/api/v1/no-such-route", bearer, None, 404),
        ("POST", GENERATE, bearer, {"prompt": "p", "num_inference_steps": 0}, 400),
        ("DELETE", f"{MODELS}/{contract.default_model}", bearer, None, 405),
    ]
    for method, path, headers, body, status in refusals:
        reply = target.request(method, path, headers=headers, json_body=body)
        problem = assert_problem(reply, status, None, contract)
        assert problem.get("instance", path).endswith(path), (
            f"{method} {path}: instance {problem['instance']!r}"
        )


def test_negative_prompts_are_bounded(target, contract, keys):
    """`negative_prompt` has the schema's `maxLength`, for the models that take one."""
    limit = contract.request_schema["properties"]["negative_prompt"]["maxLength"]
    for model, info in contract.models.items():
        if info["negative_prompt"]:
            body = {"prompt": "p", "model": model, "negative_prompt": "n" * (limit + 1)}
            reply = target.generate(body, key_including(contract, keys, model))
            assert_problem(reply, 400, "invalid_request", contract, field="negative_prompt")


def test_the_catalog_is_served_as_the_spec_states_it(target, contract, keys):
    listing = target.request("GET", MODELS, headers=auth(contract, keys))
    assert listing.status == 200
    served = {model["id"]: model for model in listing.json()["data"]}
    assert served == contract.models
    assert listing.json()["default_model"] == contract.default_model
    one = target.request("GET", f"{MODELS}/{contract.default_model}", headers=auth(contract, keys))
    assert one.json() == contract.models[contract.default_model]

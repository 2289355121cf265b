"""Refusals at the HTTP level: every one a problem+json with a documented code."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from contract_tests.checks import assert_problem
from contract_tests.plugin import key_including
from contract_tests.spec import GENERATE, MODELS


def auth(contract, keys):
    return {"Authorization": f"Bearer {key_including(contract, keys, contract.default_model)}"}


def test_malformed_json_is_400(target, contract, keys):
    @settings(max_examples=30)
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


def test_a_body_that_is_not_json_is_415(target, contract, keys):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        headers = {**auth(contract, keys), "Content-Type": content_type}
        reply = target.request("POST", GENERATE, headers=headers, data=b'{"prompt": "p"}')
        assert_problem(reply, 415, None, contract)


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
    for method, path in (("GET", GENERATE), ("DELETE", GENERATE), ("POST", MODELS)):
        reply = target.request(method, path, headers=auth(contract, keys))
        assert_problem(reply, 405, None, contract)
        allowed = {m.strip().upper() for m in reply.headers.get("Allow", "").split(",")}
        assert method not in allowed and allowed - {""}, reply.headers.get("Allow")


def test_an_unknown_model_id_is_404(target, contract, keys):
    reply = target.request("GET", f"{MODELS}/no-such-model", headers=auth(contract, keys))
    assert_problem(reply, 404, None, contract)


def test_the_catalog_is_served_as_the_spec_states_it(target, contract, keys):
    listing = target.request("GET", MODELS, headers=auth(contract, keys))
    assert listing.status == 200
    served = {model["id"]: model for model in listing.json()["data"]}
    assert served == contract.models
    assert listing.json()["default_model"] == contract.default_model
    one = target.request("GET", f"{MODELS}/{contract.default_model}", headers=auth(contract, keys))
    assert one.json() == contract.models[contract.default_model]

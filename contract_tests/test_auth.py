"""Auth: no usable key is always a 401 with a Bearer challenge; a valid key never is."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from contract_tests.checks import assert_problem
from contract_tests.spec import GENERATE, MODELS
from contract_tests.strategies import examples

B64TOKEN = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/",
    min_size=1,
    max_size=60,
)


def malformed(known_keys: list[str]):
    """Authorization values that are not 'Bearer <key>' (a missing header is None)."""
    key = st.sampled_from(known_keys)
    return st.one_of(
        st.sampled_from([None, "", "Bearer", "Bearer ", "bearer", "Token", "Basic dXNlcjpwdw=="]),
        key,  # the key without a scheme
        key.map(lambda k: f"Basic {k}"),
        key.map(lambda k: f"Token {k}"),
        key.map(lambda k: f"Bearer  {k}"),  # stray whitespace inside the header
        key.map(lambda k: f"Bearer\t{k}"),
        key.map(lambda k: f"Bearer {k[:4]} {k[4:]}"),
    )


def assert_unauthorized(reply, contract, code=None):
    problem = assert_problem(reply, 401, code, contract)
    challenge = reply.headers.get("WWW-Authenticate", "")
    assert challenge.split(" ")[0].lower() == "bearer", f"WWW-Authenticate: {challenge!r}"
    return problem


def _send(target, authorization, operation):
    headers = {} if authorization is None else {"Authorization": authorization}
    if operation == "generate":
        return target.request("POST", GENERATE, headers=headers, json_body={"prompt": "auth probe"})
    return target.request("GET", MODELS, headers=headers)


def test_malformed_or_missing_credentials_are_401(target, contract, keys):
    known = [key for key in keys.values() if key] or ["sk_placeholder_key"]

    @settings(max_examples=examples(60))
    @given(authorization=malformed(known), operation=st.sampled_from(["generate", "models"]))
    @example(authorization=None, operation="generate")  # no key at all: on every profile
    @example(authorization=None, operation="models")
    def check(authorization, operation):
        assert_unauthorized(_send(target, authorization, operation), contract)

    check()


def test_unknown_keys_are_401_invalid_api_key(target, contract, keys):
    known = {key for key in keys.values() if key}
    code = "invalid_api_key"
    assert code in contract.problem_codes(401)

    @settings(max_examples=examples(40))
    @given(
        token=B64TOKEN.filter(lambda t: t not in known),
        operation=st.sampled_from(["generate", "models"]),
    )
    def check(token, operation):
        assert_unauthorized(_send(target, f"Bearer {token}", operation), contract, code)

    check()


def test_a_known_key_with_one_character_changed_is_refused(target, contract, keys):
    for key in filter(None, keys.values()):
        changed = key[:-1] + ("A" if key[-1] != "A" else "B")
        assert_unauthorized(_send(target, f"Bearer {changed}", "models"), contract)
        assert_unauthorized(_send(target, f"Bearer {key}x", "generate"), contract)


def test_a_valid_key_is_never_answered_401(target, contract, keys):
    known = [key for key in keys.values() if key]
    if not known:
        pytest.skip("no key for any plan: set IMAGEAPI_KEY_<PLAN>")

    @settings(max_examples=examples(40))
    @given(
        key=st.sampled_from(known),
        # Bodies that must be refused, so the check costs nothing on a billed API.
        body=st.one_of(
            st.fixed_dictionaries(
                {"prompt": st.just("p"), "num_inference_steps": st.integers(max_value=0)}
            ),
            st.fixed_dictionaries({"prompt": st.just("p"), "unknown_field": st.integers()}),
            st.fixed_dictionaries({}),
        ),
    )
    def check(key, body):
        headers = {"Authorization": f"Bearer {key}"}
        assert target.request("GET", MODELS, headers=headers).status == 200
        reply = target.request("POST", GENERATE, headers=headers, json_body=body)
        assert reply.status != 401
        assert_problem(reply, 400, None, contract)

    check()

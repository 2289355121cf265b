"""Validation: the fast path and the explaining validator agree; codes come from the spec."""

from __future__ import annotations

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from mockserver.problems import Problem
from mockserver.validation import RequestValidator, parse_json

numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-2, 2100),
    st.floats(allow_nan=False),
    st.integers(0, 2100).map(float),
)
values = st.one_of(
    numbers, st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)
)


@st.composite
def bodies(draw, spec_models):
    body = {}
    if draw(st.booleans()):
        body["prompt"] = draw(st.one_of(st.text(max_size=20), values))
    fields = {
        "model": st.one_of(st.sampled_from(spec_models), values),
        "width": st.one_of(st.integers(0, 3000), values),
        "height": st.one_of(st.integers(0, 3000), values),
        "num_inference_steps": st.one_of(st.integers(-1, 120), values),
        "negative_prompt": st.one_of(st.text(max_size=5), values),
        "seed": st.one_of(st.integers(-1, 2**33), values),
        "output_format": st.one_of(st.sampled_from(["png", "jpeg", "webp", "gif"]), values),
        "num_images": st.one_of(st.integers(0, 5), values),
        "preset": st.one_of(st.sampled_from(["quality", "fast", "slow"]), values),
        "unknown": values,
    }
    for name, strategy in fields.items():
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(strategy)
    return body


def test_fast_and_explaining_validators_agree(spec):
    fast = jsonschema_rs.Draft202012Validator(spec.request_schema)
    slow = Draft202012Validator(spec.request_schema)

    @settings(max_examples=600, deadline=None)
    @given(bodies(list(spec.models)))
    def check(body):
        assert fast.is_valid(body) == slow.is_valid(body), body

    check()


def test_codes_are_read_from_the_spec(spec):
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "maximum": 3, "x-problem-code": "too_many"}},
        "allOf": [
            {
                "x-problem-code": "rule_broken",
                "x-problem-detail": "this rule says no",
                "properties": {"m": {"not": {}}},
            }
        ],
    }
    validator = RequestValidator(schema)
    with pytest.raises(Problem) as raised:
        validator.validate({"n": 4})
    assert (raised.value.code, raised.value.field) == ("too_many", "n")
    with pytest.raises(Problem) as raised:
        validator.validate({"n": "4"})
    assert raised.value.code == "invalid_type"
    with pytest.raises(Problem) as raised:
        validator.validate({"m": 1})
    assert raised.value.code == "rule_broken"
    assert raised.value.detail == "m: this rule says no"


@pytest.mark.parametrize(
    "raw",
    [b"{", b"\xff", b'{"a": NaN}', b'{"a": -Infinity}', b"[" * 5000, b"1" * 5000, b""],
)
def test_parse_json_refuses_what_rfc_8259_does_not_allow(raw):
    with pytest.raises(Problem) as raised:
        parse_json(raw)
    assert (raised.value.status, raised.value.code) == (400, "malformed_json")


def test_parse_json_keeps_big_numbers_exact():
    assert parse_json(b'{"a": 123456789012345678901234567890}') == {
        "a": 123456789012345678901234567890
    }


def refusal(spec, body) -> Problem:
    with pytest.raises(Problem) as caught:
        RequestValidator(spec.request_schema).validate(body)
    return caught.value


def test_a_long_value_is_shortened_so_that_the_reason_shows(spec):
    too_long = refusal(spec, {"prompt": "a" * 2001})
    assert too_long.field == "prompt"
    assert too_long.detail.endswith("' (2001 characters) is too long")
    unknown = refusal(spec, {"prompt": "x", "model": "m" * 500})
    assert unknown.code == "unknown_model"
    assert "(500 characters) is not one of ['flux-schnell'," in unknown.detail


def test_a_huge_unknown_field_name_is_not_echoed_whole(spec):
    unknown = refusal(spec, {"prompt": "x", "z" * 60_000: 1})
    assert unknown.code == "unknown_field"
    assert len(unknown.field) <= 300 and len(unknown.detail) <= 300

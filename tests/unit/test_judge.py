"""The judge alone: its promises are PROMISES.md's rows, and it computes what the spec says for
requests at the edges (no target involved: hand-made answers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract_tests.judge import PROMISES, Answer, Judge, Request
from contract_tests.spec import GENERATE, MODELS, load_contract

PROMISES_MD = (Path(__file__).resolve().parents[2] / "contract_tests" / "PROMISES.md").read_text()
KEYS = {"sk_free_key_123456": "free", "sk_pro_key_1234567": "pro"}
FREE = {"Authorization": "Bearer sk_free_key_123456", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def judge():
    return Judge(load_contract(), KEYS)


def generate(body, headers=FREE) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request("POST", GENERATE, dict(headers), raw)


def problem(status: int, code: str, field: str | None = None, **extra) -> Answer:
    document = {"type": "https://x.test/p", "title": "t", "status": status, "code": code, **extra}
    if field:
        document["field"] = field
    headers = {"Content-Type": "application/problem+json"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="x"'
    return Answer(status, headers, json.dumps(document).encode())


@pytest.mark.parametrize("promise", list(PROMISES))
def test_every_promise_is_a_row_of_promises_md(promise):
    assert f"| {PROMISES[promise].row}" in PROMISES_MD, promise


@pytest.mark.parametrize(
    ("request_", "status", "codes", "fields"),
    [
        (
            generate({"prompt": "p", "num_inference_steps": 9}),
            400,
            {"step_cap_exceeded"},
            {"num_inference_steps"},
        ),
        (
            generate({"prompt": "p", "model": "sdxl", "num_inference_steps": 100}),
            403,
            {"model_not_in_plan"},
            {"model"},
        ),
        (
            generate({"prompt": "p", "model": "sdxl", "num_inference_steps": 101}),
            400,
            {"step_cap_exceeded"},
            {"num_inference_steps"},
        ),
        (
            generate({"prompt": "p", "negative_prompt": "n"}),
            400,
            {"negative_prompt_unsupported"},
            {"negative_prompt"},
        ),
        (generate({"prompt": "p", "width": "512"}), 400, {"invalid_type"}, {"width"}),
        (generate({"prompt": "p", "width": 520}), 400, {"invalid_request"}, {"width"}),
        (generate({"prompt": "p", "model": "dall-e"}), 400, {"unknown_model"}, {"model"}),
        (generate({}), 400, {"missing_field"}, {"prompt"}),
        (generate(b"{"), 400, {"malformed_json"}, {None}),
        (generate(b"{" * (64 * 1024 + 1)), 413, {"payload_too_large"}, {None}),
        (
            generate({"prompt": "p"}, {"Authorization": "Bearer sk_free_key_123456"}),
            415,
            {"unsupported_media_type"},
            {None},
        ),
        (
            generate({"prompt": "p", "num_inference_steps": 0}, {"Content-Type": "text/plain"}),
            401,
            {"missing_api_key"},
            {None},
        ),
    ],
)
def test_what_the_answer_must_be(judge, request_, status, codes, fields):
    (outcome,) = judge.expect(request_)
    assert (outcome.status, set(outcome.codes), set(outcome.fields)) == (status, codes, fields)


def test_a_key_the_judge_does_not_know_may_be_valid_or_not(judge):
    request = generate(
        {"prompt": "p", "model": "sdxl"},
        {"Authorization": "Bearer sk_other_000000", "Content-Type": "application/json"},
    )
    assert {outcome.status for outcome in judge.expect(request)} == {200, 403, 401}


def test_several_faults_must_each_be_listed(judge):
    request = generate({"prompt": "p", "width": 100, "height": "tall", "sampler": "euler"})
    faults = {"width": "invalid_request", "height": "invalid_type", "sampler": "unknown_field"}
    listed = [{"field": field, "code": code, "detail": "d"} for field, code in faults.items()]
    assert judge.verdict(request, problem(400, "invalid_type", "height", errors=listed)) == []
    broken = judge.verdict(request, problem(400, "invalid_type", "height", errors=listed[1:]))
    assert [v.promise for v in broken] == ["problem-errors"]
    assert "width" in broken[0].reason


def test_a_wrong_answer_names_its_promise_and_the_spec(judge):
    request = generate({"prompt": "p", "num_inference_steps": 9})
    (violation,) = judge.verdict(request, problem(400, "invalid_request", "num_inference_steps"))
    assert violation.promise == "bad-request" and "step_cap_exceeded" in violation.reason
    assert violation.as_dict()["spec"] == PROMISES["bad-request"].wording
    (violation,) = judge.verdict(request, problem(403, "model_not_in_plan", "model"))
    assert violation.promise == "order"


def test_refusals_are_problems(judge):
    request = Request("GET", MODELS, {})
    plain = Answer(401, {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"}, b"{}")
    assert [v.promise for v in judge.verdict(request, plain)] == ["problem-json"]
    broken = judge.verdict(request, problem(401, "missing_api_key", status_member=1))
    assert broken == []
    wrong = json.loads(problem(401, "missing_api_key").body) | {"status": 400}
    answer = Answer(401, problem(401, "x").headers, json.dumps(wrong).encode())
    assert [v.promise for v in judge.verdict(request, answer)] == ["problem-status"]


def test_a_500_always_breaks_a_promise(judge):
    broken = judge.verdict(generate({"prompt": "p"}), problem(500, "internal_error"))
    assert "no-5xx" in {v.promise for v in broken}


def test_preflights_and_scenarios_are_not_judged_beyond_their_shape(judge):
    assert judge.expect(Request("OPTIONS", GENERATE, {"Origin": "https://a.test"})) is None
    assert judge.expect(Request("GET", MODELS, {"Prefer": "code=429"})) is None

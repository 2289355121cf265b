"""The differential test: for generated requests (valid and invalid bodies, every model, every
plan, unknown and missing keys, the boundaries), the target's answer gets an empty verdict from
the judge, which computes what the answer must be from the spec alone."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract_tests.judge import MAX_BODY, Answer, Judge, Request
from contract_tests.spec import GENERATE, MODELS, load_contract
from contract_tests.strategies import examples, valid_bodies

CONTRACT = load_contract()
UNKNOWN_KEY = "sk_unknown_0000000000000000"
NEGATIVE_MAX = CONTRACT.request_schema["properties"]["negative_prompt"]["maxLength"]
PROMPT_MAX = CONTRACT.request_schema["properties"]["prompt"]["maxLength"]
WIDTHS = CONTRACT.size_range("width")
NO_NEGATIVE = [m for m, info in CONTRACT.models.items() if not info["negative_prompt"]]


def fault_edits(contract):
    """Edits that each put one field outside the contract, at its edges and beyond."""
    low, high, step = WIDTHS
    sizes = [low - step, high + step, low + step // 2, "512", 8.5, None, True]
    return st.one_of(
        st.just(("drop", "prompt", None)),
        st.sampled_from(["sampler", "steps", "Prompt"]).map(lambda name: ("set", name, 1)),
        st.tuples(st.just("set"), st.sampled_from(["width", "height"]), st.sampled_from(sizes)),
        st.tuples(
            st.just("set"),
            st.just("prompt"),
            st.sampled_from([" \t\n", "", "p" * (PROMPT_MAX + 1), 7]),
        ),
        st.tuples(
            st.just("set"), st.just("model"), st.sampled_from(["dall-e", "", 3, "FLUX-SCHNELL"])
        ),
        st.tuples(
            st.just("steps"),
            st.just("num_inference_steps"),
            st.sampled_from([0, -1, 1, 101, 10**6, "8", 4.5]),
        ),
        st.tuples(st.just("set"), st.just("seed"), st.sampled_from([-1, 2**32, "1"])),
        st.tuples(st.just("set"), st.just("num_images"), st.sampled_from([0, 5, 1.5, 2, 4])),
        st.just(("wrap", "seed", 2**32 - 1)),  # valid: image seeds wrap around 2^32
        st.tuples(st.just("set"), st.just("output_format"), st.sampled_from(["gif", "PNG"])),
        st.tuples(st.just("set"), st.just("preset"), st.sampled_from(["slow", 1])),
        st.tuples(
            st.just("negative"),
            st.just("negative_prompt"),
            st.sampled_from([NEGATIVE_MAX, NEGATIVE_MAX + 1]),
        ),
    )


@st.composite
def bodies(draw, contract):
    """A valid body, or one with one to three faults."""
    body = draw(valid_bodies(contract))
    for kind, name, value in draw(st.lists(fault_edits(contract), max_size=3)):
        if kind == "drop":
            body.pop(name, None)
        elif kind == "steps":
            info = contract.models.get(body.get("model", contract.default_model))
            cap = info["max_steps"] if info else 100
            # around the model's own cap, or the fixed value
            body[name] = draw(st.sampled_from([value, cap, cap + 1]))
        elif kind == "wrap":
            body.update(seed=value, num_images=2)
        elif kind == "negative":
            body[name] = "n" * value
            if draw(st.booleans()):
                body["model"] = draw(st.sampled_from(NO_NEGATIVE))
        else:
            body[name] = value
    return body


def raw_bodies(contract):
    encoded = bodies(contract).map(lambda body: json.dumps(body).encode())
    return st.one_of(
        encoded,
        encoded,
        encoded,
        st.sampled_from([b"{", b"", b"[1,", b'{"prompt": "\xff"}', b"NaN", b'{"prompt": NaN}']),
        st.just(b'{"prompt": "big"' + b" " * (MAX_BODY - 17) + b"}"),  # exactly 64 KiB: read
        st.just(b'{"prompt": "big"' + b" " * (MAX_BODY - 16) + b"}"),  # one byte more
        st.sampled_from([b"[]", b'"prompt"', b"null", b"7"]),
    )


def authorizations(keys):
    known = [f"Bearer {key}" for key in keys.values() if key]
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known).map(lambda value: "bearer" + value[len("Bearer") :]),
        st.sampled_from([None, f"Bearer {UNKNOWN_KEY}", "Token abcdefgh", "Bearer", "Bearer  x1"]),
    )


@st.composite
def requests(draw, contract, keys):
    headers = {}
    authorization = draw(authorizations(keys))
    if authorization is not None:
        headers["Authorization"] = authorization
    operation = draw(st.sampled_from(["generate"] * 6 + ["list", "get", "method", "route"]))
    if operation == "list":
        return Request(draw(st.sampled_from(["GET", "HEAD"])), MODELS, headers)
    if operation == "get":
        unknown = ["no-such-model", "FLUX-SCHNELL"]
        model = draw(st.sampled_from([*contract.models, *unknown]) | st.sampled_from(unknown))
        return Request(draw(st.sampled_from(["GET", "HEAD"])), f"{MODELS}/{model}", headers)
    if operation == "method":
        method, path = draw(
            st.sampled_from(
                [
                    ("GET", GENERATE),
                    ("PUT", GENERATE),
                    ("DELETE", f"{MODELS}/sdxl"),
                    ("POST", MODELS),
                ]
            )
        )
        return Request(method, path, headers)
    if operation == "route":
        path = draw(st.sampled_from(["/api/v1/nothing", "/api/v2/models", f"{MODELS}/sdxl/x"]))
        return Request("GET", path, headers)
    content_type = draw(
        st.sampled_from(
            ["application/json"] * 6
            + [
                "application/json; charset=utf-8",
                "Application/JSON",
                "text/plain",
                "text/json",
                None,
            ]
        )
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    return Request("POST", GENERATE, headers, draw(raw_bodies(contract)))


@pytest.fixture(scope="module")
def judge(contract, keys):
    return Judge(contract, {key: plan for plan, key in keys.items() if key})


def test_every_answer_gets_an_empty_verdict(target, contract, keys, judge, reserve_billable):
    if not any(keys.values()):
        pytest.skip("no key for any plan: set IMAGEAPI_KEY_<PLAN>")

    @settings(max_examples=examples(250))
    @given(request=requests(contract, keys))
    def check(request):
        # Hypothesis seeds Python's `random` alike for every example, and an in-process target
        # that draws its ids from it repeats them: ids are judged unique per example only (the
        # proxy judges them across all the exchanges it sees).
        judge.seen_ids.clear()
        outcomes = judge.expect(request) or []
        if any(outcome.status == 200 and outcome.operation == "generate" for outcome in outcomes):
            reserve_billable()
        # A 429 to HEAD has no body to check as the suite's waiting does: the judge checks it.
        reply = target.request(
            request.method,
            request.path,
            headers=request.headers,
            data=request.body or None,
            wait=request.method != "HEAD",
        )
        answer = Answer(reply.status, dict(reply.headers), reply.body)
        broken = judge.verdict(request, answer)
        assert not broken, "\n".join(
            [f"{request.method} {request.path} -> {reply.status}: {reply.body[:300]!r}"]
            + [f"{v.promise}: {v.reason} (spec: {v.wording})" for v in broken]
        )

    check()


@pytest.mark.parametrize("plan", CONTRACT.plans)
def test_the_judge_knows_every_model_on_every_plan(
    target, contract, keys, judge, plan, reserve_billable
):
    """The boundaries, on each plan: each model at its step cap and one above it, the last seed
    (image seeds wrap around 2^32), a negative prompt at its maxLength and one longer."""
    key = keys.get(plan)
    if not key:
        pytest.skip(f"no key for the {plan} plan")
    edge = {"prompt": "edge", "width": 256, "height": 256}
    bodies = [{**edge, "seed": 2**32 - 1, "num_images": 2}]
    for model, info in contract.models.items():
        for steps in (info["max_steps"], info["max_steps"] + 1):
            bodies.append({**edge, "model": model, "num_inference_steps": steps})
        for length in (NEGATIVE_MAX, NEGATIVE_MAX + 1):
            bodies.append({**edge, "model": model, "negative_prompt": "n" * length})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for body in bodies:
        request = Request("POST", GENERATE, headers, json.dumps(body).encode())
        if any(o.status == 200 for o in judge.expect(request) or []):
            reserve_billable()
        reply = target.request("POST", GENERATE, headers=headers, data=request.body)
        broken = judge.verdict(request, Answer(reply.status, dict(reply.headers), reply.body))
        assert not broken, (body, reply.status, broken)

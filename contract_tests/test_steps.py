"""Step caps, for every model of the catalog: 1..max_steps accepted, the rest refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract_tests.checks import assert_generated, assert_problem
from contract_tests.plugin import key_including
from contract_tests.spec import load_contract
from contract_tests.strategies import examples, steps_around_cap

MODELS = list(load_contract().models)


@pytest.mark.parametrize("model", MODELS)
def test_boundaries_of_the_cap(target, contract, keys, reserve_billable, model):
    key = key_including(contract, keys, model)
    cap = contract.models[model]["max_steps"]
    for steps in (0, -1, cap + 1, cap * 1000 + 7):
        reply = target.generate(
            {"prompt": "cap probe", "model": model, "num_inference_steps": steps}, key
        )
        assert_problem(reply, 400, contract.step_cap_code, contract, field="num_inference_steps")
    for steps in (1, cap):
        reserve_billable()
        body = {
            "prompt": "cap probe",
            "model": model,
            "num_inference_steps": steps,
            "width": 256,
            "height": 256,
        }
        assert_generated(target.generate(body, key), body, contract)


@pytest.mark.parametrize("model", MODELS)
def test_omitted_steps_default_to_quality_steps_and_fast_preset_to_fast_steps(
    target, contract, keys, reserve_billable, model
):
    key = key_including(contract, keys, model)
    for extra in ({}, {"preset": "fast"}, {"preset": "quality"}):
        reserve_billable()
        body = {"prompt": "default steps", "model": model, "width": 256, "height": 256, **extra}
        result = assert_generated(target.generate(body, key), body, contract)
        info = contract.models[model]
        expected = info["fast_steps"] if extra.get("preset") == "fast" else info["quality_steps"]
        assert result["num_inference_steps"] == expected


@pytest.mark.parametrize("model", MODELS)
def test_an_explicit_step_count_wins_over_the_preset(
    target, contract, keys, reserve_billable, model
):
    """ "An explicit `num_inference_steps` wins over the preset." """
    info = contract.models[model]
    # the cheapest count that is not the preset's own
    steps = next((s for s in range(1, info["max_steps"] + 1) if s != info["fast_steps"]), None)
    if steps is None:
        pytest.skip(f"{model}: the fast preset's steps are the only ones allowed")
    reserve_billable()
    body = {
        "prompt": "explicit steps",
        "model": model,
        "preset": "fast",
        "num_inference_steps": steps,
        "width": 256,
        "height": 256,
    }
    reply = target.generate(body, key_including(contract, keys, model))
    result = assert_generated(reply, body, contract)
    assert result["num_inference_steps"] == steps


def test_steps_property(target, contract, keys, reserve_billable):
    """Any step count for any model: accepted exactly when 1 <= steps <= the model's cap."""

    @settings(max_examples=examples(80))
    @given(data=st.data())
    def check(data):
        model = data.draw(st.sampled_from(MODELS), label="model")
        cap = contract.models[model]["max_steps"]
        steps = data.draw(steps_around_cap(cap), label="steps")
        key = key_including(contract, keys, model)
        body = {
            "prompt": "steps",
            "model": model,
            "num_inference_steps": steps,
            "width": 256,
            "height": 256,
        }
        if 1 <= steps <= cap:
            reserve_billable()
            assert_generated(target.generate(body, key), body, contract)
        else:
            reply = target.generate(body, key)
            assert_problem(
                reply, 400, contract.step_cap_code, contract, field="num_inference_steps"
            )

    check()


@pytest.mark.parametrize("steps", [8.5, "8", True, None, [8]])
def test_steps_must_be_integers(target, contract, keys, steps):
    key = key_including(contract, keys, contract.default_model)
    reply = target.generate({"prompt": "p", "num_inference_steps": steps}, key)
    assert_problem(reply, 400, None, contract, field="num_inference_steps")

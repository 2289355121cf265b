"""Generation: defaults, the echo of what was used, negative prompts, seeds, and real images."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract_tests.checks import assert_generated, assert_problem
from contract_tests.plugin import key_including
from contract_tests.spec import load_contract
from contract_tests.strategies import examples, valid_bodies

MODELS = list(load_contract().models)


def test_defaults(target, contract, keys, reserve_billable):
    """The quick start: no model, no size, no steps."""
    key = key_including(contract, keys, contract.default_model)
    reserve_billable()
    body = {"prompt": "a cinematic mountain landscape at sunrise"}
    result = assert_generated(target.generate(body, key), body, contract)
    default = contract.models[contract.default_model]
    assert result["model"] == contract.default_model
    assert (result["width"], result["height"]) == (
        contract.default("width"),
        contract.default("height"),
    )
    assert result["num_inference_steps"] == default["quality_steps"]
    assert 0 <= result["seed"] < 2**32


@pytest.mark.parametrize("model", MODELS)
def test_omitted_sizes_are_the_schema_defaults(target, contract, keys, reserve_billable, model):
    """An omitted width or height is the schema's default for every model, whatever size the
    model was trained at (one side given small, to keep the image cheap)."""
    omitted = "height" if MODELS.index(model) % 2 else "width"
    given_side = "width" if omitted == "height" else "height"
    body = {"prompt": "default size", "model": model, given_side: 256}
    reserve_billable()
    reply = target.generate(body, key_including(contract, keys, model))
    result = assert_generated(reply, body, contract)
    assert result[omitted] == contract.default(omitted)


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_each_output_format_is_made_as_asked(
    target, contract, keys, reserve_billable, output_format
):
    """Each format of the enum, on every profile (the property draws formats at random)."""
    assert output_format in contract.request_schema["properties"]["output_format"]["enum"]
    body = {"prompt": "formats", "output_format": output_format, "width": 256, "height": 256}
    reserve_billable()
    reply = target.generate(body, key_including(contract, keys, contract.default_model))
    assert_generated(reply, body, contract)


@pytest.mark.parametrize("model", MODELS)
def test_negative_prompt_support(target, contract, keys, reserve_billable, model):
    key = key_including(contract, keys, model)
    body = {
        "prompt": "a quiet lake",
        "model": model,
        "negative_prompt": "people",
        "width": 256,
        "height": 256,
    }
    if contract.models[model]["negative_prompt"]:
        reserve_billable()
        assert_generated(target.generate(body, key), body, contract)
    else:
        reply = target.generate(body, key)
        assert_problem(reply, 400, contract.negative_prompt_code, contract, field="negative_prompt")


def test_generation_property(target, contract, keys, reserve_billable):
    """Any valid body: 200, the echo of what was used, images of the asked format and size."""
    models = [m for m in MODELS if any(keys.get(p) for p in contract.models[m]["plans"])]
    if not models:
        pytest.skip("no key for any plan: set IMAGEAPI_KEY_<PLAN>")

    @settings(max_examples=examples(60))
    @given(data=st.data())
    def check(data):
        model = data.draw(st.sampled_from(models), label="model")
        body = data.draw(valid_bodies(contract, model), label="body")
        reserve_billable()
        assert_generated(
            target.generate(body, key_including(contract, keys, model)), body, contract
        )

    check()


def test_the_same_seed_gives_the_same_image(target, contract, keys, reserve_billable):
    key = key_including(contract, keys, contract.default_model)
    body = {"prompt": "reproducible", "seed": 1234, "width": 256, "height": 256}
    images = []
    for _ in range(2):
        reserve_billable()
        images.append(
            assert_generated(target.generate(body, key), body, contract)["images"][0]["data_url"]
        )
    assert images[0] == images[1]


def test_unknown_models_are_refused(target, contract, keys):
    key = key_including(contract, keys, contract.default_model)

    @settings(max_examples=examples(30))
    @given(model=st.text(min_size=1, max_size=30).filter(lambda m: m not in contract.models))
    def check(model):
        reply = target.generate({"prompt": "p", "model": model}, key)
        assert_problem(reply, 400, contract.unknown_model_code, contract, field="model")

    check()

"""The spec: valid, self-consistent, and read by the server with no Python edit."""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from mockserver.spec import CATALOG_KEY, DEFAULT_SPEC_PATH, SpecError, build_spec


def test_spec_is_valid_openapi():
    document, _ = read_from_filename(str(DEFAULT_SPEC_PATH))
    validate(document)  # raises on any error


def test_catalog_has_the_nine_models_with_the_public_facts(spec):
    assert len(spec.models) == 9
    lightning = spec.models["sdxl-lightning"]
    assert (lightning.quality_steps, lightning.fast_steps, lightning.max_steps) == (8, 4, 50)
    assert lightning.negative_prompt is True
    assert lightning.plans == ("basic", "pro", "enterprise")
    schnell = spec.models["flux-schnell"]
    assert (schnell.quality_steps, schnell.fast_steps, schnell.max_steps) == (8, 4, 8)
    assert schnell.negative_prompt is False
    assert schnell.plans == ("free", "basic", "pro", "enterprise")
    assert set(spec.plans) == {"free", "basic", "pro", "enterprise"}


def test_default_model_is_on_every_plan(spec):
    assert set(spec.models[spec.default_model].plans) == set(spec.plans)


def _all_examples(node, path=""):
    """Yield (path, schema, example) for every example that sits beside a schema."""
    if isinstance(node, dict):
        schema = node.get("schema")
        if schema is not None:
            if "example" in node:
                yield path, schema, node["example"]
            for name, example in node.get("examples", {}).items():
                yield f"{path}/examples/{name}", schema, example["value"]
        for key, value in node.items():
            yield from _all_examples(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _all_examples(value, f"{path}/{i}")


def test_every_example_validates_against_its_schema(spec):
    examples = list(_all_examples(spec.document))
    assert len(examples) >= 12  # request examples, the 200 example, each problem response
    for path, schema, example in examples:
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(example)]
        assert not errors, f"{path}: {errors}"


def test_property_examples_validate(spec):
    for name, prop in spec.request_schema["properties"].items():
        if "example" in prop:
            assert Draft202012Validator(prop).is_valid(prop["example"]), name


def _with(spec, edit):
    document = copy.deepcopy(spec.document)
    edit(document)
    return document


def _step_rule(document, model_id):
    rules = document["paths"]["/api/v1/generate"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["allOf"][0]["allOf"]
    return next(r for r in rules if r["if"]["properties"]["model"]["const"] == model_id)


def _catalog_model(document, model_id):
    return next(m for m in document[CATALOG_KEY]["models"] if m["id"] == model_id)


def test_a_cap_changed_in_one_place_only_is_refused(spec):
    document = _with(spec, lambda d: _catalog_model(d, "sdxl-lightning").update(max_steps=20))
    with pytest.raises(SpecError, match="sdxl-lightning: schema accepts steps above max_steps=20"):
        build_spec(document)


def test_negative_prompt_support_must_agree(spec):
    document = _with(spec, lambda d: _catalog_model(d, "sdxl").update(negative_prompt=False))
    with pytest.raises(SpecError, match="sdxl: catalog negative_prompt=False"):
        build_spec(document)


def test_default_model_must_be_on_every_plan(spec):
    def edit(document):
        _catalog_model(document, "flux-schnell")["plans"] = ["pro"]

    with pytest.raises(SpecError, match="not in plans"):
        build_spec(_with(spec, edit))


def test_catalog_entries_are_validated_against_the_model_schema(spec):
    document = _with(spec, lambda d: _catalog_model(d, "sdxl").update(max_steps="many"))
    with pytest.raises(SpecError, match="catalog model 'sdxl'"):
        build_spec(document)


def test_catalog_models_and_schema_enum_must_match(spec):
    def edit(document):
        document[CATALOG_KEY]["models"].pop()

    with pytest.raises(SpecError, match="request schema models"):
        build_spec(_with(spec, edit))


def test_a_consistent_cap_change_is_accepted(spec):
    def edit(document):
        _catalog_model(document, "sdxl-lightning")["max_steps"] = 20
        _step_rule(document, "sdxl-lightning")["then"]["properties"]["num_inference_steps"][
            "maximum"
        ] = 20

    assert build_spec(_with(spec, edit)).models["sdxl-lightning"].max_steps == 20


def test_every_problem_code_in_the_request_schema_is_documented_for_400(spec):
    documented = set(
        spec.document["components"]["schemas"]["BadRequestProblem"]["allOf"][1]["properties"][
            "code"
        ]["enum"]
    )

    def codes(node):
        if isinstance(node, dict):
            if "x-problem-code" in node:
                yield node["x-problem-code"]
            for value in node.values():
                yield from codes(value)
        elif isinstance(node, list):
            for value in node:
                yield from codes(value)

    used = set(codes(spec.request_schema))
    assert used and used <= documented

"""Mutants of step counts: the caps, the presets' defaults, an explicit count."""

from __future__ import annotations

from tests.mutants.proxies import SPEC, _edit_success, _valid, proxy
from tests.mutants.registry import mutant


@mutant("contract_tests/test_steps.py::test_boundaries_of_the_cap")
def lift_step_caps():
    """Steps above a model's cap are quietly clamped to it and reported as asked."""

    def edit_request(environ, body):
        model_id = body.get("model", SPEC.default_model) if body else None
        if isinstance(model_id, str) and isinstance(body.get("num_inference_steps"), int):
            model = SPEC.models.get(model_id)
            if model and body["num_inference_steps"] > model.max_steps:
                return {**body, "num_inference_steps": model.max_steps}
        return None

    def restore(sent, result):
        if "num_inference_steps" in sent:
            result["num_inference_steps"] = sent["num_inference_steps"]

    return proxy(edit_request, _edit_success(restore))


@mutant(
    "contract_tests/test_steps.py::test_omitted_steps_default_to_quality_steps_and_fast_preset_to_fast_steps"
)
def fast_steps_by_default():
    """An omitted step count gets the fast preset's steps instead of the quality steps."""

    def edit_request(environ, body):
        if _valid(body) and "num_inference_steps" not in body:
            model = SPEC.models[body.get("model", SPEC.default_model)]
            return {**body, "num_inference_steps": model.fast_steps}
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_steps.py::test_boundaries_of_the_cap")
def wrong_error_code():
    """A step-cap refusal carries a generic code instead of the documented one."""

    def edit_response(environ, sent, status, headers, body):
        if status.startswith("400"):
            body = body.replace(b'"code":"step_cap_exceeded"', b'"code":"invalid_request"')
        return status, headers, body

    return proxy(edit_response=edit_response)


@mutant("contract_tests/test_steps.py::test_an_explicit_step_count_wins_over_the_preset")
def preset_overrides_explicit_steps():
    """With `"preset": "fast"` the fast steps are used even when `num_inference_steps` is
    given (and the asked steps echoed)."""

    def edit_request(environ, body):
        if _valid(body) and body.get("preset") == "fast" and "num_inference_steps" in body:
            model = SPEC.models[body.get("model", SPEC.default_model)]
            return {**body, "num_inference_steps": model.fast_steps}
        return None

    return proxy(edit_request)

"""Plans: a key is refused with 403 exactly when its plan does not include the model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract_tests.checks import assert_generated, assert_problem
from contract_tests.plugin import key_for
from contract_tests.spec import load_contract
from contract_tests.strategies import examples, valid_bodies

PLANS = load_contract().plans
FORBIDDEN = "model_not_in_plan"


def check_plan(target, contract, key, plan, body, reserve_billable):
    model = body.get("model", contract.default_model)
    if contract.plan_includes(plan, model):
        reserve_billable()
        assert_generated(target.generate(body, key), body, contract)
    else:
        assert_problem(target.generate(body, key), 403, FORBIDDEN, contract, field="model")


@pytest.mark.parametrize("plan", PLANS)
def test_every_model_on_every_plan(target, contract, keys, reserve_billable, plan):
    key = key_for(keys, plan)
    assert FORBIDDEN in contract.problem_codes(403)
    for model in contract.models:
        body = {"prompt": f"{plan} asks for {model}", "model": model, "width": 256, "height": 256}
        check_plan(target, contract, key, plan, body, reserve_billable)


def test_plan_property(target, contract, keys, reserve_billable):
    """Random valid bodies on random plans: the plan alone decides between 200 and 403."""
    plans = [plan for plan in PLANS if keys.get(plan)]
    if not plans:
        pytest.skip("no key for any plan: set IMAGEAPI_KEY_<PLAN>")

    @settings(max_examples=examples(60))
    @given(plan=st.sampled_from(plans), body=valid_bodies(contract))
    def check(plan, body):
        check_plan(target, contract, keys[plan], plan, body, reserve_billable)

    check()

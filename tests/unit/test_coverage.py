"""Coverage of the contract and the gate, computed from the spec, PROMISES.md and made-up
outcomes: which cells an exchange answers, how outcomes settle them, what the gate says."""

from __future__ import annotations

import json
import re

import pytest

from contract_tests import coverage as cov
from contract_tests import gate
from contract_tests.spec import GENERATE, load_contract

CONTRACT = load_contract()
PROMISES = cov.load_promises()
PLANS_BY_KEY = {"k-free": "free", "k-pro": "pro"}
PROBLEM = "application/problem+json"


def problem(code: str) -> bytes:
    return json.dumps({"code": code}).encode()


def generate(body: dict, key: str, status: int, code: str | None = None):
    return cov.observed_cells(
        CONTRACT, PLANS_BY_KEY, "POST", GENERATE, {"Authorization": f"Bearer {key}"},
        json.dumps(body).encode(), status, PROBLEM if code else "application/json",
        problem(code) if code else b"{}",
    )  # fmt: skip


def test_every_promise_row_has_an_id_and_the_ids_are_unique():
    text = cov.PROMISES_PATH.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    headers = [r for r in rows if r.startswith("| Promise |")]  # one per section
    assert len(headers) == text.count("\n## ")
    assert len(PROMISES) == len(rows) - len(headers)
    ids = [p.id for p in PROMISES]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "authentication-1"
    assert all(re.fullmatch(r"[a-z]+-\d+", i) for i in ids)


def test_promises_name_their_tests_and_some_are_not_observable():
    by_id = {p.id: p for p in PROMISES}
    assert "test_every_model_on_every_plan" in by_id["plans-1"].tests
    unobservable = [p.text for p in PROMISES if not p.observable]
    assert any("constant time" in text for text in unobservable)
    assert all(p.observable for p in PROMISES if p.id.startswith("cors"))


def test_the_cells_cover_every_model_plan_edge_and_documented_code():
    cells = cov.contract_cells(CONTRACT, PROMISES)
    assert sum(c.group == "plans" for c in cells.values()) == len(CONTRACT.models) * 4
    assert sum(c.group == "steps" for c in cells.values()) == len(CONTRACT.models) * 4
    assert cells["plan/sdxl/free"].expect == "403 model_not_in_plan"
    assert cells["steps/flux-schnell/max+1"].expect == "9 steps: 400 step_cap_exceeded"
    assert "code/getModel/404/model_not_found" in cells
    assert cells["code/generateImage/500/internal_error"].state == cov.UNOBSERVABLE


def test_an_answer_as_the_contract_says_agrees_and_the_opposite_contradicts():
    agreed, contradicted = generate({"prompt": "p", "model": "sdxl"}, "k-free", 403,
                                    "model_not_in_plan")  # fmt: skip
    assert "plan/sdxl/free" in agreed and not contradicted
    assert "code/generateImage/403/model_not_in_plan" in agreed
    agreed, contradicted = generate({"prompt": "p", "model": "sdxl"}, "k-free", 200)
    assert contradicted == ["plan/sdxl/free"]
    agreed, _ = generate({"prompt": "p", "model": "sdxl", "num_inference_steps": 101}, "k-pro",
                         400, "step_cap_exceeded")  # fmt: skip
    assert "steps/sdxl/max+1" in agreed
    _, contradicted = generate({"prompt": "p", "num_inference_steps": 0}, "k-pro", 200)
    assert f"steps/{CONTRACT.default_model}/0" in contradicted
    # An unknown key is no plan; True is not a step count.
    agreed, _ = generate({"prompt": "p", "num_inference_steps": True}, "other", 200)
    assert agreed == ["code/generateImage/200/-"]


def test_answers_are_attributed_to_the_operations_that_document_them():
    assert cov.operations_for(CONTRACT, "HEAD", "/api/v1/models", 200) == ["listModels"]
    assert cov.operations_for(CONTRACT, "GET", "/api/v1/models/sdxl", 404) == ["getModel"]
    assert cov.operations_for(CONTRACT, "DELETE", GENERATE, 405) == ["generateImage"]
    assert cov.operations_for(CONTRACT, "OPTIONS", GENERATE, 204) == []  # a preflight
    assert cov.operations_for(CONTRACT, "GET", "/nowhere", 404) == ["getModel"]


def outcome(state: str, reason: str = "") -> cov.Outcome:
    return cov.Outcome(state, reason)


def test_outcomes_settle_the_cells():
    plan_test = "contract_tests/test_plans.py::test_every_model_on_every_plan"
    observed = {
        f"{plan_test}[pro]": cov.Observed(agreed=["plan/sdxl/pro"], last=["plan/sdxl/pro"]),
        f"{plan_test}[free]": cov.Observed(
            agreed=["plan/flux-schnell/free"],
            contradicted=["plan/sdxl/free"],
            last=["plan/sdxl/free"],
        ),  # fmt: skip
    }
    no_key = "no key for the basic plan: set IMAGEAPI_KEY_BASIC"
    spent = "the budget of 0 billable requests is spent"
    outcomes = {
        f"{plan_test}[pro]": outcome("passed"),
        f"{plan_test}[free]": outcome("failed"),
        f"{plan_test}[basic]": outcome("skipped", no_key),
        f"{plan_test}[enterprise]": outcome("skipped", spent),
    }  # fmt: skip
    result = cov.compute(CONTRACT, PROMISES, outcomes, observed)
    cells = result.cells
    assert cells["plan/sdxl/pro"].state == cov.VERIFIED
    assert cells["plan/flux-schnell/free"].state == cov.VERIFIED  # checked before the failure
    assert cells["plan/sdxl/free"].state == cov.FAILED
    assert cells["plan/sdxl/basic"].state == cov.SKIPPED
    assert not cells["plan/sdxl/basic"].option
    assert cells["plan/sdxl/enterprise"].option  # --max-billable: the team's own choice
    assert cells["plan/flux-dev/pro"].state == cov.NEVER
    assert cells["promise/plans-1"].state == cov.FAILED
    counts = result.counts("plans")
    assert counts["total"] == 36 and counts["skipped by option"] == 9
    assert result.ratio("plans") == pytest.approx(2 / 27)


def test_no_keys_is_too_little_naming_the_variables():
    result = cov.compute(CONTRACT, PROMISES, {}, {})
    verdict = gate.judge(result, gate.Requirements(), ["IMAGEAPI_KEY_FREE", "IMAGEAPI_KEY_PRO"])
    assert verdict.status == gate.EXIT_TOO_LITTLE
    assert verdict.lines == [
        "contract gate: verified nothing that needs a key (no 2xx, no model on a plan): "
        "set IMAGEAPI_KEY_FREE, IMAGEAPI_KEY_PRO"
    ]


def test_requirements_and_min_coverage():
    observed = {"t.py::test_x": cov.Observed(agreed=["plan/sdxl/pro", "code/listModels/200/-"])}
    result = cov.compute(CONTRACT, PROMISES, {"t.py::test_x": outcome("passed")}, observed)
    assert gate.judge(result, gate.Requirements(), []).status == 0
    verdict = gate.judge(result, gate.Requirements(plans=["pro"]), [])
    assert verdict.status == gate.EXIT_TOO_LITTLE
    assert "  required plan: plan/flux-dev/pro: never reached" in verdict.lines
    assert "plan/sdxl/pro" not in " ".join(verdict.lines)
    verdict = gate.judge(result, gate.Requirements(min_coverage=0.5), [])
    assert (
        verdict.status == gate.EXIT_TOO_LITTLE and "below --min-coverage 50.0%" in verdict.lines[1]
    )


def test_requirements_are_parsed_and_refused_when_unknown():
    known = {"plans": ["free", "pro"], "models": ["sdxl"], "promises": ["a-1"], "codes": ["x"]}
    required = gate.parse_requirements(["plans=free", "promises=all"], 0.9, known)
    assert required.plans == ["free"] and required.promises == ["a-1"]
    assert required.min_coverage == 0.9
    for bad in (["plans=gold"], ["plans"], ["everything=all"], ["plans="]):
        with pytest.raises(ValueError, match="--require"):
            gate.parse_requirements(bad, None, known)
    with pytest.raises(ValueError, match="fraction"):
        gate.parse_requirements([], 90, known)


def test_the_table_counts_are_the_json_counts():
    result = cov.compute(CONTRACT, PROMISES, {}, {})
    lines = cov.summary_lines(result)
    total = result.as_json()["counts"]
    numbers = [int(n) for n in lines[5].split()[1:7]]
    assert lines[5].startswith("all")
    assert numbers == [total[s] for s in cov.STATES] + [total["total"]]

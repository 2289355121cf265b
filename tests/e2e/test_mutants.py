"""The contract suite kills every deliberately broken target in tests/mutants.py, by the tests
each one names (the promise it breaks), and raises no false alarm against a target that bends
the way the contract allows."""

from __future__ import annotations

import pytest

from tests.mutants import EQUIVALENT, MUTANTS, run_all


@pytest.fixture(scope="module")
def outcomes():
    return run_all()


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_the_contract_suite_kills(outcomes, mutant):
    code, first_failure, _ = outcomes[mutant]
    # Exit code 1 is "tests failed"; 2-4 would be the suite itself breaking, which proves nothing.
    assert code == 1, f"{mutant} survived (pytest exit {code}): {first_failure}"
    named = {test.rpartition("::")[2] or test for test in MUTANTS[mutant].tests}
    assert any(name in first_failure for name in named), (
        f"{mutant} was killed by another test than {named}: {first_failure}"
    )


@pytest.mark.parametrize("target", list(EQUIVALENT))
def test_no_false_alarm(outcomes, target):
    code, first_failure, _ = outcomes[target]
    assert code == 0, f"a false alarm against {target}, which keeps the contract: {first_failure}"

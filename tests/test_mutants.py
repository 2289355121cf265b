"""The contract suite kills every deliberately broken target in tests/mutants.py."""

from __future__ import annotations

import pytest

from tests.mutants import MUTANTS, run_all


@pytest.fixture(scope="module")
def outcomes():
    return run_all()


@pytest.mark.parametrize("mutant", [m.__name__ for m in MUTANTS])
def test_the_contract_suite_kills(outcomes, mutant):
    code, first_failure = outcomes[mutant]
    # Exit code 1 is "tests failed"; 2-4 would be the suite itself breaking, which proves nothing.
    assert code == 1, f"{mutant} survived (pytest exit {code}): {first_failure}"
    assert "test_" in first_failure

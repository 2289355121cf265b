"""The contract suite kills every deliberately broken target in tests/mutants/, by the tests
each one names (the promise it breaks), and raises no false alarm against a target that bends
the way the contract allows. All of them run in one pytest session (tests/mutants/plugin.py)."""

from __future__ import annotations

import pytest

from tests.mutants import EQUIVALENT, MUTANTS
from tests.mutants.runner import run_all


@pytest.fixture(scope="module")
def outcomes():
    return run_all()


def test_every_mutant_is_registered_once():
    # The count only grows: a mutant removed is a promise no longer shown to be tested.
    assert len(MUTANTS) + len(EQUIVALENT) >= 77
    assert not set(MUTANTS) & set(EQUIVALENT)


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_the_contract_suite_kills(outcomes, mutant):
    result = outcomes[mutant]
    assert result.items > 0, f"{mutant}: none of its tests {MUTANTS[mutant].tests} ran"
    # Each item is one of the tests the mutant names, so any failure is a kill by them.
    assert result.killed, f"{mutant} survived {result.items} tests: {result.first_failure}"


@pytest.mark.parametrize("target", list(EQUIVALENT))
def test_no_false_alarm(outcomes, target):
    result = outcomes[target]
    assert result.items > 0, f"{target}: none of its tests ran"
    assert not result.killed and not result.first_failure, (
        f"a false alarm against {target}, which keeps the contract: {result.first_failure}"
    )

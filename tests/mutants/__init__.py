"""Deliberately broken targets: the mock behind small WSGI proxies that each break one promise.

Each mutant names the contract tests that must kill it (the promise it breaks is theirs), and
lives in the module of its promise area (auth_plans, steps, generation, errors, cors, http,
rate_limits); registry.py holds them, proxies.py the edits they are made of. `make mutants` runs
every mutant's tests in one pytest session (plugin.py parametrizes each named contract test over
the mutants that name it; runner.py starts it and prints the kill table), and
tests/e2e/test_mutants.py checks that every mutant is killed, by those tests, and that the suite
raises no false alarm against a target that bends without breaking (`EQUIVALENT`).
`python -m tests.mutants --full` runs the whole suite against each instead. Each name is also a
factory of a WSGI app, for `pytest contract_tests --app tests.mutants:NAME`.
"""

from __future__ import annotations

from tests.mutants import auth_plans, cors, errors, generation, http, rate_limits, steps
from tests.mutants.registry import EQUIVALENT, MUTANTS, Mutant, find

AREAS = (auth_plans, steps, generation, errors, cors, http, rate_limits)
__all__ = ["AREAS", "EQUIVALENT", "MUTANTS", "Mutant", "find"]


def __getattr__(name: str):
    # `--app tests.mutants:NAME`: the factory of mutant NAME, whichever module defines it.
    if name in MUTANTS or name in EQUIVALENT:
        return find(name).factory
    raise AttributeError(name)

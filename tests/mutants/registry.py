"""The registry of mutants: each names the contract tests that must kill it (the promise it
breaks is theirs); an equivalent one bends without breaking, and no test may fail against it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Where the promises most mutants break are tested.
HTTP = "contract_tests/test_http.py::"
ERR = "contract_tests/test_errors.py::"


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: str  # the promise, in a line
    tests: tuple[str, ...]  # the contract tests that must kill it (paths or node ids)
    equivalent: bool = False
    factory: Callable = field(default=lambda: None, compare=False, repr=False)

    def names(self, nodeid: str) -> bool:
        """Whether *nodeid* (a test function's, without parameters) is one of its tests."""
        return any(nodeid == test or nodeid.startswith(test + "::") for test in self.tests)


MUTANTS: dict[str, Mutant] = {}
EQUIVALENT: dict[str, Mutant] = {}


def mutant(*tests: str, equivalent: bool = False):
    """Register a factory of a WSGI app as a mutant, with the contract tests (paths or node ids)
    that must kill it."""

    def register(factory):
        registry = EQUIVALENT if equivalent else MUTANTS
        doc = factory.__doc__.strip().splitlines()[0]
        registry[factory.__name__] = Mutant(factory.__name__, doc, tests, equivalent, factory)
        return factory

    return register


def find(name: str) -> Mutant:
    return MUTANTS.get(name) or EQUIVALENT[name]

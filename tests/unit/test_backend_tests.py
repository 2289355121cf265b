"""tests/backend_tests.py lists exactly the contract tests that expect an image: each test
function that asks for `reserve_billable`, or for a helper of its module that does, but for
those named as not run on each backend."""

from __future__ import annotations

import ast

from tests.backend_tests import BACKEND_TESTS, NOT_ON_BACKENDS
from tests.support import ROOT


def billable_tests() -> set[str]:
    found = set()
    for path in sorted((ROOT / "contract_tests").glob("test_*.py")):
        functions = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)]
        billable = {f.name for f in functions if "reserve_billable" in ast.unparse(f.args)}
        for f in functions:
            calls = {
                n.func.id
                for n in ast.walk(f)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            }
            if f.name.startswith("test_") and (f.name in billable or calls & billable):
                found.add(f"contract_tests/{path.name}::{f.name}")
    return found


def test_the_backend_tests_are_the_billable_ones():
    assert billable_tests() == set(BACKEND_TESTS) | set(NOT_ON_BACKENDS)
    assert not set(BACKEND_TESTS) & set(NOT_ON_BACKENDS)

"""Our classification of the generic schema edits beside api-smart-diff's (a generic OpenAPI diff
tool, pinned in .tools): where the two agree nothing is said; where they differ, the case is
named here with the reason ours is right, and the test fails if they come to agree (the list
stays true) or differ anywhere else."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from contract_tests.spec_diff import Level, diff_specs
from tests.spec_edits import EDITS, SPEC, edited
from tests.support import ROOT

TOOLS = ROOT / ".tools"
SCRIPT = ROOT / "tests" / "e2e" / "api_smart_diff.mjs"
THEIRS = {"breaking": Level.BREAKING, "non-breaking": Level.COMPATIBLE,
          "deprecated": Level.COMPATIBLE, "annotation": Level.DOCS}  # fmt: skip

# api-smart-diff has no "needs a version bump": it calls such edits breaking or non-breaking.
WHY_OURS_IS_RIGHT = {
    "request field made required": "api-smart-diff reads an item added to `required` as "
    "non-breaking; every caller that omits width (it has a default, so the quick start does) "
    "now gets 400 missing_field",
    "operationId renamed": "api-smart-diff calls it an annotation; openapi-python-client names "
    "its functions after operationId (generate_image.sync), so code using the old client breaks",
    "default model changed": "nothing that worked is refused (a request that omits the model "
    "still gets 200), but its answer changes: a minor bump, not a major one",
    "default size changed": "as for the model: the same request still succeeds, at another size",
    "default format changed": "as for the model: the same request still succeeds, in another "
    "format",
    "status documented": "callers may now meet an answer they do not handle, and generated "
    "clients parse it as unexpected until regenerated: more than non-breaking",
    "problem code added": "the problem's `code` is a closed enum in generated clients, which "
    "refuse a value they do not know: more than non-breaking",
    "example edited": "api-smart-diff leaves example values unclassified; they are documentation",
}


def their_classes() -> dict[str, Level | None]:
    if shutil.which("node") is None or not (TOOLS / "node_modules" / "api-smart-diff").is_dir():
        pytest.fail("api-smart-diff is not installed: run make (it installs .tools)")
    cases = {case.name: [SPEC, edited(case)] for case in EDITS if case.generic}
    result = subprocess.run(
        ["node", str(SCRIPT), str(TOOLS)], input=json.dumps(cases),
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    worst = {}
    for name, types in json.loads(result.stdout).items():
        levels = [THEIRS[kind] for kind in types if kind in THEIRS]
        worst[name] = max(levels) if levels else None
    return worst


def test_where_api_smart_diff_differs_the_reason_is_written_down():
    theirs = their_classes()
    assert set(theirs) == {case.name for case in EDITS if case.generic}
    for case in (case for case in EDITS if case.generic):
        ours = max(change.level for change in diff_specs(SPEC, edited(case)))
        if case.name in WHY_OURS_IS_RIGHT:
            assert theirs[case.name] != ours, f"{case.name}: both say {ours.label} now"
        else:
            assert theirs[case.name] == ours, (
                f"{case.name}: ours {ours.label}, api-smart-diff "
                f"{theirs[case.name].label if theirs[case.name] is not None else 'unclassified'}"
            )

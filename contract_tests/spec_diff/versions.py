"""The version rule: a breaking change needs a major bump, a bump change a minor one."""

from __future__ import annotations

import re

from contract_tests.spec_diff.changes import Change, Level, SpecError

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def version_of(document: dict) -> tuple[int, int, int]:
    text = str(document.get("info", {}).get("version", ""))
    match = SEMVER.match(text)
    if not match:
        raise SpecError(f"info.version {text!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def verdict(changes: list[Change], old: dict, new: dict, fail_on: int) -> tuple[bool, str]:
    """Whether info.version follows the changes, and why (one line)."""
    before, after = version_of(old), version_of(new)
    shown = f"info.version {'.'.join(map(str, before))} -> {'.'.join(map(str, after))}"
    if after < before:
        return False, f"{shown}: the version went down"
    worst = max((change.level for change in changes), default=Level.DOCS)
    if worst >= Level.BREAKING >= fail_on and after[0] <= before[0]:
        return False, f"{shown}: a breaking change needs a major version bump"
    if worst >= Level.BUMP >= fail_on and after[:2] <= before[:2]:
        return False, f"{shown}: a change that needs a bump needs at least a minor version bump"
    return True, f"{shown}: the version follows the changes"


FAIL_ON = {"breaking": Level.BREAKING, "bump": Level.BUMP, "never": Level.BREAKING + 1}

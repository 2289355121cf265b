"""Every change from one spec to another."""

from __future__ import annotations

from collections.abc import Iterator

from contract_tests.spec_diff.api_rules import (
    catalog_changes,
    cors_changes,
    info_changes,
    security_changes,
)
from contract_tests.spec_diff.changes import Change
from contract_tests.spec_diff.loading import resolve
from contract_tests.spec_diff.operations import path_changes, unused_component_changes
from contract_tests.spec_diff.schemas import FRESH_VALUES, enum_values


def diff_specs(old: dict, new: dict) -> list[Change]:
    """Every change from *old* to *new* (two parsed, unresolved documents), classified."""
    old_resolved, new_resolved = resolve(old), resolve(new)
    token = FRESH_VALUES.set(frozenset(enum_values(new_resolved) - enum_values(old_resolved)))
    try:
        changes = list(all_changes(old, new, old_resolved, new_resolved))
    finally:
        FRESH_VALUES.reset(token)
    # The same component reached from several operations may give the same reason more than
    # once at different pointers; the same pointer is listed once.
    unique: dict[tuple[str, str], Change] = {}
    for change in changes:
        unique.setdefault((change.pointer, change.reason), change)
    return sorted(unique.values(), key=lambda change: (-change.level, change.pointer))


def all_changes(old: dict, new: dict, old_resolved: dict, new_resolved: dict) -> Iterator[Change]:
    yield from [
        *info_changes(old, new),
        *catalog_changes(old.get("x-imageapi-catalog", {}), new.get("x-imageapi-catalog", {})),
        *cors_changes(old.get("x-imageapi-cors", {}), new.get("x-imageapi-cors", {})),
        *security_changes(old, new),
        *path_changes(old_resolved.get("paths", {}), new_resolved.get("paths", {})),
        *unused_component_changes(old, new),
    ]

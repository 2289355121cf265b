"""JSON Schema changes: narrowing a request breaks callers; widening an answer breaks clients."""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from contract_tests.spec_diff.changes import (
    CALLERS,
    CLIENTS,
    DOC_KEYWORDS,
    READERS,
    Change,
    Level,
    join,
)

LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")

UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")

# Enum values that the new spec names and the old one nowhere does (a new model's id): a rule
# whose condition starts to name one of them restricts nothing that was accepted before.
FRESH_VALUES: ContextVar[frozenset[str]] = ContextVar("FRESH_VALUES", default=frozenset())


def enum_values(node: Any) -> set:
    if isinstance(node, dict):
        found = {json.dumps(value) for value in node.get("enum", [])} if isinstance(
            node.get("enum"), list) else set()  # fmt: skip
        for value in node.values():
            found |= enum_values(value)
        return found
    if isinstance(node, list):
        return set().union(*(enum_values(item) for item in node)) if node else set()
    return set()


def schema_changes(
    pointer: str, where: str, old: Any, new: Any, *, request: bool, condition: bool = False
):
    """Changes between two (resolved) JSON Schemas. In a request, narrowing breaks callers and
    widening is compatible; in an answer, the other way round. In a *condition* (the ``if`` of
    a rule, a ``not``) the direction is the inverse: a wider condition restricts more."""
    if old == new:
        return
    if not isinstance(old, dict) or not isinstance(new, dict):
        yield Change(Level.BREAKING, pointer, (CALLERS, CLIENTS), f"{where}: schema replaced")
        return
    narrowed = Level.BREAKING if request else Level.COMPATIBLE
    widened = Level.COMPATIBLE if request else Level.BREAKING
    who = (CALLERS, CLIENTS)

    def change(level: Level, key: str, reason: str) -> Change:
        return Change(level, join(pointer, key), who if level >= Level.BUMP else (), reason)

    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key in DOC_KEYWORDS:
            yield Change(Level.DOCS, join(pointer, key), (READERS,), f"{where}: {key} edited")
        elif key == "type":
            old_types, new_types = types_of(before), types_of(after)
            if new_types >= old_types:
                yield change(widened, key, f"{where}: type widened from {before} to {after}")
            elif new_types <= old_types:
                yield change(narrowed, key, f"{where}: type narrowed from {before} to {after}")
            else:
                yield change(Level.BREAKING, key, f"{where}: type changed from {before} to {after}")
        elif key == "enum" and (before is None or after is None):
            verb = "added (any value before)" if before is None else "removed (any value now)"
            yield change(narrowed if before is None else widened, key, f"{where}: enum {verb}")
        elif key == "enum":
            yield from enum_changes(join(pointer, key), where, before or [], after or [],
                                    request=request, condition=condition,
                                    codes=pointer.endswith("/properties/code"))  # fmt: skip
        elif key in LOWER_BOUNDS or key in UPPER_BOUNDS:
            yield from bound_change(change, key, where, before, after, narrowed, widened)
        elif key in ("pattern", "format", "const"):
            if before is None:
                yield change(narrowed, key, f"{where}: {key} {after!r} added")
            elif after is None:
                yield change(widened, key, f"{where}: {key} {before!r} removed")
            else:
                yield change(Level.BREAKING, key,
                             f"{where}: {key} changed from {before!r} to {after!r}")  # fmt: skip
        elif key == "multipleOf":
            if after is None:
                yield change(widened, key, f"{where}: multipleOf {before} removed")
            elif before is not None and before % after == 0:
                yield change(widened, key, f"{where}: multipleOf relaxed from {before} to {after}")
            else:
                yield change(narrowed, key, f"{where}: multipleOf changed from {before} to {after}")
        elif key == "required":
            yield from required_changes(pointer, where, set(before or []), set(after or []),
                                        request=request)  # fmt: skip
        elif key == "properties":
            yield from property_changes(pointer, where, old, new, request=request,
                                        condition=condition)  # fmt: skip
        elif key == "additionalProperties":
            closed = after is False
            what = "refused" if closed else "allowed"
            yield change(narrowed if closed else widened, key,
                         f"{where}: additional properties {what}")  # fmt: skip
        elif key in ("items", "not", "if", "then", "else", "contains"):
            # A wider `if` (or `not`) makes its restriction apply to more: the inverse direction.
            inner = (not request) if key in ("if", "not") else request
            if before is None or after is None:
                verb = "added" if before is None else "removed"
                yield change(Level.BREAKING if request else Level.BUMP, key,
                             f"{where}: {key} {verb}")  # fmt: skip
            else:
                yield from schema_changes(join(pointer, key), where, before, after, request=inner,
                                          condition=condition or key in ("if", "not"))  # fmt: skip
        elif key in ("allOf", "anyOf", "oneOf"):
            yield from combinator_changes(join(pointer, key), where, key, before or [],
                                          after or [], request=request)  # fmt: skip
        elif key == "default":
            yield change(Level.BUMP, key,
                         f"{where}: default changed from {before!r} to {after!r}: a request "
                         "that omits it gets another answer")  # fmt: skip
        elif key == "x-problem-code":
            yield change(Level.BREAKING, key,
                         f"{where}: refused with code {after!r} instead of {before!r}")  # fmt: skip
        elif key in ("deprecated", "readOnly", "writeOnly"):
            yield change(Level.COMPATIBLE, key, f"{where}: {key} set to {after}")
        else:
            yield change(Level.BUMP, key, f"{where}: {key} changed; review it")


def types_of(value: Any) -> set[str]:
    types = set(value) if isinstance(value, list) else {value}
    if "number" in types:
        types.add("integer")  # every integer is a number
    return types


def bound_change(change, key, where, before, after, narrowed, widened):
    lower = key in LOWER_BOUNDS
    if before is None:
        tighter = True
    elif after is None:
        tighter = False
    else:
        tighter = after > before if lower else after < before
    verb = "raised" if (after or 0) > (before or 0) else "lowered"
    if before is None:
        verb = "added"
    elif after is None:
        verb = "removed"
    yield change(narrowed if tighter else widened, key,
                 f"{where}: {key} {verb} ({before} -> {after})")  # fmt: skip


def enum_changes(
    pointer: str, where: str, old: list, new: list, *, request: bool, codes: bool, condition: bool
):
    removed = [value for value in old if value not in new]
    added = [value for value in new if value not in old]
    if condition:  # the rule applies to more values (restricts more) or to fewer
        for value in removed:
            level = Level.COMPATIBLE if not request else Level.BREAKING
            yield Change(level, pointer, (CALLERS,) if level == Level.BREAKING else (),
                         f"{where}: the rule no longer applies to {value!r}")  # fmt: skip
        for value in added:
            fresh = json.dumps(value) in FRESH_VALUES.get()
            level = Level.BREAKING if not request and not fresh else Level.COMPATIBLE
            yield Change(level, pointer, (CALLERS,) if level == Level.BREAKING else (),
                         f"{where}: the rule now applies to {value!r} too")  # fmt: skip
        return
    for value in removed:
        if request:
            yield Change(Level.BREAKING, pointer, (CALLERS, CLIENTS),
                         f"{where}: {value!r} no longer accepted")  # fmt: skip
        elif codes:
            yield Change(Level.BREAKING, pointer, (CALLERS, CLIENTS),
                         f"{where}: problem code {value!r} removed or renamed: callers that "
                         "branch on it no longer see it")  # fmt: skip
        else:
            yield Change(Level.COMPATIBLE, pointer, (), f"{where}: {value!r} no longer sent")
    for value in added:
        if request:
            yield Change(Level.COMPATIBLE, pointer, (), f"{where}: {value!r} accepted")
        else:
            what = "problem code" if codes else "value"
            yield Change(Level.BUMP, pointer, (CALLERS, CLIENTS),
                         f"{where}: new {what} {value!r} in answers; old generated clients parse "
                         "this field into a closed enum and refuse it")  # fmt: skip


def required_changes(pointer, where, old: set, new: set, *, request: bool):
    for name in sorted(new - old):
        yield Change(
            Level.BREAKING if request else Level.COMPATIBLE, join(pointer, "required", name),
            (CALLERS, CLIENTS) if request else (),
            f"{where}: {name} made required" + (": requests without it now get 400" if request
                                                else " in answers"),
        )  # fmt: skip
    for name in sorted(old - new):
        yield Change(
            Level.COMPATIBLE if request else Level.BREAKING, join(pointer, "required", name),
            () if request else (CALLERS, CLIENTS),
            f"{where}: {name} made optional" + ("" if request else
                                                ": clients that read it may not find it"),
        )  # fmt: skip


def property_changes(pointer, where, old: dict, new: dict, *, request: bool, condition: bool):
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in sorted(set(old_props) | set(new_props)):
        at = join(pointer, "properties", name)
        if name not in new_props:
            closed = new.get("additionalProperties") is False
            if request and not closed:
                yield Change(Level.COMPATIBLE, at, (), f"{where}: field {name} no longer described")
            else:
                yield Change(Level.BREAKING, at, (CALLERS, CLIENTS),
                             f"{where}: field {name} removed"
                             + (": requests that send it now get 400 unknown_field" if request
                                else ": clients that read it no longer find it"))  # fmt: skip
        elif name not in old_props:
            yield Change(Level.COMPATIBLE, at, (), f"{where}: field {name} added")
        else:
            yield from schema_changes(at, f"{where} {name}", old_props[name], new_props[name],
                                      request=request, condition=condition)  # fmt: skip


def combinator_changes(pointer, where, key, old: list, new: list, *, request: bool):
    """``allOf`` entries matched by what they are about: the request schema's per-model rules
    (``if model is X``) by their model ids, anything else by position."""
    old_keyed, new_keyed = keyed(old), keyed(new)
    if old_keyed is not None and new_keyed is not None:
        for name in sorted(set(old_keyed) | set(new_keyed)):
            at = join(pointer, name)
            if name not in new_keyed:
                yield Change(Level.COMPATIBLE if request else Level.BREAKING, at, (),
                             f"{where}: the rule for {name} removed")  # fmt: skip
            elif name not in old_keyed:
                yield Change(Level.COMPATIBLE, at, (), f"{where}: a rule for {name} added")
            else:
                yield from schema_changes(at, f"{where} ({name})", old_keyed[name],
                                          new_keyed[name], request=request)  # fmt: skip
        return
    for index in range(max(len(old), len(new))):
        at = join(pointer, index)
        if index >= len(new):
            level = Level.COMPATIBLE if (key == "allOf") == request else Level.BREAKING
            yield Change(level, at, (), f"{where}: {key} entry {index} removed")
        elif index >= len(old):
            level = Level.BREAKING if (key == "allOf") == request else Level.COMPATIBLE
            yield Change(level, at, (CALLERS, CLIENTS) if level == Level.BREAKING else (),
                         f"{where}: {key} entry {index} added")  # fmt: skip
        else:
            yield from schema_changes(at, where, old[index], new[index], request=request)


def keyed(entries: list) -> dict[str, Any] | None:
    """Entries keyed by the model their ``if`` names (``const``), or by their problem code for
    rule groups; None when some entry is neither."""
    result: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            return None
        model = entry.get("if", {}).get("properties", {}).get("model", {})
        if "const" in model:
            result[f"model={model['const']}"] = entry
        elif "x-problem-code" in entry:
            result[f"code={entry['x-problem-code']}"] = entry
        else:
            return None
    return result if len(result) == len(entries) else None

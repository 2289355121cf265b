"""Paths, operations, parameters, bodies and responses: what a generic OpenAPI diff reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from contract_tests.spec_diff.changes import (
    CALLERS,
    CLIENTS,
    DOC_KEYWORDS,
    FRONTENDS,
    HTTP_METHODS,
    READERS,
    Change,
    Level,
    join,
)
from contract_tests.spec_diff.schemas import schema_changes


def path_changes(old: dict, new: dict) -> Iterator[Change]:
    for path in sorted(set(old) | set(new)):
        pointer = join("/paths", path)
        if path not in new:
            yield Change(Level.BREAKING, pointer, (CALLERS, CLIENTS), f"path {path} removed")
            continue
        if path not in old:
            yield Change(Level.COMPATIBLE, pointer, (), f"path {path} added")
            continue
        for method in HTTP_METHODS:
            before, after = old[path].get(method), new[path].get(method)
            where = f"{method.upper()} {path}"
            if before is None and after is None:
                continue
            if after is None:
                yield Change(Level.BREAKING, join(pointer, method), (CALLERS, CLIENTS),
                             f"{where} removed")  # fmt: skip
            elif before is None:
                yield Change(Level.COMPATIBLE, join(pointer, method), (), f"{where} added")
            else:
                yield from operation_changes(join(pointer, method), where, before, after)
        for key in sorted((set(old[path]) | set(new[path])) - set(HTTP_METHODS)):
            if old[path].get(key) != new[path].get(key):
                yield from schema_or_docs(join(pointer, key), key, old[path].get(key),
                                          new[path].get(key))  # fmt: skip


def schema_or_docs(pointer: str, key: str, before: Any, after: Any) -> Iterator[Change]:
    if key in DOC_KEYWORDS:
        yield Change(Level.DOCS, pointer, (READERS,), f"{key} edited")
    else:
        yield Change(Level.BUMP, pointer, (CALLERS, CLIENTS), f"{key} changed; review it")


def operation_changes(pointer: str, where: str, old: dict, new: dict) -> Iterator[Change]:
    for key in ("summary", "description", "tags", "externalDocs"):
        if old.get(key) != new.get(key):
            yield Change(Level.DOCS, join(pointer, key), (READERS,), f"{where}: {key} edited")
    if old.get("operationId") != new.get("operationId"):
        yield Change(
            Level.BREAKING, join(pointer, "operationId"), (CLIENTS,),
            f"{where}: operationId {old.get('operationId')} renamed {new.get('operationId')}: "
            "generated clients name their functions after it",
        )  # fmt: skip
    if old.get("security") != new.get("security"):
        yield Change(Level.BREAKING, join(pointer, "security"), (CALLERS, CLIENTS),
                     f"{where}: security requirement changed")  # fmt: skip
    yield from parameter_changes(pointer, where, old.get("parameters", []),
                                 new.get("parameters", []))  # fmt: skip
    yield from request_body_changes(join(pointer, "requestBody"), where,
                                    old.get("requestBody"), new.get("requestBody"))  # fmt: skip
    yield from response_changes(join(pointer, "responses"), where, old.get("responses", {}),
                                new.get("responses", {}))  # fmt: skip
    known = {"summary", "description", "tags", "externalDocs", "operationId", "security",
             "parameters", "requestBody", "responses"}  # fmt: skip
    for key in sorted((set(old) | set(new)) - known):
        if old.get(key) != new.get(key):
            yield from schema_or_docs(join(pointer, key), key, old.get(key), new.get(key))


def parameter_changes(pointer: str, where: str, old: list, new: list) -> Iterator[Change]:
    old_by = {(p.get("in"), p.get("name")): p for p in old}
    new_by = {(p.get("in"), p.get("name")): p for p in new}
    for key in sorted(set(old_by) | set(new_by), key=str):
        place, name = key
        at = join(pointer, "parameters", f"{place}:{name}")
        before, after = old_by.get(key), new_by.get(key)
        if after is None:
            yield Change(Level.BREAKING, at, (CALLERS, CLIENTS),
                         f"{where}: {place} parameter {name} removed")  # fmt: skip
        elif before is None:
            required = after.get("required", False)
            yield Change(Level.BREAKING if required else Level.COMPATIBLE, at,
                         (CALLERS, CLIENTS) if required else (),
                         f"{where}: {'required' if required else 'optional'} {place} parameter "
                         f"{name} added")  # fmt: skip
        else:
            if not before.get("required") and after.get("required"):
                yield Change(Level.BREAKING, join(at, "required"), (CALLERS, CLIENTS),
                             f"{where}: {place} parameter {name} made required")  # fmt: skip
            yield from schema_changes(join(at, "schema"), f"{where} {name}",
                                      before.get("schema", {}), after.get("schema", {}),
                                      request=True)  # fmt: skip
            for doc in DOC_KEYWORDS & (set(before) | set(after)):
                if before.get(doc) != after.get(doc):
                    yield Change(Level.DOCS, join(at, doc), (READERS,), f"{name}: {doc} edited")


def request_body_changes(pointer: str, where: str, old: Any, new: Any) -> Iterator[Change]:
    old, new = old or {}, new or {}
    if not old.get("required") and new.get("required"):
        yield Change(Level.BREAKING, join(pointer, "required"), (CALLERS, CLIENTS),
                     f"{where}: the request body made required")  # fmt: skip
    if old.get("description") != new.get("description"):
        yield Change(Level.DOCS, join(pointer, "description"), (READERS,), f"{where}: edited")
    yield from content_changes(pointer, where, old.get("content", {}), new.get("content", {}),
                               request=True)  # fmt: skip


def media_changes(pointer: str, where: str, old: dict, new: dict, *, request: bool):
    yield from schema_changes(join(pointer, "schema"), where, old.get("schema", {}),
                              new.get("schema", {}), request=request)  # fmt: skip
    for key in ("example", "examples"):
        if old.get(key) != new.get(key):
            yield Change(Level.DOCS, join(pointer, key), (READERS,), f"{where}: {key} edited")


def response_changes(pointer: str, where: str, old: dict, new: dict) -> Iterator[Change]:
    for status in sorted(set(old) | set(new)):
        at = join(pointer, status)
        if status not in new:
            yield Change(
                Level.BREAKING, at, (CALLERS, CLIENTS),
                f"{where}: documented status {status} removed: callers and clients that handle "
                "it meet an undocumented answer",
            )  # fmt: skip
        elif status not in old:
            yield Change(
                Level.BUMP, at, (CALLERS, CLIENTS),
                f"{where}: status {status} documented: callers may now get it",
            )  # fmt: skip
        else:
            yield from one_response_changes(at, f"{where} {status}", old[status], new[status])


def one_response_changes(pointer: str, where: str, old: dict, new: dict) -> Iterator[Change]:
    if old.get("description") != new.get("description"):
        yield Change(Level.DOCS, join(pointer, "description"), (READERS,), f"{where}: edited")
    old_headers, new_headers = old.get("headers", {}), new.get("headers", {})
    for name in sorted(set(old_headers) | set(new_headers)):
        at = join(pointer, "headers", name)
        before, after = old_headers.get(name), new_headers.get(name)
        if after is None:
            yield Change(Level.BREAKING, at, (CALLERS, CLIENTS, FRONTENDS),
                         f"{where}: header {name} removed")  # fmt: skip
        elif before is None:
            yield Change(Level.COMPATIBLE, at, (), f"{where}: header {name} added")
        else:
            if before.get("required") and not after.get("required"):
                yield Change(Level.BREAKING, join(at, "required"), (CALLERS, CLIENTS),
                             f"{where}: header {name} made optional")  # fmt: skip
            yield from schema_changes(join(at, "schema"), f"{where} {name}",
                                      before.get("schema", {}), after.get("schema", {}),
                                      request=False)  # fmt: skip
            for doc in ("description", "example"):
                if before.get(doc) != after.get(doc):
                    yield Change(Level.DOCS, join(at, doc), (READERS,), f"{name}: {doc} edited")
    yield from content_changes(pointer, where, old.get("content", {}), new.get("content", {}),
                               request=False)  # fmt: skip


def unused_component_changes(old: dict, new: dict) -> Iterator[Change]:
    """Components that no operation reaches: their edits change nothing a caller sees."""
    used = referenced(old) | referenced(new)
    for section in sorted(set(old.get("components", {})) | set(new.get("components", {}))):
        if section == "securitySchemes":
            continue
        before = old.get("components", {}).get(section, {})
        after = new.get("components", {}).get(section, {})
        for name in sorted(set(before) | set(after)):
            ref = f"#/components/{section}/{name}"
            if before.get(name) != after.get(name) and ref not in used:
                yield Change(Level.COMPATIBLE, join("/components", section, name), (),
                             f"{section}/{name} changed; no operation refers to it")  # fmt: skip


def referenced(document: dict) -> set[str]:
    """Every component that the paths reach, directly or through other components."""
    seen: set[str] = set()
    resolved_doc = document

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
                seen.add(ref)
                target: Any = resolved_doc
                for part in ref[2:].split("/"):
                    target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
                visit(target)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(document.get("paths", {}))
    return seen


def content_changes(pointer: str, where: str, old: dict, new: dict, *, request: bool):
    """The media types of a request body or an answer: one removed breaks callers; one added is
    compatible in a request and, in an answer, a new form callers may meet (a bump)."""
    for media in sorted(set(old) | set(new)):
        at = join(pointer, "content", media)
        if media not in new:
            gone = f"request media type {media} no longer accepted" if request else (
                f"answered as {media} no longer")  # fmt: skip
            yield Change(Level.BREAKING, at, (CALLERS, CLIENTS), f"{where}: {gone}")
        elif media not in old and request:
            yield Change(Level.COMPATIBLE, at, (), f"{where}: request media type {media} added")
        elif media not in old:
            yield Change(Level.BUMP, at, (CALLERS, CLIENTS), f"{where}: may be answered as {media}")
        else:
            yield from media_changes(at, where, old[media], new[media], request=request)

"""Reading a spec: bounded, without YAML aliases, local $refs resolved, additive allOfs merged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from contract_tests.spec_diff.changes import DOC_KEYWORDS, SpecError

MAX_SPEC_BYTES = 5 * 1024 * 1024  # a spec is tens of KB; refuse anything that could be a bomb


def parse_spec(text: str, name: str) -> dict:
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise SpecError(f"{name}: larger than {MAX_SPEC_BYTES} bytes")
    try:
        if text.lstrip().startswith("{"):  # JSON, a subset of YAML without aliases, read fast
            document = json.loads(text)
        else:
            document = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - safe, no aliases
    except json.JSONDecodeError as exc:
        raise SpecError(f"{name}: not JSON: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{name}: not YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(document, dict) or "openapi" not in document:
        raise SpecError(f"{name}: not an OpenAPI document")
    return document


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses YAML aliases: the spec uses none, and aliases are how a small
    file expands into a huge one."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not allowed in a spec")
        return super().compose_node(parent, index)


def resolve(document: dict) -> dict:
    """*document* with every local ``$ref`` (``#/...``) replaced by what it names; any other
    ``$ref`` is an error (the spec is one closed file)."""

    def follow(ref: str) -> Any:
        if not ref.startswith("#/"):
            raise SpecError(f"$ref {ref!r}: only references inside the spec are allowed")
        node: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise SpecError(f"$ref {ref!r} names nothing")
            node = node[part]
        return node

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if ref in seen:  # a recursive schema: keep the reference itself
                    return {"$ref": ref}
                return walk(follow(ref), (*seen, ref))
            return merged_all_of({key: walk(value, seen) for key, value in node.items()})
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        return node

    return walk(document, ())


CONDITIONAL = {"if", "then", "else", "not", "allOf", "anyOf", "oneOf"}


def merged_all_of(schema: dict) -> dict:
    """A schema whose ``allOf`` only adds to it (``allOf: [Problem, {code: enum}]``) written as
    the one schema it means, so that moving parts into an ``allOf`` is not read as removing
    them; ``allOf`` entries with conditions stay as they are."""
    parts = schema.get("allOf")
    if not isinstance(parts, list) or not all(
        isinstance(part, dict) and not CONDITIONAL & set(part) for part in parts
    ):
        return schema
    result = {key: value for key, value in schema.items() if key != "allOf"}
    for part in parts:
        result = merge_schemas(result, part)
    return result


def merge_schemas(base: dict, extra: dict) -> dict:
    result = dict(base)
    for key, value in extra.items():
        if key not in result:
            result[key] = value
        elif key == "properties":
            result[key] = {
                name: merge_schemas(result[key].get(name, {}), schema) if name in result[key]
                else schema
                for name, schema in {**result[key], **value}.items()
            }  # fmt: skip
        elif key == "required":
            result[key] = [*result[key], *(name for name in value if name not in result[key])]
        elif key == "enum":
            result[key] = [item for item in result[key] if item in value]
        elif key not in DOC_KEYWORDS:
            result[key] = value
    return result


def read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from exc


def read_git(ref: str, path: Path) -> str:
    """*path* as it is at git revision *ref*."""
    result = subprocess.run(
        ["git", "show", f"{ref}:./{path.name}"],
        cwd=path.resolve().parent, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise SpecError(f"git show {ref}:{path.name}: {result.stderr.strip() or 'failed'}")
    return result.stdout

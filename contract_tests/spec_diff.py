"""``imageapi-contract diff``: every edit of openapi.yaml classified before it reaches a client.

    imageapi-contract diff OLD.yaml NEW.yaml [--format text|json|markdown] [--fail-on bump]
    imageapi-contract diff --base origin/main [openapi.yaml]

Generic OpenAPI diff tools classify schema edits; most of this API's rules live in
``x-imageapi-catalog`` (models, plans, caps, defaults) and ``x-imageapi-cors``, which they cannot
read. Here each change gets a class:

- ``breaking``: a caller or a generated client that worked before fails now (a model removed or
  taken out of a plan, a cap lowered, a field made required or narrowed, a code renamed...);
- ``bump``: nothing that worked fails, but an answer changes or a new one appears (a default, a
  preset's steps, a new status or problem code, a value added to a response enum, which old
  generated clients parse into a closed ``Enum`` and refuse);
- ``compatible``: only more is allowed (caps raised, models and plans added, optional fields);
- ``docs``: descriptions, summaries, examples.

And ``info.version`` must follow (semantic versioning): a breaking change needs a major bump, a
``bump`` change a minor one. Exit status: 0 when the version follows, 1 when it does not, 2 when a
spec cannot be read.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml

MAX_SPEC_BYTES = 5 * 1024 * 1024  # a spec is tens of KB; refuse anything that could be a bomb


class Level(IntEnum):
    DOCS = 0
    COMPATIBLE = 1
    BUMP = 2
    BREAKING = 3

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS = {
    Level.DOCS: "docs",
    Level.COMPATIBLE: "compatible",
    Level.BUMP: "bump",
    Level.BREAKING: "breaking",
}
TITLES = {
    Level.DOCS: "documentation only",
    Level.COMPATIBLE: "compatible",
    Level.BUMP: "needs a version bump",
    Level.BREAKING: "breaking",
}

# Who a change concerns.
CALLERS = "callers"
CLIENTS = "generated clients"
FRONTENDS = "frontends in browsers"
SUITE_KEYS = "the contract suite's keys"
READERS = "readers of the docs"

DOC_KEYWORDS = {"description", "summary", "title", "example", "examples", "x-problem-detail"}
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class Change:
    level: Level
    pointer: str  # a JSON pointer into the spec, or a catalog path (models by id)
    who: tuple[str, ...]
    reason: str

    def as_dict(self) -> dict:
        return {
            "class": self.level.label,
            "pointer": self.pointer,
            "who": list(self.who),
            "reason": self.reason,
        }


class SpecError(Exception):
    """A spec that cannot be read or compared."""


# --- loading -----------------------------------------------------------------------------------


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

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
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


def escape(part: str) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def join(pointer: str, *parts: object) -> str:
    return pointer + "".join("/" + escape(str(part)) for part in parts)


# --- the rules ---------------------------------------------------------------------------------


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


def all_changes(old: dict, new: dict, old_resolved: dict, new_resolved: dict) -> Iterator[Change]:
    yield from [
        *info_changes(old, new),
        *catalog_changes(old.get("x-imageapi-catalog", {}), new.get("x-imageapi-catalog", {})),
        *cors_changes(old.get("x-imageapi-cors", {}), new.get("x-imageapi-cors", {})),
        *security_changes(old, new),
        *path_changes(old_resolved.get("paths", {}), new_resolved.get("paths", {})),
        *unused_component_changes(old, new),
    ]


def info_changes(old: dict, new: dict) -> Iterator[Change]:
    for key in sorted((set(old.get("info", {})) | set(new.get("info", {}))) - {"version"}):
        if old.get("info", {}).get(key) != new.get("info", {}).get(key):
            yield Change(Level.DOCS, join("/info", key), (READERS,), f"info.{key} edited")
    old_servers = {server.get("url") for server in old.get("servers", [])}
    new_servers = {server.get("url") for server in new.get("servers", [])}
    for url in sorted(old_servers - new_servers):
        yield Change(
            Level.BREAKING, "/servers", (CALLERS, CLIENTS),
            f"server {url} removed: clients configured with it lose their base URL",
        )  # fmt: skip
    for url in sorted(new_servers - old_servers):
        yield Change(Level.COMPATIBLE, "/servers", (), f"server {url} added")
    if old_servers == new_servers and old.get("servers") != new.get("servers"):
        yield Change(Level.DOCS, "/servers", (READERS,), "servers' descriptions edited")


def catalog_changes(old: dict, new: dict) -> Iterator[Change]:
    root = "x-imageapi-catalog"
    old_models = {model["id"]: model for model in old.get("models", [])}
    new_models = {model["id"]: model for model in new.get("models", [])}
    for model_id in sorted(old_models.keys() - new_models.keys()):
        yield Change(
            Level.BREAKING, join(root, "models", model_id), (CALLERS, CLIENTS),
            f"model {model_id} removed: requests naming it now get 400 unknown_model",
        )  # fmt: skip
    for model_id in sorted(new_models.keys() - old_models.keys()):
        yield Change(
            Level.COMPATIBLE, join(root, "models", model_id), (),
            f"model {model_id} added",
        )  # fmt: skip
    for model_id in sorted(old_models.keys() & new_models.keys()):
        yield from model_changes(join(root, "models", model_id), old_models[model_id],
                                 new_models[model_id])  # fmt: skip

    old_plans = {plan["id"]: plan for plan in old.get("plans", [])}
    new_plans = {plan["id"]: plan for plan in new.get("plans", [])}
    for plan_id in sorted(old_plans.keys() - new_plans.keys()):
        yield Change(
            Level.BREAKING, join(root, "plans", plan_id), (CALLERS, SUITE_KEYS),
            f"plan {plan_id} removed: its keys lose every model, and IMAGEAPI_KEY_"
            f"{plan_id.upper()} no longer names a plan",
        )  # fmt: skip
    for plan_id in sorted(new_plans.keys() - old_plans.keys()):
        yield Change(
            Level.COMPATIBLE, join(root, "plans", plan_id), (SUITE_KEYS,),
            f"plan {plan_id} added: the suite checks it when IMAGEAPI_KEY_{plan_id.upper()} is set",
        )  # fmt: skip
    for plan_id in sorted(old_plans.keys() & new_plans.keys()):
        pointer = join(root, "plans", plan_id)
        before, after = old_plans[plan_id], new_plans[plan_id]
        old_rpm, new_rpm = before.get("requests_per_minute"), after.get("requests_per_minute")
        if old_rpm != new_rpm:
            lowered = new_rpm is not None and (old_rpm is None or new_rpm < old_rpm)
            yield Change(
                Level.BREAKING if lowered else Level.COMPATIBLE,
                join(pointer, "requests_per_minute"),
                (CALLERS,) if lowered else (),
                f"plan {plan_id}'s requests_per_minute {'lowered' if lowered else 'raised'} from "
                f"{old_rpm} to {new_rpm}"
                + (": callers at the old rate now get 429" if lowered else ""),
            )  # fmt: skip
        yield from other_fields(pointer, before, after, {"id", "requests_per_minute"},
                                docs=frozenset({"name", "description"}))  # fmt: skip

    if old.get("pipelines") != new.get("pipelines"):
        for model_id in sorted(set(old.get("pipelines", {})) | set(new.get("pipelines", {}))):
            if old.get("pipelines", {}).get(model_id) != new.get("pipelines", {}).get(model_id):
                yield Change(
                    Level.COMPATIBLE, join(root, "pipelines", model_id), (),
                    f"how the diffusers backend runs {model_id} changed; answers keep their shape",
                )  # fmt: skip
    for key in sorted((set(old) | set(new)) - {"models", "plans", "pipelines"}):
        if old.get(key) != new.get(key):
            level = Level.DOCS if key == "description" else Level.BUMP
            yield Change(level, join(root, key), (READERS,) if level == Level.DOCS else (CALLERS,),
                         f"catalog's {key} changed")  # fmt: skip


def model_changes(pointer: str, old: dict, new: dict) -> Iterator[Change]:
    model_id = new["id"]
    if old.get("max_steps") != new.get("max_steps"):
        before, after = old.get("max_steps"), new.get("max_steps")
        if isinstance(before, int) and isinstance(after, int) and after < before:
            yield Change(
                Level.BREAKING, join(pointer, "max_steps"), (CALLERS, CLIENTS),
                f"max_steps of {model_id} lowered from {before} to {after}: requests with "
                f"{after + 1}-{before} steps now get 400 step_cap_exceeded",
            )  # fmt: skip
        else:
            yield Change(Level.COMPATIBLE, join(pointer, "max_steps"), (),
                         f"max_steps of {model_id} raised from {before} to {after}")  # fmt: skip
    for field, preset in (("quality_steps", "quality"), ("fast_steps", "fast")):
        if old.get(field) != new.get(field):
            yield Change(
                Level.BUMP, join(pointer, field), (CALLERS,),
                f"{field} of {model_id} changed from {old.get(field)} to {new.get(field)}: a "
                f"request that omits num_inference_steps ({preset} preset) gets another answer",
            )  # fmt: skip
    if old.get("negative_prompt") != new.get("negative_prompt"):
        withdrawn = bool(old.get("negative_prompt")) and not new.get("negative_prompt")
        yield Change(
            Level.BREAKING if withdrawn else Level.COMPATIBLE,
            join(pointer, "negative_prompt"),
            (CALLERS,) if withdrawn else (),
            f"negative-prompt support of {model_id} "
            + ("withdrawn: requests with one now get 400 negative_prompt_unsupported"
               if withdrawn else "added"),
        )  # fmt: skip
    old_plans, new_plans = set(old.get("plans", [])), set(new.get("plans", []))
    for plan in sorted(old_plans - new_plans):
        yield Change(
            Level.BREAKING, join(pointer, "plans", plan), (CALLERS, SUITE_KEYS),
            f"{model_id} removed from plan {plan}: its keys now get 403 model_not_in_plan",
        )  # fmt: skip
    for plan in sorted(new_plans - old_plans):
        yield Change(Level.COMPATIBLE, join(pointer, "plans", plan), (),
                     f"{model_id} added to plan {plan}")  # fmt: skip
    known = {"id", "max_steps", "quality_steps", "fast_steps", "negative_prompt", "plans"}
    yield from other_fields(pointer, old, new, known,
                            docs=frozenset({"name", "description", "best_for"}),
                            compatible=frozenset({"typical_latency_ms"}))  # fmt: skip


def other_fields(
    pointer: str,
    old: dict,
    new: dict,
    known: set[str],
    docs: frozenset[str] = frozenset(),
    compatible: frozenset[str] = frozenset(),
) -> Iterator[Change]:
    """The fields of a catalog entry that no rule above reads: text is documentation, a timing
    hint compatible, anything else needs a bump (an answer of the catalog changes)."""
    for key in sorted((set(old) | set(new)) - known):
        if old.get(key) == new.get(key):
            continue
        if key in docs:
            yield Change(Level.DOCS, join(pointer, key), (READERS,), f"{key} edited")
        elif key in compatible:
            yield Change(Level.COMPATIBLE, join(pointer, key), (),
                         f"{key} changed from {old.get(key)} to {new.get(key)}")  # fmt: skip
        else:
            yield Change(Level.BUMP, join(pointer, key), (CALLERS,),
                         f"{key} changed from {old.get(key)!r} to {new.get(key)!r}")  # fmt: skip


def cors_changes(old: dict, new: dict) -> Iterator[Change]:
    root = "x-imageapi-cors"
    before, after = old.get("allow_origins"), new.get("allow_origins")
    if before != after:
        old_set = {"*"} if before == "*" else set(before or [])
        new_set = {"*"} if after == "*" else set(after or [])
        reduced = "*" not in new_set and ("*" in old_set or bool(old_set - new_set))
        yield Change(
            Level.BREAKING if reduced else Level.COMPATIBLE, join(root, "allow_origins"),
            (FRONTENDS,) if reduced else (),
            f"allowed origins {'reduced' if reduced else 'widened'} from {before!r} to {after!r}"
            + (": pages on the origins left out can no longer read answers" if reduced else ""),
        )  # fmt: skip
    for key, what in (("allow_headers", "request headers"), ("expose_headers", "exposed headers")):
        old_names = {name.lower() for name in old.get(key, [])}
        new_names = {name.lower() for name in new.get(key, [])}
        for name in sorted(old_names - new_names):
            yield Change(
                Level.BREAKING, join(root, key, name), (FRONTENDS,),
                f"{name} removed from the CORS {what}: browsers "
                + ("refuse to send it" if key == "allow_headers" else "hide it from scripts"),
            )  # fmt: skip
        for name in sorted(new_names - old_names):
            yield Change(Level.COMPATIBLE, join(root, key, name), (),
                         f"{name} added to the CORS {what}")  # fmt: skip
    for key in sorted((set(old) | set(new)) - {"allow_origins", "allow_headers", "expose_headers"}):
        if old.get(key) != new.get(key):
            level = Level.DOCS if key == "description" else Level.COMPATIBLE
            yield Change(level, join(root, key), (), f"CORS {key} changed")


def security_changes(old: dict, new: dict) -> Iterator[Change]:
    old_schemes = old.get("components", {}).get("securitySchemes", {})
    new_schemes = new.get("components", {}).get("securitySchemes", {})
    for name in sorted(set(old_schemes) | set(new_schemes)):
        pointer = join("/components/securitySchemes", name)
        before, after = old_schemes.get(name), new_schemes.get(name)
        if before == after:
            continue
        if before is None:
            yield Change(Level.COMPATIBLE, pointer, (), f"security scheme {name} added")
        elif after is None:
            yield Change(Level.BREAKING, pointer, (CALLERS, CLIENTS),
                         f"security scheme {name} removed")  # fmt: skip
        elif strip_docs(before) != strip_docs(after):
            yield Change(
                Level.BREAKING, pointer, (CALLERS, CLIENTS),
                f"security scheme {name} changed: callers must send their key another way",
            )  # fmt: skip
        else:
            yield Change(Level.DOCS, pointer, (READERS,), f"security scheme {name}'s text edited")
    if old.get("security") != new.get("security"):
        yield Change(Level.BREAKING, "/security", (CALLERS, CLIENTS),
                     "the API's security requirement changed")  # fmt: skip


def strip_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: strip_docs(value) for key, value in node.items() if key not in DOC_KEYWORDS}
    if isinstance(node, list):
        return [strip_docs(item) for item in node]
    return node


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
    old_content, new_content = old.get("content", {}), new.get("content", {})
    for media in sorted(set(old_content) | set(new_content)):
        at = join(pointer, "content", media)
        if media not in new_content:
            yield Change(Level.BREAKING, at, (CALLERS, CLIENTS),
                         f"{where}: request media type {media} no longer accepted")  # fmt: skip
        elif media not in old_content:
            yield Change(Level.COMPATIBLE, at, (), f"{where}: request media type {media} added")
        else:
            yield from media_changes(at, where, old_content[media], new_content[media],
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
    old_content, new_content = old.get("content", {}), new.get("content", {})
    for media in sorted(set(old_content) | set(new_content)):
        at = join(pointer, "content", media)
        if media not in new_content:
            yield Change(Level.BREAKING, at, (CALLERS, CLIENTS),
                         f"{where}: answered as {media} no longer")  # fmt: skip
        elif media not in old_content:
            yield Change(Level.BUMP, at, (CALLERS, CLIENTS), f"{where}: may be answered as {media}")
        else:
            yield from media_changes(at, where, old_content[media], new_content[media],
                                     request=False)  # fmt: skip


# --- schemas -----------------------------------------------------------------------------------


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


def bound_change(change, key, where, before, after, narrowed, widened):  # type: ignore[no-untyped-def]
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


def required_changes(pointer, where, old: set, new: set, *, request: bool):  # type: ignore[no-untyped-def]
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


def property_changes(pointer, where, old: dict, new: dict, *, request: bool, condition: bool):  # type: ignore[no-untyped-def]
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


def combinator_changes(pointer, where, key, old: list, new: list, *, request: bool):  # type: ignore[no-untyped-def]
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


# --- versions ----------------------------------------------------------------------------------

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def version_of(document: dict) -> tuple[int, int, int]:
    text = str(document.get("info", {}).get("version", ""))
    match = SEMVER.match(text)
    if not match:
        raise SpecError(f"info.version {text!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def verdict(changes: list[Change], old: dict, new: dict, fail_on: Level) -> tuple[bool, str]:
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


# --- the command line --------------------------------------------------------------------------


def read_git(ref: str, path: Path) -> str:
    """*path* as it is at git revision *ref*."""
    result = subprocess.run(
        ["git", "show", f"{ref}:./{path.name}"],
        cwd=path.resolve().parent, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise SpecError(f"git show {ref}:{path.name}: {result.stderr.strip() or 'failed'}")
    return result.stdout


def counts(changes: list[Change]) -> dict[str, int]:
    return {level.label: sum(change.level == level for change in changes) for level in Level}


def as_text(changes: list[Change], old_name: str, new_name: str, ok: bool, why: str) -> str:
    numbers = counts(changes)
    lines = [
        f"{old_name} -> {new_name}: {len(changes)} changes ("
        + ", ".join(f"{numbers[level.label]} {TITLES[level]}" for level in reversed(Level))
        + ")"
    ]
    for change in changes:
        who = f"  [{', '.join(change.who)}]" if change.who else ""
        lines.append(f"{change.level.label:<10} {change.pointer}{who}")
        lines.append(f"{'':<10} {change.reason}")
    lines.append(("PASS: " if ok else "FAIL: ") + why)
    return "\n".join(lines) + "\n"


def as_markdown(changes: list[Change], old_name: str, new_name: str, ok: bool, why: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        f"### Spec changes: `{old_name}` -> `{new_name}`",
        "",
        f"**{'PASS' if ok else 'FAIL'}**: {cell(why)}",
        "",
        "| class | where | who | why |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {change.level.label} | `{cell(change.pointer)}` | {cell(', '.join(change.who))} "
        f"| {cell(change.reason)} |"
        for change in changes
    ]
    if not changes:
        lines.append("| - | - | - | no change |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imageapi-contract diff",
        description="Classify every change between two versions of the Image API's spec and "
        "check that info.version follows them. Exit 0: it does; 1: it does not; 2: a spec "
        "cannot be read.",
    )
    parser.add_argument(
        "specs", nargs="*", metavar="SPEC",
        help="OLD NEW, or with --base only NEW (default: openapi.yaml)",
    )  # fmt: skip
    parser.add_argument("--base", metavar="GIT_REF",
                        help="compare NEW with the same file at this git revision")  # fmt: skip
    parser.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    parser.add_argument(
        "--fail-on", choices=["breaking", "bump", "never"], default="bump",
        help="the lowest class of change whose missing version bump fails the run "
        "(default: bump: a breaking change needs a major bump, a bump change a minor one)",
    )  # fmt: skip
    return parser


FAIL_ON = {"breaking": Level.BREAKING, "bump": Level.BUMP, "never": Level.BREAKING + 1}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.base:
            if len(args.specs) > 1:
                parser.error("with --base, give at most one spec (the new one)")
            new_path = Path(args.specs[0] if args.specs else "openapi.yaml")
            old_name, old_text = f"{args.base}:{new_path.name}", read_git(args.base, new_path)
        else:
            if len(args.specs) != 2:
                parser.error("give OLD and NEW, or --base GIT_REF")
            old_path, new_path = Path(args.specs[0]), Path(args.specs[1])
            old_name, old_text = str(old_path), read_text(old_path)
        new_name, new_text = str(new_path), read_text(new_path)
        old, new = parse_spec(old_text, old_name), parse_spec(new_text, new_name)
        changes = diff_specs(old, new)
        ok, why = verdict(changes, old, new, FAIL_ON[args.fail_on])
    except SpecError as exc:
        print(f"imageapi-contract diff: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        report = {
            "old": {"name": old_name, "version": old.get("info", {}).get("version")},
            "new": {"name": new_name, "version": new.get("info", {}).get("version")},
            "counts": counts(changes),
            "changes": [change.as_dict() for change in changes],
            "passed": ok,
            "verdict": why,
        }
        print(json.dumps(report, indent=2))
    elif args.format == "markdown":
        print(as_markdown(changes, old_name, new_name, ok, why), end="")
    else:
        print(as_text(changes, old_name, new_name, ok, why), end="")
    return 0 if ok else 1


def read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())

"""Keys files: a JSON or YAML mapping of API key to plan id, read with every key checked.

A key that no request could authenticate with is refused at start, naming its line, rather than
served as a key that answers 401 forever: one that is empty, holds whitespace or a character a
Bearer token cannot carry, is written with its ``Bearer`` scheme, or is longer than a request
head may be. A key written twice is refused too (a mapping would silently keep the last plan).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from mockserver.auth import is_token
from mockserver.guard import MAX_HEADER_BYTES


def load_keys(path: str | Path) -> dict[str, str]:
    """The keys file at *path* as a mapping of key to plan; ValueError naming the file (and the
    line) if it cannot serve as one."""
    text = Path(path).read_text(encoding="utf-8")
    kind = "JSON" if str(path).endswith(".json") else "YAML"
    try:
        entries = _json_entries(text) if kind == "JSON" else _yaml_entries(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid {kind}: {_one_line(exc)}") from None
    texts = [
        (key, plan, line)
        for key, plan, line in entries or []
        if isinstance(key, str) and isinstance(plan, str)
    ]
    if entries is None or len(texts) != len(entries):
        raise ValueError(f"{path}: expected a mapping of API key to plan id")
    if not texts:
        raise ValueError(f"{path}: no keys: no request could be answered")
    seen: dict[str, int] = {}
    for key, _, line in texts:
        problem = key_problem(key)
        if problem is None and key in seen:
            problem = f"the key of line {seen[key]} again"
        if problem:
            raise ValueError(f"{path} line {line}: {problem}: no request could use it")
        seen[key] = line
    return {key: plan for key, plan, _ in texts}


def _one_line(error: Exception) -> str:
    """A parser's error in one line: YAML's quotes the text around the error over several."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        return f"line {error.problem_mark.line + 1}: {error.problem}"
    return str(error).replace("\n", " ")


def key_problem(key: str) -> str | None:
    """Why no ``Authorization: Bearer`` header could carry *key*, or None if one can."""
    if not key:
        return "the key is empty"
    if key[:7].lower() == "bearer ":
        return "the key starts with 'Bearer ': write the key alone"
    if any(char.isspace() for char in key):
        return "the key contains whitespace"
    if not is_token(key):
        return (
            "the key has a character a Bearer token cannot carry (letters, digits, -._~+/, "
            "then = only)"
        )
    if len(key) > MAX_HEADER_BYTES:
        return f"the key is longer than a request head may be ({MAX_HEADER_BYTES} bytes)"
    return None


class _Pairs(list):
    """A JSON object's members in order, duplicates kept."""


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, position: int) -> int:
    match = _JSON_SPACE.match(text, position)
    return match.end() if match else position


def _json_entries(text: str) -> list[tuple[object, object, int]] | None:
    """(key, plan, line) for each member of the JSON object *text*; None if it is not one."""
    members = json.loads(text, object_pairs_hook=_Pairs)
    if not isinstance(members, _Pairs):
        return None
    return [(key, plan, line) for (key, plan), line in zip(members, _json_lines(text), strict=True)]


def _json_lines(text: str) -> Iterator[int]:
    """The line of each member's name in the JSON object *text* (known to be valid)."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0) + 1  # past the "{"
    while True:
        position = _skip_space(text, position)
        if text[position] == "}":
            return
        yield text.count("\n", 0, position) + 1
        _, position = decoder.raw_decode(text, position)  # the name
        position = _skip_space(text, position) + 1  # past the ":"
        _, position = decoder.raw_decode(text, _skip_space(text, position))  # the plan
        position = _skip_space(text, position)
        position += text[position] == ","


def _yaml_entries(text: str) -> list[tuple[object, object, int]] | None:
    """(key, plan, line) for each entry of the YAML mapping *text*; None if it is not one."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        return None
    # Built from the nodes, not the dict, which would keep only the last of a duplicated key.
    entries: list[tuple[object, object, int]] = []
    for key_node, plan_node in node.value:
        text_key = isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":str")
        key = key_node.value if text_key else None
        plan = plan_node.value if isinstance(plan_node, yaml.ScalarNode) else None
        if plan is not None and not plan_node.tag.endswith(":str"):
            plan = None
        entries.append((key, plan, key_node.start_mark.line + 1))
    return entries

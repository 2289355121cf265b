"""What a change is: its class, where it is, whom it concerns and why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any


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


def escape(part: str) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def join(pointer: str, *parts: object) -> str:
    return pointer + "".join("/" + escape(str(part)) for part in parts)


def strip_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: strip_docs(value) for key, value in node.items() if key not in DOC_KEYWORDS}
    if isinstance(node, list):
        return [strip_docs(item) for item in node]
    return node

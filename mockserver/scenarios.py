"""Scenario control for frontend work, as Prism users know it: a ``Prefer`` header picks one of
the responses the spec documents for the operation.

    Prefer: code=429              the documented 429, with its example body and headers
    Prefer: example=unknownModel  the documented response that has this named example
    Prefer: code=400, example=stepCapExceeded

Only in mock mode (the default; ``--no-scenarios`` turns it off). The answer is built from the
spec alone, so it is valid against it by construction; tests check that it is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mockserver.problems import Problem, shown

# RFC 7240: a token, then optionally "=" and a token or a quoted string.
_PREFERENCE = re.compile(
    r'\s*([A-Za-z0-9_.!#$%&\'*+^`|~-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,;\s]*))?'
)
# Only what this mock acts on is parsed, and only so far: everything else in a Prefer header is
# another server's business (RFC 7240 says to ignore it), and a long header costs no more than
# MAX_PREFER_CHARS of regex work.
MAX_PREFER_CHARS = 1024
_STATUS = re.compile(r"[1-5][0-9][0-9]")
_TOKEN = re.compile(r"[A-Za-z0-9_.!#$%&'*+^`|~-]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_prefer(header: str) -> dict[str, str]:
    """RFC 7240 preferences as a dict: ``'code=429, example="a b"'`` -> ``{code: 429, ...}``.
    Parameters after ``;`` are ignored, and so is all past the first MAX_PREFER_CHARS."""
    preferences = {}
    for part in header[:MAX_PREFER_CHARS].split(","):
        match = _PREFERENCE.match(part.split(";")[0])
        if match and match.group(1):
            value = match.group(2) or ""
            quoted = _QUOTED.fullmatch(value)
            if quoted:
                value = re.sub(r"\\(.)", r"\1", quoted.group(1))
            preferences[match.group(1).lower()] = value
    return preferences


@dataclass(frozen=True)
class Documented:
    status: int
    media_type: str
    body: object
    headers: dict[str, str]
    applied: str  # the preferences it follows, for Preference-Applied


class Scenarios:
    """The documented responses of each operation, ready to send."""

    def __init__(self, document: dict):
        self._operations: dict[tuple[str, str], dict[int, dict]] = {}
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if isinstance(operation, dict) and "responses" in operation:
                    responses = {
                        int(code): response
                        for code, response in operation["responses"].items()
                        if _STATUS.fullmatch(str(code))  # not "default" or "4XX": no code to send
                    }
                    self._operations[(path, method.upper())] = responses

    def respond(self, path: str, method: str, prefer: str, allow: str) -> Documented | None:
        """The response a ``Prefer`` header asks for, or None when it asks for none.

        *path* is the OpenAPI path template of the route; *allow* the route's methods."""
        preferences = parse_prefer(prefer)
        code, example = preferences.get("code"), preferences.get("example")
        if code is None and example is None:
            return None
        responses = self._operations.get((path, method))
        if responses is None:
            return None
        if code is not None:
            if not _STATUS.fullmatch(code) or int(code) not in responses:
                documented = ", ".join(str(c) for c in sorted(responses))
                raise Problem(
                    400,
                    "invalid_request",
                    f"Prefer: code={shown(code)} is not documented for {method} {path}; "
                    f"it documents {documented}.",
                    field="Prefer",
                )
            candidates = {int(code): responses[int(code)]}
        else:
            candidates = responses
        for status, response in sorted(candidates.items()):
            for media_type, content in response.get("content", {}).items():
                body = _example(content, example)
                if body is not _MISSING:
                    headers = {
                        name: allow if name == "Allow" else str(header.get("example", ""))
                        for name, header in response.get("headers", {}).items()
                    }
                    applied = [f"code={code}"] if code is not None else []
                    if example is not None:
                        applied.append(_applied_example(example))
                    return Documented(status, media_type, body, headers, ", ".join(applied))
        raise Problem(
            400,
            "invalid_request",
            f"Prefer: no documented response of {method} {path} has the example "
            f"{shown(example or '')}.",
            field="Prefer",
        )

    @staticmethod
    def encode(documented: Documented) -> bytes:
        return json.dumps(documented.body, separators=(",", ":")).encode()


_MISSING = object()


def _applied_example(name: str) -> str:
    """``example=NAME`` for Preference-Applied: *name* is one the spec documents, written as a
    token or a quoted string (printable ASCII, as a header value must be)."""
    if _TOKEN.fullmatch(name):
        return f"example={name}"
    escaped = "".join(c if c.isascii() and c.isprintable() else "?" for c in name)
    return 'example="' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _example(content: dict, name: str | None):
    examples = content.get("examples", {})
    if name is not None:
        return examples[name]["value"] if name in examples else _MISSING
    if "example" in content:
        return content["example"]
    if examples:
        return next(iter(examples.values()))["value"]
    return _MISSING

"""Request-body validation against the spec's JSON Schema, with errors as problem codes.

Which code an error gets is read from the spec: the deepest ``x-problem-code`` on the schema
path of the failing keyword. Errors of structure (wrong type, missing or unknown field) have
fixed codes, because they mean the same thing whatever field they concern.
"""

from __future__ import annotations

import json

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance

from mockserver.problems import Problem

STRUCTURAL_CODES = {
    "type": "invalid_type",
    "required": "missing_field",
    "additionalProperties": "unknown_field",
}
DEFAULT_CODE = "invalid_request"
MAX_DETAIL_CHARS = 300
MAX_SHOWN_CHARS = 40  # of a value quoted in a detail, so that the reason after it still shows


def parse_json(raw: bytes):
    """Parse a request body strictly: UTF-8, RFC 8259 JSON, no NaN or Infinity."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers past Python's digit limit.
        raise Problem(
            400, "malformed_json", f"The body is not valid JSON: {_clip(str(exc))}"
        ) from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class RequestValidator:
    """Validates bodies against one JSON Schema and reports spec-defined error codes.

    Two validators of the same schema: jsonschema-rs (compiled, about 1 µs) answers whether a
    body is valid, and only a body it does not accept goes to the pure-Python jsonschema, which
    explains each fault with the schema path that the error codes are read from.
    """

    def __init__(self, schema: dict):
        Draft202012Validator.check_schema(schema)
        self._schema = schema
        self._fast = jsonschema_rs.Draft202012Validator(schema)
        self._validator = Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def validate(self, body) -> None:
        """Raise a 400 :class:`Problem` listing every fault in *body*; return if it is valid."""
        try:
            if self._fast.is_valid(body):
                return
        except ValueError:  # e.g. a lone surrogate, which Rust strings cannot hold
            pass
        errors = sorted(self._validator.iter_errors(body), key=relevance, reverse=True)
        if not errors:
            return
        faults = [self._fault(error) for error in errors]
        first = faults[0]
        raise Problem(
            400,
            first["code"],
            first["detail"],
            field=first.get("field"),
            errors=faults if len(faults) > 1 else None,
        )

    def _fault(self, error: ValidationError) -> dict:
        code, detail = self._explain(error)
        field = _field(error)
        field = _clip(field) if field else None
        fault = {"code": code, "detail": _clip(f"{field}: {detail}" if field else detail)}
        if field:
            fault["field"] = field
        return fault

    def _explain(self, error: ValidationError) -> tuple[str, str]:
        """The error's code and detail: the deepest ``x-problem-code`` (and its
        ``x-problem-detail``) on the failing keyword's schema path."""
        message = _message(error)
        if error.validator in STRUCTURAL_CODES:
            return STRUCTURAL_CODES[error.validator], message
        code, detail = DEFAULT_CODE, message
        node = self._schema
        for key in error.absolute_schema_path:
            node = node[key]
            if isinstance(node, dict) and "x-problem-code" in node:
                code = node["x-problem-code"]
                detail = node.get("x-problem-detail", message)
        return code, detail


def _field(error: ValidationError) -> str | None:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [name for name in required if name not in error.instance]
        path += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(name for name in error.instance if name not in known)
        path += extra[:1]
    return ".".join(path) or None


def _message(error: ValidationError) -> str:
    """jsonschema's message, with a long value it quotes shortened: "'aaa…' (2001 characters)
    is too long" rather than 300 characters of the value and no reason."""
    shown = repr(error.instance)
    if len(shown) <= MAX_SHOWN_CHARS or shown not in error.message:
        return error.message
    if isinstance(error.instance, str):
        short = f"{shown[: MAX_SHOWN_CHARS - 1]}…' ({len(error.instance)} characters)"
    else:
        short = f"{shown[:MAX_SHOWN_CHARS]}…"
    return error.message.replace(shown, short)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"

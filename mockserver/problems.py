"""RFC 9457 problem details: the one shape of every error this server sends."""

from __future__ import annotations

PROBLEM_TYPE_BASE = "https://imageapi.org/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """A refusal, raised anywhere in request handling and sent as ``application/problem+json``.

    The ``type`` URI and ``title`` derive from ``code``, so a code names exactly one problem type.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        errors: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.errors = errors
        self.headers = headers or {}

    def to_dict(self, instance: str | None = None) -> dict:
        body = {
            "type": PROBLEM_TYPE_BASE + self.code.replace("_", "-"),
            "title": _title(self.code),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        if self.field:
            body["field"] = self.field
        if self.errors:
            body["errors"] = self.errors
        return body


_ACRONYMS = {"api": "API", "json": "JSON"}


def _title(code: str) -> str:
    words = [_ACRONYMS.get(word, word) for word in code.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


MAX_SHOWN_CHARS = 40  # of a client's value quoted in a detail


def shown(value: str) -> str:
    """A client's *value* quoted for a detail, shortened so that what follows it still shows."""
    text = repr(value)
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return f"{text[: MAX_SHOWN_CHARS - 1]}…' ({len(value)} characters)"

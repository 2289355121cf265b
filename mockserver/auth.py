"""API keys: Bearer parsing, constant-time lookup, and masking for logs."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from mockserver.problems import Problem
from mockserver.redact import mask  # what logs and messages show of a key: none of it

__all__ = ["REALM", "KeyStore", "bearer_token", "digest", "is_token", "mask"]

REALM = 'Bearer realm="imageapi"'
# RFC 6750 section 2.1: "Bearer" 1*SP b64token. Exactly one space: stray whitespace is malformed.
_TOKEN = r"[A-Za-z0-9\-._~+/]+=*"
_BEARER = re.compile(rf"[Bb][Ee][Aa][Rr][Ee][Rr] ({_TOKEN})")
_TOKEN_ONLY = re.compile(_TOKEN)


def digest(key: str) -> bytes:
    """What a key is kept and compared as."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def is_token(text: str) -> bool:
    """Whether *text* can be sent as a Bearer token (a key, the admin token)."""
    return _TOKEN_ONLY.fullmatch(text) is not None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, or None if it is not one."""
    match = _BEARER.fullmatch(authorization or "")
    return match.group(1) if match else None


class KeyStore:
    """Maps API keys to plans. Keys are kept as SHA-256 digests and compared in constant time."""

    def __init__(self, keys: Mapping[str, str]):
        self._entries = [(digest(key), plan) for key, plan in keys.items()]

    def plans(self) -> set[str]:
        return {plan for _, plan in self._entries}

    def authenticate(self, authorization: str | None) -> tuple[str, str]:
        """Return ``(key, plan)`` for an ``Authorization`` header value, or raise a 401."""
        if not authorization:
            raise _unauthorized(
                "missing_api_key", "Send your API key as 'Authorization: Bearer <key>'."
            )
        key = bearer_token(authorization)
        if key is None:
            raise _unauthorized(
                "missing_api_key",
                "The Authorization header must be 'Bearer <key>'.",
                error="invalid_request",
            )
        presented = digest(key)
        plan = None
        for known, candidate in self._entries:  # no early exit: time does not depend on the key
            if hmac.compare_digest(known, presented):
                plan = candidate
        if plan is None:
            raise _unauthorized(
                "invalid_api_key", f"The API key {mask(key)} is not known.", error="invalid_token"
            )
        return key, plan


def _unauthorized(code: str, detail: str, error: str | None = None) -> Problem:
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    return Problem(401, code, detail, headers={"WWW-Authenticate": challenge})

"""Secrets out of anything shown or stored, found by where they sit rather than by what they
look like: a key of any shape (``sk_...`` or not, dotted, Basic) is masked whole.

- ``redact_headers(headers)``: the whole credential of ``Authorization`` and
  ``Proxy-Authorization`` (the scheme stays), every value of ``Cookie`` and ``Set-Cookie``, and
  the whole value of any header named like a credential (``X-Api-Key``, ``X-Auth-Token``, ...);
- ``redact_query(query)``: the values of query parameters whose names look like credentials;
- ``redact_text(text, secrets)``: every occurrence of the given secrets in free text
  (``text_redactor(secrets)``: the same, prepared once for many texts);
- ``mask(secret)``: what is shown in place of one secret (``fingerprint(secret)``: its digits),
  keyed with ``use_fingerprint_secret(secret)``;
- ``redacted_url(url)``: a store URL without its password, for logs.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qsl, quote

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})
COOKIE_HEADERS = frozenset({"cookie", "set-cookie"})
# Names of query parameters (and headers) that carry credentials, matched whole or as a
# `_`/`-`/`.` separated part.
_SECRET_NAME = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|key|token|access[_\-]?token|auth|authorization|secret|"
    r"client[_\-]?secret|password|passwd|pwd|signature|sig|session|credential|credentials|"
    r"jwt|bearer)(?:$|[_\-.])",
    re.IGNORECASE,
)


# Fingerprints are keyed (HMAC-SHA256) so that one cannot be turned back into a short key by
# trying keys offline: only a process that holds the secret can compute one. A served mock's
# command line draws the secret before it starts the workers and hands it to each of them
# (MOCKSERVER_FINGERPRINT_SECRET), so that a key has one fingerprint across the server's
# workers for its life; until told one, a process keys with a random secret of its own.
_keyed = hmac.new(secrets.token_bytes(32), digestmod=hashlib.sha256)


def use_fingerprint_secret(secret: str) -> None:
    """Key every fingerprint from now on with *secret*."""
    global _keyed
    _keyed = hmac.new(secret.encode("utf-8", "surrogatepass"), digestmod=hashlib.sha256)


def fingerprint(secret: str) -> str:
    """A short keyed fingerprint of *secret* (8 hex digits): tells keys apart, shows none."""
    if len(secret) > _REMEMBERED_CHARS:
        return _fingerprint(_keyed, secret)
    return _remembered(_keyed, secret)


def _fingerprint(keyed: hmac.HMAC, secret: str) -> str:
    keyed = keyed.copy()
    keyed.update(secret.encode("utf-8", "surrogatepass"))
    return keyed.hexdigest()[:8]


# A request's key is fingerprinted several times (the journal, the sequences, the log), and a
# server sees a few keys again and again; keyed by the secret's HMAC too, so that a new secret
# gives new fingerprints.
_REMEMBERED_CHARS = 256
_remembered = functools.lru_cache(maxsize=1024)(_fingerprint)


def mask(secret: str) -> str:
    """A stand-in for *secret* that shows none of it: its fingerprint, so that log lines about
    the same key can be told apart from those about another."""
    return f"[redacted {fingerprint(secret)}]"


def redact_credential(value: str) -> str:
    """An ``Authorization`` value with its credential masked and its scheme kept."""
    scheme, space, credential = value.strip().partition(" ")
    if not space:  # no scheme: the whole value is the credential
        return mask(scheme) if scheme else value
    return f"{scheme} {mask(credential.strip())}"


def redact_cookies(value: str) -> str:
    """A ``Cookie`` or ``Set-Cookie`` value with every cookie's value masked.

    Set-Cookie attributes (``Path=/``, ``HttpOnly``) are masked too: telling them from cookies
    would take parsing that a log line does not need.
    """
    parts = []
    for part in value.split(";"):
        name, equals, cookie = part.partition("=")
        parts.append(f"{name}={mask(cookie.strip())}" if equals else part)
    return ";".join(parts)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of *headers* with credentials and cookies masked; other values as they were."""
    redacted = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in CREDENTIAL_HEADERS:
            value = redact_credential(value)
        elif lowered in COOKIE_HEADERS:
            value = redact_cookies(value)
        elif is_secret_name(lowered) and value:
            value = mask(value)
        redacted[name] = value
    return redacted


def is_secret_name(name: str) -> bool:
    if len(name) > 64:
        return bool(_SECRET_NAME.search(name))
    return _is_secret_short_name(name)


@functools.lru_cache(maxsize=1024)  # every request's header names: a few, again and again
def _is_secret_short_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def redact_query(query: str) -> str:
    """A query string with the values of credential-like parameters masked."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(is_secret_name(name) for name, _ in pairs):
        return query
    return "&".join(
        f"{quote(name, safe='')}={mask(value) if is_secret_name(name) else quote(value, safe='')}"
        for name, value in pairs
    )


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """*text* with every occurrence of each secret masked (longest first, so that a secret
    containing another is masked whole)."""
    return text_redactor(secrets)(text)


def text_redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """``redact_text`` with *secrets* fixed: sorted and masked once, for many texts.

    One ``str.replace`` per secret, not one regular expression of them all: CPython's string
    search skips through a text far faster than a regex alternation of a thousand keys tries each
    one at every position (about 12 ms against 200 ms for 1,000 keys over 64 KiB, measured here).
    """
    ordered = [(s, mask(s)) for s in sorted({s for s in secrets if s}, key=len, reverse=True)]

    def redact(text: str) -> str:
        for secret, masked in ordered:
            text = text.replace(secret, masked)
        return text

    return redact


def redacted_url(url: str) -> str:
    """*url* without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "…@" + rest.split("@", 1)[1]
    return scheme + sep + rest

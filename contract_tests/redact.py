"""No key leaves the suite in clear.

Credentials are masked by where they stand, not by what they look like: the whole credential
of ``Authorization`` and ``Proxy-Authorization`` (any scheme, or none), every ``Cookie`` value,
headers and query parameters whose names say they carry a secret. Every credential the suite
sends is remembered, so that the same text is also cut out of anything else the run prints
(assertion messages, tracebacks with their locals, captured output, the JUnit file), where it
stands in no header any more.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"
# Shorter values are not secrets worth cutting out of every line (random probes like "A").
MIN_SECRET = 6
CREDENTIAL_HEADERS = {"authorization", "proxy-authorization"}
SECRET_NAME = re.compile(
    r"key|token|secret|passw|auth|credential|signature|^sig$|session|cookie", re.IGNORECASE
)


class Credentials:
    """The keys the run knows (each shown as the variable that holds it) and every credential
    it has sent (shown as ``***``)."""

    def __init__(self, known: dict[str, str] | None = None):
        self.known: dict[str, str] = {}  # secret -> what to print instead
        self.sent: set[str] = set()
        for secret, name in (known or {}).items():
            self.add_known(secret, name)

    def __repr__(self) -> str:
        return f"<Credentials: {len(self.known)} known, {len(self.sent)} sent, all masked>"

    def add_known(self, secret: str | None, name: str) -> None:
        if secret:
            self.known[secret] = f"${name}"

    # Masking by structure -------------------------------------------------------------------

    def mask_credential(self, credential: str) -> str:
        return self.known.get(credential.strip(), MASK)

    def mask_header(self, name: str, value: str) -> str:
        lowered = name.lower()
        if lowered in CREDENTIAL_HEADERS:
            scheme, space, credential = value.partition(" ")
            if not space or not scheme:  # no scheme: the whole value is the credential
                return self.mask_credential(value)
            return f"{scheme} {self.mask_credential(credential)}"
        if lowered == "cookie":
            return "; ".join(
                f"{part.partition('=')[0].strip()}={MASK}" for part in value.split(";")
            )
        if SECRET_NAME.search(lowered):
            return self.mask_credential(value)
        return value

    def mask_url(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.query:
            return url
        query = "&".join(
            f"{quote(name)}={MASK if SECRET_NAME.search(name) else quote(value)}"
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        )
        return parts._replace(query=query).geturl()

    # Remembering what was sent ------------------------------------------------------------------

    def note_request(self, url: str, headers: dict) -> None:
        """Remember every credential in a request about to be sent."""
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in CREDENTIAL_HEADERS:
                self._note(value)
                scheme, _, credential = value.partition(" ")
                self._note(credential.strip())
                self._note_basic(scheme, credential.strip())
                for token in value.split():
                    self._note(token)
            elif lowered == "cookie":
                for part in value.split(";"):
                    self._note(part.partition("=")[2].strip())
            elif SECRET_NAME.search(lowered):
                self._note(value)
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
            if SECRET_NAME.search(name):
                self._note(value)

    def _note(self, value: str) -> None:
        if len(value) >= MIN_SECRET and value.lower() not in {"bearer", "basic"}:
            self.sent.add(value)

    def _note_basic(self, scheme: str, credential: str) -> None:
        if scheme.lower() != "basic":
            return
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return
        user, _, password = decoded.partition(":")
        for part in (decoded, user, password):
            self._note(part)

    # Masking by value, for free text ----------------------------------------------------------

    def redact(self, text: str) -> str:
        """*text* with every known key and every credential sent cut out."""
        replacements = {secret: MASK for secret in self.sent}
        replacements.update(self.known)
        for secret in sorted(replacements, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, replacements[secret])
        return text

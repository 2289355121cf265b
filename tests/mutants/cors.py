"""Mutants of CORS (x-imageapi-cors): preflights, and what answers let another origin read."""

from __future__ import annotations

from tests.mutants.proxies import (
    _edit_headers,
    _header,
    _is_generate,
    _problem,
    _replace_header,
    _status_code,
    proxy,
)
from tests.mutants.registry import mutant

CORS_PREFLIGHT = "contract_tests/test_cors.py::test_preflights_allow_a_key_and_json_from_any_origin"


CORS_ANSWERS = "contract_tests/test_cors.py::test_answers_are_readable_from_any_origin"


def _is_preflight(environ) -> bool:
    return environ["REQUEST_METHOD"] == "OPTIONS" and bool(
        _header(environ, "Access-Control-Request-Method")
    )


@mutant(CORS_PREFLIGHT, CORS_ANSWERS)
def no_cors():
    """No Access-Control-* header at all: browsers on other origins are locked out."""
    return proxy(
        edit_response=_edit_headers(
            lambda environ, status, headers: [
                (k, v) for k, v in headers if not k.lower().startswith("access-control-")
            ]
        )
    )


@mutant(CORS_PREFLIGHT)
def preflight_needs_a_key():
    """A preflight without a key is refused with 401 (browsers never send keys in preflights)."""

    def answer(environ, sent):
        if _is_preflight(environ) and not _header(environ, "Authorization"):
            headers = [("WWW-Authenticate", "Bearer"), ("Access-Control-Allow-Origin", "*")]
            return _problem(401, "missing_api_key", headers=headers)
        return None

    return proxy(answer=answer)


@mutant(CORS_PREFLIGHT)
def preflight_forgets_authorization():
    """Preflights allow Content-Type but not Authorization."""
    return _replace_header(
        "Access-Control-Allow-Headers",
        lambda environ: "Content-Type, Prefer" if _is_preflight(environ) else None,
        only_if=lambda environ, status: _is_preflight(environ),
    )


@mutant(CORS_PREFLIGHT)
def preflight_allows_headers_by_wildcard():
    """Preflights allow headers with '*', which the Fetch standard says excludes Authorization."""
    return _replace_header(
        "Access-Control-Allow-Headers",
        lambda environ: "*",
        only_if=lambda environ, status: _is_preflight(environ),
    )


@mutant(CORS_PREFLIGHT)
def preflight_forgets_the_method():
    """Preflights allow only OPTIONS."""
    return _replace_header(
        "Access-Control-Allow-Methods",
        lambda environ: "OPTIONS",
        only_if=lambda environ, status: _is_preflight(environ),
    )


@mutant(CORS_PREFLIGHT)
def preflight_max_age_not_as_stated():
    """Preflights are cached for 5 s instead of the spec's max_age."""
    return _replace_header(
        "Access-Control-Max-Age",
        lambda environ: "5",
        only_if=lambda environ, status: _is_preflight(environ),
    )


@mutant(CORS_ANSWERS)
def cors_only_on_success():
    """Refusals carry no Access-Control-Allow-Origin, so scripts cannot read the error."""
    return _replace_header(
        "Access-Control-Allow-Origin",
        lambda environ: None,
        only_if=lambda environ, status: not status.startswith("2"),
    )


@mutant(CORS_ANSWERS)
def exposes_no_headers():
    """Answers expose no header to scripts (Retry-After, WWW-Authenticate unreadable)."""
    return _replace_header(
        "Access-Control-Expose-Headers",
        lambda environ: None,
        only_if=lambda environ, status: not _is_preflight(environ),
    )


@mutant(CORS_ANSWERS)
def exposes_only_retry_after():
    """Answers expose Retry-After but not the other documented headers."""
    return _replace_header(
        "Access-Control-Expose-Headers",
        lambda environ: "Retry-After",
        only_if=lambda environ, status: not _is_preflight(environ),
    )


@mutant(CORS_PREFLIGHT, CORS_ANSWERS)
def echoes_the_origin_without_vary():
    """The origin is echoed instead of '*', without Vary: Origin (caches mix origins up)."""
    return _replace_header(
        "Access-Control-Allow-Origin",
        lambda environ: _header(environ, "Origin"),
        only_if=lambda environ, status: bool(_header(environ, "Origin")),
    )


@mutant(CORS_PREFLIGHT, CORS_ANSWERS)
def one_fixed_origin():
    """Only one origin is allowed, though the spec allows any."""
    return _replace_header(
        "Access-Control-Allow-Origin",
        lambda environ: "https://app.imageapi.org",
        only_if=lambda environ, status: bool(_header(environ, "Origin")),
    )


@mutant(CORS_PREFLIGHT, CORS_ANSWERS)
def wildcard_origin_with_credentials():
    """'*' with Access-Control-Allow-Credentials: true, a pair browsers refuse."""
    return _replace_header(
        "Access-Control-Allow-Credentials",
        lambda environ: "true",
        only_if=lambda environ, status: bool(_header(environ, "Origin")),
    )


CORS_GENERATED = "contract_tests/test_cors.py::test_generated_images_are_readable_from_any_origin"


@mutant(CORS_GENERATED)
def cors_missing_on_generated_images():
    """A successful generation carries no CORS headers (its handler builds its own response):
    a page on another origin cannot read its images."""
    return proxy(
        edit_response=_edit_headers(
            lambda environ, status, headers: (
                headers
                if not (_is_generate(environ) and status.startswith("2"))
                else [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            )
        )
    )


@mutant(CORS_ANSWERS)
def cors_missing_on_early_refusals():
    """Refusals made before the route's handler (405, 413, 415) carry no CORS headers."""
    return proxy(
        edit_response=_edit_headers(
            lambda environ, status, headers: (
                headers
                if _status_code(status) not in (405, 413, 415)
                else [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            )
        )
    )

"""Mutants of authentication and plans: keys, the Bearer challenge, who may use which model."""

from __future__ import annotations

from mockserver.config import DEV_KEYS
from tests.mutants.proxies import (
    ENTERPRISE_KEY,
    _edit_problems,
    _header,
    _problem,
    _set_header,
    proxy,
)
from tests.mutants.registry import HTTP, mutant


@mutant("contract_tests/test_auth.py::test_unknown_keys_are_401_invalid_api_key")
def accept_any_key():
    """Any Authorization header, however wrong, is let through."""
    known = {f"Bearer {key}" for key in DEV_KEYS}
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: (
                "HTTP_AUTHORIZATION" in env and env["HTTP_AUTHORIZATION"] not in known
            ),
        )
    )


@mutant("contract_tests/test_plans.py::test_every_model_on_every_plan")
def ignore_plans():
    """Every valid key may use every model."""
    known = {f"Bearer {key}" for key in DEV_KEYS}
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: env.get("HTTP_AUTHORIZATION") in known,
        )
    )


@mutant("contract_tests/test_auth.py::test_malformed_or_missing_credentials_are_401")
def public_catalog():
    """The catalog answers without a key."""
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: env["REQUEST_METHOD"] == "GET" and "HTTP_AUTHORIZATION" not in env,
        )
    )


@mutant("contract_tests/test_auth.py::test_malformed_or_missing_credentials_are_401")
def no_bearer_challenge():
    """401s come without WWW-Authenticate."""

    def edit_response(environ, sent, status, headers, body):
        return status, [(k, v) for k, v in headers if k.lower() != "www-authenticate"], body

    return proxy(edit_response=edit_response)


@mutant(HTTP + "test_the_bearer_scheme_is_case_insensitive")
def bearer_scheme_case_sensitive():
    """'bearer <key>' is refused: the scheme is compared case-sensitively."""

    def answer(environ, sent):
        authorization = _header(environ, "Authorization") or ""
        if authorization.lower().startswith("bearer ") and not authorization.startswith("Bearer "):
            return _problem(401, "missing_api_key", headers=[("WWW-Authenticate", "Bearer")])
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_missing_and_unknown_keys_have_their_codes")
def unknown_key_reported_as_missing():
    """An unknown key gets missing_api_key instead of invalid_api_key."""

    def edit(problem):
        if problem.get("code") == "invalid_api_key":
            problem["code"] = "missing_api_key"

    return proxy(edit_response=_edit_problems(edit))

"""Mutants of rate limiting: 429s, Retry-After and the RateLimit fields."""

from __future__ import annotations

import itertools

from mockserver.config import DEV_KEYS
from tests.mutants.proxies import MODELS, SPEC, _edit_headers, _header, _problem, proxy
from tests.mutants.registry import HTTP, mutant


def _rate_limited_every_third(headers):
    """Every third GET of the catalog with a known key gets a 429 with *headers* (an unknown
    key is refused first, as the order of checks says)."""
    counter = itertools.count(1)
    known = {f"Bearer {key}" for key in DEV_KEYS}

    def answer(environ, sent):
        catalog = environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"].startswith(MODELS)
        if catalog and _header(environ, "Authorization") in known and next(counter) % 3 == 0:
            return _problem(429, "rate_limited", headers=headers)
        return None

    return proxy(answer=answer)


@mutant(HTTP + "test_every_model_is_served_by_id")
def rate_limited_without_retry_after():
    """Some requests get a 429 that does not say when to try again."""
    return _rate_limited_every_third([])


@mutant(HTTP + "test_every_model_is_served_by_id")
def rate_limited_with_a_date():
    """Some requests get a 429 whose Retry-After is not whole seconds as the spec says."""
    return _rate_limited_every_third([("Retry-After", "soon")])


@mutant(
    HTTP + "test_every_model_is_served_by_id",
    "contract_tests/test_errors.py::test_the_catalog_is_served_as_the_spec_states_it",
    equivalent=True,
)
def rate_limited_politely():
    """Some requests get a 429 with Retry-After, as the contract allows: no test may fail."""
    return _rate_limited_every_third([("Retry-After", "0")])


def _rate_limit_fields(window: int):
    """Answers to a known key carry the RateLimit fields of its plan, with *window* as `w`."""
    rates = {plan_id: plan.requests_per_minute for plan_id, plan in SPEC.plans.items()}

    def edit(environ, status, headers):
        plan = DEV_KEYS.get((_header(environ, "Authorization") or "").partition(" ")[2])
        if plan is None or not status.startswith("2"):
            return headers
        return [
            *headers,
            ("RateLimit-Policy", f'"{plan}";q={rates[plan]};w={window}'),
            ("RateLimit", f'"{plan}";r={rates[plan] - 1};t=0'),
        ]

    return proxy(edit_response=_edit_headers(edit))


RATE_LIMIT_FIELDS = "contract_tests/test_http.py::test_rate_limit_fields_state_the_plan"


@mutant(RATE_LIMIT_FIELDS)
def rate_limit_window_in_minutes():
    """RateLimit-Policy gives the window in minutes (`w=1`), not seconds."""
    return _rate_limit_fields(1)


@mutant(RATE_LIMIT_FIELDS, equivalent=True)
def rate_limit_fields_as_documented():
    """Answers carry RateLimit-Policy and RateLimit as documented: no test may fail."""
    return _rate_limit_fields(60)


@mutant(HTTP + "test_every_model_is_served_by_id")
def rate_limit_reset_disagrees_with_retry_after():
    """Some requests get a 429 whose RateLimit `t` is not its Retry-After."""
    return _rate_limited_every_third([("Retry-After", "0"), ("RateLimit", '"enterprise";r=0;t=30')])

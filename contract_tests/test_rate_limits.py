"""The rate limit itself, as the catalog's plans state it (`requests_per_minute`).

Opt-in with `--check-rate-limits`: it spends a minute's quota of one key and first waits a
minute for that quota to be whole, so run it alone (`-k rate_limit`), not beside other tests
that use the same key.
"""

from __future__ import annotations

import time

import pytest

from contract_tests.checks import assert_rate_limited
from contract_tests.spec import MODELS

WINDOW = 60  # seconds: the plans state requests per minute


def test_rate_limit_allows_the_plans_requests_per_minute_then_429(
    pytestconfig, target, contract, keys
):
    """N+1 requests within a minute: N answered, exactly one 429 with a sane Retry-After, and
    the key works again once that wait is over."""
    if not pytestconfig.getoption("check_rate_limits"):
        pytest.skip("spends a key's quota and waits a minute: opt in with --check-rate-limits")
    plans = [plan for plan in contract.catalog["plans"] if keys.get(plan["id"])]
    if not plans:
        pytest.skip("no key for any plan: set IMAGEAPI_KEY_<PLAN>")
    plan = min(plans, key=lambda plan: plan["requests_per_minute"])
    limit = plan["requests_per_minute"]
    auth = {"Authorization": f"Bearer {keys[plan['id']]}"}
    time.sleep(WINDOW)  # whatever used this key before, its quota is whole again
    started = time.monotonic()
    statuses = [
        target.request("GET", MODELS, headers=auth, wait=False).status for _ in range(limit)
    ]
    last = target.request("GET", MODELS, headers=auth, wait=False)
    elapsed = time.monotonic() - started
    assert statuses == [200] * limit, f"the {plan['id']} plan's first {limit}: {statuses}"
    assert elapsed < WINDOW / limit, f"{limit + 1} requests took {elapsed:.1f} s, too slow to tell"
    retry_after = assert_rate_limited(last, contract)
    assert 1 <= retry_after <= WINDOW, f"Retry-After: {retry_after}"
    time.sleep(retry_after)
    again = target.request("GET", MODELS, headers=auth, wait=False)
    assert again.status == 200, f"after waiting Retry-After ({retry_after} s): {again.status}"

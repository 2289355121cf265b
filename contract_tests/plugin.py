"""The contract suite as a pytest plugin: its options, the target, the keys, the reporting.

pytest contract_tests                            # the mock, in-process
pytest contract_tests --base-url URL             # any deployment
pytest contract_tests --app tests.mutants:lift_step_caps   # another WSGI app in-process

`contract_tests/conftest.py` loads this module; installed as a package it can be a `pytest11`
plugin, and `pytest --pyargs contract_tests` runs the suite.
"""

from __future__ import annotations

import importlib
import os
import random

import pytest
from hypothesis import HealthCheck, settings

from contract_tests.spec import Contract, load_contract
from contract_tests.target import Billing, BudgetExhausted, HttpTarget, WsgiTarget

KEY_VARIABLE = "IMAGEAPI_KEY_{}"
DEFAULT_APP = "mockserver.app:create_app"
BILLING = pytest.StashKey[Billing]()
TARGET = pytest.StashKey[object]()

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "dev",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser):
    group = parser.getgroup("contract", "Image API contract suite")
    group.addoption("--base-url", help="test the deployment at this URL instead of the mock")
    group.addoption(
        "--app",
        default=DEFAULT_APP,
        help="in-process target: a factory of a WSGI app, as module:name (default: the mock)",
    )
    group.addoption(
        "--request-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for each answer over HTTP (default: 120, as clients are told)",
    )
    group.addoption(
        "--dev-keys",
        action="store_true",
        help="the target is a mock started by hand: use its development keys as defaults",
    )
    group.addoption(
        "--max-billable",
        type=int,
        default=None,
        help="at most this many requests that are expected to make images (default: no limit)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # Print a seed in every run, so that any run can be repeated with --hypothesis-seed.
    if not os.environ.get("CI") and config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = random.getrandbits(32)


def pytest_report_header(config):
    target = config.getoption("base_url") or f"in-process {config.getoption('app')}"
    seed = config.getoption("hypothesis_seed", None)
    mode = "ci profile (derandomized)" if os.environ.get("CI") else f"--hypothesis-seed={seed}"
    budget = config.getoption("max_billable")
    return [
        f"contract target: {target}",
        f"hypothesis: {mode}",
        f"billable budget: {'none' if budget is None else budget}",
    ]


@pytest.fixture(scope="session")
def contract() -> Contract:
    return load_contract()


@pytest.fixture(scope="session")
def keys(pytestconfig, contract) -> dict[str, str | None]:
    """The API key of each plan: IMAGEAPI_KEY_<PLAN>, else the mock's development key when the
    target is the mock (in-process, or by URL with --dev-keys)."""
    defaults = {}
    if not pytestconfig.getoption("base_url") or pytestconfig.getoption("dev_keys"):
        from mockserver.config import DEV_KEYS

        defaults = {plan: key for key, plan in DEV_KEYS.items()}
    return {
        plan: os.environ.get(KEY_VARIABLE.format(plan.upper())) or defaults.get(plan)
        for plan in contract.plans
    }


@pytest.fixture(scope="session")
def billing(pytestconfig) -> Billing:
    billing = Billing(pytestconfig.getoption("max_billable"))
    pytestconfig.stash[BILLING] = billing
    return billing


@pytest.fixture(scope="session")
def target(pytestconfig, billing, keys):
    # Keys that came from the environment are printed as their variables, never as values.
    secrets = {
        key: KEY_VARIABLE.format(plan.upper())
        for plan, key in keys.items()
        if key and os.environ.get(KEY_VARIABLE.format(plan.upper()))
    }
    base_url = pytestconfig.getoption("base_url")
    if base_url:
        timeout = pytestconfig.getoption("request_timeout")
        made = HttpTarget(base_url, billing, timeout=timeout, secrets=secrets)
    else:
        module, _, factory = pytestconfig.getoption("app").partition(":")
        app = getattr(importlib.import_module(module), factory)()
        made = WsgiTarget(app, billing, secrets=secrets)
    pytestconfig.stash[TARGET] = made
    return made


@pytest.fixture
def reserve_billable(billing):
    """Call before a request expected to make an image; skips the test once the budget is spent."""

    def reserve() -> None:
        try:
            billing.reserve()
        except BudgetExhausted as exc:
            pytest.skip(str(exc))

    return reserve


def key_for(keys: dict, plan: str) -> str:
    """The key of *plan*, or skip the test and say which variable would provide it."""
    key = keys.get(plan)
    if not key:
        pytest.skip(f"no key for the {plan} plan: set {KEY_VARIABLE.format(plan.upper())}")
    return key


def key_including(contract: Contract, keys: dict, model: str) -> str:
    """A known key whose plan includes *model*, or skip naming the variables that would do."""
    plans = contract.models[model]["plans"]
    for plan in plans:
        if keys.get(plan):
            return keys[plan]
    variables = ", ".join(KEY_VARIABLE.format(p.upper()) for p in plans)
    pytest.skip(f"no key for a plan that includes {model}: set one of {variables}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    target = item.config.stash.get(TARGET, None)
    if target is None:
        return
    if report.when == "call" and report.failed and target.exchanges:
        recent = target.exchanges[-3:]
        lines = [f"# -> {exchange.status}\n{target.curl(exchange)}" for exchange in recent]
        report.sections.append(("Reproduce (last requests, newest last)", "\n".join(lines)))
    if report.when == "teardown":
        target.exchanges.clear()


def pytest_terminal_summary(terminalreporter, config):
    billing = config.stash.get(BILLING, None)
    if billing is not None:
        budget = "no limit" if billing.limit is None else f"budget {billing.limit}"
        terminalreporter.write_line(f"billable requests made: {billing.made} ({budget})")

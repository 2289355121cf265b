"""The contract suite as a pytest plugin: its options, the target, the keys, the reporting.

pytest contract_tests                            # the mock, in-process
pytest contract_tests --base-url URL             # any deployment
pytest contract_tests --base-url URL -n auto     # in parallel (pytest-xdist), one budget
pytest contract_tests --app tests.mutants:lift_step_caps   # another WSGI app in-process

`contract_tests/conftest.py` loads this module; installed as a package it is a `pytest11`
plugin, and `pytest --pyargs contract_tests` runs the suite.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import random
import shutil
import tempfile
from functools import partial
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, Phase, settings

from contract_tests.checks import retry_delay
from contract_tests.redact import Credentials
from contract_tests.spec import Contract, load_contract, spec_path, use_spec
from contract_tests.target import Billing, HttpTarget, Target, WsgiTarget

KEY_VARIABLE = "IMAGEAPI_KEY_{}"
DEFAULT_APP = "mockserver.app:create_app"
# The mock's development keys, as the README documents them (tests/test_contract_plugin.py
# checks that the mock agrees); the suite never imports the server to learn them.
DEV_KEYS = {
    "free": "sk_test_free_0123456789abcdef",
    "basic": "sk_test_basic_0123456789abcdef",
    "pro": "sk_test_pro_0123456789abcdef",
    "enterprise": "sk_test_enterprise_0123456789abcdef",
}
BILLING = pytest.StashKey[Billing]()
CREDENTIALS = pytest.StashKey[Credentials]()
TARGET = pytest.StashKey[object]()
SHARED_DIR = pytest.StashKey[Path]()

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
# A first look, or a check of the suite's own outputs: few examples, no shrinking
# (--hypothesis-profile=quick).
settings.register_profile(
    "quick",
    parent=settings.get_profile("ci"),
    max_examples=5,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
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
        help="at most this many requests that are expected to make images, across all "
        "workers; 429 retries of such requests count too (default: no limit)",
    )
    group.addoption(
        "--spec",
        default=None,
        metavar="PATH_OR_URL",
        help="check against this OpenAPI document, a file or an http(s) URL "
        "(default: the spec bundled with the suite)",
    )
    group.addoption(
        "--origin",
        default=None,
        help="the Origin to send in CORS checks, for a target that allows a fixed list of "
        "origins (default: arbitrary generated origins)",
    )
    group.addoption(
        "--max-rate-limit-wait",
        type=float,
        default=120.0,
        help="seconds one request may spend waiting out 429s and busy 503s (Retry-After) before "
        "the answer counts as a failure (default: 120)",
    )
    group.addoption(
        "--check-rate-limits",
        action="store_true",
        help="also test the rate limit itself: spends a minute's quota of one key and waits "
        "for it to come back; run it alone (-k rate_limit), not beside other tests",
    )


def is_worker(config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # One seed for the run, printed in the header, and the same in every xdist worker, so that
    # any run can be repeated with --hypothesis-seed.
    if is_worker(config):
        config.option.hypothesis_seed = config.workerinput["contract_seed"]
        shared = Path(config.workerinput["contract_shared_dir"])
    else:
        if not os.environ.get("CI") and config.getoption("hypothesis_seed", None) is None:
            config.option.hypothesis_seed = random.getrandbits(32)
        shared = Path(tempfile.mkdtemp(prefix="contract-tests-"))
    config.stash[SHARED_DIR] = shared
    if config.getoption("spec"):
        use_spec(fetched_spec(config.getoption("spec"), shared))
    config.stash[BILLING] = Billing(config.getoption("max_billable"), shared / "billing.json")
    credentials = Credentials()
    for plan, key in plan_keys(config).items():
        credentials.add_known(key, KEY_VARIABLE.format(plan.upper()))
    config.stash[CREDENTIALS] = credentials


def fetched_spec(location: str, folder: Path) -> Path:
    """The spec named by ``--spec``: a local file as it is, a URL fetched into *folder*."""
    if not location.startswith(("http://", "https://")):
        if not Path(location).is_file():
            raise pytest.UsageError(f"--spec {location}: no such file")
        return Path(location)
    try:
        response = requests.get(location, timeout=30)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise pytest.UsageError(f"--spec {location}: cannot fetch it: {exc}") from exc
    path = folder / ("openapi.json" if location.endswith(".json") else "openapi.yaml")
    path.write_bytes(response.content)
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: every worker shares the controller's seed and billable budget."""
    node.workerinput["contract_seed"] = node.config.getoption("hypothesis_seed", None)
    node.workerinput["contract_shared_dir"] = str(node.config.stash[SHARED_DIR])


def pytest_unconfigure(config):
    shared = config.stash.get(SHARED_DIR, None)
    if shared is not None and not is_worker(config):
        shutil.rmtree(shared, ignore_errors=True)


def pytest_report_header(config):
    target = config.getoption("base_url") or f"in-process {config.getoption('app')}"
    seed = config.getoption("hypothesis_seed", None)
    mode = "ci profile (derandomized)" if os.environ.get("CI") else f"--hypothesis-seed={seed}"
    budget = config.getoption("max_billable")
    return [
        f"contract target: {target}",
        f"spec: {config.getoption('spec') or spec_path()}",
        f"hypothesis: {mode}",
        f"billable budget: {'none' if budget is None else budget} (shared by all workers)",
    ]


def plan_keys(config) -> dict[str, str | None]:
    """The API key of each plan: IMAGEAPI_KEY_<PLAN>, else the mock's development key when the
    target is the mock (in-process, or by URL with --dev-keys)."""
    defaults = {}
    if not config.getoption("base_url") or config.getoption("dev_keys"):
        defaults = DEV_KEYS
    return {
        plan: os.environ.get(KEY_VARIABLE.format(plan.upper())) or defaults.get(plan)
        for plan in load_contract().plans
    }


@pytest.fixture(scope="session")
def contract() -> Contract:
    return load_contract()


@pytest.fixture(scope="session")
def keys(pytestconfig) -> dict[str, str | None]:
    return plan_keys(pytestconfig)


@pytest.fixture(scope="session")
def billing(pytestconfig) -> Billing:
    return pytestconfig.stash[BILLING]


@pytest.fixture(scope="session")
def target(pytestconfig, billing, contract):
    options = {
        "credentials": pytestconfig.stash[CREDENTIALS],
        "retry_delay": partial(retry_delay, contract=contract),
        "max_wait": pytestconfig.getoption("max_rate_limit_wait"),
    }
    base_url = pytestconfig.getoption("base_url")
    if base_url:
        timeout = pytestconfig.getoption("request_timeout")
        made: Target = HttpTarget(base_url, billing, timeout=timeout, **options)
    else:
        module, _, factory = pytestconfig.getoption("app").partition(":")
        app = getattr(importlib.import_module(module), factory)()
        made = WsgiTarget(app, billing, **options)
    pytestconfig.stash[TARGET] = made
    return made


@pytest.fixture
def reserve_billable(billing):
    """Call before a request expected to make an image; skips the test once the budget is spent."""
    return billing.reserve


def key_for(keys: dict, plan: str) -> str:
    """The key of *plan*, or skip the test and say which variable would provide it."""
    key = keys.get(plan)
    if not key:
        pytest.skip(f"no key for the {plan} plan: set {KEY_VARIABLE.format(plan.upper())}")
    return key


def key_including(contract: Contract, keys: dict, model: str) -> str:
    """A known key whose plan includes *model*, the one with the highest rate limit (so that a
    target enforcing limits slows the run least), or skip naming the variables that would do."""
    rate = {plan["id"]: plan["requests_per_minute"] for plan in contract.catalog["plans"]}
    plans = sorted(contract.models[model]["plans"], key=lambda plan: -rate.get(plan, 0))
    for plan in plans:
        if keys.get(plan):
            return keys[plan]
    variables = ", ".join(KEY_VARIABLE.format(p.upper()) for p in plans)
    pytest.skip(f"no key for a plan that includes {model}: set one of {variables}")


# Reporting: a curl per failure, and no credential in any report ---------------------------------


class RedactedRepr:
    """A failure's text with every credential cut out; it prints, and goes into the JUnit file,
    as the original would have."""

    def __init__(self, text: str, reprcrash):
        self.text = text
        self.reprcrash = reprcrash

    def toterminal(self, tw) -> None:
        for line in self.text.splitlines():
            tw.line(line, red=line.startswith("E "))

    def __str__(self) -> str:
        return self.text


def redact_report(report, credentials: Credentials) -> None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        report.longrepr = (*longrepr[:2], credentials.redact(str(longrepr[2])))
    elif longrepr is not None:
        crash = getattr(longrepr, "reprcrash", None)
        if crash is not None:
            crash = dataclasses.replace(crash, message=credentials.redact(crash.message))
        report.longrepr = RedactedRepr(credentials.redact(str(longrepr)), crash)
    report.sections = [(title, credentials.redact(content)) for title, content in report.sections]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    target = item.config.stash.get(TARGET, None)
    if target is not None and report.when == "call" and report.failed and target.exchanges:
        recent = target.exchanges[-3:]
        lines = [f"# -> {exchange.status}\n{target.curl(exchange)}" for exchange in recent]
        report.sections.append(("Reproduce (last requests, newest last)", "\n".join(lines)))
    if target is not None and report.when == "teardown":
        target.exchanges.clear()
    redact_report(report, item.config.stash[CREDENTIALS])


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    redact_report(outcome.get_result(), collector.config.stash[CREDENTIALS])


def pytest_terminal_summary(terminalreporter, config):
    if is_worker(config):
        return
    billing = config.stash[BILLING]
    counts = billing.counts()
    budget = "no limit" if billing.limit is None else f"budget {billing.limit}"
    terminalreporter.write_line(
        f"billable requests made: {counts['made']} ({budget}; {counts['reserved']} reserved; "
        f"{counts['waited']} answers of 429 or 503 waited out)"
    )

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

from contract_tests import coverage as cov
from contract_tests import gate, report_html, report_json
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
RECORDER = pytest.StashKey["Recorder"]()
REQUIRED = pytest.StashKey[gate.Requirements]()
REPORTS = pytest.StashKey[list[tuple[str, Path]]]()
REPORT_KINDS = {"json": report_json.write, "html": report_html.write}
EXIT_MEANINGS = {
    0: "the contract holds and the gate's requirements are met",
    gate.EXIT_BROKEN: "the contract is broken: a test failed",
    gate.EXIT_TOO_LITTLE: "too little verified",
    gate.EXIT_TARGET: "the target is unreachable or misconfigured",
}

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
    group.addoption(
        "--report",
        action="append",
        default=[],
        metavar="KIND:PATH",
        help="write the coverage of the contract and the failures: json:PATH or html:PATH "
        "(repeatable)",
    )
    group.addoption(
        "--require",
        action="append",
        default=[],
        metavar="KIND=A,B|all",
        help="fail the run (exit 6) unless these cells were verified: plans=free,basic, "
        "models=sdxl, promises=all (or ids), codes=all (or operationIds); repeatable",
    )
    group.addoption(
        "--min-coverage",
        type=float,
        default=None,
        metavar="FRACTION",
        help="fail the run (exit 6) unless this fraction of the cells it could verify was "
        "verified (cells the team's own options skip, and unobservable ones, do not count)",
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
    contract = load_contract()
    recorder = Recorder(contract, {key: plan for plan, key in plan_keys(config).items() if key})
    config.stash[RECORDER] = recorder
    if not is_worker(config):  # the controller hears every test's outcome, the workers' too
        config.pluginmanager.register(recorder, "contract-coverage")
    known = {
        "plans": contract.plans,
        "models": list(contract.models),
        "promises": [p.id for p in cov.load_promises() if p.observable],
        "codes": sorted({operation for operation, _, _ in cov.documented_codes(contract)}),
    }
    try:
        config.stash[REQUIRED] = gate.parse_requirements(
            config.getoption("require"), config.getoption("min_coverage"), known
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc
    reports = []
    for value in config.getoption("report"):
        kind, colon, path = value.partition(":")
        if not colon or kind not in REPORT_KINDS or not path:
            raise pytest.UsageError(f"--report {value}: expected json:PATH or html:PATH")
        reports.append((kind, Path(path)))
    config.stash[REPORTS] = reports


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
    pytestconfig.stash[RECORDER].watch(made)
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
        answer = item.config.stash[RECORDER].last_answer
        if answer:
            report.sections.append((ANSWER_SECTION, answer))
    if target is not None and report.when == "teardown":
        target.exchanges.clear()
    redact_report(report, item.config.stash[CREDENTIALS])


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    redact_report(outcome.get_result(), collector.config.stash[CREDENTIALS])


# Coverage of the contract and the gate -----------------------------------------------------------

ANSWER_SECTION = "Answer received (last)"
REPRODUCE_SECTION = "Reproduce (last requests, newest last)"


class Recorder:
    """Observes every exchange of this process's target: the cells each test touched (sent to
    the controller by pytest-xdist's workeroutput), the last answer (for a failure's report),
    and, in the controller, every test's outcome."""

    def __init__(self, contract: Contract, plans_by_key: dict[str, str]):
        self.contract = contract
        self.plans_by_key = plans_by_key
        self.nodeid = ""
        self.observed: dict[str, cov.Observed] = {}
        self.last_answer = ""
        self.outcomes: dict[str, cov.Outcome] = {}
        self.failures: list[dict] = []
        self.coverage: cov.Coverage | None = None
        self.verdict: gate.Verdict | None = None
        self.exit_status: int | None = None

    def watch(self, target: Target) -> None:
        send = target._send

        def observed(method, path, headers, data):
            reply = send(method, path, headers, data)
            self.observe(method, path, headers, data, reply)
            return reply

        target._send = observed  # type: ignore[method-assign]

    def observe(self, method, path, headers, data, reply) -> None:
        agreed, contradicted = cov.observed_cells(
            self.contract, self.plans_by_key, method, path, headers, data,
            reply.status, reply.media_type, reply.body,
        )  # fmt: skip
        self.observed.setdefault(self.nodeid, cov.Observed()).add(agreed, contradicted)
        # Only the start of the body is kept: a generation's answer holds megabytes of images.
        body = reply.body[:2000].decode("utf-8", "backslashreplace")
        body += "...(truncated)" if len(reply.body) > 2000 else ""
        headers_text = "\n".join(f"{name}: {value}" for name, value in reply.headers.items())
        self.last_answer = f"HTTP {reply.status}\n{headers_text}\n\n{body}"

    def pytest_runtest_logreport(self, report) -> None:
        """A test's outcome, from its reports (setup, call, teardown), as the controller saw it."""
        nodeid = report.nodeid
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            reason = reason.removeprefix("Skipped: ")
            if nodeid not in self.outcomes:
                self.outcomes[nodeid] = cov.Outcome("skipped", reason)
        elif report.failed:
            self.outcomes[nodeid] = cov.Outcome("failed")
            self.failures.append(self.failure(report))
        elif report.when == "call":
            self.outcomes.setdefault(nodeid, cov.Outcome("passed"))

    def failure(self, report) -> dict:
        sections = dict(report.sections)
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)[-2000:]
        promises = [
            {"id": p.id, "text": p.text, "stated_in": p.stated_in}
            for p in cov.promises_of_test(cov.load_promises(), report.nodeid)
        ]
        return {
            "test": report.nodeid,
            "when": report.when,
            "message": message,
            "promises": promises,
            "curl": sections.get(REPRODUCE_SECTION, ""),
            "answer": sections.get(ANSWER_SECTION, ""),
        }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item):
    recorder = item.config.stash[RECORDER]
    recorder.nodeid, recorder.last_answer = item.nodeid, ""
    yield


def pytest_sessionstart(session):
    config = session.config
    if is_worker(config) or not config.getoption("base_url"):
        return
    problem = target_problem(config)
    if problem:
        recorder = config.stash[RECORDER]
        recorder.exit_status = gate.EXIT_TARGET
        recorder.verdict = gate.Verdict(gate.EXIT_TARGET, [f"contract target: {problem}"])
        # pytest calls no pytest_sessionfinish after an exit here: the reports are written now,
        # every cell never reached.
        settle(recorder)
        write_reports(config, recorder)
        pytest.exit(f"contract target: {problem}", returncode=gate.EXIT_TARGET)


def target_problem(config) -> str | None:
    """Why the target cannot be tested at all, if it cannot: no answer at --base-url, or a key
    it does not know (each key is sent once to GET /api/v1/models, which is never billed)."""
    url = config.getoption("base_url").rstrip("/") + "/api/v1/models"
    timeout = min(config.getoption("request_timeout"), 30)
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        return f"unreachable: GET {url} got no answer ({type(exc).__name__})"
    for plan, key in plan_keys(config).items():
        if not key:
            continue
        try:
            reply = requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
        except requests.RequestException as exc:
            return f"unreachable: GET {url} got no answer ({type(exc).__name__})"
        if reply.status_code == 401:
            variable = KEY_VARIABLE.format(plan.upper())
            return f"misconfigured: {variable} is not a key the target knows (401 at GET {url})"
    return None


def pytest_sessionfinish(session):
    config = session.config
    recorder = config.stash[RECORDER]
    if is_worker(config):
        config.workeroutput["contract_observed"] = {
            nodeid: dataclasses.asdict(seen) for nodeid, seen in recorder.observed.items()
        }
        return
    coverage = settle(recorder)
    status = int(session.exitstatus)
    if status == 0:
        missing = [KEY_VARIABLE.format(p.upper()) for p, k in plan_keys(config).items() if not k]
        recorder.verdict = gate.judge(coverage, config.stash[REQUIRED], missing)
        status = recorder.verdict.status
        session.exitstatus = status
    else:
        recorder.verdict = gate.Verdict(status, [f"contract gate: {exit_meaning(status)}"])
    recorder.exit_status = status
    write_reports(config, recorder)


def settle(recorder: Recorder) -> cov.Coverage:
    """The coverage, from the outcomes so far."""
    recorder.coverage = cov.compute(
        load_contract(), cov.load_promises(), recorder.outcomes, recorder.observed
    )
    recorder.coverage.failures = recorder.failures
    return recorder.coverage


def write_reports(config, recorder: Recorder) -> None:
    document = report_document(config, recorder)
    for kind, path in config.stash[REPORTS]:
        REPORT_KINDS[kind](path, document)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist: a worker's observations join the controller's."""
    observed = getattr(node, "workeroutput", {}).get("contract_observed", {})
    mine = node.config.stash[RECORDER].observed
    for nodeid, seen in observed.items():
        mine.setdefault(nodeid, cov.Observed()).merge(cov.Observed(**seen))


def exit_meaning(status: int) -> str:
    return EXIT_MEANINGS.get(status, f"pytest exit status {status}")


def report_document(config, recorder: Recorder) -> dict:
    """What --report writes, every string redacted."""
    assert recorder.coverage is not None and recorder.verdict is not None
    tests = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in recorder.outcomes.values():
        tests[outcome.outcome] += 1
    document = {
        "target": config.getoption("base_url") or f"in-process {config.getoption('app')}",
        "spec": str(config.getoption("spec") or spec_path()),
        "exit_status": recorder.exit_status,
        "exit_meaning": exit_meaning(int(recorder.exit_status or 0)),
        "gate": {"status": recorder.verdict.status, "lines": recorder.verdict.lines},
        "tests": tests,
        "coverage": recorder.coverage.as_json(),
    }
    return redacted(document, config.stash[CREDENTIALS])


# A cell's own fields come from the spec and the suite, never from a target or a key, and a
# credential the suite sent may be any word (hypothesis draws tokens such as "verified" from the
# suite's own constants): they and the document's keys stay as they are; every other string is
# redacted.
CELL_FIELDS = frozenset({"id", "group", "row", "column", "expect", "state"})


def redacted(value, credentials: Credentials, key: str | None = None):
    if isinstance(value, dict):
        return {name: redacted(item, credentials, name) for name, item in value.items()}
    if isinstance(value, list):
        return [redacted(item, credentials, key) for item in value]
    if isinstance(value, str) and key not in CELL_FIELDS:
        return credentials.redact(value)
    return value


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
    recorder = config.stash[RECORDER]
    if recorder.coverage is None or recorder.verdict is None:
        return
    for line in cov.summary_lines(recorder.coverage):
        terminalreporter.write_line(line)
    for line in recorder.verdict.lines:
        terminalreporter.write_line(line, red=recorder.verdict.status != 0, bold=True)
    for kind, path in config.stash[REPORTS]:
        terminalreporter.write_line(f"contract report ({kind}): {path}")

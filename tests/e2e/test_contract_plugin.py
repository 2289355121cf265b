"""The contract suite's own machinery: its keys, masking, 429 handling, the shared budget, and a
parallel run over HTTP. (What the suite checks is tested by running it: tests/test_mutants.py.)"""

from __future__ import annotations

import base64
import json
import os
import re
import threading

import pytest
from requests.structures import CaseInsensitiveDict

from contract_tests.checks import retry_delay
from contract_tests.plugin import DEV_KEYS
from contract_tests.redact import Credentials
from contract_tests.spec import MODELS, load_contract
from contract_tests.target import Billing, BudgetExhausted, Reply, Target, WsgiTarget
from mockserver import config as server_config
from mockserver.app import create_app
from tests.support import RunningServer, run_contract_suite

CONTRACT = load_contract()


def test_the_suites_dev_keys_are_the_mocks():
    """The suite knows the mock's development keys without importing the server."""
    assert {plan: key for key, plan in server_config.DEV_KEYS.items()} == DEV_KEYS


# Masking --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "masked"),
    [
        ("Authorization", "Bearer sk_test_pro_0123456789abcdef", "Bearer $IMAGEAPI_KEY_PRO"),
        ("Authorization", "Bearer alice-3f9a8b7c", "Bearer ***"),
        ("authorization", "bearer sk_live_abc.SECRETPART.xyz", "bearer ***"),
        ("Authorization", "Basic YWxpY2U6czNjcjN0", "Basic ***"),
        ("Authorization", "sk_test_pro_0123456789abcdef", "$IMAGEAPI_KEY_PRO"),
        ("Authorization", "Bearer  two  spaces", "Bearer ***"),
        ("Proxy-Authorization", "Digest username=x, response=abc", "Digest ***"),
        ("Cookie", "session=abc123; theme=dark", "session=***; theme=***"),
        ("X-Api-Key", "whatever-secret", "***"),
        ("Content-Type", "application/json", "application/json"),
    ],
)
def test_credential_headers_are_masked_whole(name, value, masked):
    credentials = Credentials({"sk_test_pro_0123456789abcdef": "IMAGEAPI_KEY_PRO"})
    assert credentials.mask_header(name, value) == masked


def test_credential_query_parameters_are_masked():
    credentials = Credentials()
    masked = credentials.mask_url("/api/v1/models?api_key=s3cret123&limit=2&access_token=t0ken99")
    assert masked == "/api/v1/models?api_key=***&limit=2&access_token=***"


def test_free_text_loses_every_credential_sent():
    credentials = Credentials({"sk_known_0123456789": "IMAGEAPI_KEY_FREE"})
    basic = base64.b64encode(b"alice:hunter2-secret").decode()
    credentials.note_request(
        "/x?token=query-secret-1",
        {
            "Authorization": "Bearer sk_known_012345678A",  # a known key, one character changed
            "Proxy-Authorization": f"Basic {basic}",
            "Cookie": "session=cookie-secret-9",
        },
    )
    text = (
        "keys = {'free': 'sk_known_0123456789'} sent sk_known_012345678A with "
        f"{basic} (hunter2-secret) cookie-secret-9 query-secret-1"
    )
    redacted = credentials.redact(text)
    for secret in (
        "sk_known_0123456789",
        "sk_known_012345678A",
        basic,
        "hunter2-secret",
        "cookie-secret-9",
        "query-secret-1",
    ):
        assert secret not in redacted
    assert "$IMAGEAPI_KEY_FREE" in redacted
    assert "***" in repr(credentials) or "masked" in repr(credentials)


# A failing run prints no key -------------------------------------------------------------------

SHAPED_KEYS = {
    "free": "alice-3f9a8b7c6d5e4f1a",  # no sk_ prefix
    "basic": "sk_live_abc.SECRETPART.xyz",  # dotted
    "pro": "sk_test_pro_fedcba9876543210",
    "enterprise": "dXNlcjpzM2NyM3Rfa2V5Xzk5",  # base64, as a Basic credential would be
}


def test_a_failing_run_prints_no_key_anywhere(tmp_path):
    """Against a target that fails many tests, with --showlocals, -rA and a JUnit file: no key
    of any shape appears in the output or the file."""
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({key: plan for plan, key in SHAPED_KEYS.items()}))
    junit = tmp_path / "junit.xml"
    env = {
        **os.environ,
        "CI": "true",
        "MOCKSERVER_KEYS": str(keys_file),
        **{f"IMAGEAPI_KEY_{plan.upper()}": key for plan, key in SHAPED_KEYS.items()},
    }
    result = run_contract_suite(
        "--app", "tests.mutants:errors_as_plain_json", "--showlocals", "--tb=long", "-rA",
        "-vv", f"--junitxml={junit}", "--hypothesis-profile=quick",
        "-k", "auth or errors or http or conformance",
        env=env, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr + junit.read_text()
    assert result.returncode == 1, output[-2000:]
    assert "failed" in result.stdout and "<failure" in output
    assert "$IMAGEAPI_KEY_" in output  # the keys are named, as the variables that hold them
    for plan, key in SHAPED_KEYS.items():
        for secret in (key, base64.b64encode(key.encode()).decode(), "SECRETPART"):
            assert secret not in output, f"the {plan} key ({secret[:4]}...) was printed"


# 429 ------------------------------------------------------------------------------------------


def test_a_429_without_retry_after_is_a_failure():
    problem = json.dumps(
        {"type": "about:blank", "title": "x", "status": 429, "code": "rate_limited"}
    )
    headers = CaseInsensitiveDict({"Content-Type": "application/problem+json"})
    with pytest.raises(AssertionError, match="Retry-After"):
        retry_delay(Reply(429, headers, problem.encode()), CONTRACT)
    headers["Retry-After"] = "soon"
    with pytest.raises(AssertionError, match="whole seconds"):
        retry_delay(Reply(429, headers, problem.encode()), CONTRACT)
    headers["Retry-After"] = "3"
    assert retry_delay(Reply(429, headers, problem.encode()), CONTRACT) == 3


def test_a_busy_503_is_waited_out_and_other_answers_are_not():
    problem = json.dumps(
        {"type": "about:blank", "title": "x", "status": 503, "code": "model_unavailable"}
    ).encode()
    headers = CaseInsensitiveDict({"Content-Type": "application/problem+json"})
    assert retry_delay(Reply(503, headers, problem), CONTRACT) is None  # no Retry-After
    headers["Retry-After"] = "4"
    assert retry_delay(Reply(503, headers, problem), CONTRACT) == 4
    assert retry_delay(Reply(500, headers, problem), CONTRACT) is None
    assert retry_delay(Reply(200, CaseInsensitiveDict(), b"{}"), CONTRACT) is None


def test_a_busy_503_is_resent_until_it_is_answered(tmp_path):
    """A target whose model is busy twice (503 with Retry-After: 0), then answers: the suite's
    request ends in the answer, and both waits are counted."""
    answers = iter([503, 503, 200])
    billing = Billing(None, tmp_path / "billing.json")

    class Busy(Target):
        def _send(self, method, path, headers, data):
            status = next(answers)
            content = {"Content-Type": "application/problem+json", "Retry-After": "0"}
            return Reply(status, CaseInsensitiveDict(content if status == 503 else {}), b"{}")

    target = Busy(
        "http://busy.test", billing, retry_delay=lambda reply: retry_delay(reply, CONTRACT)
    )
    reply = target.generate({"prompt": "busy"}, "k")
    assert reply.status == 200
    assert billing.counts()["waited"] == 2


@pytest.mark.parametrize(
    ("status", "headers", "excused"),
    [
        (503, {"Retry-After": ["5"], "Content-Type": ["application/problem+json"]}, True),
        (503, {"content-type": ["application/problem+json; v=1"], "retry-after": ["1"]}, True),
        (503, {"Content-Type": ["application/problem+json"]}, False),
        (503, {"Retry-After": ["5"], "Content-Type": ["text/html"]}, False),
        (500, {"Retry-After": ["5"], "Content-Type": ["application/problem+json"]}, False),
    ],
)
def test_only_a_documented_503_is_excused_from_the_server_error_check(status, headers, excused):
    """Schemathesis hands the check its own Response, whose header names are lower case: the
    CI run that found this failed on a queue-full 503 that carried Retry-After."""
    import requests
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.transport import Response

    from contract_tests.test_conformance import documented_unavailability

    request = requests.Request("POST", "http://target/api/v1/generate").prepare()
    response = Response(status, headers, b"{}", request=request, elapsed=0.1, verify=True)
    assert documented_unavailability(response) == ([not_a_server_error] if excused else [])


def test_429s_are_waited_out(tmp_path):
    """Against the mock enforcing the plans' limits, more requests than the free plan allows in
    a minute all end in 200: each 429 is checked and waited out, and counted."""
    app = create_app(server_config.Config(rate_limits=True))
    billing = Billing(None, tmp_path / "billing.json")
    target = WsgiTarget(app, billing, retry_delay=lambda reply: retry_delay(reply, CONTRACT))
    free = next(p for p in CONTRACT.catalog["plans"] if p["id"] == "free")
    auth = {"Authorization": f"Bearer {DEV_KEYS['free']}"}
    statuses = [
        target.request("GET", MODELS, headers=auth).status
        for _ in range(free["requests_per_minute"] + 1)
    ]
    assert statuses == [200] * (free["requests_per_minute"] + 1)
    assert billing.counts()["waited"] == 1


# The shared budget ----------------------------------------------------------------------------


def test_the_budget_is_shared_and_never_exceeded(tmp_path):
    """Eight 'workers', each with its own Billing on the one file, reserve 40 times each."""
    path = tmp_path / "billing.json"
    granted = []

    def worker():
        billing = Billing(5, path)
        for _ in range(40):
            try:
                billing.reserve()
                granted.append(1)
            except BudgetExhausted:
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 5
    assert Billing(5, path).counts()["reserved"] == 5


@pytest.fixture(scope="module")
def http_mock():
    running = RunningServer("--workers", "1")
    yield running
    running.stop()


def test_a_parallel_run_shares_one_seed_one_budget_and_one_junit_file(http_mock, tmp_path):
    junit = tmp_path / "junit.xml"
    result = run_contract_suite(
        "-n", "2", "--base-url", http_mock.url, "--dev-keys", "--max-billable", "6",
        f"--junitxml={junit}", "-k", "plans or test_defaults or preflight",
        ci=False, timeout=600,  # a random seed, which the run must print once
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    seeds = re.findall(r"--hypothesis-seed=(\d+)", result.stdout)
    assert len(seeds) == 1, result.stdout[:2000]  # one seed, printed once, used by both workers
    made = int(re.search(r"billable requests made: (\d+)", result.stdout).group(1))
    assert 0 < made <= 6, result.stdout[-1000:]
    cases = re.findall(r"<testcase ", junit.read_text())
    collected = int(re.search(r"(\d+) passed", result.stdout).group(1))
    assert len(cases) >= collected > 0
    assert "skipped" in result.stdout  # the tests after the budget was spent

"""The consumers' pytest plugin, run as a consumer runs it (``pytest -p mockserver.testing`` in
a pytest of its own): a toy client that retries after a 429 makes exactly 2 journal entries,
and the next test starts with an empty journal."""

from __future__ import annotations

from tests.support import ROOT

pytest_plugins = ["pytester"]

# A consumer's test file: its own client, tested against the mock.
CONSUMER_TESTS = '''
import json
import time
import urllib.error
import urllib.request


def generate(base_url, key, prompt):
    """A toy client: one generation, retried once after a 429 as Retry-After says."""
    for attempt in range(2):
        request = urllib.request.Request(
            base_url + "/api/v1/generate",
            data=json.dumps({"prompt": prompt, "width": 512, "height": 512}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            if error.code != 429 or attempt:
                raise
            time.sleep(int(error.headers["Retry-After"]))


def test_the_client_retries_once_after_a_429(imageapi_mock):
    imageapi_mock.fail_next(1, 429, key=imageapi_mock.keys["basic"])
    result = generate(imageapi_mock.url, imageapi_mock.keys["basic"], "a red fox")
    assert result["images"]
    assert imageapi_mock.count(path="/api/v1/generate") == 2
    assert [e["status"] for e in imageapi_mock.requests(method="POST")] == [200, 429]
    assert imageapi_mock.count(status=429, plan="basic") == 1


def test_the_next_test_starts_with_an_empty_journal(imageapi_mock):
    assert imageapi_mock.count() == 0
    assert imageapi_mock.requests() == []


def test_seeded_faults_can_be_turned_on_for_one_test(imageapi_mock):
    imageapi_mock.faults("rate=1,kinds=503,seed=1")
    try:
        generate(imageapi_mock.url, imageapi_mock.keys["pro"], "a red fox")
    except urllib.error.HTTPError as error:
        assert error.code == 503
    else:
        raise AssertionError("no 503")
    assert imageapi_mock.count(code="model_unavailable") == 1
'''


def test_the_plugin_gives_each_test_a_clean_mock(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # this tree's mockserver, in the subprocesses
    pytester.makepyfile(test_consumer=CONSUMER_TESTS)
    result = pytester.runpytest_subprocess("-p", "mockserver.testing", "-q", timeout=300)
    result.assert_outcomes(passed=3)

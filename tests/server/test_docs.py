"""The docs are executed, so that they cannot rot: every shell, Python and JavaScript block of
README.md, ARCHITECTURE.md, CONTRIBUTING.md and docs/*.md runs against a started mock (its
``http://127.0.0.1:8000`` pointed at the test server), unless the line before the block says
``<!-- not run: why -->``, and prints what each ``<!-- prints: TEXT -->`` line after it
says; the TypeScript excerpt is type-checked against the generated types;
the README's key table's keys get their plans; every relative link leads to a file and heading
that exist; the README stays short; and no figure names a commit or an issue."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support import ROOT

README = ROOT / "README.md"
DOCS = [README, ROOT / "ARCHITECTURE.md", ROOT / "CONTRIBUTING.md", *sorted(ROOT.glob("docs/*.md"))]
MOCK_URL = "http://127.0.0.1:8000"
RUNNERS = {
    "bash": lambda code: ["bash", "-euo", "pipefail", "-c", code],
    "sh": lambda code: ["bash", "-euo", "pipefail", "-c", code],
    "python": lambda code: [sys.executable, "-c", code],
    "js": lambda code: ["node", "--input-type=module", "-e", code],
}
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
# A line after a block's closing fence: what its output must contain (case aside), so that a
# block which still runs but no longer shows what the text around it says fails.
PRINTS = re.compile(r"<!-- prints: (.+?) -->\s*$")
# As many blocks as the docs ran when they were written; fewer means one was lost or muted.
MIN_EXECUTED_BLOCKS = 15


@dataclass
class Block:
    path: Path
    language: str
    code: str
    line: int
    not_run: str | None  # why, when the file says so
    prints: tuple[str, ...] = ()  # what its output must contain

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.language})"


def blocks_of(path: Path) -> list[Block]:
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[index])
        if not opening:
            index += 1
            continue
        end = lines.index("```", index + 1)
        marker = NOT_RUN.match(lines[index - 1]) if index else None
        prints = []
        while end + 1 + len(prints) < len(lines):
            expected = PRINTS.match(lines[end + 1 + len(prints)])
            if not expected:
                break
            prints.append(expected.group(1))
        blocks.append(
            Block(
                path,
                opening.group(1),
                "\n".join(lines[index + 1 : end]) + "\n",
                index + 1,
                marker.group(1) if marker else None,
                tuple(prints),
            )
        )
        index = end + 1 + len(prints)
    return blocks


ALL_BLOCKS = [block for path in DOCS for block in blocks_of(path)]
RUNNABLE = [block for block in ALL_BLOCKS if block.language in RUNNERS]


def test_every_runnable_block_runs_or_says_why_not():
    assert len([block for block in RUNNABLE if not block.not_run]) >= MIN_EXECUTED_BLOCKS
    for block in ALL_BLOCKS:
        assert block.language, f"{block}: name the block's language"
    for path in DOCS:  # an indented fence (in a list item) would be read as no block at all
        indented = re.search(r"^[ \t]+```\w", path.read_text(encoding="utf-8"), flags=re.M)
        assert indented is None, f"{path.relative_to(ROOT)}: start blocks in the first column"


def run_block(block: Block, server, code: str | None = None) -> str:
    """Run *block* (or its *code* variant) against *server*; return what it printed."""
    if block.language == "js" and shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    code = (code or block.code).replace(MOCK_URL, server.url)
    # As a reader runs them: in the project's venv, activated (its python and commands first).
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = subprocess.run(
        RUNNERS[block.language](code),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PATH": path},
    )
    assert result.returncode == 0, (
        f"{block} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
    )
    return result.stdout


@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_docs_block_runs(block, server):
    if block.not_run:
        pytest.skip(f"{block}: {block.not_run}")
    output = run_block(block, server)
    for expected in block.prints:
        assert expected.lower() in output.lower(), f"{block}: {expected!r} not in {output[:2000]}"
    if is_seed_request(block):
        _assert_seed_generation(block, output)


# The model page's request, as its curl/Python and JavaScript snippets write it.
SEED_REQUEST = '"prompt": "a cinematic mountain landscape at sunrise"'
SEED_REQUEST_JS = 'prompt: "a cinematic mountain landscape at sunrise"'
SEED_REQUEST_CLIENT = 'prompt="a cinematic mountain landscape at sunrise"'
SEED_REQUESTS = (SEED_REQUEST, SEED_REQUEST_JS, SEED_REQUEST_CLIENT)


def is_seed_request(block: Block) -> bool:
    return any(request in block.code for request in SEED_REQUESTS)


def test_the_model_pages_three_snippets_are_there():
    languages = {
        block.language for block in RUNNABLE if not block.not_run and is_seed_request(block)
    }
    assert {"bash", "python", "js"} <= languages


def _assert_seed_generation(block: Block, output: str) -> None:
    """The seed page's three snippets print the generation: check what they got."""
    if "AuthenticatedClient(" in block.code:  # prints the seed and a data URL's start
        seed, data_url = output.split()
        assert int(seed) >= 0 and data_url.startswith("data:image/png;base64,"), block
        return
    if block.language == "js":
        # console.log prints objects in Node's own notation; these fields read the same.
        for part in ("model: 'sdxl-lightning'", "num_inference_steps: 8", "data:image/png;base64,"):
            assert part in output, f"{block}: {part} not in {output[:500]}"
        return
    result = json.loads(output) if block.language == "bash" else ast.literal_eval(output)
    assert result["model"] == "sdxl-lightning", block
    assert result["num_inference_steps"] == 8, block
    assert result["images"][0]["data_url"].startswith("data:image/png;base64,"), block


@pytest.mark.parametrize(
    ("token", "printed"),
    [
        ("sk_test_free_0123456789abcdef", "403 model_not_in_plan"),
        ("sk_test_unknown_0123456789abcdef", "401 invalid_api_key"),
    ],
)
def test_the_client_example_handles_refusals(server, token, printed):
    [block] = [b for b in RUNNABLE if "AuthenticatedClient(" in b.code]
    code = re.sub(r'token="[^"]*"', f'token="{token}"', block.code)
    assert printed in run_block(block, server, code)


TSC = ROOT / ".tools" / "node_modules" / ".bin" / "tsc"


@pytest.mark.skipif(not TSC.exists(), reason="npm tools not installed: run `make test`")
def test_the_typescript_excerpt_type_checks(tmp_path):
    """The excerpt runs in a browser page; type-checking it against the generated types is what
    keeps it true to the spec."""
    [excerpt] = [block for block in ALL_BLOCKS if block.language == "ts"]
    schema = ROOT / "generated_client_ts" / "schema"
    (tmp_path / "excerpt.ts").write_text(
        excerpt.code.replace('"./generated_client_ts/schema"', json.dumps(str(schema)))
        + "export {};\n"  # a module, so that top-level await is allowed
    )
    tools = ROOT / ".tools" / "node_modules"
    config = {
        "compilerOptions": {
            "strict": True,
            "target": "ES2022",
            "module": "ES2022",
            "moduleResolution": "bundler",
            "lib": ["ES2022", "DOM"],
            "skipLibCheck": True,
            "noEmit": True,
            "types": [],
            "paths": {"openapi-fetch": [str(tools / "openapi-fetch")]},
        },
        "files": ["excerpt.ts"],
    }
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    result = subprocess.run([TSC, "-p", tmp_path], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_key_table_keys_get_their_plans(server):
    rows = re.findall(
        r"^\| (\w+) \| `(sk_[\w]+)` \|", README.read_text(encoding="utf-8"), flags=re.M
    )
    assert {plan for plan, _ in rows} == {"free", "basic", "pro", "enterprise"}
    headers = {"Authorization": f"Bearer {rows[-1][1]}"}
    catalog = requests.get(server.url + "/api/v1/models", headers=headers, timeout=30).json()
    catalog = catalog["data"]
    assert len(catalog) == 9
    for plan, key in rows:
        for model in catalog:
            answer = requests.post(
                server.url + "/api/v1/generate",
                headers={"Authorization": f"Bearer {key}"},
                json={"prompt": "key table", "model": model["id"], "width": 256, "height": 256},
                timeout=60,
            )
            expected = 200 if plan in model["plans"] else 403
            assert answer.status_code == expected, (plan, model["id"], answer.text[:300])


def test_the_readme_stays_short():
    """The README says what this is and how to start; the rest lives in docs/."""
    assert len(README.read_text(encoding="utf-8").splitlines()) < 200


def anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {anchor(title) for title in re.findall(r"^#+ (.+)$", text, flags=re.M)}


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return [target for target in LINK.findall(text) if not re.match(r"\w+:", target)]


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(path):
    for target in relative_links(path):
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.relative_to(ROOT)}: {target}: no such file"
        if fragment and linked.suffix == ".md":
            assert fragment in anchors_of(linked), f"{path.relative_to(ROOT)}: {target}: no heading"


# Figures carry a date, a machine and versions; this project's commits and issue numbers mean
# nothing to a reader of the docs. (A link to another project's pull request is a citation.)
HISTORY = re.compile(r"\bissues? \d+|\bmain at [0-9a-f]{7}|\bcommit [0-9a-f]{7}", re.I)


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_figure_names_a_commit_or_an_issue(path):
    found = HISTORY.search(path.read_text(encoding="utf-8"))
    assert found is None, f"{path.relative_to(ROOT)}: {found.group()!r}"

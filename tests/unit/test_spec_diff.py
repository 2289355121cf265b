"""``imageapi-contract diff``: a table of edits made from openapi.yaml, each with the class it
must get and the exit status it must give with an unchanged ``info.version``; the version rule;
``--base`` in a git repository of its own."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from contract_tests import spec_diff
from contract_tests.spec_diff import Level, diff_specs
from tests.spec_edits import EDITS, SPEC, Edit, edited


def test_the_spec_compared_with_itself_has_no_change():
    assert diff_specs(SPEC, copy.deepcopy(SPEC)) == []
    assert diff_specs(SPEC, edited(Edit("nothing", lambda doc: None, Level.DOCS, ""))) == []


@pytest.mark.parametrize("case", EDITS, ids=[case.name for case in EDITS])
def test_each_edit_gets_its_class(case):
    changes = diff_specs(SPEC, edited(case))
    assert changes, "the edit was not seen"
    worst = max(change.level for change in changes)
    assert worst == case.level, "\n".join(
        f"{c.level.label} {c.pointer}: {c.reason}" for c in changes
    )
    assert any(
        change.level == case.level and case.pointer in change.pointer for change in changes
    ), [(c.level.label, c.pointer) for c in changes]
    for change in changes:  # every change says who it concerns when it concerns someone
        assert change.reason
        if change.level >= Level.BUMP:
            assert change.who, change


@pytest.mark.parametrize("case", EDITS, ids=[case.name for case in EDITS])
def test_each_edit_without_a_version_bump_gives_its_exit_status(case, tmp_path, capsys):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(json.dumps(SPEC))
    new.write_text(json.dumps(edited(case)))
    status = spec_diff.main([str(old), str(new), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert status == (1 if case.level >= Level.BUMP else 0), report["verdict"]
    assert report["passed"] is (status == 0)
    assert sum(report["counts"].values()) == len(report["changes"])


def bumped(doc: dict, version: str) -> dict:
    doc = copy.deepcopy(doc)
    doc["info"]["version"] = version
    return doc


BREAKING_EDIT = next(case for case in EDITS if case.name == "max_steps lowered")
BUMP_EDIT = next(case for case in EDITS if case.name == "quality_steps changed")
COMPATIBLE_EDIT = next(case for case in EDITS if case.name == "max_steps raised")


@pytest.mark.parametrize(
    ("case", "version", "fail_on", "passes"),
    [
        (BREAKING_EDIT, "2.0.0", "bump", True),
        (BREAKING_EDIT, "1.1.0", "bump", False),  # a minor bump is not enough
        (BREAKING_EDIT, "1.0.1", "breaking", False),
        (BUMP_EDIT, "1.1.0", "bump", True),
        (BUMP_EDIT, "1.0.1", "bump", False),
        (BUMP_EDIT, "1.0.0", "breaking", True),  # --fail-on breaking lets a bump change through
        (BREAKING_EDIT, "1.0.0", "never", True),
        (COMPATIBLE_EDIT, "1.0.0", "bump", True),
        (COMPATIBLE_EDIT, "0.9.0", "bump", False),  # the version went down
    ],
)
def test_the_version_must_follow_the_changes(case, version, fail_on, passes, tmp_path, capsys):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(json.dumps(SPEC))
    new.write_text(json.dumps(bumped(edited(case), version)))
    status = spec_diff.main([str(old), str(new), "--fail-on", fail_on])
    out = capsys.readouterr().out
    assert status == (0 if passes else 1), out
    assert out.splitlines()[-1].startswith("PASS" if passes else "FAIL")


def test_a_spec_that_cannot_be_read_exits_2_with_one_line(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(json.dumps(SPEC))
    for text in ["openapi: [unclosed", "just text", "a: &x [1]\nb: *x\nopenapi: 3.1.0\n"]:
        bad.write_text(text)
        assert spec_diff.main([str(good), str(bad)]) == 2
        error = capsys.readouterr().err
        assert error.startswith("imageapi-contract diff: ") and error.count("\n") == 1, error
    bad.write_text(json.dumps(bumped(SPEC, "one")))
    assert spec_diff.main([str(good), str(bad)]) == 2
    assert "MAJOR.MINOR.PATCH" in capsys.readouterr().err
    remote = copy.deepcopy(SPEC)
    remote["paths"]["/api/v1/models"]["get"]["responses"]["401"] = {"$ref": "http://x/y.yaml"}
    bad.write_text(json.dumps(remote))
    assert spec_diff.main([str(good), str(bad)]) == 2
    assert "only references inside the spec" in capsys.readouterr().err


def test_markdown_and_text_name_every_change(tmp_path, capsys):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(json.dumps(SPEC))
    new.write_text(json.dumps(edited(BREAKING_EDIT)))
    changes = diff_specs(SPEC, edited(BREAKING_EDIT))
    assert spec_diff.main([str(old), str(new), "--format", "markdown"]) == 1
    markdown = capsys.readouterr().out
    assert "| class | where | who | why |" in markdown and "**FAIL**" in markdown
    assert markdown.count("\n| breaking |") == sum(c.level == Level.BREAKING for c in changes)
    assert spec_diff.main([str(old), str(new)]) == 1
    text = capsys.readouterr().out
    for change in changes:
        assert change.reason in text


def test_an_old_generated_client_refuses_a_new_plan():
    """Why adding a plan needs a bump, not just 'compatible': the generated Python client parses
    `Model.plans` into a closed enum."""
    from generated_client.models.plan_id import PlanId

    assert PlanId("free") == "free"
    with pytest.raises(ValueError):
        PlanId("team")


def git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout  # fmt: skip


def test_base_compares_with_a_git_revision(tmp_path, capsys, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.org")
    git(repo, "config", "user.name", "t")
    spec = repo / "openapi.yaml"
    spec.write_text(json.dumps(SPEC))
    git(repo, "add", "openapi.yaml")
    git(repo, "commit", "-qm", "spec")
    spec.write_text(json.dumps(edited(BREAKING_EDIT)))
    monkeypatch.chdir(repo)
    assert spec_diff.main(["--base", "main"]) == 1
    assert "main:openapi.yaml -> openapi.yaml" in capsys.readouterr().out
    spec.write_text(json.dumps(bumped(edited(BREAKING_EDIT), "2.0.0")))
    assert spec_diff.main(["--base", "HEAD", str(spec)]) == 0
    capsys.readouterr()
    assert spec_diff.main(["--base", "no-such-ref"]) == 2
    assert "no-such-ref" in capsys.readouterr().err


def test_the_contract_cli_runs_diff(tmp_path, capsys):
    from contract_tests.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps(SPEC))
    assert main(["diff", str(spec), str(spec)]) == 0
    assert "0 changes" in capsys.readouterr().out

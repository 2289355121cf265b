"""The spec gate over this repository's own history: every commit that changed openapi.yaml,
compared with its parent's, as a Markdown table (how many edits were breaking, and whether
info.version followed).

    python scripts/spec_history.py [--repo .] [--path openapi.yaml]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contract_tests.spec_diff import FAIL_ON, Level, SpecError, diff_specs, parse_spec, verdict  # noqa: E402


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--path", default="openapi.yaml")
    args = parser.parse_args()
    commits = git(args.repo, "log", "--reverse", "--format=%H", "--", args.path).split()
    rows, totals = [], {level: 0 for level in Level}
    followed = 0
    for commit in commits:
        parent = f"{commit}^"
        try:
            old_text = git(args.repo, "show", f"{parent}:{args.path}")
        except subprocess.CalledProcessError:
            continue  # the commit that added the spec
        date, subject = git(args.repo, "show", "-s", "--format=%cs%x00%s", commit).split("\0")
        try:
            old = parse_spec(old_text, parent)
            new = parse_spec(git(args.repo, "show", f"{commit}:{args.path}"), commit)
            changes = diff_specs(old, new)
            ok, why = verdict(changes, old, new, FAIL_ON["bump"])
        except SpecError as exc:
            rows.append(
                f"| {commit[:7]} | {date} | {subject.strip()[:60]} | - | - | - | - | - | {exc} |"
            )
            continue
        counts = {level: sum(change.level == level for change in changes) for level in Level}
        for level in Level:
            totals[level] += counts[level]
        followed += ok
        versions = f"{old['info']['version']} -> {new['info']['version']}"
        rows.append(
            f"| {commit[:7]} | {date} | {subject.strip()[:60].replace('|', '/')} | "
            + " | ".join(str(counts[level]) for level in reversed(Level))
            + f" | {versions} | {'yes' if ok else 'no: ' + why.split(': ', 1)[1]} |"
        )
    print("| commit | date | subject | breaking | bump | compatible | docs | info.version | "
          "version followed |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(
        f"\n{len(rows)} edits of {args.path}: "
        + ", ".join(f"{totals[level]} {level.label}" for level in reversed(Level))
        + f" changes; info.version followed in {followed} of {len(rows)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line: text for people, JSON for tools, Markdown for a pull request."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contract_tests.spec_diff.changes import TITLES, Change, Level, SpecError
from contract_tests.spec_diff.compare import diff_specs
from contract_tests.spec_diff.loading import parse_spec, read_git, read_text
from contract_tests.spec_diff.versions import FAIL_ON, verdict


def counts(changes: list[Change]) -> dict[str, int]:
    return {level.label: sum(change.level == level for change in changes) for level in Level}


def as_text(changes: list[Change], old_name: str, new_name: str, ok: bool, why: str) -> str:
    numbers = counts(changes)
    lines = [
        f"{old_name} -> {new_name}: {len(changes)} changes ("
        + ", ".join(f"{numbers[level.label]} {TITLES[level]}" for level in reversed(Level))
        + ")"
    ]
    for change in changes:
        who = f"  [{', '.join(change.who)}]" if change.who else ""
        lines.append(f"{change.level.label:<10} {change.pointer}{who}")
        lines.append(f"{'':<10} {change.reason}")
    lines.append(("PASS: " if ok else "FAIL: ") + why)
    return "\n".join(lines) + "\n"


def as_markdown(changes: list[Change], old_name: str, new_name: str, ok: bool, why: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        f"### Spec changes: `{old_name}` -> `{new_name}`",
        "",
        f"**{'PASS' if ok else 'FAIL'}**: {cell(why)}",
        "",
        "| class | where | who | why |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {change.level.label} | `{cell(change.pointer)}` | {cell(', '.join(change.who))} "
        f"| {cell(change.reason)} |"
        for change in changes
    ]
    if not changes:
        lines.append("| - | - | - | no change |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imageapi-contract diff",
        description="Classify every change between two versions of the Image API's spec and "
        "check that info.version follows them. Exit 0: it does; 1: it does not; 2: a spec "
        "cannot be read.",
    )
    parser.add_argument(
        "specs", nargs="*", metavar="SPEC",
        help="OLD NEW, or with --base only NEW (default: openapi.yaml)",
    )  # fmt: skip
    parser.add_argument("--base", metavar="GIT_REF",
                        help="compare NEW with the same file at this git revision")  # fmt: skip
    parser.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    parser.add_argument(
        "--fail-on", choices=["breaking", "bump", "never"], default="bump",
        help="the lowest class of change whose missing version bump fails the run "
        "(default: bump: a breaking change needs a major bump, a bump change a minor one)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.base:
            if len(args.specs) > 1:
                parser.error("with --base, give at most one spec (the new one)")
            new_path = Path(args.specs[0] if args.specs else "openapi.yaml")
            old_name, old_text = f"{args.base}:{new_path.name}", read_git(args.base, new_path)
        else:
            if len(args.specs) != 2:
                parser.error("give OLD and NEW, or --base GIT_REF")
            old_path, new_path = Path(args.specs[0]), Path(args.specs[1])
            old_name, old_text = str(old_path), read_text(old_path)
        new_name, new_text = str(new_path), read_text(new_path)
        old, new = parse_spec(old_text, old_name), parse_spec(new_text, new_name)
        changes = diff_specs(old, new)
        ok, why = verdict(changes, old, new, FAIL_ON[args.fail_on])
    except SpecError as exc:
        print(f"imageapi-contract diff: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        report = {
            "old": {"name": old_name, "version": old.get("info", {}).get("version")},
            "new": {"name": new_name, "version": new.get("info", {}).get("version")},
            "counts": counts(changes),
            "changes": [change.as_dict() for change in changes],
            "passed": ok,
            "verdict": why,
        }
        print(json.dumps(report, indent=2))
    elif args.format == "markdown":
        print(as_markdown(changes, old_name, new_name, ok, why), end="")
    else:
        print(as_text(changes, old_name, new_name, ok, why), end="")
    return 0 if ok else 1

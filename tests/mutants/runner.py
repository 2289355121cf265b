"""`make mutants`: every mutant's contract tests in one pytest session (plugin.py), and the kill
table. A mutant is killed when one of the tests it names fails against it; an equivalent target
must pass every test it names."""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.mutants import EQUIVALENT, MUTANTS, find
from tests.support import run_contract_suite


@dataclass(frozen=True)
class Result:
    killed: bool  # one of its named tests failed
    first_failure: str  # "test: why", or pytest's last words when nothing failed
    seconds: float  # its items' time, setup and teardown included
    items: int


def run_all(names=None, workers: int = 2, full: bool = False) -> dict[str, Result]:
    names = list(names or [*MUTANTS, *EQUIVALENT])
    workers = min(workers, len(names))  # a worker costs a start: none for one mutant
    files = sorted({test.partition("::")[0] for name in names for test in find(name).tests})
    with tempfile.TemporaryDirectory(prefix="mutants-") as folder:
        report = Path(folder) / "mutants.json"
        result = run_contract_suite(
            "-q", "-p", "tests.mutants.plugin", "--mutants", ",".join(names),
            f"--mutants-report={report}",
            *(["--mutants-full"] if full else ["--hypothesis-profile=quick"]),
            *(["-n", str(workers), "--dist", "loadgroup"] if workers > 1 else []),
            paths=["contract_tests"] if full else files,
        )  # fmt: skip
        # Exit code 1 is "tests failed"; anything else but 0 is the session itself breaking.
        if result.returncode not in (0, 1) or not report.exists():
            raise RuntimeError(f"the mutants' session broke: {result.stdout[-3000:]}")
        outcomes = json.loads(report.read_text())
    return {
        name: Result(
            bool(outcome["failed"]),
            (outcome["failed"] + outcome["errors"] + [""])[0],
            outcome["seconds"],
            outcome["items"],
        )
        for name, outcome in outcomes.items()
    }


def verdict(name: str, result: Result) -> tuple[str, bool]:
    """What the table says of *name*, and whether that is as it should be."""
    if name in EQUIVALENT:
        ok = result.items > 0 and not result.killed and not result.first_failure
        return ("passed" if ok else "FALSE ALARM"), ok
    # A kill needs a failure of a test that ran; an error in setup proves nothing.
    return ("killed" if result.killed else "SURVIVED"), result.killed


def kill_table(results: dict[str, Result]) -> tuple[str, bool]:
    """The table `make mutants` prints, and whether every mutant was killed (and no equivalent
    target was)."""
    rows, good = [], True
    for name, result in results.items():
        said, ok = verdict(name, result)
        good &= ok
        why = result.first_failure if said != "passed" else EQUIVALENT[name].breaks
        if said == "SURVIVED":
            why = f"{MUTANTS[name].breaks} ({result.items} tests ran)"
        rows.append(f"{said:11} {name:44} {result.seconds:5.1f}s  {why}")
    killed = sum(r.killed for name, r in results.items() if name in MUTANTS)
    mutants = sum(name in MUTANTS for name in results)
    rows.append(f"\n{killed}/{mutants} mutants killed")
    return "\n".join(rows), good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--full", action="store_true", help="run the whole suite per mutant")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    args = parser.parse_args()
    table, good = kill_table(run_all(args.names, args.workers, args.full))
    print(table)
    return 0 if good else 1

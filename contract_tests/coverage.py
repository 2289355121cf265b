"""Coverage of the contract: which of its cells the run verified, which it skipped (and why), which
it never reached.

The cells are computed from the spec and PROMISES.md alone (the suite is an independent oracle):

- ``plan/<model>/<plan>``: the model on the plan, allowed (200) or refused (403) as the
  catalog says;
- ``steps/<model>/<boundary>``: the step cap's edges, 0 and max+1 refused, 1 and max accepted;
- ``code/<operationId>/<status>/<code>``: every documented status and problem code per operation;
- ``promise/<id>``: each row of PROMISES.md, ``<section>-<n>`` (the section's first word, the
  row's number within it, from 1).

A cell is verified when a test that passed saw the target answer it as the contract says; the
exchanges of every test are observed as they happen (in each xdist worker), the outcomes are
the controller's.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contract_tests.spec import HTTP_METHODS, Contract

PROMISES_PATH = Path(__file__).resolve().parent / "PROMISES.md"
BOUNDARIES = ("0", "1", "max", "max+1")
VERIFIED, FAILED, SKIPPED, NEVER, UNOBSERVABLE = (
    "verified",
    "failed",
    "skipped",
    "never reached",
    "not observable",
)
STATES = (VERIFIED, FAILED, SKIPPED, NEVER, UNOBSERVABLE)
# Answers a client cannot provoke from outside (a fault, a busy GPU): listed, never counted.
UNPROVOKABLE_STATUSES = {500, 503}
UNOBSERVABLE_WORDS = ("not observable", "not provokable", "not a promise")
MODULES = {
    "auth": "test_auth.py",
    "http": "test_http.py",
    "cors": "test_cors.py",
    "err": "test_errors.py",
    "gen": "test_generation.py",
    "steps": "test_steps.py",
    "plans": "test_plans.py",
    "conf": "test_conformance.py",
    "rl": "test_rate_limits.py",
}
KEY_VARIABLE = re.compile(r"IMAGEAPI_KEY_[A-Z<>_]+")


# Skips ------------------------------------------------------------------------------------------


def skip_kind(reason: str) -> str:
    """Why a test was skipped: a missing key (the run's fault) or one of the team's own options
    (--max-billable, an opt-in it did not give, a case the target's contract makes moot)."""
    if "no key" in reason:
        return "missing key"
    if "billable" in reason:
        return "--max-billable reached"
    return "target option"


def is_option(kind: str) -> bool:
    return kind != "missing key"


def missing_variables(reasons: list[str]) -> list[str]:
    found = {v for reason in reasons for v in KEY_VARIABLE.findall(reason) if "<" not in v}
    return sorted(found)


# Promises ---------------------------------------------------------------------------------------


@dataclass
class Promise:
    id: str
    text: str
    stated_in: str
    checked_by: str
    tests: list[str]  # test functions named (a trailing "..." is a prefix)
    modules: list[str]  # test files named by abbreviation
    observable: bool


def load_promises(path: Path = PROMISES_PATH) -> list[Promise]:
    promises: list[Promise] = []
    section, number = "", 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section, number = re.sub(r"[^a-z]", "", line[3:].split()[0].lower()), 0
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or cells[0] == "Promise" or set(cells[0]) <= {"-"}:
            continue
        number += 1
        checked = cells[2] if len(cells) >= 4 else cells[-1]
        unobservable = len(cells) < 4 or any(word in checked for word in UNOBSERVABLE_WORDS)
        modules = [MODULES[w] for w in re.findall(r"(?:^|; |, )(\w+)\b", checked) if w in MODULES]
        if "st:" in checked:
            modules.append(MODULES["conf"])
        promises.append(
            Promise(
                id=f"{section}-{number}",
                text=cells[0],
                stated_in=cells[1] if len(cells) >= 4 else "",
                checked_by=checked,
                tests=[t.rstrip(".") for t in re.findall(r"`(test_[\w.]+)`", checked)],
                modules=sorted(set(modules)),
                observable=not unobservable,
            )
        )
    return promises


def test_location(nodeid: str) -> tuple[str, str]:
    """(file name, function name) of a test id such as ``contract_tests/test_x.py::test_y[a]``."""
    path, _, name = nodeid.partition("::")
    return Path(path).name, name.split("[")[0]


def promise_tests(promise: Promise, nodeids: list[str]) -> list[str]:
    """The tests that check *promise*: those it names, else those of the files it names, else
    every test (a promise every request keeps, such as the timeout)."""
    if promise.tests:
        return [n for n in nodeids if test_location(n)[1].startswith(tuple(promise.tests))]
    if promise.modules:
        return [n for n in nodeids if test_location(n)[0] in promise.modules]
    return list(nodeids)


# Cells ------------------------------------------------------------------------------------------


@dataclass
class Cell:
    id: str
    group: str  # plans, steps, codes, promises
    row: str
    column: str
    expect: str  # what the contract says, in a few words
    state: str = NEVER
    reason: str = ""
    option: bool = False  # skipped by the team's own option: listed, never failing the gate


def contract_cells(contract: Contract, promises: list[Promise]) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}

    def add(cell: Cell) -> None:
        cells[cell.id] = cell

    for model, info in contract.models.items():
        for plan in contract.plans:
            allowed = contract.plan_includes(plan, model)
            expect = "200" if allowed else "403 model_not_in_plan"
            add(Cell(f"plan/{model}/{plan}", "plans", model, plan, expect))
        cap = info["max_steps"]
        for boundary in BOUNDARIES:
            steps = {"0": 0, "1": 1, "max": cap, "max+1": cap + 1}[boundary]
            accepted = 1 <= steps <= cap
            expect = f"{steps} steps: " + ("200" if accepted else f"400 {contract.step_cap_code}")
            add(Cell(f"steps/{model}/{boundary}", "steps", model, boundary, expect))
    for operation, status, code in documented_codes(contract):
        cell = Cell(
            f"code/{operation}/{status}/{code or '-'}",
            "codes",
            operation,
            f"{status} {code or ''}".strip(),
            f"{status} {code or ''}".strip(),
        )
        if status in UNPROVOKABLE_STATUSES:
            cell.state, cell.reason = UNOBSERVABLE, "a client cannot provoke it from outside"
        add(cell)
    for promise in promises:
        cell = Cell(f"promise/{promise.id}", "promises", promise.id, "", promise.text)
        if not promise.observable:
            cell.state, cell.reason = UNOBSERVABLE, promise.checked_by
        add(cell)
    return cells


def documented_codes(contract: Contract) -> list[tuple[str, int, str | None]]:
    """(operationId, status, problem code or None) for every documented answer."""
    found = []
    for item in contract.document["paths"].values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                codes: list[str | None] = []
                if "application/problem+json" in content:
                    schema = content["application/problem+json"]["schema"]
                    for part in schema.get("allOf", [schema]):
                        codes += part.get("properties", {}).get("code", {}).get("enum", [])
                for code in codes or [None]:
                    found.append((operation["operationId"], int(status), code))
    return found


def path_template(contract: Contract, path: str) -> str | None:
    path = path.split("?")[0]
    for template in contract.document["paths"]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return template
    return None


def operations_for(contract: Contract, method: str, path: str, status: int) -> list[str]:
    """The operations an answer of *status* to *method path* is documented by: the operation
    itself (HEAD as GET); for a refusal of a method the path does not document, each of the
    path's operations; for a path the spec does not know, every operation documenting the
    status."""
    paths = contract.document["paths"]
    template = path_template(contract, path)
    method = "get" if method.upper() == "HEAD" else method.lower()
    if template is not None and method in paths[template]:
        return [paths[template][method]["operationId"]]
    if status < 400:  # a CORS preflight's 2xx, say: no operation's answer
        return []
    items = [paths[template]] if template is not None else list(paths.values())
    return [
        operation["operationId"]
        for item in items
        for m, operation in item.items()
        if m in HTTP_METHODS and str(status) in operation.get("responses", {})
    ]


def problem_code(reply_body: bytes, media_type: str) -> str | None:
    if media_type != "application/problem+json":
        return None
    try:
        code = json.loads(reply_body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def observed_cells(
    contract: Contract,
    plans_by_key: dict[str, str],
    method: str,
    path: str,
    headers: dict,
    body: bytes | None,
    status: int,
    media_type: str,
    reply_body: bytes,
) -> tuple[list[str], list[str]]:
    """The cells one exchange answered as the contract says, and those it answered otherwise
    (whether the test passed decides what the first count for)."""
    agreed: list[str] = []
    contradicted: list[str] = []
    code = problem_code(reply_body, media_type)
    for operation in operations_for(contract, method, path, status):
        agreed.append(f"code/{operation}/{status}/{code or '-'}")
    if method.upper() != "POST" or path_template(contract, path) != "/api/v1/generate" or not body:
        return agreed, contradicted
    try:
        request = json.loads(body)
    except ValueError:
        return agreed, contradicted
    model = request.get("model", contract.default_model) if isinstance(request, dict) else None
    if not isinstance(model, str) or model not in contract.models:
        return agreed, contradicted
    credential = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    plan = plans_by_key.get(credential.partition(" ")[2].strip())
    if plan is not None:
        allowed = contract.plan_includes(plan, model)
        refused = code == "model_not_in_plan"
        if allowed and status == 200 or not allowed and refused:
            agreed.append(f"plan/{model}/{plan}")
        elif allowed and refused or not allowed and status == 200:
            contradicted.append(f"plan/{model}/{plan}")
    steps = request.get("num_inference_steps")
    cap = contract.models[model]["max_steps"]
    if isinstance(steps, int) and not isinstance(steps, bool):
        boundary = {0: "0", 1: "1", cap: "max", cap + 1: "max+1"}.get(steps)
        accepted, capped = status == 200, code == contract.step_cap_code
        if boundary in ("1", "max"):
            (agreed if accepted else contradicted if capped else []).append(
                f"steps/{model}/{boundary}"
            )
        elif boundary in ("0", "max+1"):
            (agreed if capped else contradicted if accepted else []).append(
                f"steps/{model}/{boundary}"
            )
    return agreed, contradicted


@dataclass
class Observed:
    """What one test's exchanges showed: the cells answered as the contract says, those answered
    otherwise, and the cells of its last exchange (where a failed test stopped)."""

    agreed: list[str] = field(default_factory=list)
    contradicted: list[str] = field(default_factory=list)
    last: list[str] = field(default_factory=list)

    def add(self, agreed: list[str], contradicted: list[str]) -> None:
        self.agreed += [c for c in agreed if c not in self.agreed]
        self.contradicted += [c for c in contradicted if c not in self.contradicted]
        self.last = agreed + contradicted

    def merge(self, other: Observed) -> None:
        self.add(other.agreed, other.contradicted)
        self.last = other.last


# The run's outcome ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """A test's result as the controller saw it."""

    outcome: str  # passed, failed, skipped
    reason: str = ""  # a skip's reason


@dataclass
class Coverage:
    cells: dict[str, Cell]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def counts(self, group: str | None = None) -> dict[str, int]:
        states = Counter(c.state for c in self.cells.values() if group in (None, c.group))
        counts = {state: states.get(state, 0) for state in STATES}
        counts["skipped by option"] = sum(
            1
            for c in self.cells.values()
            if group in (None, c.group) and c.state == SKIPPED and c.option
        )
        counts["total"] = sum(states.values())
        return counts

    def ratio(self, group: str | None = None) -> float:
        """Verified cells over those the run could verify: not the unobservable ones, nor those
        the team's own options skipped."""
        c = self.counts(group)
        countable = c["total"] - c[UNOBSERVABLE] - c["skipped by option"]
        return c[VERIFIED] / countable if countable else 1.0

    def as_json(self) -> dict[str, Any]:
        groups = sorted({c.group for c in self.cells.values()})
        return {
            "counts": self.counts(),
            "coverage": round(self.ratio(), 4),
            "groups": {g: {**self.counts(g), "coverage": round(self.ratio(g), 4)} for g in groups},
            "cells": [asdict(c) for c in self.cells.values()],
            "failures": self.failures,
        }


def compute(
    contract: Contract,
    promises: list[Promise],
    outcomes: dict[str, Outcome],
    observed: dict[str, Observed],
) -> Coverage:
    """The coverage of a run: *outcomes* by test id, what each test *observed*."""
    cells = contract_cells(contract, promises)
    by_state: dict[str, set[str]] = {VERIFIED: set(), FAILED: set()}
    for nodeid, seen in observed.items():
        outcome = outcomes.get(nodeid)
        if outcome is None or outcome.outcome == SKIPPED:
            continue
        if outcome.outcome == "passed":
            by_state[VERIFIED].update(seen.agreed)
            continue
        # A failed test checked each answer before the last one as it came, and went on.
        by_state[VERIFIED].update(c for c in seen.agreed if c not in seen.last)
        by_state[FAILED].update(seen.contradicted)
        by_state[FAILED].update(seen.last)

    def settle(cell: Cell, state: str, reason: str = "", option: bool = False) -> None:
        # A cell any answer contradicted stays failed, whatever other tests saw.
        if cell.state in (NEVER, SKIPPED) or state == FAILED and cell.state == VERIFIED:
            cell.state, cell.reason, cell.option = state, reason, option

    for state in (VERIFIED, FAILED):
        for cell_id in by_state[state]:
            if cell_id in cells and cells[cell_id].state != UNOBSERVABLE:
                settle(cells[cell_id], state)
    # What a skipped test would have verified, as its parameters say.
    skipped = {n: o for n, o in outcomes.items() if o.outcome == SKIPPED}
    for nodeid, outcome in skipped.items():
        name = test_location(nodeid)[1]
        param = nodeid.rpartition("[")[2].rstrip("]") if "[" in nodeid else ""
        kind = skip_kind(outcome.reason)
        if name == "test_every_model_on_every_plan":
            targets = [c for c in cells.values() if c.group == "plans" and c.column == param]
        elif name == "test_boundaries_of_the_cap":
            targets = [c for c in cells.values() if c.group == "steps" and c.row == param]
        elif test_location(nodeid)[0] == MODULES["rl"]:
            targets = [
                c for c in cells.values() if c.group == "codes" and c.column.startswith("429")
            ]
        else:
            targets = []
        for cell in targets:
            if cell.state == NEVER:
                settle(cell, SKIPPED, f"{kind}: {outcome.reason}", is_option(kind))
    # Promises: by the tests that check them.
    nodeids = list(outcomes)
    for promise in promises:
        cell = cells[f"promise/{promise.id}"]
        if cell.state == UNOBSERVABLE:
            continue
        results = [outcomes[n] for n in promise_tests(promise, nodeids)]
        if any(r.outcome == "failed" for r in results):
            cell.state = FAILED
        elif any(r.outcome == "passed" for r in results):
            cell.state = VERIFIED
        elif results:
            kinds = [skip_kind(r.reason) for r in results]
            cell.state, cell.option = SKIPPED, all(is_option(k) for k in kinds)
            cell.reason = f"{kinds[0]}: {results[0].reason}"
    return Coverage(cells)


def promises_of_test(promises: list[Promise], nodeid: str) -> list[Promise]:
    """The promises a test checks by name (for a failure's report)."""
    return [p for p in promises if nodeid in promise_tests(p, [nodeid]) and p.tests]


# The short table ---------------------------------------------------------------------------------

GROUP_TITLES = {
    "plans": "model x plan",
    "steps": "step-cap edges",
    "codes": "statuses and codes",
    "promises": "PROMISES.md rows",
}


def summary_lines(coverage: Coverage) -> list[str]:
    """The table printed at the end of every run."""
    lines = [
        f"{'contract coverage':<20} {'verified':>9} {'failed':>7} {'skipped':>8} "
        f"{'never':>6} {'n/a':>4} {'total':>6}  coverage"
    ]
    for group, title in GROUP_TITLES.items():
        c = coverage.counts(group)
        lines.append(
            f"{title:<20} {c[VERIFIED]:>9} {c[FAILED]:>7} {c[SKIPPED]:>8} {c[NEVER]:>6} "
            f"{c[UNOBSERVABLE]:>4} {c['total']:>6}  {coverage.ratio(group):.1%}"
        )
    c = coverage.counts()
    lines.append(
        f"{'all':<20} {c[VERIFIED]:>9} {c[FAILED]:>7} {c[SKIPPED]:>8} {c[NEVER]:>6} "
        f"{c[UNOBSERVABLE]:>4} {c['total']:>6}  {coverage.ratio():.1%}"
    )
    reasons = Counter(
        cell.reason.split(":")[0] + (" (option: does not fail the gate)" if cell.option else "")
        for cell in coverage.cells.values()
        if cell.state == SKIPPED
    )
    lines += [f"  skipped, {reason}: {n} cells" for reason, n in sorted(reasons.items())]
    return lines

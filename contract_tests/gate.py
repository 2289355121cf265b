"""The gate: a run passes only when it verified enough, never on nothing.

Exit statuses (pytest's own 0-5 keep their meaning):

- 0: every test passed and the gate's requirements are met;
- 1: the contract is broken (a test failed);
- 6: too little verified: no cell that needs a key (nothing but 401s), or a ``--require`` or
  ``--min-coverage`` not met;
- 7: the target is unreachable or misconfigured (no answer at ``--base-url``, a key it does not
  know).

Cells skipped by the team's own options (``--max-billable``, an opt-in such as
``--check-rate-limits``) are listed but never fail the gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contract_tests.coverage import (
    FAILED,
    SKIPPED,
    UNOBSERVABLE,
    VERIFIED,
    Coverage,
)

EXIT_BROKEN = 1
EXIT_TOO_LITTLE = 6
EXIT_TARGET = 7
REQUIRABLE = ("plans", "models", "promises", "codes")


@dataclass
class Requirements:
    plans: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    promises: list[str] = field(default_factory=list)  # ids, or ["all"]
    codes: list[str] = field(default_factory=list)  # operationIds, or ["all"]
    min_coverage: float | None = None


def parse_requirements(
    values: list[str], min_coverage: float | None, known: dict[str, list[str]]
) -> Requirements:
    """``--require plans=free,basic`` (repeatable) into Requirements; raises ValueError naming
    what is wrong. *known* lists the names each kind accepts (besides ``all``)."""
    required = Requirements(min_coverage=min_coverage)
    if min_coverage is not None and not 0 <= min_coverage <= 1:
        raise ValueError(f"--min-coverage {min_coverage}: a fraction between 0 and 1")
    for value in values:
        kind, equals, names = value.partition("=")
        if not equals or kind not in REQUIRABLE or not names:
            raise ValueError(f"--require {value}: expected one of {', '.join(REQUIRABLE)}=A,B|all")
        listed = [name.strip() for name in names.split(",") if name.strip()]
        unknown = [n for n in listed if n != "all" and n not in known[kind]]
        if unknown:
            raise ValueError(
                f"--require {value}: unknown {kind} {', '.join(unknown)} "
                f"(known: {', '.join(known[kind])})"
            )
        getattr(required, kind).extend(known[kind] if "all" in listed else listed)
    return required


@dataclass
class Verdict:
    status: int  # 0 or EXIT_TOO_LITTLE
    lines: list[str]


def unmet(cells: list, what: str) -> list[str]:
    """A line for each cell that is neither verified nor skipped by the team's own option."""
    return [
        f"{what} {cell.id}: {cell.state}" + (f" ({cell.reason})" if cell.reason else "")
        for cell in cells
        if cell.state not in (VERIFIED, UNOBSERVABLE)
        and not (cell.state == SKIPPED and cell.option)
    ]


def judge(coverage: Coverage, required: Requirements, missing: list[str]) -> Verdict:
    """The gate's verdict on a run whose tests all passed; *missing* names the key variables
    the run had no value for."""
    cells = list(coverage.cells.values())
    plan_cells = [c for c in cells if c.group == "plans"]
    # Only a known key gets a 2xx: a run that verified none verified nothing but refusals.
    keyed = [
        c
        for c in cells
        if c.group in ("plans", "steps") or c.group == "codes" and c.column.startswith("2")
    ]
    if not any(c.state in (VERIFIED, FAILED) for c in keyed) and not all(
        c.state == SKIPPED and c.option for c in plan_cells
    ):
        variables = missing or ["IMAGEAPI_KEY_<PLAN>"]
        return Verdict(
            EXIT_TOO_LITTLE,
            [
                "contract gate: verified nothing that needs a key (no 2xx, no model on a plan): "
                f"set {', '.join(variables)}"
            ],
        )
    problems: list[str] = []
    problems += unmet([c for c in plan_cells if c.column in required.plans], "required plan:")
    problems += unmet([c for c in plan_cells if c.row in required.models], "required model:")
    problems += unmet(
        [c for c in cells if c.group == "promises" and c.row in required.promises],
        "required promise:",
    )
    problems += unmet(
        [c for c in cells if c.group == "codes" and c.row in required.codes], "required code:"
    )
    ratio = coverage.ratio()
    if required.min_coverage is not None and ratio < required.min_coverage:
        problems.append(f"coverage {ratio:.1%} is below --min-coverage {required.min_coverage:.1%}")
    if problems:
        head = f"contract gate: {len(problems)} requirement(s) not met"
        return Verdict(EXIT_TOO_LITTLE, [head, *(f"  {line}" for line in problems)])
    return Verdict(0, [f"contract gate: passed ({ratio:.1%} of what could be verified)"])

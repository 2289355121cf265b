"""``--report html:PATH``: one self-contained page a person reads after a red run (no script, no
link, no font from elsewhere): the coverage matrix in colour, then each failure with its promise,
a curl that repeats it (the key as its variable), the answer received and what the spec says.

The caller passes text that is already redacted; every string is escaped here."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

COLOURS = {
    "verified": "#1a7f37",
    "failed": "#cf222e",
    "skipped": "#bf8700",
    "never reached": "#6e7781",
    "not observable": "#8c959f",
}
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #1f2328; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
td.cell { color: #fff; font-weight: 600; text-align: center; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; white-space: pre-wrap; }
.failure { border-left: 4px solid #cf222e; padding-left: 12px; margin-bottom: 2em; }
.legend span { color: #fff; padding: 2px 6px; margin-right: 6px; border-radius: 3px; }
"""


def cell_td(cell: dict[str, Any], text: str) -> str:
    title = escape(f"{cell['expect']}: {cell['state']} {cell['reason']}".strip(), quote=True)
    colour = COLOURS[cell["state"]]
    return f'<td class="cell" style="background:{colour}" title="{title}">{escape(text)}</td>'


def matrix(cells: list[dict[str, Any]], group: str, label) -> str:
    chosen = [c for c in cells if c["group"] == group]
    rows = list(dict.fromkeys(c["row"] for c in chosen))
    columns = list(dict.fromkeys(c["column"] for c in chosen))
    by = {(c["row"], c["column"]): c for c in chosen}
    head = "".join(f"<th>{escape(col)}</th>" for col in columns)
    body = []
    for row in rows:
        tds = "".join(
            cell_td(by[(row, col)], label(by[(row, col)])) if (row, col) in by else "<td></td>"
            for col in columns
        )
        body.append(f"<tr><th>{escape(row)}</th>{tds}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>"


def listing(cells: list[dict[str, Any]], group: str) -> str:
    rows = "".join(
        f"<tr><td>{escape(c['row'])}</td>{cell_td(c, c['state'])}<td>{escape(c['expect'])}</td>"
        f"<td>{escape(c['reason'])}</td></tr>"
        for c in cells
        if c["group"] == group
    )
    return f"<table><tr><th>id</th><th>state</th><th>what</th><th>why</th></tr>{rows}</table>"


def failure_section(failure: dict[str, Any]) -> str:
    promises = (
        "".join(
            f"<li><b>{escape(p['id'])}</b>: {escape(p['text'])} "
            f"<i>(stated in {escape(p['stated_in'])})</i></li>"
            for p in failure["promises"]
        )
        or "<li>no PROMISES.md row names this test</li>"
    )
    return (
        f'<div class="failure"><h3>{escape(failure["test"])}</h3>'
        f"<p>Promise:</p><ul>{promises}</ul>"
        f"<p>What the spec says, as the check put it:</p><pre>{escape(failure['message'])}</pre>"
        f"<p>Request (repeat it with the key in its variable):</p>"
        f"<pre>{escape(failure['curl'] or '(no request recorded)')}</pre>"
        f"<p>Answer received:</p><pre>{escape(failure['answer'] or '(none)')}</pre></div>"
    )


def render(document: dict[str, Any]) -> str:
    cells = document["coverage"]["cells"]
    counts = document["coverage"]["counts"]
    legend = "".join(
        f'<span style="background:{colour}">{escape(state)}</span>'
        for state, colour in COLOURS.items()
    )
    summary = ", ".join(f"{counts[state]} {state}" for state in COLOURS)
    failures = document["coverage"]["failures"]
    gate = "<br>".join(escape(line) for line in document["gate"]["lines"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Contract report: {escape(document["target"])}</title><style>{STYLE}</style></head>
<body><h1>Contract report</h1>
<p>Target <code>{escape(document["target"])}</code>, spec <code>{escape(document["spec"])}</code>.
Exit status <b>{document["exit_status"]}</b>: {escape(document["exit_meaning"])}.</p>
<p>{gate}</p>
<p>Tests: {document["tests"]["passed"]} passed, {document["tests"]["failed"]} failed,
{document["tests"]["skipped"]} skipped. Cells: {summary}
(coverage {document["coverage"]["coverage"]:.1%}).</p>
<p class="legend">{legend}</p>
<h2>Every model on every plan</h2>
{matrix(cells, "plans", lambda c: "allowed" if c["expect"] == "200" else "refused")}
<h2>Step-cap edges</h2>
{matrix(cells, "steps", lambda c: c["expect"].split(" ")[0])}
<h2>Documented statuses and codes per operation</h2>
{matrix(cells, "codes", lambda c: c["state"])}
<h2>Failures ({len(failures)})</h2>
{"".join(failure_section(f) for f in failures) or "<p>None.</p>"}
<h2>PROMISES.md, row by row</h2>
{listing(cells, "promises")}
</body></html>
"""


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(document), encoding="utf-8")

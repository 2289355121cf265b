"""``--report json:PATH``: the run's coverage, gate and failures as one JSON document, for other
tools. Its ``counts`` are the ones the terminal's table prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")

"""``imageapi-contract diff``: every edit of openapi.yaml classified before it reaches a client.

    imageapi-contract diff OLD.yaml NEW.yaml [--format text|json|markdown] [--fail-on bump]
    imageapi-contract diff --base origin/main [openapi.yaml]

Generic OpenAPI diff tools classify schema edits; most of this API's rules live in
``x-imageapi-catalog`` (models, plans, caps, defaults) and ``x-imageapi-cors``, which they cannot
read. Here each change gets a class:

- ``breaking``: a caller or a generated client that worked before fails now (a model removed or
  taken out of a plan, a cap lowered, a field made required or narrowed, a code renamed...);
- ``bump``: nothing that worked fails, but an answer changes or a new one appears (a default, a
  preset's steps, a new status or problem code, a value added to a response enum, which old
  generated clients parse into a closed ``Enum`` and refuse);
- ``compatible``: only more is allowed (caps raised, models and plans added, optional fields);
- ``docs``: descriptions, summaries, examples.

And ``info.version`` must follow (semantic versioning): a breaking change needs a major bump, a
``bump`` change a minor one. Exit status: 0 when the version follows, 1 when it does not, 2 when a
spec cannot be read.
"""

from __future__ import annotations

from contract_tests.spec_diff.changes import Change, Level, SpecError
from contract_tests.spec_diff.cli import main
from contract_tests.spec_diff.compare import diff_specs
from contract_tests.spec_diff.loading import parse_spec
from contract_tests.spec_diff.versions import FAIL_ON, verdict

__all__ = ["FAIL_ON", "Change", "Level", "SpecError", "diff_specs", "main", "parse_spec", "verdict"]

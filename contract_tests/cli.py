"""``imageapi-contract``: run the installed contract suite against a deployment.

    imageapi-contract --base-url https://staging.example --junitxml contract.xml
    imageapi-contract --base-url http://127.0.0.1:8000 --dev-keys -x -k auth

Every option is pytest's or the suite's own (``--base-url``, ``--max-billable``, ``--spec``,
``--request-timeout``, ``--dev-keys``, ...); the tests are the ones installed with this package,
whatever directory it runs from, and no configuration file of the current directory applies.

Other jobs are subcommands, each a module with its own ``main(argv) -> int`` (see
``SUBCOMMANDS``): ``imageapi-contract diff OLD NEW``, ``imageapi-contract proxy --upstream URL``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent

# name -> the module whose main(argv) runs it; anything else runs the suite.
SUBCOMMANDS: dict[str, str] = {
    "diff": "contract_tests.spec_diff",
    "proxy": "contract_tests.proxy",
}


def pytest_args(argv: list[str]) -> list[str]:
    """The pytest command line that runs the installed suite with *argv*."""
    return [
        str(PACKAGE_DIR),
        # The suite's own settings, not those of a pytest.ini or pyproject.toml in the cwd.
        "-c",
        os.devnull,
        "--rootdir",
        str(PACKAGE_DIR),
        "-p",
        "no:cacheprovider",  # nothing written into site-packages
        *argv,
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return int(importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]))
    if "--base-url" not in " ".join(argv) and not {"-h", "--help"} & set(argv):
        print("imageapi-contract: --base-url URL is required", file=sys.stderr)
        return 2
    return int(pytest.main(pytest_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

"""Fixtures: the spec, the app in-process, and the real server under granian. Helpers the tests
import are in tests/support.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mockserver.app import create_app
from mockserver.config import Config
from mockserver.spec import load_spec
from tests.support import RunningServer


@pytest.fixture(scope="session")
def spec():
    return load_spec()


@pytest.fixture(scope="session")
def app(spec):
    return create_app(Config(), spec=spec)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, spec):
    """One tiny SDXL pipeline, in a folder per catalog model (it stands in for every family),
    with the distilled UNet weights file where the catalog's recipe names one."""
    from tests.tiny_pipelines import save_unet_weights, tiny_sdxl

    root = tmp_path_factory.mktemp("models")
    source = tiny_sdxl(root / "_tiny-sdxl")
    for model_id in spec.models:
        shutil.copytree(source, root / model_id, symlinks=True)
        if weights := spec.pipelines[model_id].get("unet_weights"):
            save_unet_weights(root / model_id / weights, seed=99)
    return root


@pytest.fixture(scope="session")
def server():
    # Many tests share its keys for many requests; the limits have their own (test_state.py).
    running = RunningServer("--workers", "2", "--no-rate-limits")
    yield running
    running.stop()


# Tiers and groups ------------------------------------------------------------------------------

TIERS = ("unit", "server", "backends", "e2e")
# The order in which the tests run, and pytest-xdist hands out their groups (make test passes
# --no-loadscope-reorder, which keeps it): the costliest tiers first, so that their long groups
# start at once on both workers, and the many short tests (the contract suite in-process, then
# the unit tier) fill in at the end, whichever worker is free.
RUN_ORDER = ("backends", "e2e", "server", "contract_tests", "unit")


def run_rank(item, tests: Path) -> int:
    if not item.path.is_relative_to(tests):
        return RUN_ORDER.index("contract_tests")
    tier = item.path.relative_to(tests).parts[0]
    return RUN_ORDER.index(tier) if tier in RUN_ORDER else len(RUN_ORDER)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config, items):
    """Mark each test with the tier of its folder (tests/unit/... is `unit`), and group for
    pytest-xdist the tests that share a server: the modules whose tests use the session's
    `server` run on one worker; every other module outside tests/unit on one worker, so that
    its module-scoped servers and clusters start once. Then put them in RUN_ORDER (a stable
    sort: each module's tests keep their order)."""
    tests = Path(__file__).parent
    on_server = {item.path for item in items if "server" in getattr(item, "fixturenames", ())}
    items.sort(key=lambda item: run_rank(item, tests))
    for item in items:
        if not item.path.is_relative_to(tests):
            continue  # contract_tests: the suite's own
        tier = item.path.relative_to(tests).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        if item.path in on_server:
            item.add_marker(pytest.mark.xdist_group("server"))
        elif tier != "unit":
            item.add_marker(pytest.mark.xdist_group(str(item.path.relative_to(tests))))

"""The contract suite against many mutants in one pytest session (`-p tests.mutants.plugin
--mutants NAME,NAME`): each contract test a mutant names runs once per such mutant, as its own
item (`test_x[...-MUTANT]`), against that mutant in-process; other tests are deselected.

The suite's in-process target is a dispatcher (`--app tests.mutants.plugin:dispatcher`) that
hands each request to the mutant of the item running, so the suite itself is unchanged. Each
mutant's app is made on its first request and kept while its items run (they are ordered, and
under xdist grouped, by mutant), as when each mutant had a session of its own. `--mutants-report
FILE` writes what each mutant's items did, as JSON, for runner.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mutants import registry

PARAM = "_mutant"  # the parameter that names an item's mutant
_apps: dict[str, object] = {}
_current: list[str] = []  # the mutant of the item running, in this process


def dispatcher():
    def wsgi(environ, start_response):
        name = _current[0]
        if name not in _apps:
            _apps.clear()  # the previous mutant's items are done: keep one mock at a time
            _apps[name] = registry.find(name).factory()
        return _apps[name](environ, start_response)

    return wsgi


def pytest_addoption(parser):
    group = parser.getgroup("mutants", "the contract suite against deliberately broken targets")
    group.addoption("--mutants", default="", help="comma-separated mutant names, or 'all'")
    group.addoption("--mutants-full", action="store_true", help="every test against each")
    group.addoption("--mutants-report", default=None, help="write each mutant's outcome here")


def selected(config) -> list[registry.Mutant]:
    import tests.mutants  # noqa: F401  (registers every area's mutants)

    names = config.getoption("mutants")
    everyone = {**registry.MUTANTS, **registry.EQUIVALENT}
    if names == "all":
        return list(everyone.values())
    return [everyone[name] for name in names.split(",") if name]


def pytest_configure(config):
    if config.getoption("mutants"):
        config.option.app = "tests.mutants.plugin:dispatcher"
        config.pluginmanager.register(Recorder(config, selected(config)), "mutants-recorder")


def pytest_generate_tests(metafunc):
    if not metafunc.config.getoption("mutants"):
        return
    full = metafunc.config.getoption("mutants_full")
    nodeid = metafunc.definition.nodeid
    names = [m.name for m in selected(metafunc.config) if full or m.names(nodeid)]
    if names:
        # The contract tests do not ask for this parameter; naming it in the closure of their
        # fixtures lets it parametrize them unchanged.
        metafunc.fixturenames.append(PARAM)
        metafunc.parametrize(PARAM, names, ids=names)


def mutant_of(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(PARAM) if callspec else None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    if not config.getoption("mutants"):
        return
    order = {m.name: i for i, m in enumerate(selected(config))}
    kept = [item for item in items if mutant_of(item) is not None]
    deselected = [item for item in items if mutant_of(item) is None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    kept.sort(key=lambda item: order[mutant_of(item)])
    for item in kept:
        item.add_marker(pytest.mark.xdist_group(mutant_of(item)))
        item.user_properties.append((PARAM, mutant_of(item)))
    items[:] = kept


def pytest_runtest_setup(item):
    _current[:] = [mutant_of(item)]


class Outcome:
    def __init__(self) -> None:
        self.items = 0
        self.failed: list[str] = []  # "test: why", for each item that failed
        self.errors: list[str] = []  # the same for errors in an item's setup or teardown
        self.seconds = 0.0


def why(report) -> str:
    """The test, and the schemathesis check or assertion that failed it, in a line."""
    lines = [line.strip(" |") for line in report.longreprtext.splitlines()]
    reason = next(
        (line for line in lines if line.startswith(("- ", "E  ")) and "Traceback" not in line),
        lines[-1] if lines else "",
    )
    test = report.nodeid.split("::", 1)[-1].partition("@")[0]  # (xdist's "@group" suffix)
    return f"{test}: {reason[:160]}"


class Recorder:
    """What each mutant's items did; under xdist, in the controller, from the workers' reports
    (the mutant's name travels in their user_properties)."""

    def __init__(self, config, mutants) -> None:
        self.config = config
        self.outcomes = {m.name: Outcome() for m in mutants}

    def pytest_runtest_logreport(self, report):
        name = dict(report.user_properties).get(PARAM)
        if name not in self.outcomes:
            return
        outcome = self.outcomes[name]
        outcome.seconds += report.duration
        if report.when == "call":
            outcome.items += 1
            if report.failed:
                outcome.failed.append(why(report))
        elif report.failed:
            outcome.errors.append(why(report))

    def pytest_sessionfinish(self, session):
        path = self.config.getoption("mutants_report")
        if path and not hasattr(self.config, "workerinput"):
            report = {name: vars(outcome) for name, outcome in self.outcomes.items()}
            Path(path).write_text(json.dumps(report, indent=1))

"""Loads the suite's pytest plugin, `contract_tests.plugin`, unless it is already loaded (as an
installed `pytest11` plugin, for `pytest --pyargs contract_tests`)."""

from __future__ import annotations

import contract_tests.plugin as plugin


def pytest_addoption(parser, pluginmanager):
    # pytest_addoption is a historic hook: a plugin registered here still adds its options.
    if not pluginmanager.is_registered(plugin):
        pluginmanager.register(plugin, "contract_tests.plugin")

"""Ray reads its authentication settings once, when it is first imported: this process (the
Ray tests' driver) gets a local cluster's settings, a token among them, before any test module
imports Ray, as a server's workers do (they are forked after the server set them)."""

from __future__ import annotations

import os

from mockserver.backends.ray.security import local_cluster_environment

for _name, _value in local_cluster_environment().items():
    os.environ.setdefault(_name, _value)

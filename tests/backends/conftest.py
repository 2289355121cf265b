"""Settings read once, when a library is first imported, so set here before any test module
imports it.

Ray reads its authentication settings on import: this process (the Ray tests' driver) gets a
local cluster's settings, a token among them, as a server's workers do (they are forked after
the server set them).

torch sizes its OpenMP pool on import, one thread per core by default. make test runs two
pytest-xdist workers on two cores: a pool of two threads in each torch process (this one, the
servers and benchmarks these tests start, which inherit the variable) makes the pools spin
against each other and the other worker's tests, and the diffusers contract run took 467 s
beside the Ray tests against about 60 s alone. One thread each, as Ray gives its replicas."""

from __future__ import annotations

import os

from mockserver.backends.ray.security import local_cluster_environment

for _name, _value in local_cluster_environment().items():
    os.environ.setdefault(_name, _value)
os.environ.setdefault("OMP_NUM_THREADS", "1")

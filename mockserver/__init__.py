"""A mock of the Image API that enforces its OpenAPI contract.

Layers, each depending only on those above it:

- ``spec``: loads and resolves ``openapi.yaml`` and reads the catalog out of it.
- ``validation``, ``rules``, ``auth``, ``ratelimit``: request checks over the spec.
- ``backends``: image makers, found through the ``mockserver.backends`` entry-point group.
- ``scenarios``, ``journal``, ``docs``: what a mock offers frontend work (``Prefer`` scenarios,
  the request journal, the ``/docs`` page).
- ``config``: the settings table (options, ``MOCKSERVER_*`` variables, docs); ``keys_file``:
  reading ``--keys``.
- ``app``: the Flask HTTP layer; ``cli`` and ``wsgi``: the command line and the production
  server (granian).
"""

__version__ = "0.1.0"

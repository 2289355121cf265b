"""A mock of the Image API that enforces its OpenAPI contract.

Layers, each depending only on those above it:

- ``spec``: loads and resolves ``openapi.yaml`` and reads the catalog out of it.
- ``validation``, ``rules``, ``auth``, ``ratelimit``: request checks, pure functions over the spec.
- ``backends``: image makers, found through the ``mockserver.backends`` entry-point group.
- ``app``: the Flask HTTP layer; ``cli``: the command line and the production WSGI server.
"""

__version__ = "0.1.0"

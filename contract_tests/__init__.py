"""The contract suite: property tests that any deployment of the Image API keeps openapi.yaml.

It is an independent oracle: what a target must answer is computed here from the spec, never
from the mock server's rule code.
"""

"""The registry of mutants: each names the contract tests that must kill it (the promise it
breaks is theirs); an equivalent one bends without breaking, and no test may fail against it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Where the promises most mutants break are tested.
HTTP = "contract_tests/test_http.py::"
ERR = "contract_tests/test_errors.py::"

# The judge's differential test (any exchange, judged from the spec) is a natural killer of
# every mutant that breaks a promise within one exchange; it is added to their tests. Not here:
# the CORS mutants (the judge does not decide CORS), and those that only show across exchanges
# (ignore_seed, one_generation_id) or through the rate limiter.
JUDGE = "contract_tests/test_judge.py"
# Each of those, with the promise (an id of contract_tests.judge.PROMISES) the judge names when
# it sees the mutant's answer: the validating proxy must name the same (tests/e2e/test_proxy.py).
JUDGED: dict[str, str] = {
    "accept_any_key": "auth-required",
    "accept_lists_are_406": "catalog",
    "allow_lists_only_options": "method-not-allowed",
    "always_png": "images-decode",
    "bearer_scheme_case_sensitive": "auth-valid",
    "blank_prompt_accepted": "bad-request",
    "catalog_drift": "catalog",
    "charset_parameter_is_415": "json-media-types",
    "corrupt_image": "images-decode",
    "crash_on_non_ascii": "no-5xx",
    "created_in_milliseconds": "created",
    "drop_negative_prompt": "bad-request",
    "drop_seed_from_response": "response-schema",
    "errors_as_plain_json": "problem-json",
    "errors_list_generic_codes": "problem-errors",
    "every_id_is_the_default_model": "model-by-id",
    "fast_steps_by_default": "echo",
    "fixed_image_size": "images-decode",
    "generic_400_codes": "bad-request",
    "head_not_allowed": "head",
    "head_sends_a_body": "head",
    "ignore_plans": "plan",
    "image_seeds_do_not_wrap": "image-seeds",
    "instance_is_the_route_template": "problem-instance",
    "json_in_latin1": "json-utf8",
    "json_suffix_types_are_json": "media-type",
    "lift_step_caps": "bad-request",
    "media_type_before_authentication": "auth-required",
    "media_type_case_sensitive": "json-media-types",
    "missing_content_type_is_json": "media-type",
    "model_lookup_before_authentication": "auth-required",
    "model_sized_defaults": "echo",
    "no_allow_header": "method-not-allowed",
    "no_bearer_challenge": "auth-challenge",
    "no_errors_list": "problem-errors",
    "no_field_in_problems": "problem-field",
    "one_image_only": "num-images",
    "plan_before_schema": "order",
    "preset_overrides_explicit_steps": "echo",
    "problem_status_disagrees": "problem-status",
    "public_catalog": "auth-required",
    "quoted_charset_is_415": "json-media-types",
    "relative_problem_types": "problem-type",
    "size_before_media_type": "media-type",
    "size_limit_off_by_one": "order",
    "sizes_up_to_4096": "bad-request",
    "unbounded_negative_prompt": "bad-request",
    "unknown_key_reported_as_missing": "auth-unknown",
    "unknown_model_id_is_200": "model-not-found",
    "unknown_model_id_is_not_found": "model-not-found",
    "unknown_routes_are_html": "problem-json",
    "uppercase_generation_ids": "response-schema",
    "wrong_default_model": "echo",
    "wrong_error_code": "bad-request",
}


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: str  # the promise, in a line
    tests: tuple[str, ...]  # the contract tests that must kill it (paths or node ids)
    equivalent: bool = False
    factory: Callable = field(default=lambda: None, compare=False, repr=False)

    def names(self, nodeid: str) -> bool:
        """Whether *nodeid* (a test function's, without parameters) is one of its tests."""
        return any(nodeid == test or nodeid.startswith(test + "::") for test in self.tests)


MUTANTS: dict[str, Mutant] = {}
EQUIVALENT: dict[str, Mutant] = {}


def mutant(*tests: str, equivalent: bool = False):
    """Register a factory of a WSGI app as a mutant, with the contract tests (paths or node ids)
    that must kill it."""

    def register(factory):
        registry = EQUIVALENT if equivalent else MUTANTS
        doc = factory.__doc__.strip().splitlines()[0]
        named = (*tests, JUDGE) if factory.__name__ in JUDGED else tests
        registry[factory.__name__] = Mutant(factory.__name__, doc, named, equivalent, factory)
        return factory

    return register


def find(name: str) -> Mutant:
    return MUTANTS.get(name) or EQUIVALENT[name]

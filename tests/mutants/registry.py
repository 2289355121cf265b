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
JUDGED = frozenset({
    "lift_step_caps", "ignore_plans", "accept_any_key", "public_catalog", "fast_steps_by_default",
    "wrong_default_model", "drop_negative_prompt", "drop_seed_from_response", "corrupt_image",
    "fixed_image_size", "always_png", "errors_as_plain_json", "no_bearer_challenge",
    "no_allow_header", "wrong_error_code", "crash_on_non_ascii", "charset_parameter_is_415",
    "media_type_case_sensitive", "bearer_scheme_case_sensitive", "head_not_allowed",
    "head_sends_a_body", "media_type_before_authentication", "size_before_media_type",
    "size_limit_off_by_one", "plan_before_schema", "generic_400_codes",
    "unknown_key_reported_as_missing", "no_errors_list", "no_field_in_problems",
    "problem_status_disagrees", "every_id_is_the_default_model", "catalog_drift",
    "unknown_routes_are_html", "unknown_model_id_is_not_found", "unknown_model_id_is_200",
    "allow_lists_only_options", "instance_is_the_route_template", "relative_problem_types",
    "errors_list_generic_codes", "blank_prompt_accepted", "sizes_up_to_4096",
    "preset_overrides_explicit_steps", "model_sized_defaults", "accept_lists_are_406",
    "quoted_charset_is_415", "json_suffix_types_are_json", "missing_content_type_is_json",
    "uppercase_generation_ids", "json_in_latin1", "created_in_milliseconds", "one_image_only",
    "model_lookup_before_authentication", "unbounded_negative_prompt", "image_seeds_do_not_wrap",
})  # fmt: skip


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

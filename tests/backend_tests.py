"""The contract tests that reach a backend: those that expect an image (they reserve a billable
request). The backends' tests run these against a server on each backend; the rest of the
suite checks what the server decides before a backend is called, the same on every backend, and
runs against the mock in-process (and in full against the installed wheel)."""

from __future__ import annotations

BACKEND_TESTS = (
    "contract_tests/test_cors.py::test_generated_images_are_readable_from_any_origin",
    "contract_tests/test_generation.py::test_defaults",
    "contract_tests/test_generation.py::test_omitted_sizes_are_the_schema_defaults",
    "contract_tests/test_generation.py::test_each_output_format_is_made_as_asked",
    "contract_tests/test_generation.py::test_negative_prompt_support",
    "contract_tests/test_generation.py::test_generation_property",
    "contract_tests/test_generation.py::test_the_same_seed_gives_the_same_image",
    "contract_tests/test_http.py::test_a_charset_parameter_generates",
    "contract_tests/test_http.py::test_ids_are_unique_and_created_is_now",
    "contract_tests/test_http.py::test_image_seeds_wrap_around_2_to_the_32",
    "contract_tests/test_plans.py::test_every_model_on_every_plan",
    "contract_tests/test_plans.py::test_plan_property",
    "contract_tests/test_steps.py::test_boundaries_of_the_cap",
    "contract_tests/test_steps.py::test_omitted_steps_default_to_quality_steps_and_fast_preset_to_fast_steps",
    "contract_tests/test_steps.py::test_an_explicit_step_count_wins_over_the_preset",
    "contract_tests/test_steps.py::test_steps_property",
)

# Billable, but not run on each backend: the judge's tests send hundreds of generations whose
# decisions (status, code, echo) are the server's, the same on every backend; what a backend
# adds (decodable images of the asked size, seeds) is in the tests above.
NOT_ON_BACKENDS = (
    "contract_tests/test_judge.py::test_every_answer_gets_an_empty_verdict",
    "contract_tests/test_judge.py::test_the_judge_knows_every_model_on_every_plan",
)

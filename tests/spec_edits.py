"""A table of edits of openapi.yaml, each as a spec author would make it (every place the spec
states the fact), with the class ``imageapi-contract diff`` must give it. Shared by the diff's
unit tests and the comparison with api-smart-diff."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from contract_tests.spec_diff import Level
from tests.support import ROOT

SPEC = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
# The edited specs are written as JSON (a subset of YAML that loads fast); the YAML reader is
# tested on the refusals below and by every run over openapi.yaml itself.


# --- edits, each as a spec author would make it (every place the spec states the fact) -------


def catalog(doc: dict) -> dict:
    return doc["x-imageapi-catalog"]


def model(doc: dict, model_id: str) -> dict:
    return next(entry for entry in catalog(doc)["models"] if entry["id"] == model_id)


def plan(doc: dict, plan_id: str) -> dict:
    return next(entry for entry in catalog(doc)["plans"] if entry["id"] == plan_id)


def schemas(doc: dict) -> dict:
    return doc["components"]["schemas"]


def request(doc: dict) -> dict:
    return schemas(doc)["GenerateRequest"]


def step_rule(doc: dict, model_id: str) -> dict:
    rules = request(doc)["allOf"][0]["allOf"]
    return next(rule for rule in rules if rule["if"]["properties"]["model"]["const"] == model_id)


def negative_rule(doc: dict) -> dict:
    return request(doc)["allOf"][1]


def generate(doc: dict) -> dict:
    return doc["paths"]["/api/v1/generate"]["post"]


def set_max_steps(model_id: str, steps: int) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        model(doc, model_id)["max_steps"] = steps
        step_rule(doc, model_id)["then"]["properties"]["num_inference_steps"]["maximum"] = steps

    return edit


def remove_model(doc: dict) -> None:
    catalog(doc)["models"].remove(model(doc, "flux-dev"))
    del catalog(doc)["pipelines"]["flux-dev"]
    request(doc)["properties"]["model"]["enum"].remove("flux-dev")
    request(doc)["allOf"][0]["allOf"].remove(step_rule(doc, "flux-dev"))
    negative_rule(doc)["if"]["properties"]["model"]["enum"].remove("flux-dev")


def add_model(doc: dict) -> None:
    new = copy.deepcopy(model(doc, "sdxl-turbo")) | {"id": "sdxl-turbo-2", "name": "Turbo 2"}
    catalog(doc)["models"].append(new)
    catalog(doc)["pipelines"]["sdxl-turbo-2"] = copy.deepcopy(
        catalog(doc)["pipelines"]["sdxl-turbo"]
    )
    request(doc)["properties"]["model"]["enum"].append("sdxl-turbo-2")
    rule = copy.deepcopy(step_rule(doc, "sdxl-turbo"))
    rule["if"]["properties"]["model"]["const"] = "sdxl-turbo-2"
    request(doc)["allOf"][0]["allOf"].append(rule)
    negative_rule(doc)["if"]["properties"]["model"]["enum"].append("sdxl-turbo-2")


def add_plan(doc: dict) -> None:
    catalog(doc)["plans"].append({"id": "team", "name": "Team", "requests_per_minute": 600})
    schemas(doc)["PlanId"]["enum"].append("team")
    for entry in catalog(doc)["models"]:
        entry["plans"].append("team")


def remove_plan(doc: dict) -> None:
    catalog(doc)["plans"].remove(plan(doc, "basic"))
    schemas(doc)["PlanId"]["enum"].remove("basic")
    for entry in catalog(doc)["models"]:
        if "basic" in entry["plans"]:
            entry["plans"].remove("basic")


def withdraw_negative_prompt(doc: dict) -> None:
    model(doc, "sd-1.5")["negative_prompt"] = False
    negative_rule(doc)["if"]["properties"]["model"]["enum"].append("sd-1.5")


def grant_negative_prompt(doc: dict) -> None:
    model(doc, "flux-dev")["negative_prompt"] = True
    negative_rule(doc)["if"]["properties"]["model"]["enum"].remove("flux-dev")


# Names with a slash in them, written as {name} in the slash paths below.
SLASHED = {"generate": "/api/v1/generate", "models": "/api/v1/models", "json": "application/json"}


def parts_of(path: str) -> list[str]:
    return [SLASHED[part[1:-1]] if part.startswith("{") else part for part in path.split("/")]


def node_at(doc: dict, parts: list[str]):  # type: ignore[no-untyped-def]
    node = doc
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def set_path(path: str, value: object) -> Callable[[dict], None]:
    """Set the value at a slash path (``components/schemas/...``); ``None`` deletes it."""

    def edit(doc: dict) -> None:
        *parents, last = parts_of(path)
        node = node_at(doc, parents)
        if value is None:
            del node[last]
        else:
            node[last] = value

    return edit


def apply(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        for one in edits:
            one(doc)

    return edit


def remove_from_list(path: str, item: object) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        node_at(doc, parts_of(path)).remove(item)

    return edit


GEN_REQUEST = "components/schemas/GenerateRequest"
GEN_RESPONSE = "components/schemas/GenerateResponse"
PROPS = GEN_REQUEST + "/properties"


@dataclass(frozen=True)
class Edit:
    name: str
    edit: Callable[[dict], None]
    level: Level  # the class the whole edit must get (its worst change)
    pointer: str  # part of the pointer of a change of that class
    generic: bool = False  # a plain schema edit, also given to api-smart-diff


EDITS = [
    # breaking
    Edit("model removed", remove_model, Level.BREAKING, "models/flux-dev"),
    Edit(
        "model removed from a plan",
        remove_from_list("x-imageapi-catalog/models/6/plans", "pro"),
        Level.BREAKING,
        "models/sd-3.5-large/plans/pro",
    ),
    Edit("plan removed", remove_plan, Level.BREAKING, "plans/basic"),
    Edit(
        "max_steps lowered",
        set_max_steps("sdxl-turbo", 8),
        Level.BREAKING,
        "models/sdxl-turbo/max_steps",
    ),
    Edit(
        "negative prompt withdrawn",
        withdraw_negative_prompt,
        Level.BREAKING,
        "models/sd-1.5/negative_prompt",
    ),
    Edit(
        "requests_per_minute lowered",
        set_path("x-imageapi-catalog/plans/0/requests_per_minute", 5),
        Level.BREAKING,
        "plans/free/requests_per_minute",
    ),
    Edit(
        "request enum value removed",
        remove_from_list(PROPS + "/output_format/enum", "webp"),
        Level.BREAKING,
        "/properties/output_format/enum",
        generic=True,
    ),
    Edit(
        "response field removed",
        apply(
            set_path(GEN_RESPONSE + "/properties/created", None),
            remove_from_list(GEN_RESPONSE + "/required", "created"),
        ),
        Level.BREAKING,
        "/properties/created",
        generic=True,
    ),
    Edit(
        "response field made optional",
        remove_from_list(GEN_RESPONSE + "/required", "seed"),
        Level.BREAKING,
        "/required/seed",
        generic=True,
    ),
    Edit(
        "response field widened",
        set_path(GEN_RESPONSE + "/properties/width/minimum", 0),
        Level.BREAKING,
        "/properties/width/minimum",
        generic=True,
    ),
    Edit(
        "response header removed",
        set_path("paths/{generate}/post/responses/200/headers/RateLimit", None),
        Level.BREAKING,
        "/200/headers/RateLimit",
        generic=True,
    ),
    Edit(
        "documented status removed",
        set_path("paths/{generate}/post/responses/503", None),
        Level.BREAKING,
        "/responses/503",
        generic=True,
    ),
    Edit(
        "problem code renamed",
        set_path(
            "components/schemas/TooManyRequestsProblem/allOf/1/properties/code/enum",
            ["too_many_requests"],
        ),
        Level.BREAKING,
        "/properties/code/enum",
        generic=True,
    ),
    Edit(
        "request field made required",
        set_path(GEN_REQUEST + "/required", ["prompt", "width"]),
        Level.BREAKING,
        "/required/width",
        generic=True,
    ),
    Edit(
        "request maxLength lowered",
        set_path(PROPS + "/prompt/maxLength", 1000),
        Level.BREAKING,
        "/properties/prompt/maxLength",
        generic=True,
    ),
    Edit(
        "request minimum raised",
        set_path(PROPS + "/width/minimum", 512),
        Level.BREAKING,
        "/properties/width/minimum",
        generic=True,
    ),
    Edit(
        "request pattern added",
        set_path(PROPS + "/negative_prompt/pattern", r"^[a-z ]*$"),
        Level.BREAKING,
        "/properties/negative_prompt/pattern",
        generic=True,
    ),
    Edit(
        "request multipleOf narrowed",
        set_path(PROPS + "/height/multipleOf", 64),
        Level.BREAKING,
        "/properties/height/multipleOf",
        generic=True,
    ),
    Edit(
        "CORS origins reduced",
        set_path("x-imageapi-cors/allow_origins", ["https://app.example"]),
        Level.BREAKING,
        "x-imageapi-cors/allow_origins",
    ),
    Edit(
        "CORS exposed header removed",
        remove_from_list("x-imageapi-cors/expose_headers", "Retry-After"),
        Level.BREAKING,
        "x-imageapi-cors/expose_headers/retry-after",
    ),
    Edit(
        "security scheme changed",
        set_path(
            "components/securitySchemes/bearerAuth",
            {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
        ),
        Level.BREAKING,
        "/components/securitySchemes/bearerAuth",
        generic=True,
    ),
    Edit(
        "operationId renamed",
        set_path("paths/{generate}/post/operationId", "generate"),
        Level.BREAKING,
        "/post/operationId",
        generic=True,
    ),
    # needs a version bump
    Edit(
        "quality_steps changed",
        set_path("x-imageapi-catalog/models/4/quality_steps", 30),
        Level.BUMP,
        "models/sdxl/quality_steps",
    ),
    Edit(
        "fast_steps changed",
        set_path("x-imageapi-catalog/models/4/fast_steps", 10),
        Level.BUMP,
        "models/sdxl/fast_steps",
    ),
    Edit(
        "default model changed",
        set_path(PROPS + "/model/default", "sdxl-turbo"),
        Level.BUMP,
        "/properties/model/default",
        generic=True,
    ),
    Edit(
        "default size changed",
        set_path(PROPS + "/width/default", 512),
        Level.BUMP,
        "/properties/width/default",
        generic=True,
    ),
    Edit(
        "default format changed",
        set_path(PROPS + "/output_format/default", "webp"),
        Level.BUMP,
        "/properties/output_format/default",
        generic=True,
    ),
    Edit("plan added", add_plan, Level.BUMP, "/properties/plans/items/enum"),
    Edit(
        "status documented",
        set_path("paths/{models}/get/responses/404", {"$ref": "#/components/responses/NotFound"}),
        Level.BUMP,
        "/responses/404",
        generic=True,
    ),
    Edit(
        "problem code added",
        set_path(
            "components/schemas/ForbiddenProblem/allOf/1/properties/code/enum",
            ["model_not_in_plan", "plan_suspended"],
        ),
        Level.BUMP,
        "/properties/code/enum",
        generic=True,
    ),
    # compatible
    Edit(
        "max_steps raised",
        set_max_steps("sdxl-turbo", 12),
        Level.COMPATIBLE,
        "models/sdxl-turbo/max_steps",
    ),
    Edit("model added", add_model, Level.COMPATIBLE, "models/sdxl-turbo-2"),
    Edit(
        "model added to a plan",
        lambda doc: model(doc, "flux-dev")["plans"].insert(0, "basic"),
        Level.COMPATIBLE,
        "models/flux-dev/plans/basic",
    ),
    Edit(
        "negative prompt granted",
        grant_negative_prompt,
        Level.COMPATIBLE,
        "models/flux-dev/negative_prompt",
    ),
    Edit(
        "requests_per_minute raised",
        set_path("x-imageapi-catalog/plans/0/requests_per_minute", 20),
        Level.COMPATIBLE,
        "plans/free/requests_per_minute",
    ),
    Edit(
        "optional request field added",
        set_path(PROPS + "/style", {"type": "string", "maxLength": 50}),
        Level.COMPATIBLE,
        "/properties/style",
        generic=True,
    ),
    Edit(
        "response field added",
        set_path(GEN_RESPONSE + "/properties/elapsed_ms", {"type": "integer", "minimum": 0}),
        Level.COMPATIBLE,
        "/properties/elapsed_ms",
        generic=True,
    ),
    Edit(
        "request maximum raised",
        set_path(PROPS + "/prompt/maxLength", 4000),
        Level.COMPATIBLE,
        "/properties/prompt/maxLength",
        generic=True,
    ),
    Edit(
        "CORS header allowed",
        set_path(
            "x-imageapi-cors/allow_headers", ["Authorization", "Content-Type", "Idempotency-Key"]
        ),
        Level.COMPATIBLE,
        "allow_headers/idempotency-key",
    ),
    Edit(
        "typical latency changed",
        set_path("x-imageapi-catalog/models/0/typical_latency_ms", 900),
        Level.COMPATIBLE,
        "models/flux-schnell/typical_latency_ms",
    ),
    # documentation only
    Edit(
        "operation description edited",
        set_path("paths/{generate}/post/description", "Makes images."),
        Level.DOCS,
        "/post/description",
        generic=True,
    ),
    Edit(
        "field description edited",
        set_path(PROPS + "/prompt/description", "The prompt."),
        Level.DOCS,
        "/properties/prompt/description",
        generic=True,
    ),
    Edit(
        "model description edited",
        set_path("x-imageapi-catalog/models/1/description", "Fast SDXL."),
        Level.DOCS,
        "models/sdxl-lightning/description",
    ),
    Edit(
        "example edited",
        set_path("paths/{generate}/post/responses/200/content/{json}/example/seed", 7),
        Level.DOCS,
        "/example",
        generic=True,
    ),
]


def edited(case: Edit) -> dict:
    doc = copy.deepcopy(SPEC)
    case.edit(doc)
    return doc

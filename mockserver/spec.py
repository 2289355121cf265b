"""Loading ``openapi.yaml`` and reading the catalog out of it.

Everything the server knows about models, plans, caps and defaults comes from here; nothing in
the rest of the package names a model or a number.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from mockserver.spec_document import DocumentError, read_document

# A link to the top-level openapi.yaml in the repository; the spec itself in an installed wheel.
DEFAULT_SPEC_PATH = Path(__file__).resolve().parent / "openapi.yaml"
CATALOG_KEY = "x-imageapi-catalog"
GENERATE_PATH = "/api/v1/generate"


class SpecError(ValueError):
    """The spec cannot be served: it is invalid, or its catalog and schemas disagree."""


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    id: str
    quality_steps: int
    fast_steps: int
    max_steps: int
    negative_prompt: bool
    plans: tuple[str, ...]
    entry: dict[str, Any]  # the catalog entry as written, served by GET /api/v1/models


@dataclasses.dataclass(frozen=True)
class Plan:
    id: str
    requests_per_minute: int


@dataclasses.dataclass(frozen=True)
class ApiSpec:
    """The resolved spec and what the server reads from it."""

    document: dict[str, Any]
    request_schema: dict[str, Any]
    models: dict[str, ModelInfo]
    plans: dict[str, Plan]
    default_model: str
    defaults: dict[str, Any]  # request field -> schema default
    pipelines: dict[str, dict[str, Any]]  # model id -> how the diffusers backend runs it
    source: str | None = None  # the YAML text it was read from, served as /openapi.yaml


def load_spec(path: str | Path = DEFAULT_SPEC_PATH, root: str | Path | None = None) -> ApiSpec:
    """Read, resolve and check the spec at *path*: one closed document (see
    :mod:`mockserver.spec_document`), whose ``$ref``s may name files under *root* if given."""
    try:
        document, text = read_document(path, root)
    except DocumentError as exc:
        raise SpecError(str(exc)) from None
    try:
        validate_openapi(document)
    except Exception as exc:  # the validator raises its own types, and jsonschema's
        reason = " ".join(str(exc).split())
        raise SpecError(f"{path}: not a valid OpenAPI document: {reason[:300]}") from None
    return dataclasses.replace(build_spec(document), source=text)


def build_spec(document: dict[str, Any]) -> ApiSpec:
    """Read the catalog and request rules from a resolved spec *document*."""
    document = copy.deepcopy(document)
    try:
        operation = document["paths"][GENERATE_PATH]["post"]
        request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
        catalog = document[CATALOG_KEY]
        document["x-imageapi-cors"]  # the CORS rules the HTTP layer serves
    except KeyError as exc:
        raise SpecError(f"the spec lacks {exc}") from exc

    model_entry_validator = Draft202012Validator(document["components"]["schemas"]["Model"])
    models = {}
    for entry in catalog["models"]:
        problems = [e.message for e in model_entry_validator.iter_errors(entry)]
        if problems:
            raise SpecError(f"catalog model {entry.get('id')!r}: {'; '.join(problems)}")
        models[entry["id"]] = ModelInfo(
            id=entry["id"],
            quality_steps=entry["quality_steps"],
            fast_steps=entry["fast_steps"],
            max_steps=entry["max_steps"],
            negative_prompt=entry["negative_prompt"],
            plans=tuple(entry["plans"]),
            entry=entry,
        )
    plans = {p["id"]: Plan(p["id"], p["requests_per_minute"]) for p in catalog["plans"]}
    defaults = {
        name: prop["default"]
        for name, prop in request_schema["properties"].items()
        if "default" in prop
    }
    spec = ApiSpec(
        document=document,
        request_schema=request_schema,
        models=models,
        plans=plans,
        default_model=defaults.get("model", ""),
        defaults=defaults,
        pipelines=catalog.get("pipelines", {}),
    )
    check_consistency(spec)
    return spec


def check_consistency(spec: ApiSpec) -> None:
    """Fail unless the catalog and the request schema state the same rules.

    The check probes the request schema with a validator instead of reading its ``if``/``then``
    structure, so it holds however the schema is written.
    """
    errors = []
    validator = Draft202012Validator(spec.request_schema)
    schema_models = set(spec.request_schema["properties"]["model"].get("enum", []))
    if schema_models != set(spec.models):
        errors.append(
            f"request schema models {sorted(schema_models)} != catalog models {sorted(spec.models)}"
        )
    if spec.default_model not in spec.models:
        errors.append(f"default model {spec.default_model!r} is not in the catalog")
    else:
        missing = set(spec.plans) - set(spec.models[spec.default_model].plans)
        if missing:
            errors.append(f"default model {spec.default_model!r} is not in plans {sorted(missing)}")
    if spec.pipelines and set(spec.pipelines) != set(spec.models):
        errors.append(
            f"catalog pipelines {sorted(spec.pipelines)} != catalog models {sorted(spec.models)}"
        )
    for model in spec.models.values():
        unknown = set(model.plans) - set(spec.plans)
        if unknown:
            errors.append(f"{model.id}: unknown plans {sorted(unknown)}")
        if not model.fast_steps <= model.quality_steps <= model.max_steps:
            errors.append(f"{model.id}: needs fast_steps <= quality_steps <= max_steps")
        named = [{"model": model.id}]
        if model.id == spec.default_model:
            named.append({})  # an omitted model must follow the default model's rules
        for base in named:
            body = {"prompt": "probe", **base}
            label = model.id if base else f"{model.id} (as default)"
            if not validator.is_valid({**body, "num_inference_steps": model.max_steps}):
                errors.append(f"{label}: schema rejects max_steps={model.max_steps}")
            if validator.is_valid({**body, "num_inference_steps": model.max_steps + 1}):
                errors.append(f"{label}: schema accepts steps above max_steps={model.max_steps}")
            accepts_negative = validator.is_valid({**body, "negative_prompt": "blur"})
            if accepts_negative != model.negative_prompt:
                errors.append(
                    f"{label}: catalog negative_prompt={model.negative_prompt}, "
                    f"schema {'accepts' if accepts_negative else 'rejects'} it"
                )
    if errors:
        raise SpecError("catalog and request schema disagree:\n  " + "\n  ".join(errors))

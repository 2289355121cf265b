"""What the contract says, read straight from openapi.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from prance import ResolvingParser

# A link to the top-level openapi.yaml in the repository; the spec itself in an installed wheel.
SPEC_PATH = Path(__file__).resolve().parent / "openapi.yaml"
GENERATE = "/api/v1/generate"
MODELS = "/api/v1/models"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
JSON = dict[str, Any]  # an object of the spec, as parsed


@dataclass(frozen=True)
class Contract:
    # Not in the repr: a failing test shown with --showlocals would print the whole spec
    # (110 KB) for each frame that holds the contract or a target.
    document: JSON = field(repr=False)

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> Contract:
        parser = ResolvingParser(str(path), backend="openapi-spec-validator", strict=False)
        return cls(parser.specification)

    # The catalog ---------------------------------------------------------------------------

    @cached_property
    def catalog(self) -> JSON:
        catalog: JSON = self.document["x-imageapi-catalog"]
        return catalog

    @cached_property
    def models(self) -> dict[str, JSON]:
        return {model["id"]: model for model in self.catalog["models"]}

    @cached_property
    def plans(self) -> list[str]:
        return [plan["id"] for plan in self.catalog["plans"]]

    def plan_includes(self, plan: str, model: str) -> bool:
        return plan in self.models[model]["plans"]

    # The request schema --------------------------------------------------------------------

    @cached_property
    def request_schema(self) -> JSON:
        schema: JSON = self.request_media_types["application/json"]["schema"]
        return schema

    @cached_property
    def request_media_types(self) -> JSON:
        content: JSON = self.document["paths"][GENERATE]["post"]["requestBody"]["content"]
        return content

    @cached_property
    def request_validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.request_schema)

    @cached_property
    def generated_validator(self) -> Draft202012Validator:
        """The schema of generateImage's 200."""
        response = self.document["paths"][GENERATE]["post"]["responses"]["200"]
        return Draft202012Validator(response["content"]["application/json"]["schema"])

    def default(self, field: str) -> Any:
        return self.request_schema["properties"][field].get("default")

    @property
    def default_model(self) -> str:
        model: str = self.default("model")
        return model

    def size_range(self, field: str) -> tuple[int, int, int]:
        prop = self.request_schema["properties"][field]
        bounds: tuple[int, int, int] = (prop["minimum"], prop["maximum"], prop.get("multipleOf", 1))
        return bounds

    def expected_steps(self, body: JSON) -> int:
        """The steps a target must use for a valid *body*."""
        if "num_inference_steps" in body:
            return int(body["num_inference_steps"])
        model = self.models[body.get("model", self.default_model)]
        preset = body.get("preset", self.default("preset"))
        steps: int = model["fast_steps"] if preset == "fast" else model["quality_steps"]
        return steps

    def expected_echo(self, body: JSON) -> JSON:
        """What a 200 to a valid *body* must echo: what was asked, or the default that was used."""
        expected: JSON = {
            "model": body.get("model", self.default_model),
            "width": int(body.get("width", self.default("width"))),
            "height": int(body.get("height", self.default("height"))),
            "num_inference_steps": self.expected_steps(body),
            "output_format": body.get("output_format", self.default("output_format")),
        }
        if "seed" in body:
            expected["seed"] = body["seed"]
        return expected

    # Error codes ---------------------------------------------------------------------------

    def problem_codes(self, status: int) -> set[str]:
        """The codes the spec documents for *status*, on any operation."""
        codes: set[str] = set()
        for item in self.document["paths"].values():
            for operation in item.values():
                response = operation.get("responses", {}).get(str(status))
                if response is None:
                    continue
                schema = response["content"]["application/problem+json"]["schema"]
                for part in schema.get("allOf", [schema]):
                    codes.update(part.get("properties", {}).get("code", {}).get("enum", []))
        return codes

    def responses(self, status: int) -> list[JSON]:
        """The responses the spec documents for *status*, on any operation."""
        return [
            operation["responses"][str(status)]
            for item in self.document["paths"].values()
            for operation in item.values()
            if str(status) in operation.get("responses", {})
        ]

    def required_headers(self, status: int) -> set[str]:
        """The headers the spec requires on every *status* response it documents."""
        named = [
            {name for name, header in response.get("headers", {}).items() if header.get("required")}
            for response in self.responses(status)
        ]
        return set.intersection(*named) if named else set()

    def methods(self, path: str) -> set[str]:
        """The methods the spec documents for *path* (a template such as
        ``/api/v1/models/{model_id}``), in upper case."""
        return {method.upper() for method in self.document["paths"][path] if method in HTTP_METHODS}

    def documented_headers(self) -> set[str]:
        """Every response header the spec documents, on any response."""
        return {
            name
            for item in self.document["paths"].values()
            for operation in item.values()
            for response in operation.get("responses", {}).values()
            for name in response.get("headers", {})
        }

    @cached_property
    def cors(self) -> JSON:
        """How browsers may call the API (`x-imageapi-cors`)."""
        rules: JSON = self.document["x-imageapi-cors"]
        return rules

    @cached_property
    def step_cap_code(self) -> str:
        code: str = self.request_schema["properties"]["num_inference_steps"]["x-problem-code"]
        return code

    @cached_property
    def unknown_model_code(self) -> str:
        code: str = self.request_schema["properties"]["model"]["x-problem-code"]
        return code

    @cached_property
    def negative_prompt_code(self) -> str:
        for rule in self.request_schema.get("allOf", []):
            if "negative_prompt" in rule.get("then", {}).get("properties", {}):
                code: str = rule["x-problem-code"]
                return code
        raise LookupError("the spec states no negative-prompt rule")


_checked_spec = SPEC_PATH


def use_spec(path: Path) -> None:
    """Check against the spec at *path* instead of the bundled one (``--spec``)."""
    global _checked_spec
    _checked_spec = Path(path)
    load_contract.cache_clear()


def spec_path() -> Path:
    """The spec this run checks against."""
    return _checked_spec


@cache
def load_contract() -> Contract:
    """The contract, loaded once: tests parametrize over its models at collection time."""
    return Contract.load(_checked_spec)

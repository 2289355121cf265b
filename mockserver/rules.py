"""Business rules: pure functions over the resolved spec.

The per-model rules JSON Schema can state (caps, negative prompts) are enforced by
``validation``; what remains here is what a schema cannot say: defaults that depend on the
model, and which plan may use which model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from mockserver.problems import Problem
from mockserver.spec import ApiSpec, ModelInfo

SEED_SPACE = 2**32


@dataclass(frozen=True)
class Generation:
    """A validated request with every default filled in: what a backend is asked to make."""

    prompt: str
    model: str
    width: int
    height: int
    num_inference_steps: int
    negative_prompt: str | None
    seed: int
    output_format: str
    num_images: int

    def image_seeds(self) -> list[int]:
        return [(self.seed + i) % SEED_SPACE for i in range(self.num_images)]


def resolve_generation(body: dict[str, Any], spec: ApiSpec) -> Generation:
    """Fill in *body*'s omitted fields from the spec. *body* must already be schema-valid."""
    values = {**spec.defaults, **body}
    model = spec.models[values["model"]]
    steps = values.get("num_inference_steps")
    if steps is None:
        steps = model.fast_steps if values.get("preset") == "fast" else model.quality_steps
    seed = values.get("seed")
    if seed is None:  # a seed needs to differ, not to be secret (see core's ids)
        seed = random.randrange(SEED_SPACE)
    # JSON Schema counts 1024.0 as an integer; the backend gets a real int.
    return Generation(
        prompt=values["prompt"],
        model=model.id,
        width=int(values["width"]),
        height=int(values["height"]),
        num_inference_steps=int(steps),
        negative_prompt=values.get("negative_prompt"),
        seed=int(seed),
        output_format=values["output_format"],
        num_images=int(values["num_images"]),
    )


def check_plan(plan: str, model: ModelInfo) -> None:
    """Refuse with 403 unless *plan* includes *model*."""
    if plan not in model.plans:
        raise Problem(
            403,
            "model_not_in_plan",
            f"The {plan} plan does not include {model.id}; it is on: {', '.join(model.plans)}.",
            field="model",
        )

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.plan_id import PlanId
from ..types import UNSET, Unset

T = TypeVar("T", bound="Model")


@_attrs_define
class Model:
    """A model as its public page shows it.

    Attributes:
        id (str): The model's id, as used in `GenerateRequest.model`.
        name (str): Display name.
        description (str): One-line description.
        best_for (str): What the model is best at.
        quality_steps (int): Steps for production quality; the default.
        fast_steps (int): Steps of the fast preset.
        max_steps (int): The hard cap on `num_inference_steps`.
        negative_prompt (bool): Whether `negative_prompt` is accepted.
        plans (list[PlanId]): The plans that include this model.
        typical_latency_ms (int | Unset): Typical time to make one 1024x1024 image at `quality_steps` on the hosted
            service.
            The mock's `--latency realistic` waits this long, scaled by steps, pixels and images.
    """

    id: str
    name: str
    description: str
    best_for: str
    quality_steps: int
    fast_steps: int
    max_steps: int
    negative_prompt: bool
    plans: list[PlanId]
    typical_latency_ms: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        name = self.name

        description = self.description

        best_for = self.best_for

        quality_steps = self.quality_steps

        fast_steps = self.fast_steps

        max_steps = self.max_steps

        negative_prompt = self.negative_prompt

        plans = []
        for plans_item_data in self.plans:
            plans_item = plans_item_data.value
            plans.append(plans_item)

        typical_latency_ms = self.typical_latency_ms

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "name": name,
                "description": description,
                "best_for": best_for,
                "quality_steps": quality_steps,
                "fast_steps": fast_steps,
                "max_steps": max_steps,
                "negative_prompt": negative_prompt,
                "plans": plans,
            }
        )
        if typical_latency_ms is not UNSET:
            field_dict["typical_latency_ms"] = typical_latency_ms

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        name = d.pop("name")

        description = d.pop("description")

        best_for = d.pop("best_for")

        quality_steps = d.pop("quality_steps")

        fast_steps = d.pop("fast_steps")

        max_steps = d.pop("max_steps")

        negative_prompt = d.pop("negative_prompt")

        plans = []
        _plans = d.pop("plans")
        for plans_item_data in _plans:
            plans_item = PlanId(plans_item_data)

            plans.append(plans_item)

        typical_latency_ms = d.pop("typical_latency_ms", UNSET)

        model = cls(
            id=id,
            name=name,
            description=description,
            best_for=best_for,
            quality_steps=quality_steps,
            fast_steps=fast_steps,
            max_steps=max_steps,
            negative_prompt=negative_prompt,
            plans=plans,
            typical_latency_ms=typical_latency_ms,
        )

        return model

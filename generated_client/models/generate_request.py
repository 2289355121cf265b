from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.generate_request_model import GenerateRequestModel
from ..models.generate_request_output_format import GenerateRequestOutputFormat
from ..models.generate_request_preset import GenerateRequestPreset
from ..types import UNSET, Unset

T = TypeVar("T", bound="GenerateRequest")


@_attrs_define
class GenerateRequest:
    """What to generate. Rules that depend on the model are stated in `allOf` (JSON Schema
    `if`/`then`), so that validators and test generators enforce them as the server does. An
    omitted `model` means the default model, whose rules match because `properties` only
    constrains fields that are present.

        Attributes:
            prompt (str): What the image should show. Example: a cinematic mountain landscape at sunrise.
            model (GenerateRequestModel | Unset): The model; every plan includes the default. Default:
                GenerateRequestModel.FLUX_SCHNELL.
            width (int | Unset): Image width in pixels, a multiple of 16. Default: 1024.
            height (int | Unset): Image height in pixels, a multiple of 16. Default: 1024.
            num_inference_steps (int | Unset): Denoising steps, from 1 to the model's `max_steps`. Defaults to the model's
                `quality_steps`, or `fast_steps` with `"preset": "fast"`.
            preset (GenerateRequestPreset | Unset): Picks the default `num_inference_steps`: `quality` takes the model's
                `quality_steps`,
                `fast` its `fast_steps`. An explicit `num_inference_steps` wins over the preset.
                 Default: GenerateRequestPreset.QUALITY.
            negative_prompt (str | Unset): What the image should not show. Only for models with `negative_prompt` support.
            seed (int | Unset): Seed for reproducible output; chosen at random and echoed when omitted.
            output_format (GenerateRequestOutputFormat | Unset): The encoding of the returned images. Default:
                GenerateRequestOutputFormat.PNG.
            num_images (int | Unset): How many images to make; image `i` uses seed `(seed + i) mod 2^32`. Default: 1.
    """

    prompt: str
    model: GenerateRequestModel | Unset = GenerateRequestModel.FLUX_SCHNELL
    width: int | Unset = 1024
    height: int | Unset = 1024
    num_inference_steps: int | Unset = UNSET
    preset: GenerateRequestPreset | Unset = GenerateRequestPreset.QUALITY
    negative_prompt: str | Unset = UNSET
    seed: int | Unset = UNSET
    output_format: GenerateRequestOutputFormat | Unset = GenerateRequestOutputFormat.PNG
    num_images: int | Unset = 1

    def to_dict(self) -> dict[str, Any]:
        prompt = self.prompt

        model: str | Unset = UNSET
        if not isinstance(self.model, Unset):
            model = self.model.value

        width = self.width

        height = self.height

        num_inference_steps = self.num_inference_steps

        preset: str | Unset = UNSET
        if not isinstance(self.preset, Unset):
            preset = self.preset.value

        negative_prompt = self.negative_prompt

        seed = self.seed

        output_format: str | Unset = UNSET
        if not isinstance(self.output_format, Unset):
            output_format = self.output_format.value

        num_images = self.num_images

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "prompt": prompt,
            }
        )
        if model is not UNSET:
            field_dict["model"] = model
        if width is not UNSET:
            field_dict["width"] = width
        if height is not UNSET:
            field_dict["height"] = height
        if num_inference_steps is not UNSET:
            field_dict["num_inference_steps"] = num_inference_steps
        if preset is not UNSET:
            field_dict["preset"] = preset
        if negative_prompt is not UNSET:
            field_dict["negative_prompt"] = negative_prompt
        if seed is not UNSET:
            field_dict["seed"] = seed
        if output_format is not UNSET:
            field_dict["output_format"] = output_format
        if num_images is not UNSET:
            field_dict["num_images"] = num_images

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        prompt = d.pop("prompt")

        _model = d.pop("model", UNSET)
        model: GenerateRequestModel | Unset
        if isinstance(_model, Unset):
            model = UNSET
        else:
            model = GenerateRequestModel(_model)

        width = d.pop("width", UNSET)

        height = d.pop("height", UNSET)

        num_inference_steps = d.pop("num_inference_steps", UNSET)

        _preset = d.pop("preset", UNSET)
        preset: GenerateRequestPreset | Unset
        if isinstance(_preset, Unset):
            preset = UNSET
        else:
            preset = GenerateRequestPreset(_preset)

        negative_prompt = d.pop("negative_prompt", UNSET)

        seed = d.pop("seed", UNSET)

        _output_format = d.pop("output_format", UNSET)
        output_format: GenerateRequestOutputFormat | Unset
        if isinstance(_output_format, Unset):
            output_format = UNSET
        else:
            output_format = GenerateRequestOutputFormat(_output_format)

        num_images = d.pop("num_images", UNSET)

        generate_request = cls(
            prompt=prompt,
            model=model,
            width=width,
            height=height,
            num_inference_steps=num_inference_steps,
            preset=preset,
            negative_prompt=negative_prompt,
            seed=seed,
            output_format=output_format,
            num_images=num_images,
        )

        return generate_request

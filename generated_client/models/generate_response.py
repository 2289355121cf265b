from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.generate_response_output_format import GenerateResponseOutputFormat

if TYPE_CHECKING:
    from ..models.image import Image


T = TypeVar("T", bound="GenerateResponse")


@_attrs_define
class GenerateResponse:
    """The images and what was actually used to make them.

    Attributes:
        id (str): The generation's id.
        created (int): When the generation finished, in seconds since the Unix epoch.
        model (str): The model used.
        width (int): Width used, in pixels.
        height (int): Height used, in pixels.
        num_inference_steps (int): Steps used.
        seed (int): Seed of the first image.
        output_format (GenerateResponseOutputFormat): Encoding of the images.
        images (list[Image]): The images, `num_images` of them.
    """

    id: str
    created: int
    model: str
    width: int
    height: int
    num_inference_steps: int
    seed: int
    output_format: GenerateResponseOutputFormat
    images: list[Image]

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        created = self.created

        model = self.model

        width = self.width

        height = self.height

        num_inference_steps = self.num_inference_steps

        seed = self.seed

        output_format = self.output_format.value

        images = []
        for images_item_data in self.images:
            images_item = images_item_data.to_dict()
            images.append(images_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "created": created,
                "model": model,
                "width": width,
                "height": height,
                "num_inference_steps": num_inference_steps,
                "seed": seed,
                "output_format": output_format,
                "images": images,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.image import Image  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        created = d.pop("created")

        model = d.pop("model")

        width = d.pop("width")

        height = d.pop("height")

        num_inference_steps = d.pop("num_inference_steps")

        seed = d.pop("seed")

        output_format = GenerateResponseOutputFormat(d.pop("output_format"))

        images = []
        _images = d.pop("images")
        for images_item_data in _images:
            images_item = Image.from_dict(images_item_data)

            images.append(images_item)

        generate_response = cls(
            id=id,
            created=created,
            model=model,
            width=width,
            height=height,
            num_inference_steps=num_inference_steps,
            seed=seed,
            output_format=output_format,
            images=images,
        )

        return generate_response

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.image_media_type import ImageMediaType

T = TypeVar("T", bound="Image")


@_attrs_define
class Image:
    """One image, ready for `<img src=...>`.

    Attributes:
        media_type (ImageMediaType): The image's media type.
        data_url (str): The image as an RFC 2397 `data:` URL (base64).
        seed (int): The seed this image was made with.
    """

    media_type: ImageMediaType
    data_url: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        media_type = self.media_type.value

        data_url = self.data_url

        seed = self.seed

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "media_type": media_type,
                "data_url": data_url,
                "seed": seed,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        media_type = ImageMediaType(d.pop("media_type"))

        data_url = d.pop("data_url")

        seed = d.pop("seed")

        image = cls(
            media_type=media_type,
            data_url=data_url,
            seed=seed,
        )

        return image

"""Pixels to files: PNGs deflated in bands on all cores (see ``png``), several times faster
than Pillow; JPEG and WebP through Pillow. Runs in a pool beside the device's next call."""

from __future__ import annotations

import io
from concurrent.futures import Executor
from typing import Any

from mockserver.backends import png

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def encode(pixels: Any, output_format: str, *, png_level: int, deflater: Executor) -> list[bytes]:
    """Each HxWx3 uint8 array of *pixels* as a file in *output_format*."""
    from PIL import Image

    encoded = []
    for array in pixels:
        if output_format == "png":
            encoded.append(png.encode_rgb(array, level=png_level, executor=deflater))
        else:
            out = io.BytesIO()
            Image.fromarray(array).save(out, PIL_FORMATS[output_format])
            encoded.append(out.getvalue())
    return encoded

"""What an image's bytes are, read as cheaply as the contract needs: its format and its size,
and whether the file is whole.

The contract says an image decodes, in the asked format, at the asked size. Decoding every
pixel of a 1024x1024 image costs milliseconds; a file cut short or damaged in transit is told
for a fraction of that from its structure: for PNG the signature, the IHDR size and every
chunk's CRC up to IEND (``zlib.crc32``, the checksum PNG itself uses); for JPEG and WebP the
header Pillow reads without decoding, and the end of the file (JPEG's EOI marker, the length
RIFF gives WebP). ``decode=True`` decodes the pixels too, as a viewer would.
"""

from __future__ import annotations

import io
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}


class ImageFault(ValueError):
    """The bytes are not a whole image; the message says why, in a few words."""


def inspect(raw: bytes, *, decode: bool = False) -> tuple[str, tuple[int, int]]:
    """The format (``png``, ``jpeg``, ``webp`` or Pillow's name of another) and the size of the
    image in *raw*; ImageFault if it is not a whole image."""
    if raw.startswith(PNG_SIGNATURE) and not decode:
        return "png", _png_size(memoryview(raw))
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(raw))  # reads the header only
        if decode:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageFault(f"does not decode: {exc}") from None
    kind = PIL_FORMATS.get(str(image.format), str(image.format))
    if not decode:
        _whole(kind, raw)
    return kind, image.size


def _png_size(data: memoryview) -> tuple[int, int]:
    """IHDR's width and height, after checking every chunk up to IEND (PNG 1.2, section 5)."""
    at, size, seen_data = len(PNG_SIGNATURE), None, False
    while True:
        if at + 12 > len(data):
            raise ImageFault("the PNG is cut short")
        length, kind = struct.unpack_from(">I4s", data, at)
        end = at + 8 + length
        if end + 4 > len(data):
            raise ImageFault(f"the PNG is cut short in a {kind!r} chunk")
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(data[at + 4 : end]) != crc:
            raise ImageFault(f"the CRC of a {kind!r} chunk is wrong")
        if size is None:
            if kind != b"IHDR" or length != 13:
                raise ImageFault("the PNG does not start with IHDR")
            size = struct.unpack_from(">II", data, at + 8)
        seen_data = seen_data or kind == b"IDAT"
        at = end + 4
        if kind == b"IEND":
            if not seen_data:
                raise ImageFault("the PNG has no IDAT chunk")
            return size


def _whole(kind: str, raw: bytes) -> None:
    """A JPEG ends with its EOI marker; a WebP is as long as its RIFF header says."""
    if kind == "jpeg" and not raw.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageFault("the JPEG is cut short (no EOI marker)")
    if kind == "webp" and (len(raw) < 12 or struct.unpack_from("<I", raw, 4)[0] + 8 > len(raw)):
        raise ImageFault("the WebP is cut short (shorter than its RIFF size)")

"""The judge's image check without a pixel decode: a whole image gives its format and size, one
cut short or damaged anywhere is a fault, as a full decode would find."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from contract_tests.images import ImageFault, inspect


def encoded(kind: str, size=(96, 64)) -> bytes:
    buffer = io.BytesIO()
    image = Image.effect_noise(size, 60).convert("RGB")  # noise: more than one IDAT chunk
    image.save(buffer, format=kind.upper(), **({"compress_level": 0} if kind == "png" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("decode", [False, True])
def test_a_whole_image_gives_its_format_and_size(kind, decode):
    assert inspect(encoded(kind), decode=decode) == (kind, (96, 64))


@pytest.mark.parametrize("kind", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("decode", [False, True])
def test_an_image_cut_short_is_a_fault(kind, decode):
    raw = encoded(kind)
    with pytest.raises(ImageFault):
        inspect(raw[: len(raw) // 2], decode=decode)


def test_a_png_damaged_in_a_chunk_is_a_fault_by_its_crc():
    raw = bytearray(encoded("png"))
    raw[len(raw) // 2] ^= 0xFF  # inside the pixel data
    with pytest.raises(ImageFault, match="CRC"):
        inspect(bytes(raw))


def test_a_png_without_its_end_is_a_fault():
    raw = encoded("png")
    with pytest.raises(ImageFault, match="cut short"):
        inspect(raw[:-12])  # the IEND chunk gone, every other chunk whole


def test_bytes_that_are_no_image_are_a_fault():
    with pytest.raises(ImageFault):
        inspect(b"not an image at all")

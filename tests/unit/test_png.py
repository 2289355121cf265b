"""PNG writing: banded, parallel deflate must still give one exact, valid image."""

from __future__ import annotations

import io
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mockserver.backends import png


@given(st.binary(max_size=500), st.binary(max_size=500))
def test_adler32_combine_matches_zlib(a, b):
    assert png.adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@pytest.fixture(scope="module")
def executor():
    with ThreadPoolExecutor(4) as pool:
        yield pool


def _decode(data: bytes) -> numpy.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "RGB"
    return numpy.asarray(image)


@settings(max_examples=20, deadline=None)
@given(
    height=st.integers(1, 700),
    width=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    level=st.integers(1, 9),
)
def test_round_trips_every_pixel(executor, height, width, seed, level):
    # Up to 700 rows of 900 bytes: several bands, so the joined streams and checksums are tested.
    pixels = numpy.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=numpy.uint8)
    data = png.encode_rgb(pixels, level=level, executor=executor)
    assert numpy.array_equal(_decode(data), pixels)
    assert png.encode_rgb(pixels, level=level) == data  # threads change nothing in the bytes


def test_a_large_smooth_image_is_split_into_bands_and_compresses(executor):
    ramp = numpy.linspace(0, 255, 1024, dtype=numpy.float32)
    channels = [
        numpy.add.outer(ramp, ramp) / 2,
        numpy.tile(ramp, (1024, 1)),
        numpy.full_like(ramp, 40),
    ]
    pixels = numpy.stack(numpy.broadcast_arrays(*channels), axis=-1).astype(numpy.uint8)
    data = png.encode_rgb(pixels, executor=executor)
    assert numpy.array_equal(_decode(data), pixels)
    assert data.count(b"IDAT") == 1
    assert len(data) < pixels.nbytes / 20  # the "Up" filter turns the ramps into runs


def test_refuses_what_is_not_rgb_bytes():
    with pytest.raises(ValueError, match="uint8"):
        png.encode_rgb(numpy.zeros((4, 4, 3), dtype=numpy.float32))
    for shape in [(4, 4, 4), (4, 4)]:
        with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
            png.encode_rgb(numpy.zeros(shape, dtype=numpy.uint8))

"""The placeholder backend: real, exact, deterministic images."""

from __future__ import annotations

import io
import textwrap
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mockserver.backends.placeholder import (
    GRADIENT_LEVELS,
    PlaceholderBackend,
    _prompt_lines,
    gradient,
    render,
)
from tests.support import make_generation

sizes = st.integers(16, 128).map(lambda n: n * 16)


generation = make_generation


@settings(max_examples=25, deadline=None)
@given(
    width=sizes,
    height=sizes,
    fmt=st.sampled_from(["png", "jpeg", "webp"]),
    prompt=st.text(min_size=1, max_size=300),
)
def test_image_decodes_at_the_exact_size_and_format(width, height, fmt, prompt):
    data = render(generation(width=width, height=height, output_format=fmt, prompt=prompt), 1)
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every row; a broken stream or checksum raises
    assert image.size == (width, height)
    assert image.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]


def test_png_stream_checksum_is_right():
    data = render(generation(width=1024, height=768), 3)
    # IDAT is the fourth chunk: signature(8) IHDR(25) PLTE(12 + 768)
    offset = 8 + 25 + 12 + 768
    length = int.from_bytes(data[offset : offset + 4], "big")
    assert data[offset + 4 : offset + 8] == b"IDAT"
    raw = zlib.decompress(data[offset + 8 : offset + 8 + length])  # verifies Adler-32
    assert len(raw) == 768 * (1024 + 1)


def test_same_inputs_same_bytes_and_any_change_shows():
    base = render(generation(), 42)
    assert render(generation(), 42) == base
    for changed in [
        render(generation(prompt="a blue fox"), 42),
        render(generation(model="sdxl"), 42),
        render(generation(), 43),
        render(generation(width=528), 42),
    ]:
        assert changed != base


def test_images_show_their_colours_and_caption():
    image = Image.open(io.BytesIO(render(generation(width=1024, height=1024), 5))).convert("RGB")
    top, bottom = image.getpixel((10, 5)), image.getpixel((10, 1018))
    assert top != bottom  # a gradient
    band = image.crop((0, 440, 1024, 580))
    assert len(band.getcolors(maxcolors=1 << 16)) > 4  # antialiased text on the band


def test_backend_makes_one_image_per_seed():
    images = PlaceholderBackend().generate(generation(num_images=3, seed=2**32 - 1))
    assert len(images) == 3
    assert len(set(images)) == 3


@given(
    st.text(alphabet=st.sampled_from("ab -\t\n\x1f\x85\u00a0\u3000\u200b\u2028xé…"), max_size=60)
)
@settings(max_examples=500, deadline=None)
def test_a_prompt_s_lines_are_textwrap_s(prompt):
    expected = textwrap.wrap(prompt, width=48, max_lines=2, placeholder=" …") or [""]
    assert _prompt_lines(prompt) == expected


@given(st.binary(min_size=6, max_size=6))
@settings(max_examples=300, deadline=None)
def test_the_gradient_runs_from_one_colour_to_the_other(ends):
    colours = gradient(ends)
    assert len(colours) == 3 * GRADIENT_LEVELS
    assert colours[:3] == ends[:3] and colours[-3:] == ends[3:]
    for channel in range(3):
        levels = colours[channel::3]
        start, end = ends[channel], ends[3 + channel]
        steps = [b - a for a, b in zip(levels, levels[1:], strict=False)]
        # Monotonic from one end to the other: no lane carried into its neighbour.
        assert all(step >= 0 for step in steps) if end >= start else all(s <= 0 for s in steps)
        assert all(abs(step) <= 2 for step in steps)


def test_the_gradient_at_the_extremes():
    assert gradient(bytes([0, 0, 0, 255, 255, 255]))[-3:] == b"\xff\xff\xff"
    assert gradient(bytes([255, 255, 255, 0, 0, 0]))[:3] == b"\xff\xff\xff"
    assert gradient(bytes([255] * 6)) == b"\xff" * 3 * GRADIENT_LEVELS

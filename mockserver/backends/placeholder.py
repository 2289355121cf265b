"""The default backend: cheap, deterministic placeholder images a person can recognise.

An image is a vertical gradient in two colours drawn from (prompt, model, seed), with a band
across the middle that shows the prompt, the model, the seed, the size and the steps. It is an
indexed (palette) image whose pixel indices depend only on the size and the text, never on the
colours, which travel in the palette. For PNG that means the compressed gradient rows are made
once per size and only the text band is drawn and compressed per request: about 0.15 ms for
1024x1024, against about 30 ms for drawing and encoding an RGB image with Pillow.
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
import textwrap
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageFont
from zlib_ng import zlib_ng as zlib  # zlib's API; SIMD deflate and Adler-32, several times faster

from mockserver.backends import png
from mockserver.rules import Generation

# Palette: indices 0..15 are the band's shades from its background (0) to the ink (15), so that a
# zero byte is both the band's background and PNG's "no filter" byte; 16..255 are the gradient.
TEXT_SHADES = 16
GRADIENT_LEVELS = 256 - TEXT_SHADES
BAND_COLOUR, INK_COLOUR = (20, 20, 28), (245, 245, 250)
_GLYPH_CACHE_SIZE = 4096


class PlaceholderBackend:
    """Makes placeholder images; ``generate`` is thread-safe and holds no state."""

    def __init__(self, **_options):
        pass

    def generate(self, generation: Generation) -> list[bytes]:
        return [render(generation, seed) for seed in generation.image_seeds()]


def render(generation: Generation, seed: int) -> bytes:
    """One encoded image for *generation* made with *seed*."""
    width, height = generation.width, generation.height
    layout = _layout(width, height)
    palette = _palette(generation.prompt, generation.model, seed)
    band = _band_scanlines(width, layout, _caption(generation, seed))
    if generation.output_format == "png":
        return _png(width, height, palette, layout, band)
    # Other formats need plain pixels: drop each band row's leading filter byte.
    band_pixels = b"".join(
        band[y * (width + 1) + 1 : (y + 1) * (width + 1)] for y in range(layout.band_height)
    )
    image = Image.frombytes(
        "P", (width, height), layout.top_pixels + band_pixels + layout.bottom_pixels
    )
    image.putpalette(palette)
    out = io.BytesIO()
    if generation.output_format == "jpeg":
        image.convert("RGB").save(out, "JPEG", quality=85)
    else:
        image.convert("RGB").save(out, "WEBP", quality=80, method=0)
    return out.getvalue()


CAPTION_CHARS = 48  # of a caption line


def _caption(generation: Generation, seed: int) -> tuple[list[str], str]:
    lines = _prompt_lines(generation.prompt)
    meta = (
        f"{generation.model} · seed {seed} · {generation.width}x{generation.height}"
        f" · {generation.num_inference_steps} steps"
    )
    return lines, meta


def _prompt_lines(prompt: str) -> list[str]:
    """The prompt in at most two lines, as ``textwrap.wrap`` cuts it. A prompt that fits on one
    line, printable (so its only whitespace is spaces) and not starting or ending with one, is
    that line: textwrap would find no break to make nor whitespace to drop, and takes far
    longer to say so."""
    if 0 < len(prompt) <= CAPTION_CHARS and prompt.isprintable() and prompt == prompt.strip():
        return [prompt]
    return textwrap.wrap(prompt, width=CAPTION_CHARS, max_lines=2, placeholder=" …") or [""]


def _palette(prompt: str, model: str, seed: int) -> bytes:
    key = f"{model}\0{seed}\0{prompt}".encode("utf-8", "surrogatepass")
    return _BAND_PALETTE + gradient(hashlib.sha256(key).digest()[:6])


def gradient(ends: bytes) -> bytes:
    """GRADIENT_LEVELS RGB colours from the first colour of *ends* (6 bytes) to the second.

    Computed all at once: each channel of each colour is a 16-bit lane of one integer,
    ``(256 - w) * a + w * b + 128`` for the level's weight w (at most 65,408: no lane carries
    into the next), and its high byte is the rounded channel. Several times faster than
    Pillow's resize of a two-pixel image, which it matches to within one level.
    """
    a_r, a_g, a_b, b_r, b_g, b_b = ends
    lanes = _ROUNDING + a_r * _FROM[0] + a_g * _FROM[1] + a_b * _FROM[2]
    lanes += b_r * _TO[0] + b_g * _TO[1] + b_b * _TO[2]
    return lanes.to_bytes(6 * GRADIENT_LEVELS, "little")[1::2]


def _gradient_lanes() -> tuple[list[int], list[int], int]:
    """The constant integers of :func:`gradient`: per channel the weights of the first colour
    and of the second, in that channel's lanes, and the rounding in every lane."""
    weight_from, weight_to, rounding = [0, 0, 0], [0, 0, 0], 0
    for level in range(GRADIENT_LEVELS):
        weight = round(level * 256 / (GRADIENT_LEVELS - 1))
        for channel in range(3):
            lane = 16 * (3 * level + channel)
            weight_from[channel] |= (256 - weight) << lane
            weight_to[channel] |= weight << lane
            rounding |= 128 << lane
    return weight_from, weight_to, rounding


def _ramp(start, end, steps: int) -> bytes:
    """*steps* RGB colours from *start* to *end*, as palette bytes."""
    return b"".join(
        bytes(round(a + (b - a) * i / (steps - 1)) for a, b in zip(start, end, strict=True))
        for i in range(steps)
    )


_BAND_PALETTE = _ramp(BAND_COLOUR, INK_COLOUR, TEXT_SHADES)
_FROM, _TO, _ROUNDING = _gradient_lanes()
INK, GREY_INK = TEXT_SHADES - 1, (TEXT_SHADES - 1) * 2 // 3


def _band_scanlines(width: int, layout: _Layout, caption: tuple[list[str], str]) -> bytes:
    """The band's PNG scanlines: per row a zero filter byte, then *width* palette indices.

    Glyphs are blended in with palette indices as the ink (0 is the band, 15 the ink), so the
    antialiased text is already in palette terms. The text is drawn one column to the right
    into an image one column wider, whose column 0 stays zero: the filter bytes come for free.
    """
    lines, meta = caption
    mask = Image.new("L", (width + 1, layout.band_height), 0)
    size = layout.font_size
    x = 1 + size // 2
    y = size // 2
    for line in lines:
        _draw_text(mask, x, y, line, size, INK)
        y += size + size // 4
    _draw_text(mask, x, y + size // 4, meta, max(8, size * 2 // 3), GREY_INK)
    return mask.tobytes()


def _draw_text(image: Image.Image, x: float, y: int, text: str, size: int, ink: int) -> None:
    """Draw *text* glyph by glyph from a cache: several times faster than ``ImageDraw.text``
    for short strings, at the cost of kerning, which a placeholder does not need."""
    core = image.im  # Pillow's C image: its paste skips the checks of Image.paste
    right = image.width - size // 2
    for char in text:
        glyph, dx, dy, width, height, advance = _glyph(char, size)
        if x + advance > right:
            break
        if glyph is not None:
            left, top = int(x) + dx, y + dy
            core.paste(ink, (left, top, left + width, top + height), glyph)
        x += advance


@functools.lru_cache(maxsize=_GLYPH_CACHE_SIZE)
def _glyph(char: str, size: int) -> tuple:
    """(coverage as a C image or None, x offset, y offset, width, height, advance)."""
    font = _font(size)
    mask, (dx, dy) = font.getmask2(char, mode="L")
    width, height = mask.size
    glyph = Image.frombytes("L", mask.size, bytes(mask)).im if width and height else None
    return glyph, dx, dy, width, height, font.getlength(char)


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # With a size, Pillow's default font is its FreeType one (Pillow is built with FreeType).
    font = cast(ImageFont.FreeTypeFont, ImageFont.load_default(size=size))
    return font.font_variant(layout_engine=ImageFont.Layout.BASIC)


@dataclass(frozen=True)
class _Layout:
    """Everything about an image of one size that does not depend on the request."""

    font_size: int
    band_top: int
    band_height: int
    top_pixels: bytes
    bottom_pixels: bytes
    top_deflate: bytes  # raw deflate, sync-flushed so that more blocks may follow
    top_adler: int
    bottom_deflate: bytes  # raw deflate ending in the final block
    bottom_adler: int
    bottom_length: int


@functools.lru_cache(maxsize=32)
def _layout(width: int, height: int) -> _Layout:
    font_size = max(10, width // 36)
    band_height = min(height, font_size * 4)
    band_top = (height - band_height) // 2
    rows = [bytes([TEXT_SHADES + y * GRADIENT_LEVELS // height]) * width for y in range(height)]
    top = rows[:band_top]
    bottom = rows[band_top + band_height :]
    top_scan = b"".join(b"\x00" + row for row in top)
    bottom_scan = b"".join(b"\x00" + row for row in bottom)
    return _Layout(
        font_size=font_size,
        band_top=band_top,
        band_height=band_height,
        top_pixels=b"".join(top),
        bottom_pixels=b"".join(bottom),
        top_deflate=png.deflate(top_scan, final=False),
        top_adler=zlib.adler32(top_scan),
        bottom_deflate=png.deflate(bottom_scan, final=True),
        bottom_adler=zlib.adler32(bottom_scan),
        bottom_length=len(bottom_scan),
    )


def _png(width: int, height: int, palette: bytes, layout: _Layout, band: bytes) -> bytes:
    """A palette PNG whose IDAT joins the cached top and bottom deflate blocks around the band's."""
    adler = zlib.adler32(band, layout.top_adler)
    adler = png.adler32_combine(adler, layout.bottom_adler, layout.bottom_length)
    idat = b"".join(
        [
            png.ZLIB_HEADER,
            layout.top_deflate,
            png.deflate(band, final=False),
            layout.bottom_deflate,
            struct.pack(">I", adler),
        ]
    )
    return png.assemble(width, height, 3, idat, palette)

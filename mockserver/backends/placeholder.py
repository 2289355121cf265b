"""The default backend: cheap, deterministic placeholder images a person can recognise.

An image is a vertical gradient in two colours drawn from (prompt, model, seed), with a band
across the middle that shows the prompt, the model, the seed and the size. It is an indexed
(palette) image whose pixel indices depend only on the size and the text, never on the colours,
so for PNG the compressed gradient rows are made once per size and only the text band is
compressed per request; the colours travel in the palette.
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
import textwrap
import zlib
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from mockserver.rules import Generation

GRADIENT_LEVELS = 240  # palette indices 0..239: the gradient; 240..255: the band's text shades
TEXT_SHADES = 256 - GRADIENT_LEVELS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZLIB_HEADER = b"\x78\x01"
_ADLER_BASE = 65521


class PlaceholderBackend:
    """Makes placeholder images; ``generate`` is thread-safe and holds no state."""

    def __init__(self, **_options):
        pass

    def generate(self, generation: Generation) -> list[bytes]:
        return [render(generation, seed) for seed in generation.image_seeds()]


def render(generation: Generation, seed: int) -> bytes:
    """One encoded image for *generation* made with *seed*."""
    layout = _layout(generation.width, generation.height)
    palette = _palette(generation.prompt, generation.model, seed)
    band = _band_pixels(
        generation.width,
        layout.band_height,
        _caption(generation, seed),
    )
    if generation.output_format == "png":
        return _png(generation.width, generation.height, palette, layout, band)
    pixels = layout.top_pixels + band + layout.bottom_pixels
    image = Image.frombytes("P", (generation.width, generation.height), pixels)
    image.putpalette(palette)
    out = io.BytesIO()
    if generation.output_format == "jpeg":
        image.convert("RGB").save(out, "JPEG", quality=85)
    else:
        image.convert("RGB").save(out, "WEBP", quality=80, method=0)
    return out.getvalue()


def _caption(generation: Generation, seed: int) -> tuple[list[str], str]:
    lines = textwrap.wrap(generation.prompt, width=42, max_lines=2, placeholder=" …") or [""]
    meta = (
        f"{generation.model} · seed {seed} · {generation.width}x{generation.height}"
        f" · {generation.num_inference_steps} steps"
    )
    return lines, meta


def _palette(prompt: str, model: str, seed: int) -> bytes:
    key = f"{model}\0{seed}\0{prompt}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(key).digest()
    gradient = _ramp(digest[0:3], digest[3:6], GRADIENT_LEVELS)
    return gradient + _ramp((20, 20, 28), (245, 245, 250), TEXT_SHADES)


def _ramp(start, end, steps: int) -> bytes:
    """*steps* RGB colours from *start* to *end*, as palette bytes."""
    return b"".join(
        bytes(round(a + (b - a) * i / (steps - 1)) for a, b in zip(start, end, strict=True))
        for i in range(steps)
    )


# Text antialiasing levels 0..255 become the band's palette shades 240..255.
_SHADE_TABLE = bytes(GRADIENT_LEVELS + v * (TEXT_SHADES - 1) // 255 for v in range(256))


def _band_pixels(width: int, band_height: int, caption: tuple[list[str], str]) -> bytes:
    lines, meta = caption
    mask = Image.new("L", (width, band_height), 0)
    draw = ImageDraw.Draw(mask)
    size = max(10, width // 30)
    font = _font(size)
    small = _font(max(8, size * 2 // 3))
    y = size // 2
    for line in lines:
        draw.text((size // 2, y), line, fill=255, font=font)
        y += size + size // 4
    draw.text((size // 2, y + size // 4), meta, fill=180, font=small)
    return mask.tobytes().translate(_SHADE_TABLE)


@functools.lru_cache(maxsize=16)
def _font(size: int):
    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class _Layout:
    """Everything about an image of one size that does not depend on the request."""

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
    band_height = min(height, max(width // 30, 10) * 4)
    band_top = (height - band_height) // 2
    rows = [bytes([y * GRADIENT_LEVELS // height]) * width for y in range(height)]
    top = rows[:band_top]
    bottom = rows[band_top + band_height :]
    top_scan = b"".join(b"\x00" + row for row in top)
    bottom_scan = b"".join(b"\x00" + row for row in bottom)
    return _Layout(
        band_top=band_top,
        band_height=band_height,
        top_pixels=b"".join(top),
        bottom_pixels=b"".join(bottom),
        top_deflate=_deflate(top_scan, final=False),
        top_adler=zlib.adler32(top_scan),
        bottom_deflate=_deflate(bottom_scan, final=True),
        bottom_adler=zlib.adler32(bottom_scan),
        bottom_length=len(bottom_scan),
    )


def _deflate(data: bytes, *, final: bool) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH
    )


def _adler32_combine(adler1: int, adler2: int, length2: int) -> int:
    """The Adler-32 of two strings joined, from theirs (zlib's adler32_combine)."""
    rem = length2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (adler2 & 0xFFFF) + _ADLER_BASE - 1
    sum2 += ((adler1 >> 16) & 0xFFFF) + ((adler2 >> 16) & 0xFFFF) + _ADLER_BASE - rem
    return (sum1 % _ADLER_BASE) | ((sum2 % _ADLER_BASE) << 16)


def _png(width: int, height: int, palette: bytes, layout: _Layout, band: bytes) -> bytes:
    band_scan = b"".join(
        b"\x00" + band[y * width : (y + 1) * width] for y in range(layout.band_height)
    )
    adler = zlib.adler32(band_scan, layout.top_adler)
    adler = _adler32_combine(adler, layout.bottom_adler, layout.bottom_length)
    idat = (
        ZLIB_HEADER
        + layout.top_deflate
        + _deflate(band_scan, final=False)
        + layout.bottom_deflate
        + struct.pack(">I", adler)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return b"".join(
        [
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"PLTE", palette),
            _chunk(b"IDAT", idat),
            _chunk(b"IEND", b""),
        ]
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

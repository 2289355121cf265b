"""`make bench` (part): PNG encoding of a 1024x1024 RGB image, ours against Pillow's.

The diffusers backend encodes every image it makes; Pillow (the anchor) deflates on one core.
Three images: a smooth one (what a diffusion model mostly makes), a detailed one (smooth plus
fine texture), and noise (what random weights make; the worst case). For each: median time and
size for Pillow at its default level and at level 1, and for ``png.encode_rgb`` at level 2 on
one thread and on a pool of one thread per CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mockserver.backends import png  # noqa: E402


def images(size: int) -> dict[str, numpy.ndarray]:
    rng = numpy.random.default_rng(0)
    coarse = rng.normal(128, 40, (size // 32, size // 32, 3)).clip(0, 255).astype(numpy.uint8)
    smooth = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    smooth = smooth.filter(ImageFilter.GaussianBlur(4))
    texture = rng.normal(0, 6, (size, size, 3))
    detailed = (numpy.asarray(smooth, dtype=numpy.float64) + texture).clip(0, 255)
    noise = rng.integers(0, 256, (size, size, 3), dtype=numpy.uint8)
    return {
        "smooth": numpy.asarray(smooth),
        "detailed": detailed.astype(numpy.uint8),
        "noise": noise,
    }


def median_ms(fn, repeats: int) -> tuple[float, int]:
    size = len(fn())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), size


def pillow(pixels: numpy.ndarray, level: int | None) -> bytes:
    out = io.BytesIO()
    options = {} if level is None else {"compress_level": level}
    Image.fromarray(pixels).save(out, "PNG", **options)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(os.environ.get("OUT", ROOT / "bench" / "results")) / "png.json",
    )
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    pool = ThreadPoolExecutor(threads)
    results = {"size": args.size, "cpus": threads, "images": {}}
    print(f"PNG, {args.size}x{args.size} RGB, {threads} CPUs, median of {args.repeats}")
    print(f"{'image':9} {'encoder':22} {'ms':>8} {'MB':>6} {'vs Pillow':>10}")
    for name, pixels in images(args.size).items():
        runs = {
            "pillow (default level)": lambda p=pixels: pillow(p, None),
            "pillow level 1": lambda p=pixels: pillow(p, 1),
            "ours, 1 thread": lambda p=pixels: png.encode_rgb(p, level=2),
            f"ours, {threads} threads": lambda p=pixels: png.encode_rgb(p, level=2, executor=pool),
        }
        decoded = numpy.asarray(Image.open(io.BytesIO(runs["ours, 1 thread"]())))
        assert numpy.array_equal(decoded, pixels), "the PNG does not decode to the same pixels"
        measured = {label: median_ms(fn, args.repeats) for label, fn in runs.items()}
        anchor_ms = measured["pillow (default level)"][0]
        for label, (ms, size) in measured.items():
            print(f"{name:9} {label:22} {ms:8.1f} {size / 1e6:6.2f} {anchor_ms / ms:9.1f}x")
        results["images"][name] = {
            label: {"ms": ms, "bytes": size} for label, (ms, size) in measured.items()
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What ``POST /api/v1/generate`` does, without HTTP: a parsed body and a plan in, the answer's
JSON out, or a :class:`~mockserver.problems.Problem`. The ``api`` blueprint calls it."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from typing import Any

from mockserver.backends import BackendUnavailable, ImageBackend
from mockserver.latency import delay_ms, pause
from mockserver.problems import Problem
from mockserver.rules import check_plan, resolve_generation
from mockserver.snapshot import Snapshot


def generate(
    body: Any,
    plan: str,
    *,
    snapshot: Snapshot,
    backend: ImageBackend,
    admit: Callable[[], None] = lambda: None,
    latency: str | None = None,
    number: Callable[[], int] = lambda: 0,
) -> dict[str, Any]:
    """Check *body* against the snapshot's spec and *plan*, then make the images.

    The checks run in the order the spec documents: schema and per-model rules (400), plan
    (403), then ``admit()`` (the rate limit: 429), then the backend (503). *latency* is
    what ``--latency`` takes (see :mod:`mockserver.latency`); *number*() the generation's
    number in a seeded run.
    """
    snapshot.validator.validate(body)
    generation = resolve_generation(body, snapshot.spec)
    check_plan(plan, snapshot.spec.models[generation.model])
    admit()
    try:
        images = backend.generate(generation)
    except BackendUnavailable as exc:
        raise Problem(
            503, "model_unavailable", str(exc), headers={"Retry-After": str(exc.retry_after)}
        ) from exc
    pause(delay_ms(generation, snapshot, latency, number))
    media_type = f"image/{generation.output_format}"
    return {
        # Unique, not secret: Python's generator (seeded from the OS once per process, and
        # again in a forked child) costs nothing, where each read of os.urandom costs ~90 us.
        "id": f"gen_{random.getrandbits(64):016x}",
        "created": int(time.time()),
        "model": generation.model,
        "width": generation.width,
        "height": generation.height,
        "num_inference_steps": generation.num_inference_steps,
        "seed": generation.seed,
        "output_format": generation.output_format,
        "images": [
            {
                "media_type": media_type,
                "seed": seed,
                "data_url": f"data:{media_type};base64," + base64.b64encode(data).decode("ascii"),
            }
            for seed, data in zip(generation.image_seeds(), images, strict=True)
        ],
    }

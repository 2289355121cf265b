"""The replay backend: answers a generation with images recorded once from a real deployment.

    python -m mockserver --backend replay --backend-option har=traffic.har

The HAR file is what ``imageapi-contract proxy --record traffic.har`` writes. A generation whose
prompt, model, size, steps and output format match a recorded 200 of ``POST /api/v1/generate``
gets the recorded image of each of its seeds (image ``i`` has seed ``seed + i``, so a recording
of four images also answers the same request for fewer). Anything else falls back
(``fallback=placeholder``, the default: the placeholder's images; ``fallback=unavailable``: the
documented 503 ``model_unavailable``; a 404 is not documented for generateImage, so it is not
an option).
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from mockserver.backends import BackendError, BackendUnavailable
from mockserver.backends.placeholder import PlaceholderBackend
from mockserver.rules import Generation

GENERATE = "/api/v1/generate"
FALLBACKS = ("placeholder", "unavailable")
Key = tuple[str, str, int, int, int, str]  # prompt, model, width, height, steps, output_format


def recorded_images(entries: list[dict[str, Any]]) -> dict[Key, dict[int, bytes]]:
    """Each recorded generation's images by seed, under what the request asked for and the
    answer says was used."""
    found: dict[Key, dict[int, bytes]] = {}
    for entry in entries:
        request, response = entry.get("request", {}), entry.get("response", {})
        if request.get("method") != "POST" or response.get("status") != 200:
            continue
        if not request.get("url", "").split("?")[0].endswith(GENERATE):
            continue
        try:
            body = json.loads(request["postData"]["text"])
            result = json.loads(response["content"]["text"])
            key = (
                body["prompt"], result["model"], result["width"], result["height"],
                result["num_inference_steps"], result["output_format"],
            )  # fmt: skip
            images = {
                image["seed"]: base64.b64decode(image["data_url"].partition(",")[2], validate=True)
                for image in result["images"]
            }
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue  # not a generation this backend can replay
        found.setdefault(key, {}).update(images)
    return found


class ReplayBackend:
    """Recorded images where they match, the fallback elsewhere; read-only after loading."""

    def __init__(self, har: str | None = None, fallback: str = "placeholder", **_options: Any):
        if not har:
            raise BackendError("the replay backend needs --backend-option har=PATH")
        if fallback not in FALLBACKS:
            raise BackendError(f"fallback must be one of {', '.join(FALLBACKS)}, not {fallback!r}")
        try:
            entries = json.loads(Path(har).read_text())["log"]["entries"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"cannot read the HAR file {har}: {exc}") from exc
        self.recorded = recorded_images(entries)
        self.fallback = fallback
        self.placeholder = PlaceholderBackend()

    def generate(self, generation: Generation) -> list[bytes]:
        key = (
            generation.prompt, generation.model, generation.width, generation.height,
            generation.num_inference_steps, generation.output_format,
        )  # fmt: skip
        images = self.recorded.get(key, {})
        seeds = generation.image_seeds()
        if all(seed in images for seed in seeds):
            return [images[seed] for seed in seeds]
        if self.fallback == "unavailable":
            raise BackendUnavailable("no recorded images for this generation")
        return self.placeholder.generate(generation)

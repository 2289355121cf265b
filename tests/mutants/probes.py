"""A few dozen single exchanges that, between them, touch every promise the judge decides: the
requests the proxy's mutant test sends (tests/e2e/test_proxy.py). Each mutant that breaks a
promise within one exchange breaks it in at least one of these; the first is found by judging
the mutant's answers in-process (``revealing``), and the proxy must then name that promise."""

from __future__ import annotations

import json
from dataclasses import dataclass

from contract_tests.judge import Answer, Judge, Request
from tests.support import KEY_FOR_PLAN

GENERATE = "/api/v1/generate"
MODELS = "/api/v1/models"
SMALL = {"width": 256, "height": 256}


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def request(self) -> Request:
        return Request(self.method, self.path, dict(self.headers), self.body)


def bearer(plan: str = "enterprise", scheme: str = "Bearer") -> tuple[str, str]:
    return ("Authorization", f"{scheme} {KEY_FOR_PLAN[plan]}")


def generation(
    fields: dict, plan: str = "enterprise", content_type: str | None = "application/json"
) -> Probe:
    headers = [bearer(plan)] + ([("Content-Type", content_type)] if content_type else [])
    return Probe("POST", GENERATE, tuple(headers), json.dumps(fields).encode())


def exactly_64_kib() -> bytes:
    """A valid body of exactly the API's limit: JSON padded with spaces."""
    body = json.dumps({"prompt": "p", **SMALL}).encode()
    return body[:-1] + b" " * (64 * 1024 - len(body)) + b"}"


PROBES: dict[str, Probe] = {
    # Authentication and the shape of refusals
    "catalog without a key": Probe("GET", MODELS, ()),
    "catalog with a lower-case scheme": Probe("GET", MODELS, (bearer(scheme="bearer"),)),
    "catalog with Basic credentials": Probe("GET", MODELS, (("Authorization", "Basic eDp5"),)),
    "catalog with an unknown key": Probe(
        "GET", MODELS, (("Authorization", "Bearer sk_test_unknown_0123456789"),)
    ),
    "unknown model without a key": Probe("GET", MODELS + "/no-such-model", ()),
    # The catalog and routes
    "catalog": Probe("GET", MODELS, (bearer(),)),
    "catalog, an Accept list": Probe(
        "GET", MODELS, (bearer(), ("Accept", "application/json, */*;q=0.8"))
    ),
    "catalog by HEAD": Probe("HEAD", MODELS, (bearer(),)),
    "a model that is not the default": Probe("GET", MODELS + "/sd-1.5", (bearer(),)),
    "an unknown model": Probe("GET", MODELS + "/no-such-model", (bearer(),)),
    "an unknown route": Probe("GET", "/api/v1/no-such-route", (bearer(),)),
    "DELETE on generate": Probe("DELETE", GENERATE, (bearer(),)),
    # Media types and sizes
    "charset parameter": generation(
        {"prompt": "p", **SMALL}, content_type="application/json; charset=utf-8"
    ),
    "quoted charset": generation(
        {"prompt": "p", **SMALL}, content_type='application/json; charset="utf-8"'
    ),
    "media type in capitals": generation({"prompt": "p", **SMALL}, content_type="Application/JSON"),
    "a +json media type": generation(
        {"prompt": "p", **SMALL}, content_type="application/vnd.api+json"
    ),
    "no Content-Type": generation({"prompt": "p", **SMALL}, content_type=None),
    "text without a key": Probe("POST", GENERATE, (("Content-Type", "text/plain"),), b"hello"),
    "large text": Probe(
        "POST", GENERATE, (bearer(), ("Content-Type", "text/plain")), b"x" * (70 * 1024)
    ),
    "exactly 64 KiB": Probe(
        "POST", GENERATE, (bearer(), ("Content-Type", "application/json")), exactly_64_kib()
    ),
    # The body's rules
    "several faults": generation({"width": "wide", "bogus": 1}),
    "over the step cap": generation({"prompt": "p", "num_inference_steps": 9, **SMALL}),
    "a blank prompt": generation({"prompt": "   ", **SMALL}),
    "too wide": generation({"prompt": "p", "width": 4096, "height": 256}),
    "a negative prompt the model lacks": generation(
        {"prompt": "p", "negative_prompt": "blur", **SMALL}
    ),
    "a negative prompt too long": generation(
        {"prompt": "p", "model": "sdxl-lightning", "negative_prompt": "n" * 2001, **SMALL}
    ),
    "outside the plan": generation({"prompt": "p", "model": "flux-dev", **SMALL}, "free"),
    "outside the plan and invalid": generation(
        {"prompt": "p", "model": "flux-dev", "num_inference_steps": 0, **SMALL}, "free"
    ),
    # Successes
    "defaults": generation({"prompt": "p", **SMALL}),
    "a prompt outside ASCII": generation({"prompt": "café", **SMALL}),
    "JPEG": generation({"prompt": "p", "output_format": "jpeg", **SMALL}),
    "another size": generation({"prompt": "p", "width": 512, "height": 384}),
    "three images at the last seed": generation(
        {"prompt": "p", "num_images": 3, "seed": 2**32 - 1, **SMALL}
    ),
    "a preset and explicit steps": generation(
        {"prompt": "p", "preset": "fast", "num_inference_steps": 6, **SMALL}
    ),
    "a 512 px model, size omitted": generation({"prompt": "p", "model": "sdxl-turbo"}),
}


def revealing(judge: Judge, app, promise: str) -> str | None:
    """The first probe whose answer from the WSGI *app* (in-process) breaks *promise*, as
    *judge* sees it; None if none does."""
    from werkzeug.test import Client

    client = Client(app)
    for name, probe in PROBES.items():
        try:
            reply = client.open(
                probe.path, method=probe.method, headers=list(probe.headers), data=probe.body
            )
            answer = Answer(reply.status_code, dict(reply.headers), reply.get_data())
        except Exception:  # a mutant that crashes: a server would answer 500
            answer = Answer(500, {}, b"")
        if promise in {v.promise for v in judge.verdict(probe.request(), answer)}:
            return name
    return None

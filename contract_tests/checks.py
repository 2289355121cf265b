"""Assertions shared by the contract tests: what a refusal and a success must look like."""

from __future__ import annotations

import base64
import io
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from contract_tests.spec import Contract
from contract_tests.target import Reply

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def assert_problem(
    reply: Reply, status: int, code: str | None, contract: Contract, field: str | None = None
) -> dict[str, Any]:
    """*reply* is an RFC 9457 problem with *status*, a documented code (*code* if given) and,
    if given, the offending *field*."""
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.body[:300]!r}"
    assert reply.media_type == "application/problem+json", reply.media_type
    problem: dict[str, Any] = reply.json()
    assert problem.get("status") == status
    assert isinstance(problem.get("type"), str) and isinstance(problem.get("title"), str)
    assert urlsplit(problem["type"]).scheme, f"type is not a URI: {problem['type']!r}"
    assert problem.get("code") in contract.problem_codes(status), problem
    if code is not None:
        assert problem["code"] == code, problem
    if field is not None:
        assert problem.get("field") == field, problem
    return problem


def assert_generated(reply: Reply, body: dict[str, Any], contract: Contract) -> dict[str, Any]:
    """*reply* is the 200 that *body* must get: what was used is echoed, the images are real."""
    assert reply.status == 200, f"expected 200, got {reply.status}: {reply.body[:300]!r}"
    assert reply.media_type == "application/json"
    result: dict[str, Any] = reply.json()
    faults = [error.message for error in contract.generated_validator.iter_errors(result)]
    assert not faults, f"the response breaks GenerateResponse: {faults}"
    expected = contract.expected_echo(body)
    width, height, output_format = expected["width"], expected["height"], expected["output_format"]
    num_images = body.get("num_images", contract.default("num_images"))
    echoed = {field: result.get(field) for field in expected}
    assert echoed == expected, f"the response echoes {echoed}, the request implies {expected}"
    assert len(result["images"]) == num_images, f"{len(result['images'])} images, not {num_images}"
    for i, image in enumerate(result["images"]):
        assert image["seed"] == (result["seed"] + i) % 2**32, "image i must use seed + i"
        assert image["media_type"] == f"image/{output_format}", image["media_type"]
        decoded = decode(image["data_url"], image["media_type"])
        assert decoded.format == PIL_FORMATS[output_format], f"the image is {decoded.format}"
        assert decoded.size == (width, height), (
            f"the image is {decoded.size}, not {(width, height)}"
        )
    return result


def decode(data_url: str, media_type: str) -> Image.Image:
    header, _, data = data_url.partition(",")
    assert header == f"data:{media_type};base64", header
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    image.load()  # decode every pixel: a truncated or corrupt image raises here
    return image


def assert_rate_limited(reply: Reply, contract: Contract) -> int:
    """*reply* is a 429 the contract allows: a problem with every header the spec requires on
    a 429 (``Retry-After``, and the RateLimit fields once the spec documents them); returns
    the seconds ``Retry-After`` asks a client to wait."""
    assert_problem(reply, 429, None, contract)
    missing = [name for name in contract.required_headers(429) if name not in reply.headers]
    assert not missing, f"a 429 without {', '.join(missing)}: {dict(reply.headers)}"
    retry_after = reply.headers["Retry-After"].strip()
    assert retry_after.isdigit(), f"Retry-After must be whole seconds, not {retry_after!r}"
    fields = rate_limit_fields(reply.headers.get("RateLimit"))
    if fields is not None:
        assert fields.get("r") == 0, f"a 429 whose RateLimit says {fields.get('r')} requests remain"
        assert fields.get("t") == int(retry_after), (
            f"on a 429, RateLimit's t must equal Retry-After ({retry_after}): "
            f"{reply.headers['RateLimit']!r}"
        )
    return int(retry_after)


def retry_delay(reply: Reply, contract: Contract) -> float | None:
    """How long to wait before sending again a request that got *reply*, or None when it is
    not an answer to wait out. A 429 must be one the contract allows (this raises if not); a
    503 problem with whole-second ``Retry-After`` (a busy model: "try again shortly") is waited
    out too, so that a deployment with a queue is not failed for being busy."""
    if reply.status == 429:
        return float(assert_rate_limited(reply, contract))
    busy = busy_delay(reply)
    return None if busy is None else float(busy)


def busy_delay(reply: Reply) -> int | None:
    """The seconds a documented busy 503 (a problem with whole-second ``Retry-After``) asks a
    client to wait, or None for any other answer."""
    if reply.status != 503 or reply.media_type != "application/problem+json":
        return None
    retry_after = reply.headers.get("Retry-After", "").strip()
    return int(retry_after) if retry_after.isdigit() else None


def rate_limit_fields(field: str | None) -> dict[str, Any] | None:
    """A RateLimit or RateLimit-Policy field (draft-ietf-httpapi-ratelimit-headers) as
    ``{"name": ..., parameter: int}``, or None without one."""
    if not field:
        return None
    name, *parameters = field.split(";")
    parsed: dict[str, Any] = {"name": name.strip().strip('"')}
    for parameter in parameters:
        key, _, value = parameter.strip().partition("=")
        assert value.strip().isdigit(), f"{key}={value!r} is not a whole number: {field!r}"
        parsed[key.strip()] = int(value)
    return parsed

"""Assertions shared by the contract tests: what a refusal and a success must look like."""

from __future__ import annotations

import base64
import io

from PIL import Image

from contract_tests.spec import Contract
from contract_tests.target import Reply

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def assert_problem(reply: Reply, status: int, code: str | None, contract: Contract, field=None):
    """*reply* is an RFC 9457 problem with *status*, a documented code (*code* if given) and,
    if given, the offending *field*."""
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.body[:300]!r}"
    assert reply.media_type == "application/problem+json", reply.media_type
    problem = reply.json()
    assert problem.get("status") == status
    assert isinstance(problem.get("type"), str) and isinstance(problem.get("title"), str)
    assert problem.get("code") in contract.problem_codes(status), problem
    if code is not None:
        assert problem["code"] == code, problem
    if field is not None:
        assert problem.get("field") == field, problem
    return problem


def assert_generated(reply: Reply, body: dict, contract: Contract) -> dict:
    """*reply* is the 200 that *body* must get: what was used is echoed, the images are real."""
    assert reply.status == 200, f"expected 200, got {reply.status}: {reply.body[:300]!r}"
    assert reply.media_type == "application/json"
    result = reply.json()
    model = body.get("model", contract.default_model)
    width = int(body.get("width", contract.default("width")))
    height = int(body.get("height", contract.default("height")))
    output_format = body.get("output_format", contract.default("output_format"))
    num_images = body.get("num_images", contract.default("num_images"))
    expected = {
        "model": model,
        "width": width,
        "height": height,
        "num_inference_steps": contract.expected_steps(body),
        "output_format": output_format,
    }
    if "seed" in body:
        expected["seed"] = body["seed"]
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

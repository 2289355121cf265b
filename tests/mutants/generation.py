"""Mutants of successful generations: defaults, seeds, images, ids and sizes."""

from __future__ import annotations

import base64

from tests.mutants.proxies import _edit_success, _is_generate, _valid, proxy
from tests.mutants.registry import HTTP, mutant


@mutant("contract_tests/test_generation.py::test_defaults")
def wrong_default_model():
    """An omitted model means another model than the spec's default."""

    def edit_request(environ, body):
        if _valid(body) and "model" not in body:
            return {**body, "model": "sdxl-turbo"}
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_generation.py::test_negative_prompt_support")
def drop_negative_prompt():
    """negative_prompt is silently dropped, so models without support accept it."""

    def edit_request(environ, body):
        if body and "negative_prompt" in body:
            return {k: v for k, v in body.items() if k != "negative_prompt"}
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_generation.py::test_defaults")
def drop_seed_from_response():
    """The response leaves out the seed it used."""
    return proxy(edit_response=_edit_success(lambda sent, result: result.pop("seed")))


@mutant("contract_tests/test_generation.py::test_the_same_seed_gives_the_same_image")
def ignore_seed():
    """The seed is echoed but not used: the same seed gives different images."""
    counter = iter(range(10**9))

    def edit_request(environ, body):
        if _valid(body) and "seed" in body:
            return {**body, "seed": next(counter) % 2**32}
        return None

    def restore(sent, result):
        if "seed" in sent:
            result["seed"] = sent["seed"]
            for i, image in enumerate(result["images"]):
                image["seed"] = (sent["seed"] + i) % 2**32

    return proxy(edit_request, _edit_success(restore))


@mutant("contract_tests/test_generation.py::test_defaults")
def corrupt_image():
    """The image data is cut short."""

    def cut(sent, result):
        for image in result["images"]:
            header, _, data = image["data_url"].partition(",")
            raw = base64.b64decode(data)
            image["data_url"] = header + "," + base64.b64encode(raw[: len(raw) // 2]).decode()

    return proxy(edit_response=_edit_success(cut))


@mutant("contract_tests/test_generation.py::test_generation_property")
def fixed_image_size():
    """Images are always 256x256, whatever size was asked and echoed."""

    def edit_request(environ, body):
        if _valid(body) and ("width" in body or "height" in body):
            return {**body, "width": 256, "height": 256}
        return None

    def restore(sent, result):
        for field in ("width", "height"):
            if field in sent:
                result[field] = sent[field]

    return proxy(edit_request, _edit_success(restore))


@mutant(
    "contract_tests/test_generation.py::test_each_output_format_is_made_as_asked",
    "contract_tests/test_generation.py::test_generation_property",
)
def always_png():
    """Images are PNG whatever output_format says, and labelled as asked."""

    def edit_request(environ, body):
        if _valid(body) and body.get("output_format") in ("jpeg", "webp"):
            return {**body, "output_format": "png"}
        return None

    def relabel(sent, result):
        fmt = sent.get("output_format")
        if fmt in ("jpeg", "webp"):
            result["output_format"] = fmt
            for image in result["images"]:
                image["media_type"] = f"image/{fmt}"
                image["data_url"] = image["data_url"].replace("image/png", f"image/{fmt}", 1)

    return proxy(edit_request, _edit_success(relabel))


@mutant("contract_tests/test_generation.py::test_generation_property")
def crash_on_non_ascii():
    """A prompt outside ASCII makes a 500."""

    def edit_response(environ, sent, status, headers, body):
        prompt = (sent or {}).get("prompt")
        if _is_generate(environ) and isinstance(prompt, str) and not prompt.isascii():
            body = b'{"error": "internal"}'
            return "500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")], body
        return status, headers, body

    return proxy(edit_response=edit_response)


@mutant(HTTP + "test_ids_are_unique_and_created_is_now")
def one_generation_id():
    """Every generation has the same id."""
    return proxy(edit_response=_edit_success(lambda s, r: r.update(id="gen_0123456789abcdef")))


@mutant(HTTP + "test_ids_are_unique_and_created_is_now")
def created_in_milliseconds():
    """`created` is in milliseconds, not seconds."""
    return proxy(edit_response=_edit_success(lambda s, r: r.update(created=r["created"] * 1000)))


@mutant(HTTP + "test_ids_are_unique_and_created_is_now")
def fixed_seed_when_omitted():
    """An omitted seed is always 42, not chosen at random."""

    def edit_request(environ, body):
        if _valid(body) and "seed" not in body:
            return {**body, "seed": 42}
        return None

    return proxy(edit_request)


@mutant(HTTP + "test_image_seeds_wrap_around_2_to_the_32")
def image_seeds_do_not_wrap():
    """Image i's seed is seed + i, past 2^32 - 1."""

    def edit(sent, result):
        for i, image in enumerate(result["images"]):
            image["seed"] = result["seed"] + i

    return proxy(edit_response=_edit_success(edit))


@mutant(HTTP + "test_image_seeds_wrap_around_2_to_the_32")
def one_image_only():
    """num_images is echoed but one image is made."""

    def edit_request(environ, body):
        if _valid(body) and body.get("num_images", 1) > 1:
            return {**body, "num_images": 1}
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_generation.py::test_omitted_sizes_are_the_schema_defaults")
def model_sized_defaults():
    """An omitted size is 512 for the 512 px models (sd-1.5, sdxl-turbo), not the schema's
    default."""

    def edit_request(environ, body):
        if _valid(body) and body.get("model") in ("sd-1.5", "sdxl-turbo"):
            edited = {field: 512 for field in ("width", "height") if field not in body}
            return {**body, **edited} if edited else None
        return None

    return proxy(edit_request)


@mutant("contract_tests/test_generation.py::test_defaults")
def uppercase_generation_ids():
    """Generation ids are in upper-case hex (`gen_4F1C...`), outside the documented pattern."""

    def upper(sent, result):
        result["id"] = "gen_" + result["id"].removeprefix("gen_").upper()

    return proxy(edit_response=_edit_success(upper))

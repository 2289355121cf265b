"""Deliberately broken targets: the mock behind small WSGI proxies that each break one promise.

The contract suite must fail against every one of them (tests/test_mutants.py; `make mutants`).
They live in the test tree, not in the server. Each name below is a factory of a WSGI app, for
`pytest contract_tests --app tests.mutants:NAME`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

from jsonschema import Draft202012Validator

from mockserver.app import create_app
from mockserver.config import DEV_KEYS
from mockserver.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
GENERATE = "/api/v1/generate"
ENTERPRISE_KEY = next(key for key, plan in DEV_KEYS.items() if plan == "enterprise")
SPEC = load_spec()
VALID_BODY = Draft202012Validator(SPEC.request_schema)


def _valid(body) -> bool:
    """Most mutants break one promise about valid requests and keep the rest intact."""
    return body is not None and VALID_BODY.is_valid(body)


def proxy(edit_request=None, edit_response=None):
    """The mock, with *edit_request(environ, body) -> body* applied to each JSON request body
    and *edit_response(environ, request, status, headers, body) -> (status, headers, body)*
    to each response; *request* is the JSON body the client sent (None if there was none)."""
    app = create_app()

    def wsgi(environ, start_response):
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or -1)
        try:
            sent = json.loads(raw) if raw else None
        except ValueError:
            sent = None
        if not isinstance(sent, dict):
            sent = None
        if edit_request is not None:
            edited = edit_request(environ, sent)
            if edited is not None:
                raw = json.dumps(edited).encode()
        environ["wsgi.input"] = BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        body = b"".join(app(environ, capture))
        status, headers = captured["status"], captured["headers"]
        if edit_response is not None:
            status, headers, body = edit_response(environ, sent, status, headers, body)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return wsgi


def _is_generate(environ) -> bool:
    return environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == GENERATE


def _edit_success(edit):
    """A response edit applied to the JSON of successful generations only."""

    def edit_response(environ, sent, status, headers, body):
        if _is_generate(environ) and status.startswith("200"):
            result = json.loads(body)
            edit(sent or {}, result)
            body = json.dumps(result).encode()
        return status, headers, body

    return edit_response


def _set_header(name, value, *, only_if=lambda environ: True):
    def edit_request(environ, body):
        if only_if(environ):
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        return None

    return edit_request


# The mutants ----------------------------------------------------------------------------------


def accept_any_key():
    """Any Authorization header, however wrong, is let through."""
    known = {f"Bearer {key}" for key in DEV_KEYS}
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: (
                "HTTP_AUTHORIZATION" in env and env["HTTP_AUTHORIZATION"] not in known
            ),
        )
    )


def ignore_plans():
    """Every valid key may use every model."""
    known = {f"Bearer {key}" for key in DEV_KEYS}
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: env.get("HTTP_AUTHORIZATION") in known,
        )
    )


def public_catalog():
    """The catalog answers without a key."""
    return proxy(
        _set_header(
            "Authorization",
            f"Bearer {ENTERPRISE_KEY}",
            only_if=lambda env: env["REQUEST_METHOD"] == "GET" and "HTTP_AUTHORIZATION" not in env,
        )
    )


def lift_step_caps():
    """Steps above a model's cap are quietly clamped to it and reported as asked."""

    def edit_request(environ, body):
        model_id = body.get("model", SPEC.default_model) if body else None
        if isinstance(model_id, str) and isinstance(body.get("num_inference_steps"), int):
            model = SPEC.models.get(model_id)
            if model and body["num_inference_steps"] > model.max_steps:
                return {**body, "num_inference_steps": model.max_steps}
        return None

    def restore(sent, result):
        if "num_inference_steps" in sent:
            result["num_inference_steps"] = sent["num_inference_steps"]

    return proxy(edit_request, _edit_success(restore))


def fast_steps_by_default():
    """An omitted step count gets the fast preset's steps instead of the quality steps."""

    def edit_request(environ, body):
        if _valid(body) and "num_inference_steps" not in body:
            model = SPEC.models[body.get("model", SPEC.default_model)]
            return {**body, "num_inference_steps": model.fast_steps}
        return None

    return proxy(edit_request)


def wrong_default_model():
    """An omitted model means another model than the spec's default."""

    def edit_request(environ, body):
        if _valid(body) and "model" not in body:
            return {**body, "model": "sdxl-turbo"}
        return None

    return proxy(edit_request)


def drop_negative_prompt():
    """negative_prompt is silently dropped, so models without support accept it."""

    def edit_request(environ, body):
        if body and "negative_prompt" in body:
            return {k: v for k, v in body.items() if k != "negative_prompt"}
        return None

    return proxy(edit_request)


def drop_seed_from_response():
    """The response leaves out the seed it used."""
    return proxy(edit_response=_edit_success(lambda sent, result: result.pop("seed")))


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


def corrupt_image():
    """The image data is cut short."""

    def cut(sent, result):
        for image in result["images"]:
            header, _, data = image["data_url"].partition(",")
            raw = base64.b64decode(data)
            image["data_url"] = header + "," + base64.b64encode(raw[: len(raw) // 2]).decode()

    return proxy(edit_response=_edit_success(cut))


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


def errors_as_plain_json():
    """Refusals are sent as application/json instead of application/problem+json."""

    def edit_response(environ, sent, status, headers, body):
        headers = [
            (k, "application/json" if k.lower() == "content-type" and "problem" in v else v)
            for k, v in headers
        ]
        return status, headers, body

    return proxy(edit_response=edit_response)


def no_bearer_challenge():
    """401s come without WWW-Authenticate."""

    def edit_response(environ, sent, status, headers, body):
        return status, [(k, v) for k, v in headers if k.lower() != "www-authenticate"], body

    return proxy(edit_response=edit_response)


def no_allow_header():
    """405s come without Allow."""

    def edit_response(environ, sent, status, headers, body):
        if status.startswith("405"):
            headers = [(k, v) for k, v in headers if k.lower() != "allow"]
        return status, headers, body

    return proxy(edit_response=edit_response)


def wrong_error_code():
    """A step-cap refusal carries a generic code instead of the documented one."""

    def edit_response(environ, sent, status, headers, body):
        if status.startswith("400"):
            body = body.replace(b'"code":"step_cap_exceeded"', b'"code":"invalid_request"')
        return status, headers, body

    return proxy(edit_response=edit_response)


def crash_on_non_ascii():
    """A prompt outside ASCII makes a 500."""

    def edit_response(environ, sent, status, headers, body):
        prompt = (sent or {}).get("prompt")
        if _is_generate(environ) and isinstance(prompt, str) and not prompt.isascii():
            body = b'{"error": "internal"}'
            return "500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")], body
        return status, headers, body

    return proxy(edit_response=edit_response)


MUTANTS = [
    accept_any_key,
    ignore_plans,
    public_catalog,
    lift_step_caps,
    fast_steps_by_default,
    wrong_default_model,
    drop_negative_prompt,
    drop_seed_from_response,
    ignore_seed,
    corrupt_image,
    fixed_image_size,
    always_png,
    errors_as_plain_json,
    no_bearer_challenge,
    no_allow_header,
    wrong_error_code,
    crash_on_non_ascii,
]


def run_suite(mutant: str) -> tuple[int, str]:
    """Run the contract suite against one mutant; return its exit code and first failure."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "contract_tests",
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            "--app",
            f"tests.mutants:{mutant}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CI": "true"},
        timeout=300,
    )
    return result.returncode, first_failure(result.stdout)


def first_failure(output: str) -> str:
    """The first failing test, with the schemathesis check or assertion that failed it."""
    lines = output.splitlines()
    test = next(
        (line.split(" - ")[0] for line in lines if line.startswith(("FAILED", "ERROR"))), ""
    )
    why = next(
        (
            line.strip(" |")
            for line in lines
            if line.strip(" |").startswith(("- ST", "E  ")) and "Traceback" not in line
        ),
        "",
    )
    return f"{test.split('::', 1)[-1]}: {why[:160]}" if test else output[-300:]


def run_all(workers: int = 2) -> dict[str, tuple[int, str]]:
    names = [mutant.__name__ for mutant in MUTANTS]
    with ThreadPoolExecutor(workers) as pool:
        return dict(zip(names, pool.map(run_suite, names), strict=True))


if __name__ == "__main__":
    results = run_all()
    killed = [name for name, (code, _) in results.items() if code == 1]
    for name, (code, first) in results.items():
        print(f"{'killed' if code == 1 else 'SURVIVED':8} {name:26} {first}")
    print(f"\n{len(killed)}/{len(results)} mutants killed")
    raise SystemExit(0 if len(killed) == len(results) else 1)

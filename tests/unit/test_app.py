"""Every rule and status code, through the Flask test client."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from mockserver.app import create_app
from mockserver.backends import BackendUnavailable
from mockserver.config import Config
from tests.support import auth

GENERATE = "/api/v1/generate"


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].startswith("https://imageapi.org/problems/")
    assert body["title"] and body["detail"]
    return body


def decode(image: dict) -> Image.Image:
    header, data = image["data_url"].split(",", 1)
    assert header == f"data:{image['media_type']};base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_seed_example_returns_the_image_and_echoes_what_was_used(client):
    body = {
        "prompt": "a cinematic mountain landscape at sunrise",
        "model": "sdxl-lightning",
        "width": 1024,
        "height": 1024,
        "num_inference_steps": 8,
        "seed": 7,
    }
    response = client.post(GENERATE, json=body, headers=auth("basic"))
    assert response.status_code == 200
    result = response.get_json()
    assert {k: result[k] for k in ("model", "width", "height", "num_inference_steps", "seed")} == {
        k: body[k] for k in ("model", "width", "height", "num_inference_steps", "seed")
    }
    assert result["output_format"] == "png"
    assert result["id"].startswith("gen_")
    [image] = result["images"]
    assert image["media_type"] == "image/png" and image["seed"] == 7
    assert decode(image).size == (1024, 1024)


def test_defaults_come_from_the_spec(client, spec):
    result = client.post(GENERATE, json={"prompt": "quick start"}, headers=auth("free")).get_json()
    default = spec.models[spec.default_model]
    assert result["model"] == default.id
    assert (result["width"], result["height"]) == (1024, 1024)
    assert result["num_inference_steps"] == default.quality_steps
    assert 0 <= result["seed"] < 2**32


@pytest.mark.parametrize("model_id", ["sdxl-lightning", "sd-1.5", "flux-2-klein-9b"])
def test_preset_fast_takes_fast_steps_and_explicit_steps_win(client, spec, model_id):
    model = spec.models[model_id]
    fast = client.post(
        GENERATE, json={"prompt": "p", "model": model_id, "preset": "fast"}, headers=auth()
    ).get_json()
    assert fast["num_inference_steps"] == model.fast_steps
    explicit = client.post(
        GENERATE,
        json={"prompt": "p", "model": model_id, "preset": "fast", "num_inference_steps": 1},
        headers=auth(),
    ).get_json()
    assert explicit["num_inference_steps"] == 1


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_output_formats_and_several_images(client, fmt):
    response = client.post(
        GENERATE,
        json={"prompt": "p", "output_format": fmt, "width": 512, "height": 256, "num_images": 3},
        headers=auth(),
    )
    result = response.get_json()
    assert [image["seed"] for image in result["images"]] == [
        (result["seed"] + i) % 2**32 for i in range(3)
    ]
    for image in result["images"]:
        assert image["media_type"] == f"image/{fmt}"
        decoded = decode(image)
        assert decoded.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]
        assert decoded.size == (512, 256)


def test_steps_at_every_cap_boundary(client, spec):
    for model in spec.models.values():
        for steps, ok in [
            (1, True),
            (model.max_steps, True),
            (0, False),
            (model.max_steps + 1, False),
        ]:
            response = client.post(
                GENERATE,
                json={"prompt": "p", "model": model.id, "num_inference_steps": steps},
                headers=auth("enterprise"),
            )
            if ok:
                assert response.status_code == 200, (model.id, steps)
            else:
                body = problem(response, 400, "step_cap_exceeded")
                assert body["field"] == "num_inference_steps"


def test_negative_prompt_by_model_support(client, spec):
    for model in spec.models.values():
        response = client.post(
            GENERATE,
            json={"prompt": "p", "model": model.id, "negative_prompt": "blurry"},
            headers=auth("enterprise"),
        )
        if model.negative_prompt:
            assert response.status_code == 200, model.id
        else:
            assert (
                problem(response, 400, "negative_prompt_unsupported")["field"] == "negative_prompt"
            )


def test_plan_rules(client, spec):
    for plan in spec.plans:
        for model in spec.models.values():
            response = client.post(
                GENERATE, json={"prompt": "p", "model": model.id}, headers=auth(plan)
            )
            if plan in model.plans:
                assert response.status_code == 200, (plan, model.id)
            else:
                assert problem(response, 403, "model_not_in_plan")["field"] == "model"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"prompt": "p", "model": "dall-e"}, "unknown_model", "model"),
        ({"prompt": "p", "num_inference_steps": 8.5}, "invalid_type", "num_inference_steps"),
        ({"prompt": "p", "num_inference_steps": "8"}, "invalid_type", "num_inference_steps"),
        ({"prompt": "p", "num_inference_steps": True}, "invalid_type", "num_inference_steps"),
        (
            {"prompt": "p", "num_inference_steps": 10**30},
            "step_cap_exceeded",
            "num_inference_steps",
        ),
        (
            {"prompt": "p", "num_inference_steps": -(10**30)},
            "step_cap_exceeded",
            "num_inference_steps",
        ),
        ({"prompt": "p", "width": 4096}, "invalid_request", "width"),
        ({"prompt": "p", "height": 128}, "invalid_request", "height"),
        ({"prompt": "p", "width": 1000}, "invalid_request", "width"),
        ({"prompt": "p", "sampler": "euler"}, "unknown_field", "sampler"),
        ({"model": "sdxl"}, "missing_field", "prompt"),
        ({"prompt": ""}, "invalid_request", "prompt"),
        ({"prompt": "   "}, "invalid_request", "prompt"),
        ({"prompt": "x" * 2001}, "invalid_request", "prompt"),
        ({"prompt": "p", "output_format": "gif"}, "invalid_request", "output_format"),
        ({"prompt": "p", "seed": -1}, "invalid_request", "seed"),
        ({"prompt": "p", "num_images": 5}, "invalid_request", "num_images"),
        ([1, 2, 3], "invalid_type", None),
        ("prompt", "invalid_type", None),
    ],
)
def test_bad_bodies_get_a_coded_400(client, body, code, field):
    result = problem(client.post(GENERATE, json=body, headers=auth()), 400, code)
    assert result.get("field") == field


def test_integral_floats_are_integers(client):
    response = client.post(
        GENERATE,
        json={"prompt": "p", "num_inference_steps": 4.0, "width": 512.0, "height": 1.024e3},
        headers=auth(),
    )
    assert response.status_code == 200
    result = response.get_json()
    assert (result["num_inference_steps"], result["width"], result["height"]) == (4, 512, 1024)


def test_several_faults_are_all_listed(client):
    body = problem(
        client.post(
            GENERATE,
            json={"prompt": "p", "model": "sdxl-lightning", "num_inference_steps": 51, "x": 1},
            headers=auth(),
        ),
        400,
        "unknown_field",
    )
    codes = {fault["code"] for fault in body["errors"]}
    assert codes == {"unknown_field", "step_cap_exceeded"}


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b'{"prompt": "p"', "application/json", 400, "malformed_json"),
        (b'{"prompt": "\xff\xfe"}', "application/json", 400, "malformed_json"),
        (b'{"prompt": "p", "seed": NaN}', "application/json", 400, "malformed_json"),
        (b'{"prompt": "p", "seed": 1e400}', "application/json", 400, "invalid_type"),
        (
            b'{"prompt": "p", "seed": ' + b"9" * 5000 + b"}",
            "application/json",
            400,
            "malformed_json",
        ),
        (b"[" * 100_000, "application/json", 413, "payload_too_large"),
        (b"[" * 60_000, "application/json", 400, "malformed_json"),
        (b"", "application/json", 400, "malformed_json"),
        (b'{"prompt": "p"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"prompt": "p"}', None, 415, "unsupported_media_type"),
        (b"prompt=p", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"x" * (10 * 1024 * 1024), "application/json", 413, "payload_too_large"),
    ],
)
def test_bad_bytes_get_a_coded_4xx(client, data, content_type, status, code):
    headers = auth()
    if content_type:
        headers["Content-Type"] = content_type
    problem(client.post(GENERATE, data=data, headers=headers), status, code)


def test_json_with_charset_is_accepted(client):
    response = client.post(
        GENERATE,
        data=b'{"prompt": "caf\xc3\xa9"}',
        headers={**auth(), "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_unknown_route_and_model_are_404(client):
    problem(client.get("/api/v1/nothing", headers=auth()), 404, "not_found")
    problem(client.get("/api/v1/models/dall-e", headers=auth()), 404, "model_not_found")


def test_wrong_method_is_405_with_allow(client):
    for method, path in [("get", GENERATE), ("delete", GENERATE), ("post", "/api/v1/models")]:
        response = getattr(client, method)(path, headers=auth())
        problem(response, 405, "method_not_allowed")
        assert response.headers["Allow"]
        assert method.upper() not in response.headers["Allow"].split(", ")


def test_models_catalog_is_served_from_the_spec(client, spec):
    listing = client.get("/api/v1/models", headers=auth("free")).get_json()
    assert listing["default_model"] == spec.default_model
    assert [m["id"] for m in listing["data"]] == list(spec.models)
    one = client.get("/api/v1/models/sdxl-lightning", headers=auth("free")).get_json()
    assert one == spec.models["sdxl-lightning"].entry


def test_cors_preflight_allows_authorization(client):
    response = client.options(
        GENERATE,
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:5173")
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_cors_headers_on_errors_so_browsers_can_read_them(client):
    response = client.post(GENERATE, json={"prompt": "p"}, headers={"Origin": "http://a.test"})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"]
    assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]


def test_cors_origins_can_be_locked(spec):
    locked = create_app(Config(cors_origins=["http://app.test"]), spec=spec).test_client()
    ok = locked.get("/api/v1/models", headers={**auth(), "Origin": "http://app.test"})
    assert ok.headers["Access-Control-Allow-Origin"] == "http://app.test"
    other = locked.get("/api/v1/models", headers={**auth(), "Origin": "http://evil.test"})
    assert "Access-Control-Allow-Origin" not in other.headers


class FailingBackend:
    def __init__(self, error):
        self.error = error

    def generate(self, generation):
        raise self.error


def test_backend_unavailable_is_503_with_retry_after(spec):
    app = create_app(Config(), spec=spec, backend=FailingBackend(BackendUnavailable("busy", 7)))
    response = app.test_client().post(GENERATE, json={"prompt": "p"}, headers=auth())
    problem(response, 503, "model_unavailable")
    assert response.headers["Retry-After"] == "7"


def test_a_backend_crash_is_a_500_problem_and_the_app_keeps_serving(spec):
    app = create_app(Config(), spec=spec, backend=FailingBackend(RuntimeError("boom")))
    client = app.test_client()
    response = client.post(GENERATE, json={"prompt": "p"}, headers=auth())
    body = problem(response, 500, "internal_error")
    assert "boom" not in body["detail"]  # internals are logged, not sent
    assert client.get("/api/v1/models", headers=auth()).status_code == 200


def test_rate_limits_per_plan_when_enabled(spec):
    app = create_app(Config(rate_limits=True), spec=spec)
    client = app.test_client()
    allowed = spec.plans["free"].requests_per_minute
    statuses = [
        client.get("/api/v1/models", headers=auth("free")).status_code for _ in range(allowed + 1)
    ]
    assert statuses == [200] * allowed + [429]
    response = client.get("/api/v1/models", headers=auth("free"))
    problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Policy"] == f'"free";q={allowed};w=60'
    assert response.headers["RateLimit"].startswith('"free";r=0;t=')
    assert client.get("/api/v1/models", headers=auth("pro")).status_code == 200


def test_keys_must_name_known_plans(spec):
    with pytest.raises(ValueError, match="platinum"):
        create_app(Config(keys={"sk_x": "platinum"}), spec=spec)


def test_lone_surrogates_are_handled_not_crashed_on(client):
    headers = {**auth(), "Content-Type": "application/json"}
    ok = client.post(GENERATE, data=b'{"prompt": "\\ud800 fox"}', headers=headers)
    assert ok.status_code == 200
    bad = client.post(GENERATE, data=b'{"prompt": "p", "seed": "\\udfff"}', headers=headers)
    assert problem(bad, 400, "invalid_type")["field"] == "seed"


def test_the_spec_is_served_without_a_key(client, spec):
    as_json = client.get("/openapi.json")
    assert as_json.status_code == 200
    assert as_json.get_json()["x-imageapi-catalog"] == spec.document["x-imageapi-catalog"]
    as_yaml = client.get("/openapi.yaml")
    assert as_yaml.status_code == 200
    assert as_yaml.mimetype == "application/yaml"
    assert as_yaml.data.startswith(b"openapi: 3.1")


def test_every_view_and_hook_is_synchronous(client):
    """The app skips Flask's per-call check for coroutine functions (MockFlask.ensure_sync): a
    coroutine view or hook added later would return an unawaited coroutine, so none may be."""
    import inspect

    app = client.application
    functions = list(app.view_functions.values())
    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        functions += [hook for registered in hooks.values() for hook in registered]
    functions += [
        handler
        for by_code in app.error_handler_spec.values()
        for by_class in by_code.values()
        for handler in by_class.values()
    ]
    assert len(functions) > 20
    assert not [f for f in functions if inspect.iscoroutinefunction(inspect.unwrap(f))]

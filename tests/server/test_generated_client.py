"""The clients generated from openapi.yaml, used against the running mock: every operation,
the happy paths and the typed problem details."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from generated_client import AuthenticatedClient, Client
from generated_client.api.generation import generate_image
from generated_client.api.models import get_model, list_models
from generated_client.models import (
    BadRequestProblem,
    BadRequestProblemCode,
    ForbiddenProblem,
    ForbiddenProblemCode,
    GenerateRequest,
    GenerateRequestModel,
    GenerateRequestOutputFormat,
    GenerateResponse,
    Model,
    ModelList,
    NotFoundProblem,
    UnauthorizedProblem,
    UnauthorizedProblemCode,
)
from tests.support import KEY_FOR_PLAN, ROOT

TOOLS = ROOT / ".tools" / "node_modules"


def client_for(server, plan: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=server.url, token=KEY_FOR_PLAN[plan], timeout=120)


def test_generate_returns_a_typed_response(server):
    request = GenerateRequest(
        prompt="a cinematic mountain landscape at sunrise",
        model=GenerateRequestModel.SDXL_LIGHTNING,
        width=512,
        height=512,
        num_inference_steps=8,
        seed=7,
        output_format=GenerateRequestOutputFormat.JPEG,
    )
    result = generate_image.sync(client=client_for(server, "basic"), body=request)
    assert isinstance(result, GenerateResponse)
    assert (result.model, result.width, result.height, result.num_inference_steps, result.seed) == (
        "sdxl-lightning",
        512,
        512,
        8,
        7,
    )
    image = result.images[0]
    header, data = image.data_url.split(",", 1)
    assert header == "data:image/jpeg;base64"
    assert base64.b64decode(data)[:2] == b"\xff\xd8"  # a JPEG


def test_generate_defaults_are_those_of_the_spec(server, spec):
    result = generate_image.sync(
        client=client_for(server, "free"), body=GenerateRequest(prompt="p")
    )
    assert isinstance(result, GenerateResponse)
    assert result.model == spec.default_model
    assert result.num_inference_steps == spec.models[spec.default_model].quality_steps


def test_a_step_cap_refusal_is_a_typed_400(server):
    request = GenerateRequest(
        prompt="p", model=GenerateRequestModel.FLUX_SCHNELL, num_inference_steps=9
    )
    response = generate_image.sync_detailed(client=client_for(server, "free"), body=request)
    assert response.status_code == 400
    problem = response.parsed
    assert isinstance(problem, BadRequestProblem)
    assert problem.code is BadRequestProblemCode.STEP_CAP_EXCEEDED
    assert problem.field == "num_inference_steps"


def test_a_plan_refusal_is_a_typed_403(server):
    request = GenerateRequest(prompt="p", model=GenerateRequestModel.FLUX_DEV)
    problem = generate_image.sync(client=client_for(server, "basic"), body=request)
    assert isinstance(problem, ForbiddenProblem)
    assert problem.code is ForbiddenProblemCode.MODEL_NOT_IN_PLAN
    assert problem.field == "model"


def test_a_bad_key_is_a_typed_401(server):
    bad = AuthenticatedClient(base_url=server.url, token="sk_not_a_key")
    problem = generate_image.sync(client=bad, body=GenerateRequest(prompt="p"))
    assert isinstance(problem, UnauthorizedProblem)
    assert problem.code is UnauthorizedProblemCode.INVALID_API_KEY
    missing = list_models.sync(client=Client(base_url=server.url))
    assert isinstance(missing, UnauthorizedProblem)
    assert missing.code is UnauthorizedProblemCode.MISSING_API_KEY


def test_list_and_get_models(server, spec):
    client = client_for(server, "free")
    listing = list_models.sync(client=client)
    assert isinstance(listing, ModelList)
    assert [model.id for model in listing.data] == list(spec.models)
    model = get_model.sync("sdxl-lightning", client=client)
    assert isinstance(model, Model)
    assert (model.quality_steps, model.fast_steps, model.max_steps) == (8, 4, 50)
    assert model.negative_prompt is True
    assert [plan.value for plan in model.plans] == ["basic", "pro", "enterprise"]
    missing = get_model.sync("dall-e", client=client)
    assert isinstance(missing, NotFoundProblem)
    assert missing.code.value == "model_not_found"


def _node_example(server, key: str) -> subprocess.CompletedProcess:
    build = ROOT / ".tools" / "examples-build"
    subprocess.run(
        [str(TOOLS / ".bin" / "tsc"), "-p", str(ROOT / "examples" / "typescript")],
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    script = build / "examples" / "typescript" / "generate.js"
    env = {**os.environ, "NODE_PATH": str(TOOLS), "IMAGEAPI_URL": server.url, "IMAGEAPI_KEY": key}
    return subprocess.run(
        ["node", str(script)], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT
    )


@pytest.mark.skipif(
    not (TOOLS / ".bin" / "tsc").exists(), reason="npm tools not installed: run `make test`"
)
def test_typescript_client_against_the_mock(server):
    ok = _node_example(server, KEY_FOR_PLAN["basic"])
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["model"] == "sdxl-lightning" and result["num_inference_steps"] == 8
    assert result["data_url_prefix"] == "data:image/png;base64,"
    refused = _node_example(server, "sk_not_a_key")
    assert refused.returncode == 1
    problem = json.loads(refused.stdout)
    assert (problem["status"], problem["code"]) == (401, "invalid_api_key")

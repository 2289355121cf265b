from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.bad_request_problem import BadRequestProblem
from ...models.forbidden_problem import ForbiddenProblem
from ...models.generate_request import GenerateRequest
from ...models.generate_response import GenerateResponse
from ...models.internal_error_problem import InternalErrorProblem
from ...models.method_not_allowed_problem import MethodNotAllowedProblem
from ...models.payload_too_large_problem import PayloadTooLargeProblem
from ...models.service_unavailable_problem import ServiceUnavailableProblem
from ...models.too_many_requests_problem import TooManyRequestsProblem
from ...models.unauthorized_problem import UnauthorizedProblem
from ...models.unsupported_media_type_problem import UnsupportedMediaTypeProblem
from ...types import Response


def _get_kwargs(
    *,
    body: GenerateRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/generate",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> (
    BadRequestProblem
    | ForbiddenProblem
    | GenerateResponse
    | InternalErrorProblem
    | MethodNotAllowedProblem
    | PayloadTooLargeProblem
    | ServiceUnavailableProblem
    | TooManyRequestsProblem
    | UnauthorizedProblem
    | UnsupportedMediaTypeProblem
    | None
):
    if response.status_code == 200:
        response_200 = GenerateResponse.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = BadRequestProblem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = UnauthorizedProblem.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ForbiddenProblem.from_dict(response.json())

        return response_403

    if response.status_code == 405:
        response_405 = MethodNotAllowedProblem.from_dict(response.json())

        return response_405

    if response.status_code == 413:
        response_413 = PayloadTooLargeProblem.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = UnsupportedMediaTypeProblem.from_dict(response.json())

        return response_415

    if response.status_code == 429:
        response_429 = TooManyRequestsProblem.from_dict(response.json())

        return response_429

    if response.status_code == 500:
        response_500 = InternalErrorProblem.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ServiceUnavailableProblem.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[
    BadRequestProblem
    | ForbiddenProblem
    | GenerateResponse
    | InternalErrorProblem
    | MethodNotAllowedProblem
    | PayloadTooLargeProblem
    | ServiceUnavailableProblem
    | TooManyRequestsProblem
    | UnauthorizedProblem
    | UnsupportedMediaTypeProblem
]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: GenerateRequest,
) -> Response[
    BadRequestProblem
    | ForbiddenProblem
    | GenerateResponse
    | InternalErrorProblem
    | MethodNotAllowedProblem
    | PayloadTooLargeProblem
    | ServiceUnavailableProblem
    | TooManyRequestsProblem
    | UnauthorizedProblem
    | UnsupportedMediaTypeProblem
]:
    """Generate images from a text prompt

     Generates `num_images` images synchronously. Omitted fields take the defaults shown in
    the schema; `num_inference_steps` defaults to the model's `quality_steps` (or its
    `fast_steps` with `"preset": "fast"`). The response echoes what was actually used.

    Args:
        body (GenerateRequest): What to generate. Rules that depend on the model are stated in
            `allOf` (JSON Schema
            `if`/`then`), so that validators and test generators enforce them as the server does. An
            omitted `model` means the default model, whose rules match because `properties` only
            constrains fields that are present.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BadRequestProblem | ForbiddenProblem | GenerateResponse | InternalErrorProblem | MethodNotAllowedProblem | PayloadTooLargeProblem | ServiceUnavailableProblem | TooManyRequestsProblem | UnauthorizedProblem | UnsupportedMediaTypeProblem]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    body: GenerateRequest,
) -> (
    BadRequestProblem
    | ForbiddenProblem
    | GenerateResponse
    | InternalErrorProblem
    | MethodNotAllowedProblem
    | PayloadTooLargeProblem
    | ServiceUnavailableProblem
    | TooManyRequestsProblem
    | UnauthorizedProblem
    | UnsupportedMediaTypeProblem
    | None
):
    """Generate images from a text prompt

     Generates `num_images` images synchronously. Omitted fields take the defaults shown in
    the schema; `num_inference_steps` defaults to the model's `quality_steps` (or its
    `fast_steps` with `"preset": "fast"`). The response echoes what was actually used.

    Args:
        body (GenerateRequest): What to generate. Rules that depend on the model are stated in
            `allOf` (JSON Schema
            `if`/`then`), so that validators and test generators enforce them as the server does. An
            omitted `model` means the default model, whose rules match because `properties` only
            constrains fields that are present.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BadRequestProblem | ForbiddenProblem | GenerateResponse | InternalErrorProblem | MethodNotAllowedProblem | PayloadTooLargeProblem | ServiceUnavailableProblem | TooManyRequestsProblem | UnauthorizedProblem | UnsupportedMediaTypeProblem
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: GenerateRequest,
) -> Response[
    BadRequestProblem
    | ForbiddenProblem
    | GenerateResponse
    | InternalErrorProblem
    | MethodNotAllowedProblem
    | PayloadTooLargeProblem
    | ServiceUnavailableProblem
    | TooManyRequestsProblem
    | UnauthorizedProblem
    | UnsupportedMediaTypeProblem
]:
    """Generate images from a text prompt

     Generates `num_images` images synchronously. Omitted fields take the defaults shown in
    the schema; `num_inference_steps` defaults to the model's `quality_steps` (or its
    `fast_steps` with `"preset": "fast"`). The response echoes what was actually used.

    Args:
        body (GenerateRequest): What to generate. Rules that depend on the model are stated in
            `allOf` (JSON Schema
            `if`/`then`), so that validators and test generators enforce them as the server does. An
            omitted `model` means the default model, whose rules match because `properties` only
            constrains fields that are present.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BadRequestProblem | ForbiddenProblem | GenerateResponse | InternalErrorProblem | MethodNotAllowedProblem | PayloadTooLargeProblem | ServiceUnavailableProblem | TooManyRequestsProblem | UnauthorizedProblem | UnsupportedMediaTypeProblem]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: GenerateRequest,
) -> (
    BadRequestProblem
    | ForbiddenProblem
    | GenerateResponse
    | InternalErrorProblem
    | MethodNotAllowedProblem
    | PayloadTooLargeProblem
    | ServiceUnavailableProblem
    | TooManyRequestsProblem
    | UnauthorizedProblem
    | UnsupportedMediaTypeProblem
    | None
):
    """Generate images from a text prompt

     Generates `num_images` images synchronously. Omitted fields take the defaults shown in
    the schema; `num_inference_steps` defaults to the model's `quality_steps` (or its
    `fast_steps` with `"preset": "fast"`). The response echoes what was actually used.

    Args:
        body (GenerateRequest): What to generate. Rules that depend on the model are stated in
            `allOf` (JSON Schema
            `if`/`then`), so that validators and test generators enforce them as the server does. An
            omitted `model` means the default model, whose rules match because `properties` only
            constrains fields that are present.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BadRequestProblem | ForbiddenProblem | GenerateResponse | InternalErrorProblem | MethodNotAllowedProblem | PayloadTooLargeProblem | ServiceUnavailableProblem | TooManyRequestsProblem | UnauthorizedProblem | UnsupportedMediaTypeProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed

"""Conformance to openapi.yaml with schemathesis' built-in checks: status codes, content types,
response schemas and headers, negative data rejected, positive data accepted, auth not ignored,
missing auth header, unsupported methods, and no server errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import schemathesis
from hypothesis import reject
from requests.structures import CaseInsensitiveDict
from schemathesis.config import SchemathesisConfig

from contract_tests.checks import busy_delay
from contract_tests.spec import GENERATE, spec_path
from contract_tests.target import BudgetExhausted, HttpTarget, Reply

CONFIG_PATH = Path(__file__).with_name("schemathesis.toml")


def suite_config() -> SchemathesisConfig:
    """schemathesis.toml, the settings `st run` uses, less its Authorization header: the suite
    sends the key it picks from IMAGEAPI_KEY_<PLAN> itself."""
    settings = tomllib.loads(CONFIG_PATH.read_text())
    settings.pop("headers", None)
    return SchemathesisConfig.from_dict(settings)


@pytest.fixture(scope="session")
def api_schema(target):
    if isinstance(target, HttpTarget):
        schema = schemathesis.openapi.from_path(spec_path(), config=suite_config())
        schema.config.update(base_url=target.base_url)
        return schema
    return schemathesis.openapi.from_wsgi("/openapi.json", target.app, config=suite_config())


@pytest.fixture(scope="session")
def conformance_key(contract, keys):
    """The key of the plan with the most models, so that positive data can succeed."""
    known = [plan for plan in contract.plans if keys.get(plan)]
    if not known:
        pytest.skip("no key for any plan: set IMAGEAPI_KEY_<PLAN>")
    plan = max(known, key=lambda p: sum(p in m["plans"] for m in contract.models.values()))
    return keys[plan]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_conformance(case, target, contract, billing, conformance_key):
    expect_billable = (
        case.method == "POST"
        and case.path == GENERATE
        and contract.request_validator.is_valid(case.body)
    )
    if expect_billable:
        try:
            billing.reserve()
        except BudgetExhausted:
            reject()  # spend no more: hypothesis moves on to other inputs
    kwargs = (
        {"session": target.session, "timeout": target.timeout}
        if isinstance(target, HttpTarget)
        else {}
    )
    headers = {"Authorization": f"Bearer {conformance_key}"}
    target.credentials.note_request(case.formatted_path, headers)

    def send():
        response = case.call(headers=headers, **kwargs)
        billing.record(case.method, case.path, response.status_code)
        return response

    response = target.retrying(send, billable=expect_billable, to_reply=as_reply)
    case.validate_response(
        response, headers=headers, excluded_checks=documented_unavailability(response)
    )


def documented_unavailability(response) -> list:
    """A 503 that the spec documents for the operation (a model that cannot be served now, with
    ``Retry-After``) is an answer, not a server error; every other check still applies to it."""
    if busy_delay(as_reply(response)) is None:  # as_reply: schemathesis lower-cases names
        return []
    return [schemathesis.checks.not_a_server_error]


def as_reply(response) -> Reply:
    headers = CaseInsensitiveDict(
        {name: ", ".join(values) for name, values in response.headers.items()}
    )
    return Reply(response.status_code, headers, response.content)

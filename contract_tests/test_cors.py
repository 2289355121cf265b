"""CORS, as `x-imageapi-cors` states it: a page on another origin can call the API with a key.

Origins are generated (any origin must do when the spec allows `*`); a target that allows a
fixed list of origins is given one with `--origin`.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract_tests.checks import assert_generated, assert_problem
from contract_tests.plugin import key_including
from contract_tests.spec import GENERATE, MODELS, load_contract
from contract_tests.strategies import examples

ARBITRARY_ORIGINS = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}{'' if port is None else f':{port}'}",
    st.sampled_from(["https", "http"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,15}\.(example|test|localhost)", fullmatch=True),
    st.none() | st.integers(1, 65535),
)
MAX_BODY = 64 * 1024  # "larger than 64 KiB" (the error table)
OPERATIONS = [
    ("POST", GENERATE),
    ("GET", MODELS),
    ("GET", f"{MODELS}/{load_contract().default_model}"),
]


@pytest.fixture(scope="session")
def origins(pytestconfig):
    origin = pytestconfig.getoption("origin")
    return st.just(origin) if origin else ARBITRARY_ORIGINS


def names(value: str | None) -> set[str]:
    """The header names or methods of a comma-separated list, lowercased."""
    return {name.strip().lower() for name in (value or "").split(",") if name.strip()}


def assert_allows(reply, origin: str, contract):
    """*reply* lets a script on *origin* read it (Fetch standard, CORS check)."""
    allowed = reply.headers.get("Access-Control-Allow-Origin")
    assert allowed is not None, f"no Access-Control-Allow-Origin for Origin {origin}"
    assert allowed in ("*", origin), f"Access-Control-Allow-Origin: {allowed!r} for {origin}"
    if allowed == "*":
        credentials = reply.headers.get("Access-Control-Allow-Credentials", "")
        assert credentials.lower() != "true", "'*' with credentials: browsers refuse it"
    if allowed != "*":
        vary = names(reply.headers.get("Vary"))
        assert "origin" in vary or "*" in vary, (
            "an echoed Access-Control-Allow-Origin needs Vary: Origin, or caches serve one "
            f"origin's answer to another (Vary: {reply.headers.get('Vary')!r})"
        )


def assert_exposes(reply, contract):
    """Scripts can read every header the spec documents on responses."""
    exposed = names(reply.headers.get("Access-Control-Expose-Headers"))
    if "*" in exposed:  # every header, for requests without credentials such as these
        return
    wanted = {name.lower() for name in contract.cors["expose_headers"]}
    wanted |= {name.lower() for name in contract.documented_headers()}
    missing = wanted - exposed
    assert not missing, (
        f"Access-Control-Expose-Headers lacks {sorted(missing)}: scripts cannot read them "
        f"({reply.headers.get('Access-Control-Expose-Headers')!r})"
    )


def test_preflights_allow_a_key_and_json_from_any_origin(target, contract, origins):
    """A preflight needs no key, and allows Authorization and Content-Type by name."""
    wanted = contract.cors["allow_headers"]

    @settings(max_examples=examples(40))
    @given(
        origin=origins,
        operation=st.sampled_from(OPERATIONS),
        requested=st.permutations(wanted).flatmap(
            lambda names: st.tuples(*(st.sampled_from([n, n.lower(), n.upper()]) for n in names))
        ),
        separator=st.sampled_from([", ", ",", " , "]),
    )
    def check(origin, operation, requested, separator):
        method, path = operation
        reply = target.request(
            "OPTIONS",
            path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": separator.join(requested),
            },
        )
        assert 200 <= reply.status < 300, f"a preflight got {reply.status}: {reply.body[:200]!r}"
        assert_allows(reply, origin, contract)
        allowed_headers = names(reply.headers.get("Access-Control-Allow-Headers"))
        missing = {name.lower() for name in wanted} - allowed_headers
        assert not missing, (
            f"the preflight does not allow {sorted(missing)} "
            f"(Access-Control-Allow-Headers: {reply.headers.get('Access-Control-Allow-Headers')!r}"
            "; a '*' does not cover Authorization)"
        )
        methods = names(reply.headers.get("Access-Control-Allow-Methods"))
        assert method.lower() in methods or "*" in methods, (
            f"the preflight does not allow {method}: {methods}"
        )
        max_age = contract.cors.get("max_age")
        if max_age is not None:
            assert reply.headers.get("Access-Control-Max-Age") == str(max_age)

    check()


def test_generated_images_are_readable_from_any_origin(
    target, contract, keys, origins, reserve_billable
):
    """A generation's answer carries the allowed origin and exposes the documented headers."""
    key = key_including(contract, keys, contract.default_model)
    body = {"prompt": "cors", "width": 256, "height": 256}

    @settings(max_examples=examples(2))
    @given(origin=origins)
    def check(origin):
        reserve_billable()
        headers = {"Authorization": f"Bearer {key}", "Origin": origin}
        reply = target.request("POST", GENERATE, headers=headers, json_body=body)
        assert_generated(reply, body, contract)
        assert_allows(reply, origin, contract)
        assert_exposes(reply, contract)

    check()


def test_answers_are_readable_from_any_origin(target, contract, keys, origins):
    """Successes and refusals alike carry the allowed origin and expose the documented headers."""
    key = key_including(contract, keys, contract.default_model)
    bearer = {"Authorization": f"Bearer {key}"}

    @settings(max_examples=examples(20))
    @given(origin=origins)
    def check(origin):
        listing = target.request("GET", MODELS, headers={**bearer, "Origin": origin})
        assert listing.status == 200
        assert_allows(listing, origin, contract)
        assert_exposes(listing, contract)
        refusals = [
            (target.request("GET", MODELS, headers={"Origin": origin}), 401),
            (
                target.request(
                    "POST",
                    GENERATE,
                    headers={**bearer, "Origin": origin},
                    json_body={"prompt": "p", "num_inference_steps": 0},
                ),
                400,
            ),
            (
                target.request(
                    "GET", f"{MODELS}/no-such-model", headers={**bearer, "Origin": origin}
                ),
                404,
            ),
            # refusals a framework may make before the route's handler runs
            (target.request("DELETE", GENERATE, headers={**bearer, "Origin": origin}), 405),
            (
                target.request(
                    "POST",
                    GENERATE,
                    headers={**bearer, "Origin": origin, "Content-Type": "text/plain"},
                    data=b"p",
                ),
                415,
            ),
            (
                target.request(
                    "POST",
                    GENERATE,
                    headers={**bearer, "Origin": origin, "Content-Type": "application/json"},
                    data=b" " * (MAX_BODY + 1),
                ),
                413,
            ),
        ]
        for reply, status in refusals:
            assert_problem(reply, status, None, contract)
            assert_allows(reply, origin, contract)
            assert_exposes(reply, contract)

    check()

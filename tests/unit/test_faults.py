"""Faults in-process: the seeded draw, the injected 429 and 503 against the spec, sequences,
the journal's filters and counts, the admin document, and the lognormal latency on a patched
clock. What a client sees of the transport faults is in tests/server/test_faults.py."""

from __future__ import annotations

import hashlib
import math
import statistics
from statistics import NormalDist

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from mockserver import latency
from mockserver.admin import admin_document
from mockserver.app import create_app
from mockserver.config import Config, parse_latency
from mockserver.faults import FAULT, KINDS, parse_faults, seeded_fault
from mockserver.redact import fingerprint
from mockserver.transport import FLUSH_S, SLOW_BODY_CHUNKS, SLOW_BODY_PAUSE_S, TransportFaults
from tests.support import KEY_FOR_PLAN, auth

GENERATE = "/api/v1/generate"
SMALL = {"prompt": "a red fox", "width": 512, "height": 512}


def fresh_app(spec, **settings):
    return create_app(Config(**settings), spec=spec)


def test_a_faults_spec_is_read_and_refused_when_wrong():
    plan = parse_faults("rate=0.05,kinds=reset+truncate+empty+429+503+slow,seed=7")
    assert (plan.rate, plan.seed) == (0.05, 7)
    assert plan.kinds == ("reset", "truncate", "empty", "429", "503", "slow-body")
    assert parse_faults("rate=1").kinds == KINDS and parse_faults("rate=1").seed is None
    assert parse_faults("off") is None
    for bad in ("rate=2", "rate=x", "kinds=reset", "rate=0.1,kinds=boom", "rate=0.1,seed=-1",
                "rate=0.1,rate=0.2", "nonsense"):  # fmt: skip
        with pytest.raises(ValueError):
            parse_faults(bad)
    with pytest.raises(ValueError, match="MOCKSERVER_FAULTS"):
        Config.from_env({"MOCKSERVER_FAULTS": "rate=7"})


def independent_draw(seed: int, number: int, rate: float, kinds: tuple[str, ...]):
    """The documented derivation, written again: SHA-256 of "seed:number"; its first 8 bytes
    against the rate, the next 8 pick the kind."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    if int.from_bytes(digest[:8], "big") >= rate * 2**64:
        return None
    return kinds[int.from_bytes(digest[8:16], "big") % len(kinds)]


def test_the_seeded_draw_is_a_function_of_seed_and_number():
    kinds = ("reset", "429")
    draws = [seeded_fault(3, n, 0.3, kinds) for n in range(1, 2001)]
    assert draws == [independent_draw(3, n, 0.3, kinds) for n in range(1, 2001)]
    assert 450 < sum(d is not None for d in draws) < 750  # about 30 %
    assert draws != [seeded_fault(4, n, 0.3, kinds) for n in range(1, 2001)]


def response_schema(spec, name):
    return spec.document["components"]["responses"][name]


@pytest.mark.parametrize(("kind", "component"), [("429", "TooManyRequests"),
                                                 ("503", "ServiceUnavailable")])  # fmt: skip
def test_an_injected_status_is_the_spec_answer(spec, kind, component):
    client = fresh_app(spec).test_client()
    reply = client.post(GENERATE, json=SMALL, headers={**auth("free"), "Prefer": f"fault={kind}"})
    assert reply.status_code == int(kind)
    documented = response_schema(spec, component)
    [(media_type, content)] = documented["content"].items()
    assert reply.mimetype == media_type
    assert not list(Draft202012Validator(content["schema"]).iter_errors(reply.get_json()))
    for name, header in documented["headers"].items():
        value = reply.headers.get(name)
        assert value is not None, name
        assert not list(Draft202012Validator(header["schema"]).iter_errors(
            int(value) if header["schema"]["type"] == "integer" else value)), name  # fmt: skip
    assert reply.headers["Retry-After"] == "1"
    assert reply.headers["Preference-Applied"] == f"fault={kind}"
    if kind == "429":
        assert reply.headers["RateLimit"] == '"free";r=0;t=1'


def test_a_status_the_operation_does_not_document_is_refused(client):
    reply = client.get("/api/v1/models", headers={**auth(), "Prefer": "fault=503"})
    assert reply.status_code == 400 and reply.get_json()["field"] == "Prefer"
    reply = client.get("/api/v1/models", headers={**auth(), "Prefer": "fault=boom"})
    assert reply.status_code == 400


def test_without_scenarios_prefer_asks_for_no_fault(spec):
    client = fresh_app(spec, scenarios=False).test_client()
    assert (
        client.get("/api/v1/models", headers={**auth(), "Prefer": "fault=429"}).status_code == 200
    )


def test_faults_never_apply_to_the_admin_routes(spec):
    client = fresh_app(spec, faults="rate=1,kinds=429+503+reset,seed=1").test_client()
    for _ in range(20):
        assert client.get("/__admin/requests", headers={"Prefer": "fault=503"}).status_code == 200
        assert client.get("/__admin/state").status_code == 200
    assert client.post(GENERATE, json=SMALL, headers=auth()).status_code in (429, 503, 200)


def test_every_api_request_draws_from_the_seed_in_order(spec):
    """In one process, without a server: request n meets the n-th draw, as its status and the
    journal's record of each fault show."""
    client = fresh_app(spec, faults="rate=0.5,kinds=429+503+reset,seed=11").test_client()
    statuses = [client.get("/api/v1/models/sdxl-lightning", headers=auth()).status_code
                for _ in range(40)]  # fmt: skip
    expected = [independent_draw(11, n, 0.5, ("429", "503", "reset")) for n in range(1, 41)]
    # GET /models/{id} documents 429, not 503: a drawn 503 lets the request through.
    expected = [None if kind == "503" else kind for kind in expected]
    assert statuses == [429 if kind == "429" else 200 for kind in expected]
    assert "reset" in expected and "429" in expected
    journal = client.get("/__admin/requests?limit=40").get_json()["requests"][::-1]
    assert [e["fault"]["kind"] if e["fault"] else None for e in journal] == expected
    assert {e["fault"]["source"] for e in journal if e["fault"]} == {"seeded"}


def test_put_faults_restarts_the_count_and_delete_goes_back(spec):
    client = fresh_app(spec).test_client()
    assert client.get("/__admin/faults").get_json() == {"faults": None}

    def run():
        put = client.put("/__admin/faults", json={"faults": "rate=0.5,kinds=429,seed=2"})
        assert put.status_code == 200
        return [client.get("/api/v1/models", headers=auth()).status_code for _ in range(30)]

    first = run()
    assert first == run() and 429 in first and 200 in first
    assert client.put("/__admin/faults", json={"faults": "rate=9"}).status_code == 400
    assert client.delete("/__admin/faults").status_code == 204
    assert client.get("/__admin/faults").get_json() == {"faults": None}


def test_a_sequence_answers_the_next_calls_of_its_key_then_lets_them_through(spec):
    client = fresh_app(spec).test_client()
    key = KEY_FOR_PLAN["basic"]
    made = client.post("/__admin/sequences", json={
        "key": key, "method": "POST", "path": GENERATE, "answers": ["503", "429"]})  # fmt: skip
    assert made.status_code == 201
    # Kept under the key's digest, as the rate limiter keeps keys: the same on every host.
    name = f"key:{hashlib.sha256(key.encode()).hexdigest()[:32]}|POST {GENERATE}"
    assert made.get_json() == {"sequences": {name: ["503", "429"]}}
    assert client.post(GENERATE, json=SMALL, headers=auth("pro")).status_code == 200  # other key
    assert client.get("/api/v1/models", headers=auth("basic")).status_code == 200  # other route
    statuses = [client.post(GENERATE, json=SMALL, headers=auth("basic")).status_code
                for _ in range(3)]  # fmt: skip
    assert statuses == [503, 429, 200]
    assert client.get("/__admin/sequences").get_json() == {"sequences": {}}
    journal = client.get("/__admin/requests?status=503").get_json()["requests"]
    assert journal[0]["fault"] == {"kind": "503", "source": "sequence"}
    assert journal[0]["key_fingerprint"] == fingerprint(key)


def test_a_sequence_for_any_key_and_its_bounds(spec):
    client = fresh_app(spec).test_client()
    assert client.post("/__admin/sequences", json={"answers": ["429"]}).status_code == 201
    assert client.get("/api/v1/models", headers=auth("free")).status_code == 429
    assert client.get("/api/v1/models", headers=auth("free")).status_code == 200
    for bad in ({"answers": []}, {"answers": ["boom"]}, {"answers": ["429"], "method": "GET"},
                {"answers": ["429"], "extra": 1}, {"answers": "429"}, [1],
                {"answers": ["429"], "key_fingerprint": "SK"}):  # fmt: skip
        assert client.post("/__admin/sequences", json=bad).status_code == 400, bad
    for _ in range(2):  # a body is at most 64 KiB
        assert (
            client.post("/__admin/sequences", json={"answers": ["429"] * 5000}).status_code == 201
        )
    full = client.post("/__admin/sequences", json={"answers": ["503"]})
    assert full.status_code == 409 and full.get_json()["code"] == "sequences_full"
    assert client.delete("/__admin/sequences").status_code == 204
    assert client.get("/__admin/sequences").get_json() == {"sequences": {}}


def test_the_journal_is_filtered_and_counted(spec):
    client = fresh_app(spec).test_client()
    client.post(GENERATE, json=SMALL, headers=auth("basic"))
    client.post(GENERATE, json={**SMALL, "model": "sdxl-lightning"}, headers=auth("basic"))
    client.get("/api/v1/models", headers=auth("free"))
    client.get("/api/v1/models", headers={"Authorization": "Bearer sk_unknown"})
    client.post(GENERATE, json=SMALL, headers={**auth("free"), "Prefer": "fault=429"})

    def count(**filters):
        reply = client.post("/__admin/requests/count", json=filters)
        assert reply.status_code == 200, reply.get_json()
        listed = client.get("/__admin/requests", query_string=filters).get_json()["requests"]
        assert len(listed) == reply.get_json()["count"]  # the same filters, both ways
        return reply.get_json()["count"]

    assert count() == 5
    assert count(method="post", path=GENERATE) == 3
    assert count(path="/api/v1/*") == 5 and count(path="/api/v1/model*") == 2
    assert count(plan="free") == 2 and count(plan="basic") == 2
    assert count(status=401, code="invalid_api_key") == 1
    assert count(status=429, code="rate_limited") == 1
    assert count(key_fingerprint=fingerprint("sk_unknown")) == 1
    assert spec.default_model != "sdxl-lightning"
    assert count(model="sdxl-lightning") == 1
    assert count(model=spec.default_model) == 1  # a generation that names none
    newest = client.get("/__admin/requests?limit=1").get_json()["requests"][0]
    assert count(since=newest["time"]) >= 1 and count(since=newest["time"] + 60) == 0
    for bad in ({"status": "x"}, {"nope": 1}, {"method": ""}, {"since": "inf"}, {"status": 4.5}):
        assert client.post("/__admin/requests/count", json=bad).status_code == 400, bad
    assert client.get("/__admin/requests?status=abc").status_code == 400
    assert client.post("/__admin/requests/count", data="[", content_type="application/json")\
        .status_code == 400  # fmt: skip


def test_the_admin_document_is_valid_openapi_and_served(client):
    validate(admin_document())
    served = client.get("/__admin/openapi.json")
    assert served.status_code == 200 and served.get_json() == admin_document()
    documented = {path for path in admin_document()["paths"]}
    assert {"/__admin/requests", "/__admin/requests/count", "/__admin/sequences",
            "/__admin/faults", "/__admin/openapi.json"} <= documented  # fmt: skip


def test_lognormal_latency_is_read_and_refused_when_wrong():
    assert parse_latency("lognormal:800,0.5,7") == "lognormal:800,0.5,7"
    assert parse_latency("LOGNORMAL:realistic,0.3") == "lognormal:realistic,0.3"
    for bad in ("lognormal:", "lognormal:0,1", "lognormal:800", "lognormal:800,9",
                "lognormal:800,0.5,x", "lognormal:800,0.5,1,2"):  # fmt: skip
        with pytest.raises(ValueError):
            parse_latency(bad)


def test_the_lognormal_latency_in_milliseconds_on_a_patched_clock(spec, monkeypatch):
    waits = []
    monkeypatch.setattr(latency, "sleep", lambda seconds: waits.append(seconds * 1000))
    client = fresh_app(spec, latency="lognormal:800,0.5,7").test_client()
    for _ in range(300):
        assert client.post(GENERATE, json=SMALL, headers=auth()).status_code == 200
    # Independently: the n-th generation waits 800 * exp(0.5 * z_n) ms, z_n the normal
    # quantile of the n-th SHA-256 draw.
    expected = []
    for n in range(1, 301):
        digest = hashlib.sha256(f"latency:7:{n}".encode()).digest()
        uniform = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
        expected.append(800 * math.exp(0.5 * NormalDist().inv_cdf(uniform)))
    assert waits == pytest.approx(expected, rel=1e-9)
    logs = [math.log(ms) for ms in waits]
    assert math.exp(statistics.median(logs)) == pytest.approx(800, rel=0.15)
    assert statistics.stdev(logs) == pytest.approx(0.5, rel=0.15)
    assert max(waits) > 2 * 800 > 800 / 2 > min(waits)  # a tail each way


def test_a_realistic_median_follows_the_model(spec, monkeypatch):
    waits = []
    monkeypatch.setattr(latency, "sleep", lambda seconds: waits.append(seconds * 1000))
    client = fresh_app(spec, latency="lognormal:realistic,0,1").test_client()
    body = {"prompt": "x", "model": "sdxl-lightning", "width": 1024, "height": 1024,
            "num_inference_steps": 8}  # fmt: skip
    assert client.post(GENERATE, json=body, headers=auth()).status_code == 200
    typical = spec.models["sdxl-lightning"].entry["typical_latency_ms"]
    assert waits == [pytest.approx(typical)]  # sigma 0: the median itself


def test_without_a_journal_the_count_says_so(spec):
    client = fresh_app(spec, journal_size=0).test_client()
    answer = client.post("/__admin/requests/count", json={})
    assert answer.status_code == 404 and answer.get_json()["code"] == "journal_off"


@pytest.mark.parametrize(
    ("kind", "sent", "length"),
    [("reset", b"", "reset"), ("empty", b"", "40"), ("truncate", b"x" * 20, "40"),
     ("slow-body", b"x" * 40, "40"), (None, b"x" * 40, "40")],
)  # fmt: skip
def test_the_transport_middleware_spoils_a_marked_answer(kind, sent, length):
    """What the middleware hands granian, on a clock that does not wait."""
    pauses = []

    def app(environ, start_response):
        environ[FAULT] = kind
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "40")])
        return [b"x" * 40]

    heads = []
    body = TransportFaults(app, sleep=pauses.append)(
        {}, lambda status, headers, exc_info=None: heads.append(dict(headers))
    )
    chunks = list(body)
    assert b"".join(chunks) == sent and heads[0]["Content-Length"] == length
    assert not isinstance(body, list) or kind is None  # streamed: granian sends it as it comes
    if kind == "slow-body":
        assert len(chunks) == SLOW_BODY_CHUNKS and pauses == [SLOW_BODY_PAUSE_S] * (len(chunks) - 1)
    elif kind in ("empty", "truncate"):
        assert pauses == [FLUSH_S]  # what was sent reaches the client before the close

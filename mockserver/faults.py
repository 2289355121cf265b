"""Faults as real deployments have them: answers that never come, come cut short, come slowly,
or come as the busy service's 429 and 503.

Three ways to ask for one, in this order of precedence:

- per request, in mock mode: ``Prefer: fault=reset|truncate|empty|slow-body|429|503``;
- a **sequence** set through ``POST /__admin/sequences`` (or ``--sequences FILE``): the next
  answers of one key (and route), shared by every worker and host through the state store;
- **seeded faults**, ``--faults rate=0.05,kinds=reset+truncate+empty+429+503+slow,seed=7``
  (``MOCKSERVER_FAULTS``, or ``PUT /__admin/faults`` at run time): each API request draws a
  fault with probability *rate*.

The kinds:

- ``429`` and ``503`` are answered instead of the request, as the service answers them: the
  problem document, ``Retry-After``, and on a 429 from a known key its ``RateLimit`` fields;
  only on operations that document that status (elsewhere the request is answered as usual);
- ``reset``, ``truncate``, ``empty`` and ``slow-body`` let the request run (so the work is done,
  as when a network loses the answer) and then spoil its delivery; see
  :mod:`mockserver.transport`.

Seeded draws repeat exactly: request number *n* (counted in the state store, so the count is
one across every worker of a host and every host of a Redis store) meets the fault that
:func:`seeded_fault` derives from (seed, n) alone. A per-worker random generator would give each
worker its own sequence, and which worker takes which request is up to the HTTP server; a hash
of the request's content would give a retry the same fault forever. The shared counter makes
the n-th request of a run meet the same fault whichever worker answers it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass

from mockserver.problems import Problem
from mockserver.ratelimit import Quota
from mockserver.scenarios import parse_prefer
from mockserver.store import StateStore, StoreUnavailable

TRANSPORT_KINDS = ("reset", "truncate", "empty", "slow-body")
STATUS_KINDS = ("429", "503")
KINDS = TRANSPORT_KINDS + STATUS_KINDS
_ALIASES = {"slow": "slow-body"}
FAULT = "mockserver.fault"  # the environ key: the transport fault to apply to this answer
FAULTS_SETTING = "faults"  # the state store's setting that overrides --faults ("off": none)
FAULTS_COUNTER = "faults"  # the state store's count of API requests since faults were set
RETRY_AFTER_S = 1  # an injected 429 or 503 asks for a short wait: the tests that meet it are
MAX_SEQUENCE_ANSWERS = 10_000  # answers waiting in all sequences together


def fault_kind(text: str) -> str:
    """A kind's canonical name, or ValueError naming the kinds."""
    kind = _ALIASES.get(text.strip().lower(), text.strip().lower())
    if kind not in KINDS:
        raise ValueError(f"{text[:20]!r} is not a fault; expected one of {', '.join(KINDS)}")
    return kind


@dataclass(frozen=True)
class FaultPlan:
    """Seeded faults: each request meets one with probability *rate*, of one of *kinds*."""

    rate: float
    kinds: tuple[str, ...] = KINDS
    seed: int | None = None

    def text(self) -> str:
        seed = "" if self.seed is None else f",seed={self.seed}"
        return f"rate={self.rate:g},kinds={'+'.join(self.kinds)}{seed}"

    def draw(self, number: int) -> str | None:
        if self.seed is not None:
            return seeded_fault(self.seed, number, self.rate, self.kinds)
        if random.random() < self.rate:
            return random.choice(self.kinds)
        return None


def parse_faults(text: str | None) -> FaultPlan | None:
    """``rate=0.05,kinds=reset+truncate+429,seed=7`` (kinds default to all, seed to none);
    ``off`` or nothing: None."""
    text = (text or "").strip()
    if text.lower() in {"", "off", "0", "none"}:
        return None
    values = {}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        name = name.strip().lower()
        if not equals or name not in {"rate", "kinds", "seed"} or name in values:
            raise ValueError(
                f"faults {text[:80]!r}: expected rate=P[,kinds=K+K...][,seed=N], each once"
            )
        values[name] = value.strip()
    try:
        rate = float(values.get("rate", ""))
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise ValueError(f"faults: rate must be a number from 0 to 1, not {values.get('rate')!r}")
    kinds = tuple(dict.fromkeys(fault_kind(k) for k in values.get("kinds", "").split("+") if k))
    seed = values.get("seed")
    if seed is not None and not (seed.isascii() and seed.isdigit() and len(seed) <= 20):
        raise ValueError(f"faults: seed must be a whole number of 0 or more, not {seed[:20]!r}")
    return FaultPlan(rate, kinds or KINDS, None if seed is None else int(seed))


def seeded_fault(seed: int, number: int, rate: float, kinds: tuple[str, ...]) -> str | None:
    """The fault that request *number* (from 1) meets under *seed*: a pure function of both,
    the same in every worker and every run."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    if int.from_bytes(digest[:8], "big") / 2**64 >= rate:
        return None
    return kinds[int.from_bytes(digest[8:16], "big") % len(kinds)]


def sequence_name(who: str | None, method: str | None, path: str | None) -> str:
    """The store's name of a sequence: for one key (``key:`` its digest, or ``fp:`` the
    fingerprint the journal shows) or any (``*``), and one route (``POST /api/v1/generate``) or
    any."""
    route = f"{method.upper()} {path}" if method and path else "*"
    return f"{who or '*'}|{route}"


def key_identities(key: str) -> list[str]:
    """How a sequence may name the key a request presents. The digest is the one the rate
    limiter keeps keys as, the same on every host sharing the store; fingerprints are keyed
    per server (the same across hosts only when they share MOCKSERVER_FINGERPRINT_SECRET)."""
    from mockserver.auth import digest
    from mockserver.redact import fingerprint

    return [f"key:{digest(key).hex()[:32]}", f"fp:{fingerprint(key)}"]


def candidate_sequences(key: str | None, method: str, path: str) -> list[str]:
    """The sequences a request may take its answer from, the most specific first."""
    names = []
    for who in ([*key_identities(key)] if key else []) + [None]:
        names += [sequence_name(who, method, path), sequence_name(who, None, None)]
    return names


def parse_sequence(item) -> tuple[str, list[str]]:
    """One sequence as ``POST /__admin/sequences`` and ``--sequences`` take it:
    ``{"key": "sk_...", "method": "POST", "path": "/api/v1/generate", "answers": ["503"]}``
    (``key_fingerprint`` instead of ``key``; each of key and route optional). Its store name
    and answers, or ValueError."""
    if not isinstance(item, dict):
        raise ValueError("a sequence is an object with answers")
    unknown = set(item) - {"key", "key_fingerprint", "method", "path", "answers"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0][:40]!r} in a sequence")
    answers = item.get("answers")
    if not isinstance(answers, list) or not answers or len(answers) > MAX_SEQUENCE_ANSWERS:
        raise ValueError(f"answers must be a list of 1 to {MAX_SEQUENCE_ANSWERS} faults")
    kinds = [fault_kind(str(answer)) for answer in answers]
    key, key_fingerprint = item.get("key"), item.get("key_fingerprint")
    method, path = item.get("method"), item.get("path")
    for name, value in (("key", key), ("key_fingerprint", key_fingerprint),
                        ("method", method), ("path", path)):  # fmt: skip
        if value is not None and not (isinstance(value, str) and 0 < len(value) <= 1000):
            raise ValueError(f"{name} must be a non-empty string")
    if key and key_fingerprint:
        raise ValueError("give key or key_fingerprint, not both")
    if (method is None) != (path is None):
        raise ValueError("give method and path together (or neither: any route)")
    if key_fingerprint is not None and not re.fullmatch(r"[0-9a-f]{8}", key_fingerprint):
        raise ValueError("key_fingerprint is the 8 hex digits the journal shows")
    who = key_identities(key)[0] if key else f"fp:{key_fingerprint}" if key_fingerprint else None
    return sequence_name(who, method, path), kinds


def load_sequences(path: str) -> list[tuple[str, list[str]]]:
    """A ``--sequences`` file: a JSON or YAML list of sequences."""
    import yaml

    with open(path, encoding="utf-8") as file:
        text = file.read()
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid JSON or YAML: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of sequences")
    try:
        return [parse_sequence(item) for item in data]
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class Fault:
    kind: str
    source: str  # "prefer", "sequence" or "seeded"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "source": self.source}


class FaultChooser:
    """Decides each API request's fault from its ``Prefer`` header, the sequences and the
    seeded plan (``--faults``, overridden at run time through the store)."""

    def __init__(self, store: StateStore, configured: FaultPlan | None, prefer: bool):
        self.store = store
        self.configured = configured
        self.prefer = prefer  # mock mode: honour Prefer: fault=

    def plan(self) -> FaultPlan | None:
        """The seeded plan in force: the store's override, else ``--faults``."""
        return self._plan(self.store.call(lambda: self.store.setting(FAULTS_SETTING)))

    def _plan(self, override: str | None) -> FaultPlan | None:
        return self.configured if override is None else parse_faults(override)

    def set_plan(self, text: str | None) -> FaultPlan | None:
        """Put *text* in force for every worker (None: back to ``--faults``); the request count
        starts again, so that a seeded run repeats from its first request."""
        plan = self.configured if text is None else parse_faults(text)
        stored = None if text is None else plan.text() if plan else "off"
        self.store.call(lambda: self.store.set_setting(FAULTS_SETTING, stored))
        self.store.call(lambda: self.store.reset_counter(FAULTS_COUNTER))
        return plan

    def choose(self, prefer: str | None, key: str | None, method: str, path: str):
        """The fault for this request, or None. A store that does not answer means none but
        the ``Prefer`` one: the mock keeps answering."""
        wanted = parse_prefer(prefer).get("fault") if prefer and self.prefer else None
        try:
            override, waiting = self.store.call(lambda: self.store.fault_state(FAULTS_SETTING))
            plan = self._plan(override)
            number = self.store.call(lambda: self.store.increment(FAULTS_COUNTER)) if plan else 0
            if wanted is not None:
                try:
                    return Fault(fault_kind(wanted), "prefer")
                except ValueError as exc:
                    detail = f"Prefer: {exc}."
                    raise Problem(400, "invalid_request", detail, field="Prefer") from None
            if waiting:
                names = candidate_sequences(key, method, path)
                answer = self.store.call(lambda: self.store.sequence_take(names))
                if answer is not None:
                    return Fault(answer, "sequence")
            kind = plan.draw(number) if plan else None
            return Fault(kind, "seeded") if kind else None
        except StoreUnavailable:
            return Fault(fault_kind(wanted), "prefer") if wanted else None


def status_answer(kind: str, plan: str | None, requests_per_minute: int | None) -> Problem:
    """The service's own 429 or 503, as an injected fault gives it."""
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if kind == "429":
        if plan is not None and requests_per_minute is not None:
            retry.update(Quota(plan, requests_per_minute, 0, RETRY_AFTER_S).headers())
        return Problem(
            429, "rate_limited", "Too many requests right now (an injected fault).", headers=retry
        )
    return Problem(
        503,
        "model_unavailable",
        f"The model cannot be served right now (an injected fault); try again in "
        f"{RETRY_AFTER_S} s.",
        headers=retry,
    )

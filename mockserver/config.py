"""Server settings, from arguments or ``MOCKSERVER_*`` environment variables."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mockserver.spec import DEFAULT_SPEC_PATH

# Development keys, one per plan, documented in the README. Replace them with --keys FILE.
DEV_KEYS = {
    "sk_test_free_0123456789abcdef": "free",
    "sk_test_basic_0123456789abcdef": "basic",
    "sk_test_pro_0123456789abcdef": "pro",
    "sk_test_enterprise_0123456789abcdef": "enterprise",
}
MAX_BODY_BYTES = 64 * 1024
JOURNAL_BYTES = 4 * 1024 * 1024


@dataclass
class Config:
    spec_path: Path = DEFAULT_SPEC_PATH
    spec_root: Path | None = None  # a folder whose files the spec's $refs may name (else none)
    keys: dict[str, str] = field(default_factory=lambda: dict(DEV_KEYS))
    backend: str = "placeholder"
    backend_options: dict = field(default_factory=dict)
    # Off for an app built in-process (tests, the contract suite); `python -m mockserver`
    # turns it on unless told --no-rate-limits.
    rate_limits: bool = False
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    max_body_bytes: int = MAX_BODY_BYTES
    scenarios: bool = True  # honour `Prefer: code=...` / `example=...` (mock mode)
    latency: str | None = None  # None, "realistic", milliseconds or "lognormal:..." as a string
    faults: str | None = None  # seeded faults, "rate=P,kinds=K+K,seed=N" (mockserver.faults)
    sequences: Path | None = None  # a file of sequences the CLI loads into the store at start
    journal_size: int = 200  # requests kept by the journal; 0 turns it off
    journal_bytes: int = JOURNAL_BYTES  # and their size in all
    # Where rate-limit windows and the journal live: None (in memory, this process only),
    # sqlite:///PATH (the workers of one host) or redis://HOST:PORT/DB (any number of hosts).
    state: str | None = None
    reload: bool = True  # follow edits of the spec file
    body_timeout_s: float = 10.0  # a request body must arrive within this, or 408
    work_slots: int | None = None  # requests running the app at once per worker (None: any)
    # /__admin/*: with a token, every call needs it (Bearer); without one, only clients on this
    # host may call it, unless admin_open (which `python -m mockserver` requires, or a token,
    # to listen on an address other machines can reach).
    admin_token: str | None = None
    admin_open: bool = False
    quiet: bool = False  # no access log line per request

    @classmethod
    def from_env(cls, environ=os.environ) -> Config:
        """The defaults, with each ``MOCKSERVER_*`` variable that is set applied."""
        config = cls()
        readers = {
            "MOCKSERVER_SPEC": ("spec_path", Path),
            "MOCKSERVER_SPEC_ROOT": ("spec_root", Path),
            "MOCKSERVER_KEYS": ("keys", load_keys),
            "MOCKSERVER_BACKEND": ("backend", str),
            "MOCKSERVER_BACKEND_OPTIONS": ("backend_options", json.loads),
            "MOCKSERVER_RATE_LIMITS": ("rate_limits", _flag),
            "MOCKSERVER_CORS_ORIGINS": ("cors_origins", _origins),
            "MOCKSERVER_SCENARIOS": ("scenarios", _flag),
            "MOCKSERVER_LATENCY": ("latency", parse_latency),
            "MOCKSERVER_FAULTS": ("faults", _faults),
            "MOCKSERVER_SEQUENCES": ("sequences", Path),
            "MOCKSERVER_JOURNAL_SIZE": ("journal_size", _count),
            "MOCKSERVER_JOURNAL_BYTES": ("journal_bytes", _count),
            "MOCKSERVER_STATE": ("state", str),
            "MOCKSERVER_RELOAD": ("reload", _flag),
            "MOCKSERVER_BODY_TIMEOUT": ("body_timeout_s", _seconds),
            "MOCKSERVER_WORK_SLOTS": ("work_slots", _count),
            "MOCKSERVER_ADMIN_TOKEN": ("admin_token", lambda value: value or None),
            "MOCKSERVER_ADMIN_OPEN": ("admin_open", _flag),
            "MOCKSERVER_QUIET": ("quiet", _flag),
        }
        for variable, (attribute, read) in readers.items():
            if variable in environ:
                try:
                    setattr(config, attribute, read(environ[variable]))
                except (ValueError, OSError) as exc:  # a setting's name says where to look
                    raise ValueError(f"{variable}: {exc}") from None
        return config


FLAGS = {"1": True, "true": True, "yes": True, "on": True,
         "0": False, "false": False, "no": False, "off": False, "": False}  # fmt: skip


def _flag(value: str) -> bool:
    try:
        return FLAGS[value.strip().lower()]
    except KeyError:
        raise ValueError(f"{value!r} is not on or off (1/0, true/false, yes/no, on/off)") from None


def _count(value: str) -> int:
    if not value.strip().isdigit():
        raise ValueError(f"{value!r} is not a whole number of 0 or more")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{value!r} is not a number of seconds above 0")
    return seconds


def _faults(value: str) -> str | None:
    from mockserver.faults import parse_faults

    plan = parse_faults(value)
    return plan.text() if plan else None


def _origins(value: str) -> list[str]:
    return [origin.strip() for origin in value.split(",")]


def parse_latency(value: str) -> str | None:
    """``off``, ``realistic``, a number of milliseconds or ``lognormal:MEDIAN,SIGMA[,SEED]``."""
    value = value.strip().lower()
    if value in {"", "off", "0"}:
        return None
    if value == "realistic":
        return value
    if value.startswith("lognormal:"):
        from mockserver.latency import parse_lognormal

        parse_lognormal(value)
        return value
    try:
        milliseconds = float(value)
    except ValueError:
        raise ValueError(
            f"latency {value!r}: expected off, realistic or a number of milliseconds "
            "(or lognormal:MEDIAN,SIGMA[,SEED])"
        ) from None
    if not 0 <= milliseconds <= 600_000:
        raise ValueError(f"latency {value} ms is out of range (0-600000)")
    return str(milliseconds)


def load_keys(path: str | Path) -> dict[str, str]:
    """Read a key file: a JSON or YAML mapping of API key to plan id."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(
            f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'YAML'}: {exc}"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a mapping of API key to plan id")
    if not data:
        raise ValueError(f"{path}: no keys: no request could be answered")
    return data

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


@dataclass
class Config:
    spec_path: Path = DEFAULT_SPEC_PATH
    keys: dict[str, str] = field(default_factory=lambda: dict(DEV_KEYS))
    backend: str = "placeholder"
    backend_options: dict = field(default_factory=dict)
    rate_limits: bool = False
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    max_body_bytes: int = MAX_BODY_BYTES
    scenarios: bool = True  # honour `Prefer: code=...` / `example=...` (mock mode)
    latency: str | None = None  # None, "realistic", or milliseconds as a string
    journal_size: int = 200  # requests kept by the journal; 0 turns it off
    journal_path: str = ":memory:"  # a SQLite file shares the journal between workers
    reload: bool = True  # follow edits of the spec file

    @classmethod
    def from_env(cls, environ=os.environ) -> Config:
        config = cls()
        if "MOCKSERVER_SPEC" in environ:
            config.spec_path = Path(environ["MOCKSERVER_SPEC"])
        if "MOCKSERVER_KEYS" in environ:
            config.keys = load_keys(environ["MOCKSERVER_KEYS"])
        if "MOCKSERVER_BACKEND" in environ:
            config.backend = environ["MOCKSERVER_BACKEND"]
        if environ.get("MOCKSERVER_RATE_LIMITS", "").lower() in {"1", "true", "yes", "on"}:
            config.rate_limits = True
        if "MOCKSERVER_CORS_ORIGINS" in environ:
            config.cors_origins = [o.strip() for o in environ["MOCKSERVER_CORS_ORIGINS"].split(",")]
        if environ.get("MOCKSERVER_SCENARIOS", "").lower() in {"0", "false", "no", "off"}:
            config.scenarios = False
        if environ.get("MOCKSERVER_LATENCY", "off").lower() not in {"", "off", "0"}:
            config.latency = parse_latency(environ["MOCKSERVER_LATENCY"])
        if "MOCKSERVER_JOURNAL_SIZE" in environ:
            config.journal_size = int(environ["MOCKSERVER_JOURNAL_SIZE"])
        if "MOCKSERVER_JOURNAL" in environ:
            config.journal_path = environ["MOCKSERVER_JOURNAL"]
        if environ.get("MOCKSERVER_RELOAD", "").lower() in {"0", "false", "no", "off"}:
            config.reload = False
        return config


def parse_latency(value: str) -> str | None:
    """``off``, ``realistic`` or a number of milliseconds."""
    value = value.strip().lower()
    if value in {"", "off", "0"}:
        return None
    if value == "realistic":
        return value
    milliseconds = float(value)
    if not 0 <= milliseconds <= 600_000:
        raise ValueError(f"latency {value} ms is out of range (0-600000)")
    return str(milliseconds)


def load_keys(path: str | Path) -> dict[str, str]:
    """Read a key file: a JSON or YAML mapping of API key to plan id."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a mapping of API key to plan id")
    return data

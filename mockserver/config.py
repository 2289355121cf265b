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
        return config


def load_keys(path: str | Path) -> dict[str, str]:
    """Read a key file: a JSON or YAML mapping of API key to plan id."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a mapping of API key to plan id")
    return data

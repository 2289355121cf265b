"""Server settings: one table, from which the rest is made.

Each setting is one field of :class:`ServeOptions` (what only ``python -m mockserver`` reads: the
address and the processes) or of :class:`Config` (what each server worker builds its app from),
declared once with :func:`setting`: its default, the parser that reads (and refuses) its text,
its help, and whether it is a command-line option, a ``MOCKSERVER_*`` variable or both. Made
from the table:

- the command line's options (:func:`add_options`): ``journal_size`` is ``--journal-size N``;
  an on/off setting is ``--rate-limits`` / ``--no-rate-limits``;
- the environment variables, named as Flask's ``from_prefixed_env`` names them: the prefix and
  the name in capitals, ``MOCKSERVER_JOURNAL_SIZE``;
- the reading of every value (:func:`read`, ``Config.from_env``): a value its parser refuses is a
  :class:`SettingError` that names the option or the variable it came from;
- what the command line hands its workers (:func:`worker_environment`): the variables, since
  granian's workers are processes of their own that read their settings from the environment;
- the options table of ``docs/settings.md`` (``python -m mockserver.config --markdown``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from mockserver.auth import is_token
from mockserver.keys_file import load_keys
from mockserver.spec import DEFAULT_SPEC_PATH

ENV_PREFIX = "MOCKSERVER_"
T = TypeVar("T")
# Development keys, one per plan, documented in the README. Replace them with --keys FILE.
DEV_KEYS = {
    "sk_test_free_0123456789abcdef": "free",
    "sk_test_basic_0123456789abcdef": "basic",
    "sk_test_pro_0123456789abcdef": "pro",
    "sk_test_enterprise_0123456789abcdef": "enterprise",
}
MAX_BODY_BYTES = 64 * 1024
JOURNAL_BYTES = 4 * 1024 * 1024
_SETTING = "mockserver.setting"  # the key of a field's Setting in its metadata


class SettingError(ValueError):
    """A setting's value is refused; the message names the option or variable it came from."""


@dataclass(frozen=True)
class Setting:
    """One row of the table: all that is known of a setting besides its field's type."""

    help: str
    parse: Callable[[str], Any]  # text -> value; raises ValueError (or OSError) saying why
    shown: str  # the default, as the docs say it
    metavar: str | None = None  # what the option takes; None: an on/off switch
    flag: bool = True  # a command-line option
    env: bool = True  # a MOCKSERVER_* variable: for a Config field, how it reaches the workers
    carry: Callable[[str], str] = str  # an option's text as the workers are handed it
    served: Callable[[], str] | None = None  # the text `python -m mockserver` uses if none given
    repeat: Callable[[list[str]], str] | None = None  # a repeatable option: its texts as one
    name: str = ""  # the setting's name, which names its option and variable (default: the field)
    option: str = ""  # the option, where it is not named after the setting (default: derived)
    attribute: str = ""  # the field (filled in by the table)

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def switch(self) -> bool:
        return self.metavar is None

    def source(self) -> str:
        """What an error about a value from the command line names."""
        return self.option if self.flag else self.variable


def setting(
    default: Any = MISSING, *, factory: Any = MISSING, secret: bool = False, **row: Any
) -> Any:
    """A dataclass field that is a row of the table (*row*: :class:`Setting`'s fields)."""
    metadata = {_SETTING: Setting(**row)}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


# Readers: each turns a setting's text into its value, or raises ValueError saying why not.

FLAGS = {"1": True, "true": True, "yes": True, "on": True,
         "0": False, "false": False, "no": False, "off": False, "": False}  # fmt: skip


def _flag(value: str) -> bool:
    try:
        return FLAGS[value.strip().lower()]
    except KeyError:
        raise ValueError(f"{value!r} is not on or off (1/0, true/false, yes/no, on/off)") from None


def _count(value: str) -> int:
    if not (value.strip().isascii() and value.strip().isdigit()):
        raise ValueError(f"{value!r} is not a whole number of 0 or more")
    return int(value)


def _positive(value: str) -> int:
    if not (value.strip().isascii() and value.strip().isdigit()) or int(value) == 0:
        raise ValueError(f"{value!r} is not a whole number above 0")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{value!r} is not a number of seconds above 0")
    return seconds


def port_number(text: str) -> int:
    try:
        port = int(text) if text.strip().isascii() else -1
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r} is not a port (1 to 65535)")
    return port


def _origins(value: str) -> list[str]:
    return [origin.strip() for origin in value.split(",")]


def _json_object(value: str) -> dict[str, Any]:
    options = json.loads(value)
    if not isinstance(options, dict):
        raise ValueError(f"{value!r} is not a JSON object of options")
    return options


def _options_json(texts: list[str]) -> str:
    """``--backend-option KEY=VALUE`` texts as one JSON object (a VALUE read as JSON if it is)."""
    options: dict[str, Any] = {}
    for text in texts:
        key, _, value = text.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return json.dumps(options)


def _absolute(path: str) -> str:
    return str(Path(path).resolve())


def _admin_token(value: str) -> str | None:
    if not value:
        return None
    if not is_token(value):
        raise ValueError(
            "the admin token must be a Bearer token: letters, digits and -._~+/ (then = only)"
        )
    return value


def _faults(value: str) -> str | None:
    from mockserver.faults import parse_faults

    plan = parse_faults(value)
    return plan.text() if plan else None


def _fingerprint_secret(value: str) -> str:
    if len(value) < 16:
        raise ValueError("the fingerprint secret must be at least 16 characters")
    return value


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
            f"latency {value!r}: expected off, realistic or a number of milliseconds"
        ) from None
    if not 0 <= milliseconds <= 600_000:
        raise ValueError(f"latency {value} ms is out of range (0-600000)")
    return str(milliseconds)


@dataclass
class ServeOptions:
    """What ``python -m mockserver`` itself reads: where to listen and with how many processes."""

    host: str = setting(
        "127.0.0.1", parse=str, metavar="ADDRESS", env=False, shown="`127.0.0.1`",
        help="address to bind; one that other machines can reach needs --admin-token or "
        "--admin-open",
    )  # fmt: skip
    port: int = setting(
        8000, parse=port_number, metavar="PORT", env=False, shown="`8000`",
        help="port to bind; a port another server holds is refused",
    )  # fmt: skip
    workers: int | None = setting(
        None, parse=_positive, metavar="N", env=False, shown="the CPUs; 1 with a real backend",
        help="worker processes",
    )  # fmt: skip
    threads: int | None = setting(
        None, parse=_positive, metavar="N", env=False,
        shown="2; 32 with --latency, whose waits hold a thread; 64 with a real backend",
        help="requests running the app at once per worker",
    )  # fmt: skip
    keep_state: bool = setting(
        False, parse=_flag, env=False, shown="off: removed on exit",
        help="keep the default state directory on exit (the banner prints its path)",
    )  # fmt: skip
    models_dir: Path | None = setting(
        None, parse=Path, metavar="DIR", env=False, shown="none",
        help="diffusers backend: one weights folder per model id (the same as "
        "--backend-option models_dir=DIR)",
    )  # fmt: skip


@dataclass
class Config:
    """What a server worker builds its app from (``Config.from_env``); an app built in-process
    (tests, the contract suite) takes one directly."""

    spec_path: Path = setting(
        DEFAULT_SPEC_PATH, parse=Path, name="spec", metavar="FILE", carry=_absolute,
        shown="the bundled `openapi.yaml`", help="the OpenAPI document",
    )  # fmt: skip
    spec_root: Path | None = setting(
        None, parse=Path, metavar="DIR", carry=_absolute,
        shown="none: every `$ref` points inside the spec",
        help="a folder whose files the spec's `$ref`s may name",
    )  # fmt: skip
    keys: dict[str, str] = setting(
        factory=lambda: dict(DEV_KEYS), parse=load_keys, metavar="FILE",
        carry=_absolute, shown="the development keys",
        help="JSON or YAML file mapping API key to plan id",
    )  # fmt: skip
    backend: str = setting(
        "placeholder", parse=str, metavar="NAME", shown="`placeholder`",
        help="image backend (--list-backends lists those installed)",
    )  # fmt: skip
    backend_options: dict[str, Any] = setting(
        factory=dict, parse=_json_object, option="--backend-option", metavar="KEY=VALUE",
        repeat=_options_json, shown="none",
        help="an option for the backend, e.g. compile=true (VALUE read as JSON if it parses; "
        "repeatable); the variable holds them all as one JSON object",
    )  # fmt: skip
    # Off for an app built in-process (tests, the contract suite); `python -m mockserver` turns
    # it on unless told --no-rate-limits.
    rate_limits: bool = setting(
        False, parse=_flag, served=lambda: "1", shown="on; off in an app built in-process",
        help="enforce each plan's requests_per_minute per key, across all workers",
    )  # fmt: skip
    # Where rate-limit windows and the journal live: None (in memory, this process only),
    # sqlite:///PATH (the workers of one host) or redis://HOST:PORT/DB (any number of hosts).
    state: str | None = setting(
        None, parse=str, metavar="URL",
        shown="a private SQLite file for this server's workers; in memory in-process",
        help="shared state (rate limits, journal): redis://HOST:PORT/DB for several hosts",
    )  # fmt: skip
    cors_origins: list[str] = setting(
        factory=lambda: ["*"], parse=_origins, metavar="A,B", shown="`*`",
        help="comma-separated origins allowed to read the API from a browser",
    )  # fmt: skip
    latency: str | None = setting(
        None, parse=parse_latency, metavar="realistic|MS|lognormal:MEDIAN,SIGMA[,SEED]",
        shown="off",
        help="delay answers: 'realistic' (each model's typical latency), milliseconds, or a "
        "seeded lognormal distribution (MEDIAN in ms or 'realistic')",
    )  # fmt: skip
    faults: str | None = setting(
        None, parse=_faults, metavar="SPEC", shown="off",
        help="seeded faults, e.g. rate=0.05,kinds=reset+truncate+empty+429+503+slow,seed=7 "
        "(never on /__admin)",
    )  # fmt: skip
    sequences: Path | None = setting(
        None, parse=Path, metavar="FILE", carry=_absolute, shown="none",
        help="JSON or YAML list of sequences of answers, loaded into the state store at start",
    )  # fmt: skip
    scenarios: bool = setting(
        True, parse=_flag, shown="on", help="honour the Prefer: code=/example=/fault= headers",
    )  # fmt: skip
    journal_size: int = setting(
        200, parse=_count, metavar="N", shown="200",
        help="requests kept by /__admin/requests (0: off)",
    )  # fmt: skip
    journal_bytes: int = setting(
        JOURNAL_BYTES, parse=_count, metavar="N", shown="4194304 = 4 MiB",
        help="and their size in all, in bytes",
    )  # fmt: skip
    reload: bool = setting(True, parse=_flag, shown="on", help="follow edits of the spec file")
    body_timeout_s: float = setting(
        10.0, parse=_seconds, name="body_timeout", metavar="SECONDS", flag=False, shown="10",
        help="seconds a request body may take to arrive (then 408)",
    )  # fmt: skip
    work_slots: int | None = setting(
        None, parse=_count, metavar="N", flag=False, shown="--threads",
        help="requests running the app at once per worker (0: any)",
    )  # fmt: skip
    # /__admin/*: with a token, every call needs it (Bearer); without one, only clients on this
    # host may call it, unless admin_open (which `python -m mockserver` requires, or a token,
    # to listen on an address other machines can reach).
    admin_token: str | None = setting(
        None, parse=_admin_token, metavar="TOKEN", secret=True,
        shown="none: /__admin/* answers this host's clients only",
        help="require 'Authorization: Bearer TOKEN' on /__admin/* (better in the variable, "
        "which ps does not show)",
    )  # fmt: skip
    admin_open: bool = setting(
        False, parse=_flag, shown="off",
        help="leave /__admin/* open to anyone who can reach a non-loopback --host",
    )  # fmt: skip
    quiet: bool = setting(False, parse=_flag, shown="off", help="no access log line per request")
    fingerprint_secret: str | None = setting(
        None, parse=_fingerprint_secret, metavar="SECRET", flag=False, secret=True,
        served=lambda: secrets.token_hex(32), shown="random, new at each start",
        help="keys the fingerprints that logs and the journal show of API keys (HMAC-SHA256); "
        "hosts sharing a journal may set one to compare theirs (at least 16 characters)",
    )  # fmt: skip
    # Not a setting: the API's own bound on a request body.
    max_body_bytes: int = MAX_BODY_BYTES

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, given: Mapping[str, str] | None = None
    ) -> Config:
        """The defaults, with each setting from *given* (the command line's texts by setting
        name) or else from its ``MOCKSERVER_*`` variable in *environ* applied."""
        return read(cls, environ, given or {})


def table(*classes: type) -> list[Setting]:
    """The rows of the table (by default ServeOptions' and Config's), in declaration order."""
    rows = []
    for cls in classes or (ServeOptions, Config):
        for item in fields(cls):
            if _SETTING in item.metadata:
                row: Setting = item.metadata[_SETTING]
                name = row.name or item.name
                option = row.option or "--" + name.replace("_", "-")
                rows.append(replace(row, name=name, option=option, attribute=item.name))
    return rows


def read(cls: type[T], environ: Mapping[str, str], given: Mapping[str, str]) -> T:
    """A *cls* whose every setting is read from *given* or else *environ*, or its default."""
    values = {}
    for row in table(cls):
        if row.name in given:
            source, text = row.source(), given[row.name]
        elif row.env and row.variable in environ:
            source, text = row.variable, environ[row.variable]
        else:
            continue
        try:
            values[row.attribute] = row.parse(text)
        except (ValueError, OSError) as exc:  # the source says where to look
            raise SettingError(f"{source}: {exc}") from None
    return cls(**values)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The table's command-line options. Each option's value stays text here: :func:`read`
    parses it, so that a bad one is refused in the same one line as a bad variable."""
    for row in table():
        if not row.flag:
            continue
        variable = f" [{row.variable}]" if row.env else ""
        text = f"{row.help}; default: {row.shown.replace('`', '')}{variable}".replace("%", "%%")
        if row.switch:
            parser.add_argument(
                row.option, dest=row.name, action=argparse.BooleanOptionalAction, help=text
            )
        else:
            parser.add_argument(
                row.option,
                dest=row.name,
                metavar=row.metavar,
                action="append" if row.repeat else "store",
                help=text,
            )


def command_line_texts(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The texts of the settings the command line gives (by setting name): those of its options,
    and a served default (``served``) for each that neither an option nor a variable sets."""
    given = {}
    for row in table():
        value = getattr(args, row.name, None) if row.flag else None
        if value is None or value == []:
            if row.served is not None and not (row.env and row.variable in environ):
                given[row.name] = row.served()
            continue
        if row.switch:
            given[row.name] = "1" if value else "0"
        elif row.repeat is not None:
            given[row.name] = row.repeat(value)
        else:
            given[row.name] = value
    return given


def worker_environment(given: Mapping[str, str]) -> dict[str, str]:
    """The ``MOCKSERVER_*`` variables that carry the given texts of the workers' settings."""
    return {
        row.variable: row.carry(given[row.name])
        for row in table(Config)
        if row.env and row.name in given
    }


def markdown_table() -> str:
    """The table as ``docs/settings.md`` shows it."""
    lines = ["| option | environment variable | default | what it does |", "|---|---|---|---|"]
    for row in table():
        if not row.flag:
            option = ""
        elif row.switch:
            option = f"`--[no-]{row.option[2:]}`"
        else:
            option = f"`{row.option} {row.metavar}`"
        variable = f"`{row.variable}`" if row.env else ""
        cells = [option, variable, row.shown, row.help]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mockserver.config", description="The server's settings table."
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as docs/settings.md shows it"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
    else:
        for row in table():
            print(f"{row.option if row.flag else '':<22} {row.variable if row.env else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

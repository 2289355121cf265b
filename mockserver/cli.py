"""``python -m mockserver``: serve the mock with granian, a production HTTP server."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from mockserver.auth import mask
from mockserver.backends import BackendError, available_backends, server_scope
from mockserver.config import DEV_KEYS, Config
from mockserver.guard import WAITING_THREADS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mockserver", description="Serve the Image API mock from openapi.yaml."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=port_number, default=8000, help="port to bind (default: %(default)s)"
    )
    parser.add_argument("--backend", default=None, help="image backend (default: placeholder)")
    parser.add_argument(
        "--models-dir", type=Path, help="diffusers backend: one weights folder per model id"
    )
    parser.add_argument(
        "--backend-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option for the backend (VALUE read as JSON if it parses), e.g. compile=true",
    )
    parser.add_argument("--keys", type=Path, help="JSON or YAML file mapping API key to plan id")
    parser.add_argument("--spec", type=Path, help="the OpenAPI document (default: openapi.yaml)")
    parser.add_argument(
        "--spec-root", type=Path, metavar="DIR", help="let the spec's $refs name files under DIR"
    )
    parser.add_argument(
        "--workers", type=int, help="worker processes (default: CPUs; 1 for a real backend)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="threads per worker (default: 2; 32 with --latency, whose waits hold a thread)",
    )
    parser.add_argument(
        "--rate-limits",
        action=argparse.BooleanOptionalAction,
        help="enforce each plan's requests_per_minute per key (default: on)",
    )
    parser.add_argument(
        "--state",
        metavar="URL",
        help="shared state (rate limits, journal): redis://HOST:PORT/DB for several hosts "
        "(default: a private SQLite file for this server's workers)",
    )
    parser.add_argument(
        "--keep-state",
        action="store_true",
        help="keep the default state directory on exit (its path is printed)",
    )
    parser.add_argument("--cors-origins", help="comma-separated allowed origins (default: *)")
    parser.add_argument(
        "--latency",
        help="delay answers: 'realistic' (each model's typical latency) or milliseconds",
    )
    parser.add_argument(
        "--faults",
        metavar="SPEC",
        help="seeded faults, e.g. rate=0.05,kinds=reset+truncate+empty+429+503+slow,seed=7",
    )
    parser.add_argument(
        "--sequences", type=Path, help="JSON or YAML list of sequences of answers to load at start"
    )
    parser.add_argument(
        "--no-scenarios", action="store_true", help="ignore Prefer: code=/example=/fault= headers"
    )
    parser.add_argument(
        "--journal-size", type=int, help="requests kept by /__admin/requests (0: off; default 200)"
    )
    parser.add_argument(
        "--journal-bytes",
        type=int,
        help="and their size in all, in bytes (default: 4 MiB)",
    )
    parser.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on /__admin/* (better: MOCKSERVER_ADMIN_TOKEN, "
        "which ps does not show); needed to listen on a non-loopback --host",
    )
    parser.add_argument(
        "--admin-open",
        action="store_true",
        help="leave /__admin/* open to anyone who can reach a non-loopback --host",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log line per request")
    parser.add_argument(
        "--no-reload", action="store_true", help="do not follow edits of the spec file"
    )
    parser.add_argument(
        "--list-backends", action="store_true", help="list installed backends and exit"
    )
    return parser


def environment_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The ``MOCKSERVER_*`` variables that carry the options to the server's workers."""
    env = {}
    if args.spec:
        env["MOCKSERVER_SPEC"] = str(args.spec.resolve())
    if args.spec_root:
        env["MOCKSERVER_SPEC_ROOT"] = str(args.spec_root.resolve())
    if args.keys:
        env["MOCKSERVER_KEYS"] = str(args.keys.resolve())
    if args.backend:
        env["MOCKSERVER_BACKEND"] = args.backend
    options = dict(_option(text) for text in args.backend_option)
    if args.models_dir:
        options["models_dir"] = str(args.models_dir.resolve())
    if options:
        env["MOCKSERVER_BACKEND_OPTIONS"] = json.dumps(options)
    if args.rate_limits is not None:
        env["MOCKSERVER_RATE_LIMITS"] = "1" if args.rate_limits else "0"
    elif "MOCKSERVER_RATE_LIMITS" not in os.environ:
        env["MOCKSERVER_RATE_LIMITS"] = "1"  # a served mock limits like the real service
    if args.state:
        env["MOCKSERVER_STATE"] = args.state
    if args.cors_origins:
        env["MOCKSERVER_CORS_ORIGINS"] = args.cors_origins
    if args.latency:
        env["MOCKSERVER_LATENCY"] = args.latency
    if args.faults:
        env["MOCKSERVER_FAULTS"] = args.faults
    if args.sequences:
        env["MOCKSERVER_SEQUENCES"] = str(args.sequences.resolve())
    if args.no_scenarios:
        env["MOCKSERVER_SCENARIOS"] = "0"
    if args.journal_size is not None:
        env["MOCKSERVER_JOURNAL_SIZE"] = str(args.journal_size)
    if args.journal_bytes is not None:
        env["MOCKSERVER_JOURNAL_BYTES"] = str(args.journal_bytes)
    if args.admin_token:
        env["MOCKSERVER_ADMIN_TOKEN"] = args.admin_token
    if args.admin_open:
        env["MOCKSERVER_ADMIN_OPEN"] = "1"
    if args.quiet:
        env["MOCKSERVER_QUIET"] = "1"
    if args.no_reload:
        env["MOCKSERVER_RELOAD"] = "0"
    return env


def private_state() -> Path:
    """A new directory only this user can read, holding the SQLite file that the workers share
    (created 0600; SQLite gives its -wal and -shm files the same mode)."""
    directory = Path(tempfile.mkdtemp(prefix="mockserver-state-"))  # mode 0700
    database = directory / "state.sqlite"
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    return database


class _NotLoaded:
    """Stands in for a backend while the parent process checks the settings."""

    def generate(self, generation):
        raise NotImplementedError


def _option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1 to 65535)")
    return port


def check_port_free(host: str, port: int) -> None:
    """Raise OSError if *port* on *host* cannot be bound: granian's workers share their port
    (SO_REUSEPORT), so a second server on a port in use would start and take half the
    connections, rather than fail."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind(address)
        except OSError as exc:
            raise OSError(f"{host}:{port} is in use by another server ({exc.strerror})") from exc


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_backends:
        print("\n".join(available_backends()))
        return 0
    os.environ.update(environment_from_args(args))
    private = None
    if "MOCKSERVER_STATE" not in os.environ:
        private = private_state()
        os.environ["MOCKSERVER_STATE"] = f"sqlite://{private}"
    try:
        return _check_and_serve(args)
    finally:
        if private is not None and not args.keep_state:
            shutil.rmtree(private.parent, ignore_errors=True)


def _check_and_serve(args: argparse.Namespace) -> int:
    from mockserver.app import create_app
    from mockserver.store import StoreUnavailable, open_store

    try:  # build the app once here, so that a bad spec, key file or backend name fails fast
        config = Config.from_env()
        _check_admin(config, args.host)
        check_port_free(args.host, args.port)
        if config.backend not in available_backends():
            raise BackendError(
                f"no image backend named {config.backend!r}; "
                f"installed: {', '.join(available_backends())}"
            )
        # A real backend loads its models in the worker only, not twice.
        stand_in = None if config.backend == "placeholder" else _NotLoaded()
        # Nothing shared here: no store connection or journal thread may be open when granian
        # starts the workers, which open their own.
        app = create_app(
            dataclasses.replace(config, journal_size=0, state=None, reload=False),
            backend=stand_in,
        )
        spec = app.extensions["imageapi"].current().spec
        del app  # the workers build their own
        store = open_store(config.state)
        try:
            store.check()
            if config.sequences:  # once, here: each worker would add them again
                load_sequences_into(store, config.sequences)
        finally:
            store.close()
    except StoreUnavailable as exc:
        print(f"mockserver: cannot start: state store unreachable: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"mockserver: cannot start: {exc}", file=sys.stderr)
        return 2
    shared = ExitStack()  # what the workers share (a Ray cluster) starts before granian forks
    try:
        extra = shared.enter_context(
            server_scope(config.backend, spec=spec, **config.backend_options)
        )
    except Exception as exc:
        print(f"mockserver: cannot start: {exc}", file=sys.stderr)
        return 2
    if extra:
        os.environ["MOCKSERVER_BACKEND_OPTIONS"] = json.dumps({**config.backend_options, **extra})
    print(banner(config, f"http://{args.host}:{args.port}"), flush=True)
    # A real backend holds one model set per worker process and blocks a thread per waiting
    # request; the placeholder is cheap and CPU-bound.
    real_backend = config.backend != "placeholder"
    workers = args.workers or (1 if real_backend else os.cpu_count() or 1)
    threads = args.threads or (64 if real_backend else 32 if config.latency else 2)
    with shared:
        serve(args.host, args.port, workers, threads)
    return 0


def load_sequences_into(store, path: Path) -> None:
    from mockserver.faults import MAX_SEQUENCE_ANSWERS, load_sequences

    for name, answers in load_sequences(str(path)):
        if not store.call(
            lambda n=name, a=answers: store.sequence_add(n, a, max_total=MAX_SEQUENCE_ANSWERS)
        ):
            raise ValueError(f"{path}: more than {MAX_SEQUENCE_ANSWERS} answers in all")


def _check_admin(config: Config, host: str) -> None:
    """The admin surface shows what every client sent and can erase it: on an address other
    machines can reach, it needs a token, or to be left open knowingly."""
    from mockserver.admin import is_loopback
    from mockserver.auth import bearer_token

    if config.admin_token is not None and bearer_token(f"Bearer {config.admin_token}") is None:
        raise ValueError(
            "the admin token must be a Bearer token: letters, digits and -._~+/ (then = only)"
        )
    if config.admin_token is None and not config.admin_open and not is_loopback(host):
        raise ValueError(
            f"--host {host} is reachable from other machines, and so would be /__admin "
            "(every request's journal, and erasing it): set MOCKSERVER_ADMIN_TOKEN (or "
            "--admin-token), or --admin-open to leave it open"
        )


def banner(config: Config, url: str) -> str:
    """What the server prints at start: where it is, its keys, and a call to paste.

    The built-in development keys are public (the README lists them), so they are shown whole;
    keys from ``--keys`` are masked.
    """
    from mockserver.redact import redacted_url

    dev_keys = config.keys == DEV_KEYS
    lines = [
        f"Image API mock on {url} (backend: {config.backend})",
        f"  docs: {url}/docs",
        f"  admin: {url}/__admin/requests ("
        + (
            "needs the admin token"
            if config.admin_token
            else "open to anyone who can reach it"
            if config.admin_open
            else "for clients on this host only"
        )
        + ")",
        f"  state: {redacted_url(config.state) if config.state else 'in memory'}; rate limits: "
        + ("per key, as the plans say" if config.rate_limits else "off"),
        "  keys" + (" (the development keys, public):" if dev_keys else " (from --keys):"),
    ]
    if config.faults:
        lines.insert(4, f"  faults: {config.faults} (never on /__admin)")
    for key, plan in config.keys.items():
        lines.append(f"    {plan:<10} {key if dev_keys else mask(key)}")
    key = next((k for k, plan in config.keys.items() if plan == "enterprise"), None)
    if dev_keys and key:
        lines += [
            "  try it:",
            f"    curl -s {url}/api/v1/generate -H 'Authorization: Bearer {key}' \\",
            "      -H 'Content-Type: application/json' -d '{\"prompt\": \"a red fox\"}'",
        ]
    return "\n".join(lines)


def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Run ``mockserver.wsgi:app`` under granian, a production HTTP server written in Rust."""
    from granian import Granian
    from granian.constants import Interfaces

    # Work slots bound the app's parallelism; the extra threads only wait on slow bodies.
    os.environ.setdefault("MOCKSERVER_WORK_SLOTS", str(threads))
    # granian warns of that many threads on every start; here they are the design (see guard.py)
    logging.getLogger("_granian").addFilter(
        lambda record: "Python threads, which seems quite high" not in record.getMessage()
    )
    Granian(
        "mockserver.wsgi:app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads + WAITING_THREADS,
        websockets=False,
        respawn_failed_workers=True,
        log_access=False,  # the app logs each request itself, without keys or queries
    ).serve()

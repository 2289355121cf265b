"""``python -m mockserver``: serve the mock with granian, a production HTTP server."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from mockserver.auth import mask
from mockserver.backends import BackendError, available_backends, server_scope
from mockserver.config import (
    DEV_KEYS,
    Config,
    ServeOptions,
    add_options,
    command_line_texts,
    read,
    worker_environment,
)
from mockserver.guard import WAITING_THREADS
from mockserver.redact import use_fingerprint_secret
from mockserver.snapshot import Snapshot
from mockserver.spec import ApiSpec, load_spec
from mockserver.store import StateStore, StoreUnavailable, open_store


def build_parser() -> argparse.ArgumentParser:
    """The options of the settings table (see :mod:`mockserver.config`), and one command."""
    parser = argparse.ArgumentParser(
        prog="mockserver", description="Serve the Image API mock from openapi.yaml."
    )
    add_options(parser)
    parser.add_argument(
        "--list-backends", action="store_true", help="list installed backends and exit"
    )
    return parser


def command_line_settings(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The texts of the settings the command line gives, by setting name; ``--models-dir``
    joins the backend's options."""
    given = command_line_texts(args, environ)
    if given.get("models_dir"):
        options = json.loads(given.get("backend_options", "{}"))
        options["models_dir"] = str(Path(given["models_dir"]).resolve())
        given["backend_options"] = json.dumps(options)
    return given


def environment_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The ``MOCKSERVER_*`` variables that carry the options to the server's workers."""
    return worker_environment(command_line_settings(args, environ))


def private_state() -> Path:
    """A new directory only this user can read, holding the SQLite file that the workers share
    (created 0600; SQLite gives its -wal and -shm files the same mode)."""
    directory = Path(tempfile.mkdtemp(prefix="mockserver-state-"))  # mode 0700
    database = directory / "state.sqlite"
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    return database


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
    private = None
    try:
        given = command_line_settings(args)
        if "state" not in given and "MOCKSERVER_STATE" not in os.environ:
            private = private_state()
            given["state"] = f"sqlite://{private}"
        try:
            options = read(ServeOptions, {}, given)
            config = Config.from_env(os.environ, given)
            spec = check_settings(config, options)
        except StoreUnavailable as exc:
            print(f"mockserver: cannot start: state store unreachable: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:
            print(f"mockserver: cannot start: {exc}", file=sys.stderr)
            return 2
        os.environ.update(worker_environment(given))
        return _serve(config, options, spec)
    finally:
        if private is not None and not args.keep_state:
            shutil.rmtree(private.parent, ignore_errors=True)


def check_settings(config: Config, options: ServeOptions) -> ApiSpec:
    """Refuse here, in one line and before any worker starts, what would stop a worker: the
    settings that only make sense together, the port, the backend's name, the spec and the keys'
    plans in it, the state store. Returns the spec, for the backend's server scope.

    The workers build their app each; nothing is built here that would be open when granian
    forks them (no backend, store connection or journal thread).
    """
    _check_admin(config, options.host)
    check_port_free(options.host, options.port)
    if config.backend not in available_backends():
        raise BackendError(
            f"no image backend named {config.backend!r}; "
            f"installed: {', '.join(available_backends())}"
        )
    spec = load_spec(config.spec_path, config.spec_root)
    Snapshot(spec, config.keys, config.scenarios)  # the keys' plans, the scenarios, the schema
    store = open_store(config.state)
    try:
        store.check()
        if config.sequences:  # once, here: each worker would add them again
            load_sequences_into(store, config.sequences)
    finally:
        store.close()
    return spec


def load_sequences_into(store: StateStore, path: Path) -> None:
    from mockserver.faults import MAX_SEQUENCE_ANSWERS, load_sequences

    for name, answers in load_sequences(str(path)):

        def add(name: str = name, answers: list[str] = answers) -> bool:
            return store.sequence_add(name, answers, max_total=MAX_SEQUENCE_ANSWERS)

        if not store.call(add):
            raise ValueError(f"{path}: more than {MAX_SEQUENCE_ANSWERS} answers in all")


def _serve(config: Config, options: ServeOptions, spec: ApiSpec) -> int:
    if config.fingerprint_secret:  # the banner's fingerprints are those the workers log
        use_fingerprint_secret(config.fingerprint_secret)
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
    print(banner(config, f"http://{options.host}:{options.port}"), flush=True)
    # A real backend holds one model set per worker process and blocks a thread per waiting
    # request; the placeholder is cheap and CPU-bound.
    real_backend = config.backend != "placeholder"
    workers = options.workers or (1 if real_backend else os.cpu_count() or 1)
    threads = options.threads or (64 if real_backend else 32 if config.latency else 2)
    with shared:
        serve(options.host, options.port, workers, threads)
    return 0


def _check_admin(config: Config, host: str) -> None:
    """The admin surface shows what every client sent and can erase it: on an address other
    machines can reach, it needs a token, or to be left open knowingly."""
    from mockserver.admin import is_loopback

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
    example = next((k for k, plan in config.keys.items() if plan == "enterprise"), None)
    if dev_keys and example:
        lines += [
            "  try it:",
            f"    curl -s {url}/api/v1/generate -H 'Authorization: Bearer {example}' \\",
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

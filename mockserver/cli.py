"""``python -m mockserver``: serve the mock with granian, a production HTTP server."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from mockserver.auth import mask
from mockserver.backends import BackendError, available_backends, server_scope
from mockserver.config import Config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mockserver", description="Serve the Image API mock from openapi.yaml."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port to bind (default: %(default)s)"
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
        "--workers", type=int, help="worker processes (default: CPUs; 1 for a real backend)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="threads per worker (default: 2; 32 with --latency, whose waits hold a thread)",
    )
    parser.add_argument(
        "--rate-limits", action="store_true", help="enforce each plan's requests_per_minute"
    )
    parser.add_argument("--cors-origins", help="comma-separated allowed origins (default: *)")
    parser.add_argument(
        "--latency",
        help="delay answers: 'realistic' (each model's typical latency) or milliseconds",
    )
    parser.add_argument(
        "--no-scenarios", action="store_true", help="ignore Prefer: code=/example= headers"
    )
    parser.add_argument(
        "--journal-size", type=int, help="requests kept by /__admin/requests (0: off; default 200)"
    )
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
    if args.keys:
        env["MOCKSERVER_KEYS"] = str(args.keys.resolve())
    if args.backend:
        env["MOCKSERVER_BACKEND"] = args.backend
    options = dict(_option(text) for text in args.backend_option)
    if args.models_dir:
        options["models_dir"] = str(args.models_dir.resolve())
    if options:
        env["MOCKSERVER_BACKEND_OPTIONS"] = json.dumps(options)
    if args.rate_limits:
        env["MOCKSERVER_RATE_LIMITS"] = "1"
    if args.cors_origins:
        env["MOCKSERVER_CORS_ORIGINS"] = args.cors_origins
    if args.latency:
        env["MOCKSERVER_LATENCY"] = args.latency
    if args.no_scenarios:
        env["MOCKSERVER_SCENARIOS"] = "0"
    if args.journal_size is not None:
        env["MOCKSERVER_JOURNAL_SIZE"] = str(args.journal_size)
    if args.no_reload:
        env["MOCKSERVER_RELOAD"] = "0"
    if "MOCKSERVER_JOURNAL" not in os.environ:
        # One journal file for all the workers, new for each run of the server.
        journal = Path(tempfile.gettempdir()) / f"mockserver-journal-{os.getpid()}.sqlite"
        for stale in journal.parent.glob(journal.name + "*"):
            stale.unlink()
        env["MOCKSERVER_JOURNAL"] = str(journal)
    return env


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_backends:
        print("\n".join(available_backends()))
        return 0
    os.environ.update(environment_from_args(args))
    from mockserver.app import create_app

    try:  # build the app once here, so that a bad spec, key file or backend name fails fast
        config = Config.from_env()
        if config.backend not in available_backends():
            raise BackendError(
                f"no image backend named {config.backend!r}; "
                f"installed: {', '.join(available_backends())}"
            )
        # A real backend loads its models in the worker only, not twice.
        stand_in = None if config.backend == "placeholder" else _NotLoaded()
        # No journal here: its writer thread must not be running when granian forks workers.
        app = create_app(dataclasses.replace(config, journal_size=0), backend=stand_in)
    except Exception as exc:
        print(f"mockserver: cannot start: {exc}", file=sys.stderr)
        return 2
    api = app.extensions["imageapi"].api
    shared = ExitStack()  # what the workers share (a Ray cluster) starts before granian forks
    try:
        extra = shared.enter_context(
            server_scope(config.backend, spec=api.spec, **config.backend_options)
        )
    except Exception as exc:
        print(f"mockserver: cannot start: {exc}", file=sys.stderr)
        return 2
    if extra:
        os.environ["MOCKSERVER_BACKEND_OPTIONS"] = json.dumps({**config.backend_options, **extra})
    print(f"Image API mock on http://{args.host}:{args.port} (backend: {api.config.backend})")
    for key, plan in api.config.keys.items():
        print(f"  {plan:<10} key {mask(key)}")
    # A real backend holds one model set per worker process and blocks a thread per waiting
    # request; the placeholder is cheap and CPU-bound.
    real_backend = api.config.backend != "placeholder"
    workers = args.workers or (1 if real_backend else os.cpu_count() or 1)
    threads = args.threads or (64 if real_backend else 32 if api.config.latency else 2)
    del app, api  # the workers build their own
    with shared:
        serve(args.host, args.port, workers, threads)
    return 0


def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Run ``mockserver.wsgi:app`` under granian, a production HTTP server written in Rust."""
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "mockserver.wsgi:app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        websockets=False,
        respawn_failed_workers=True,
        log_access=False,
    ).serve()

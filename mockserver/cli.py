"""``python -m mockserver``: serve the mock with gunicorn, a production WSGI server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from mockserver.auth import mask
from mockserver.backends import available_backends
from mockserver.config import Config, load_keys


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
    parser.add_argument("--keys", type=Path, help="JSON or YAML file mapping API key to plan id")
    parser.add_argument("--spec", type=Path, help="the OpenAPI document (default: openapi.yaml)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)"
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per worker (default: %(default)s)"
    )
    parser.add_argument(
        "--rate-limits", action="store_true", help="enforce each plan's requests_per_minute"
    )
    parser.add_argument("--cors-origins", help="comma-separated allowed origins (default: *)")
    parser.add_argument(
        "--list-backends", action="store_true", help="list installed backends and exit"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    config = Config.from_env()
    if args.spec:
        config.spec_path = args.spec
    if args.keys:
        config.keys = load_keys(args.keys)
    if args.backend:
        config.backend = args.backend
    if args.rate_limits:
        config.rate_limits = True
    if args.cors_origins:
        config.cors_origins = [o.strip() for o in args.cors_origins.split(",")]
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_backends:
        print("\n".join(available_backends()))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from mockserver.app import create_app

    config = config_from_args(args)
    try:
        app = create_app(config)
    except Exception as exc:  # a bad spec, key file or backend: say so, don't print a traceback
        print(f"mockserver: cannot start: {exc}", file=sys.stderr)
        return 2
    print(f"Image API mock on http://{args.host}:{args.port} (backend: {config.backend})")
    for key, plan in config.keys.items():
        print(f"  {plan:<10} key {mask(key)}")
    serve(app, args.host, args.port, args.workers, args.threads)
    return 0


def serve(app, host: str, port: int, workers: int, threads: int) -> None:
    """Run *app* under gunicorn; the app is built once and forked into the workers."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread" if threads > 1 else "sync")
            self.cfg.set("timeout", 180)  # generation is synchronous; clients allow 120 s
            self.cfg.set("keepalive", 5)
            self.cfg.set("control_socket_disable", True)  # one shared path; unused here

        def load(self):
            return _terminated_input(app)

    Server().run()


def _terminated_input(app):
    """Tell the app that gunicorn ends ``wsgi.input`` at the body's end, chunked bodies too.

    Without ``wsgi.input_terminated`` Werkzeug reads a body without Content-Length as empty,
    and cannot apply the body-size limit to it.
    """

    def wsgi(environ, start_response):
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return wsgi

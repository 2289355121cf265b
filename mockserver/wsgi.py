"""The WSGI entry point each server worker imports: the app, configured from ``MOCKSERVER_*``,
behind the guard that bounds slow bodies and oversized heads, with its access log on the
server's output unless ``MOCKSERVER_QUIET`` is set."""

import logging
import sys

from mockserver.app import access_log, create_app
from mockserver.config import Config
from mockserver.guard import Guard

config = Config.from_env()
if not config.quiet:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False  # one line, whatever the server does with other logs
app = Guard(
    create_app(config),
    max_body_bytes=config.max_body_bytes,
    body_timeout_s=config.body_timeout_s,
    work_slots=config.work_slots,
)

"""The WSGI entry point each server worker imports: the app, configured from ``MOCKSERVER_*``,
behind the guard that bounds slow bodies and oversized heads, with its access log on the
server's output unless ``MOCKSERVER_QUIET`` is set."""

import gc
import logging
import sys

from mockserver.app import access_log, create_app
from mockserver.config import Config
from mockserver.guard import Guard


class _AccessFormatter(logging.Formatter):
    """``%(asctime)s %(message)s`` with the time as ``%H:%M:%S``, formatted once a second
    rather than once a line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", "%H:%M:%S")
        self._shown: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second, shown = self._shown
        if int(record.created) != second:  # one tuple, swapped whole: safe across threads
            second, shown = int(record.created), super().formatTime(record, datefmt)
            self._shown = (second, shown)
        return shown


config = Config.from_env()
# What no log line of a worker shows (granian's formats and ours), and each record would
# otherwise look up: the caller's frame, the thread and the process (the logging HOWTO's
# "Optimization" section).
logging._srcfile = None
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
if not config.quiet:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_AccessFormatter())
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False  # one line, whatever the server does with other logs
app = Guard(
    create_app(config),
    max_body_bytes=config.max_body_bytes,
    body_timeout_s=config.body_timeout_s,
    work_slots=config.work_slots,
)
# What is built by now lives as long as the worker: frozen out of the collector's sight, it is
# no longer walked by every full collection (the spec, Flask, every module), which a request's
# few hundred allocations set off every few hundred requests (measured: 5-10% of a generation).
gc.collect()
gc.freeze()

"""The transport faults (``reset``, ``empty``, ``truncate``, ``slow-body``): a WSGI middleware
that delivers an answer the app marked with one spoilt, the way a dropped connection or a slow
network spoils it (see :mod:`mockserver.faults` for how a request comes to meet one)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from mockserver.faults import FAULT, TRANSPORT_KINDS

# How the transport faults spoil an answer under granian (2.8), found by trying each on a raw
# socket: a WSGI app has no socket, but granian streams an iterator's chunks as they come and
# hyper, beneath it, refuses to send a head it cannot encode, and closes a connection whose body
# ends before its Content-Length. What was sent is flushed only if the iterator pauses before it
# ends: ended at once, hyper may drop even the head.
FLUSH_S = 0.25  # the pause that lets what was sent reach the client before the close
SLOW_BODY_CHUNKS = 20
SLOW_BODY_PAUSE_S = 0.1  # between chunks: a slow-body answer takes about 2 s


class TransportFaults:
    """WSGI middleware: when the app marked the answer with a transport fault
    (``environ[FAULT]``), deliver it spoilt:

    - ``reset``: no byte of the answer; the connection is closed (a ``Content-Length`` that is
      no number, which hyper refuses to send);
    - ``empty``: the head, announcing the body's full length, then the close;
    - ``truncate``: the head and the first half of the JSON body, then the close;
    - ``slow-body``: the whole answer, in chunks over about two seconds.
    """

    def __init__(self, app: Callable, sleep: Callable[[float], None] = time.sleep):
        self.app = app
        self.sleep = sleep

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        head = {}

        def forward(status, headers, exc_info=None):
            if environ.get(FAULT) in TRANSPORT_KINDS:
                head["status"], head["headers"] = status, headers
                return lambda data: None
            # exc_info only when there is one: some callers' start_response takes two arguments
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        body = self.app(environ, forward)
        kind = environ.get(FAULT)
        if kind not in TRANSPORT_KINDS:
            return body
        try:
            data = b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()
        headers = [(n, v) for n, v in head["headers"] if n.lower() != "content-length"]
        length = "reset" if kind == "reset" else str(len(data))
        start_response(head["status"], [*headers, ("Content-Length", length)])
        return self._spoil(kind, data)

    def _spoil(self, kind: str, data: bytes) -> Iterator[bytes]:
        if kind == "slow-body":
            size = -(-len(data) // SLOW_BODY_CHUNKS) or 1
            for start in range(0, len(data), size):
                if start:
                    self.sleep(SLOW_BODY_PAUSE_S)
                yield data[start : start + size]
            return
        if kind == "truncate":
            yield data[: len(data) // 2]
        if kind != "reset":
            self.sleep(FLUSH_S)

"""A WSGI middleware in front of the app: what the HTTP server does not bound, bounded here.

granian hands a request to a Python thread as soon as its head has arrived, and ``wsgi.input``
then blocks that thread, without a deadline, until the body's bytes come. A client sending its
body at one byte a second would hold a thread for as long as it likes, and a few such clients
would hold them all. So the guard:

- reads the whole body before the app runs, outside the work slots, and answers
  ``408 request_timeout`` (closing the connection) to a body that took longer than
  ``body_timeout_s`` to arrive. The read itself cannot be cut short: granian's ``wsgi.input``
  has no timeout, and a read abandoned on another thread was found here to stall the whole
  worker once its request was answered. The deadline therefore tells a slow client so, and the
  waiting costs nothing but an idle thread;
- lets at most ``work_slots`` requests of a worker run the app at once: the thread pool is large,
  so that waiting on a body costs a cheap, idle thread, while CPU work stays as parallel as it was;
- refuses request heads larger than the app means to read (``414 uri_too_long``,
  ``431 headers_too_large``), well below the limits at which granian itself would answer with a
  bare status line.

The guard does not answer its refusals itself: it hands them to the app as
``environ[REFUSAL]`` (a :class:`~mockserver.problems.Problem`), with no body left to read, and
the app answers with that problem as with any of its own. So a refusal is a problem document
with the same CORS headers as every answer (a page on another origin can read it), and it is
journaled and logged like any other request.
"""

from __future__ import annotations

import io
import queue
import time
from collections.abc import Callable, Iterable

from mockserver.problems import Problem

BODY_TIMEOUT_S = 10.0
MAX_URI_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
# Threads per worker, beyond its work slots, that may wait for a body to arrive (each costs
# little: it sleeps in granian's Rust code, without the GIL).
WAITING_THREADS = 256
REFUSAL = "mockserver.refusal"  # the environ key of a refusal the app is to answer


class Guard:
    """Wraps a WSGI *app*; see the module's docstring."""

    def __init__(
        self,
        app: Callable,
        *,
        max_body_bytes: int,
        body_timeout_s: float = BODY_TIMEOUT_S,
        work_slots: int | None = None,
        max_uri_bytes: int = MAX_URI_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_uri_bytes = max_uri_bytes
        self.max_header_bytes = max_header_bytes
        # The work slots, as tokens in a queue: taking one waits in C, without the GIL, where a
        # threading.Semaphore's Condition wakes its waiters in Python (a large share of a
        # request's time when many wait, measured under granian).
        self._slots: queue.SimpleQueue[None] | None = None
        if work_slots:
            self._slots = queue.SimpleQueue()
            for _ in range(work_slots):
                self._slots.put(None)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        problem = self._check_head(environ)
        if problem is None:
            problem = self._buffer_body(environ)
        else:  # the body is not read: the app must not wait for it either
            _no_body(environ)
        if problem is not None:
            environ[REFUSAL] = problem
        if self._slots is None:
            return self.app(environ, start_response)
        self._slots.get()
        try:
            return self.app(environ, start_response)
        finally:
            self._slots.put(None)

    def _check_head(self, environ: dict) -> Problem | None:
        uri = len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", ""))
        if uri > self.max_uri_bytes:
            return Problem(
                414, "uri_too_long", f"The URI may be at most {self.max_uri_bytes} bytes."
            )
        head = sum(
            len(name) + len(value)
            for name, value in environ.items()
            if name.startswith("HTTP_") and isinstance(value, str)
        )
        if head > self.max_header_bytes:
            return Problem(
                431,
                "headers_too_large",
                f"The request headers may be at most {self.max_header_bytes} bytes in all.",
            )
        return None

    def _buffer_body(self, environ: dict) -> Problem | None:
        """Read the whole body into memory, or say why not (too late: 408; the body is still
        there for the app to journal).

        A body declared larger than allowed is left unread: the app refuses it with a 413 from
        its ``Content-Length`` alone. A chunked one is read up to one byte past the limit, so
        that the app sees it is too large.
        """
        length = environ.get("CONTENT_LENGTH") or "0"
        if not (length.isascii() and length.isdigit()):
            declared = 0
        else:  # digits past the limit's own need no int(): the body is too large either way
            declared = int(length) if len(length) <= 18 else self.max_body_bytes + 1
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if declared > self.max_body_bytes or not (declared > 0 or chunked):
            return None
        size = declared if declared > 0 else self.max_body_bytes + 1
        started = time.monotonic()
        try:
            data = environ["wsgi.input"].read(size)
        except Exception:  # the connection broke mid-body
            _no_body(environ)
            return Problem(400, "invalid_request", "The request body could not be read.")
        environ["wsgi.input"] = io.BytesIO(data)
        # What arrived: a client that closed early sent a shorter body than it declared.
        environ["CONTENT_LENGTH"] = str(len(data))
        if time.monotonic() - started > self.body_timeout_s:
            return Problem(
                408,
                "request_timeout",
                f"The request body took longer than {self.body_timeout_s:g} s to arrive.",
                headers={"Connection": "close"},
            )
        return None


def _no_body(environ: dict) -> None:
    environ["wsgi.input"] = io.BytesIO()
    environ["CONTENT_LENGTH"] = "0"
    environ.pop("HTTP_TRANSFER_ENCODING", None)

"""The reloadable half of the server: everything derived from one reading of ``openapi.yaml``.

A :class:`Snapshot` is immutable; a request takes one (``LiveSpec.current()``) and uses it
throughout, so that its authentication, rules and answer all come from the same spec even while
the file is being reloaded. What must outlive a reload (backend, store, limiter, journal) lives
in :mod:`mockserver.runtime`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mockserver.auth import KeyStore
from mockserver.scenarios import Scenarios
from mockserver.spec import ApiSpec, load_spec
from mockserver.validation import RequestValidator

log = logging.getLogger("mockserver")


class Snapshot:
    """One spec and what is built from it: keys checked against its plans, the request
    validator, the scenarios, and the bodies served as they are."""

    def __init__(self, spec: ApiSpec, keys: dict[str, str], scenarios: bool):
        unknown = {plan for plan in keys.values() if plan not in spec.plans}
        if unknown:
            raise ValueError(f"API keys name plans the spec does not define: {sorted(unknown)}")
        self.spec = spec
        self.keys = KeyStore(keys)
        self.validator = RequestValidator(spec.request_schema)
        self.scenarios = Scenarios(spec.document) if scenarios else None
        catalog = [model.entry for model in spec.models.values()]
        self.model_list = to_json({"default_model": spec.default_model, "data": catalog})
        self.model_bodies = {model.id: to_json(model.entry) for model in spec.models.values()}
        # Both renderings of the spec come from the one text this snapshot was parsed from.
        self.spec_json = to_json(spec.document)
        source = spec.source if spec.source is not None else yaml.safe_dump(spec.document)
        self.spec_yaml = source.encode("utf-8")


class LiveSpec:
    """The current :class:`Snapshot`, rebuilt when the spec file changes on disk.

    Each worker looks at the file's modification time at most once a second. A spec that fails
    to load or to agree with itself is logged and ignored: the last good one keeps serving.
    """

    CHECK_EVERY_S = 1.0

    def __init__(
        self,
        snapshot: Snapshot,
        spec_path: Path | None,
        stamp: int | None,
        build: Callable[[ApiSpec], Snapshot],
    ):
        """*stamp* is :func:`modified` of *spec_path* taken before *snapshot*'s spec was read,
        so that an edit made while it was being read is seen as one."""
        self.snapshot = snapshot
        self.spec_path = spec_path
        self._build = build  # ApiSpec -> Snapshot
        self.reload_error: str | None = None
        self._failed_stamp: int | None = None
        self._stamp = stamp
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def current(self) -> Snapshot:
        if self.spec_path is None or time.monotonic() - self._checked < self.CHECK_EVERY_S:
            return self.snapshot
        with self._lock:
            self._checked = time.monotonic()
            stamp = modified(self.spec_path)
            # A failed load leaves the stamp alone, so it is tried again: the file may have been
            # read half-written, and the rest can land within the same timestamp tick.
            if stamp is not None and stamp != self._stamp and self._reload(stamp):
                self._stamp = stamp
        return self.snapshot

    def _reload(self, stamp: int) -> bool:
        assert self.spec_path is not None  # only a followed file is reloaded
        try:
            self.snapshot = self._build(load_spec(self.spec_path))
        except Exception as exc:
            if self.reload_error is None or stamp != self._failed_stamp:
                log.error("kept the previous spec: %s does not load: %s", self.spec_path, exc)
            self.reload_error, self._failed_stamp = str(exc), stamp
            return False
        self.reload_error = None
        log.info("reloaded %s", self.spec_path)
        return True


def modified(path: Path | None) -> int | None:
    """The file's modification time in ns, or None."""
    try:
        return os.stat(path).st_mtime_ns if path else None
    except OSError:
        return None


def to_json(value: Any) -> bytes:
    # ASCII output escapes what a client sent, lone surrogates included, instead of failing on it.
    return json.dumps(value, separators=(",", ":")).encode("ascii")

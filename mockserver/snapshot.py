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
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mockserver.auth import KeyStore
from mockserver.scenarios import Scenarios
from mockserver.spec import ApiSpec
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
    """The current :class:`Snapshot`, replaced when the spec file changes on disk.

    Requests never read the file: :meth:`current` returns the snapshot as it is. A watcher
    thread (one per worker) looks at the file's stamp
    every CHECK_EVERY_S, and on a change loads, checks and builds the new snapshot in the
    background, then swaps it in whole. Each outcome is logged once, with the spec's
    ``info.version``: a reload, or a refusal with its reason, after which the last good
    snapshot serves on and the same file is not read again until it changes.
    """

    CHECK_EVERY_S = 1.0

    def __init__(
        self,
        snapshot: Snapshot,
        spec_path: Path | None,
        stamp: tuple[int, int, int] | None,
        load: Callable[[], Snapshot],
    ):
        """*stamp* is :func:`modified` of *spec_path* taken before *snapshot*'s spec was read,
        so that an edit made while it was being read is seen as one; *load* builds a
        :class:`Snapshot` from the file (it raises to refuse it)."""
        self.snapshot = snapshot
        self.spec_path = spec_path
        self._load = load  # () -> Snapshot
        self.reload_error: str | None = None
        self._stamp = stamp
        self._watcher: threading.Thread | None = None
        if spec_path is not None:
            # The thread holds the LiveSpec weakly: an app that is dropped stops its watcher.
            self._watcher = threading.Thread(
                target=_watch, args=(weakref.ref(self),), name="spec-watcher", daemon=True
            )
            self._watcher.start()

    def current(self) -> Snapshot:
        return self.snapshot

    def check(self) -> bool:
        """Reload if the file changed since it was last read; whether it did change."""
        stamp = modified(self.spec_path)
        if stamp is None or stamp == self._stamp:
            return False
        # A refused file is not read again until it changes: a stamp includes its size and
        # inode, so a file read half-written is seen again once the rest has landed.
        self._stamp = stamp
        old = _version(self.snapshot)
        try:
            snapshot = self._load()
        except Exception as exc:
            self.reload_error = " ".join(str(exc).split())
            log.error(
                "spec %s changed; kept the previous spec (version %s): %s",
                self.spec_path, old, self.reload_error,
            )  # fmt: skip
            return True
        self.snapshot, self.reload_error = snapshot, None
        log.warning(
            "spec %s changed; reloaded it: version %s (was %s)",
            self.spec_path, _version(snapshot), old,
        )  # fmt: skip
        return True


def _watch(live_ref: weakref.ref[LiveSpec]) -> None:
    while True:
        live = live_ref()
        if live is None:
            return
        every = live.CHECK_EVERY_S
        try:
            live.check()
        except Exception:  # a watcher that dies would leave the server deaf to edits
            log.exception("spec watcher: checking %s failed", live.spec_path)
        del live
        time.sleep(every)


def _version(snapshot: Snapshot) -> str:
    info = snapshot.spec.document.get("info")
    version = info.get("version") if isinstance(info, dict) else None
    return repr(str(version)[:40]) if version is not None else "(none)"


def modified(path: Path | None) -> tuple[int, int, int] | None:
    """The file's stamp (modification time in ns, size, inode), or None."""
    try:
        stat = os.stat(path) if path else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino) if stat else None


def to_json(value: Any) -> bytes:
    # ASCII output escapes what a client sent, lone surrogates included, instead of failing on it.
    return json.dumps(value, separators=(",", ":")).encode("ascii")

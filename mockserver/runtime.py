"""The long-lived half of the server: what is built once per worker and outlives every reload
of the spec (the backend, the state store, the rate limiter, the journal, the faults)."""

from __future__ import annotations

from pathlib import Path

from mockserver.backends import ImageBackend
from mockserver.config import Config
from mockserver.faults import FaultChooser, parse_faults
from mockserver.journal import Journal
from mockserver.ratelimit import RateLimiter
from mockserver.snapshot import LiveSpec, Snapshot
from mockserver.spec import ApiSpec, load_spec
from mockserver.store import StateStore, open_store


class Runtime:
    def __init__(
        self,
        config: Config,
        spec: ApiSpec,
        backend: ImageBackend,
        store: StateStore | None = None,
        *,
        spec_path: Path | None = None,
        spec_stamp: tuple[int, int, int] | None = None,
    ):
        """*spec_path*: the file to follow (None: never reload), *spec_stamp* its
        :func:`~mockserver.snapshot.modified` from before *spec* was read."""
        self.config = config
        self.backend = backend
        self.store = store or open_store(config.state)
        self.limiter = RateLimiter(self.store) if config.rate_limits else None
        self.journal = (
            Journal(
                self.store,
                config.journal_size,
                max_bytes=config.journal_bytes,
                secrets=config.keys,
            )
            if config.journal_size
            else None
        )
        self.faults = FaultChooser(self.store, parse_faults(config.faults), config.scenarios)
        self.live = LiveSpec(self.snapshot_of(spec), spec_path, spec_stamp, self._reread)

    def snapshot_of(self, spec: ApiSpec) -> Snapshot:
        return Snapshot(spec, self.config.keys, self.config.scenarios)

    def _reread(self) -> Snapshot:
        assert self.live.spec_path is not None  # only a followed file is reread
        return self.snapshot_of(load_spec(self.live.spec_path, self.config.spec_root))

    def current(self) -> Snapshot:
        return self.live.current()

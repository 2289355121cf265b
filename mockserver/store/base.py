"""The interface every state store implements, and its one error."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItemPerMinute
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

WINDOW_S = 60  # a plan's limit is requests a minute

T = TypeVar("T")


@dataclass(frozen=True)
class LazyEntry:
    """A journal entry not made yet: *make* returns its JSON text; until then it holds about
    *held* bytes (what it is made from)."""

    make: Callable[[], str]
    held: int


Entry = str | LazyEntry  # a journal entry: its JSON text, or how to make it


def entry_text(entry: Entry) -> str:
    return entry if isinstance(entry, str) else entry.make()


def entry_held(entry: Entry) -> int:
    """About how many bytes *entry* holds in memory."""
    return len(entry) if isinstance(entry, str) else entry.held


class StoreUnavailable(Exception):
    """The store cannot be reached now."""


class StateStore(ABC):
    """Rate-limit counters, the request journal and the faults' state, shared by every worker
    that opens the same store."""

    url: str
    limits_storage: Storage  # where the rate limiter keeps its moving windows

    def spend(self, key: str, requests_per_minute: int) -> tuple[bool, float, int]:
        """Spend one request of *key*'s moving window (at most *requests_per_minute* in any
        WINDOW_S seconds): whether it was allowed, when (epoch seconds) the window's oldest
        request leaves it, and how many requests the window has left. Raises
        :class:`StoreUnavailable`."""
        item = RateLimitItemPerMinute(requests_per_minute)
        limiter = MovingWindowRateLimiter(self.limits_storage)

        def spend() -> tuple[bool, float, int]:
            allowed = limiter.hit(item, key)
            reset_at, remaining = limiter.get_window_stats(item, key)
            return allowed, reset_at, remaining

        return self.call(spend)

    @abstractmethod
    def journal_add(self, entry: Entry, at: float, *, keep: int, max_bytes: int) -> None:
        """Append one journal entry (its JSON text, or how to make it, for a request answered
        at *at*), keeping the newest entries that are at most *keep* in number and
        *max_bytes* in length. A store may make the text later, when it writes the entry, and
        never for an entry that newer ones push out first."""

    @abstractmethod
    def journal_rows(self, limit: int) -> list[str]:
        """The newest *limit* entries, newest first, including every entry whose request
        finished before the call."""

    @abstractmethod
    def journal_clear(self) -> None: ...

    @abstractmethod
    def count_unsaved(self, count: int) -> None:
        """Add *count* journal rows that could not be stored to the shared tally."""

    @abstractmethod
    def unsaved(self) -> int:
        """Journal rows that could not be stored, over all workers since the store was new."""

    # Faults (mockserver.faults): a setting every worker reads, a shared request count, and
    # sequences of answers waiting for a key's next requests.

    @abstractmethod
    def setting(self, name: str) -> str | None:
        """A value set with :meth:`set_setting`, or None."""

    def fault_state(self, name: str) -> tuple[str | None, bool]:
        """The setting *name*, and whether a sequence may have answers waiting (False only if
        none has): what every API request asks, which a store may answer in one read."""
        return self.setting(name), True

    @abstractmethod
    def set_setting(self, name: str, value: str | None) -> None:
        """Set (None: remove) a setting that every worker sharing the store sees at once."""

    @abstractmethod
    def increment(self, name: str) -> int:
        """Add one to the counter *name* and return it: 1, 2, 3... across every worker."""

    @abstractmethod
    def reset_counter(self, name: str) -> None: ...

    @abstractmethod
    def sequence_add(self, name: str, answers: list[str], *, max_total: int) -> bool:
        """Append *answers* to the sequence *name*; False (and nothing added) when all the
        sequences together would then hold more than *max_total* answers."""

    @abstractmethod
    def sequence_take(self, names: list[str]) -> str | None:
        """Remove and return the first answer of the first of *names* that has one, atomically
        (two workers never take the same answer)."""

    @abstractmethod
    def sequences(self) -> dict[str, list[str]]:
        """Every sequence with answers left, by name."""

    @abstractmethod
    def sequences_clear(self) -> None: ...

    def call(self, operation: Callable[[], T]) -> T:
        """``operation()``, with the store's own errors raised as :class:`StoreUnavailable`."""
        return operation()

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers (used at start-up)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (files stay; the command line removes its private directory)."""

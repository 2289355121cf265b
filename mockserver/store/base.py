"""The interface every state store implements, and its one error."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from limits.storage import Storage

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The store cannot be reached now."""


class StateStore(ABC):
    """Rate-limit counters and the request journal, shared by every worker that opens the
    same store."""

    url: str
    limits_storage: Storage  # where the rate limiter keeps its moving windows

    @abstractmethod
    def journal_add(self, entry: str, at: float, *, keep: int, max_bytes: int) -> None:
        """Append one journal entry (its JSON text, for a request answered at *at*), keeping
        the newest entries that are at most *keep* in number and *max_bytes* in length."""

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

    def call(self, operation: Callable[[], T]) -> T:
        """``operation()``, with the store's own errors raised as :class:`StoreUnavailable`."""
        return operation()

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers (used at start-up)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (files stay; the command line removes its private directory)."""

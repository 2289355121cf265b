"""State in Redis, for several hosts behind one load balancer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from mockserver.redact import redacted_url as redacted
from mockserver.store.base import Entry, StateStore, StoreUnavailable, T, entry_text

log = logging.getLogger("mockserver")


class RedisStore(StateStore):
    """State in Redis, shared by every mock process given the same URL, on any host.

    Journal entries are written as they come (one round trip, a script that also drops the
    oldest entries past either bound, keeping a running total of their bytes), so that any
    process reads what any other has answered. When Redis stops answering, calls fail fast for
    RETRY_S seconds instead of each waiting for a timeout; one warning is logged per outage,
    and one line when it is reachable again.
    """

    PREFIX = "mockserver:"
    TIMEOUT_S = 0.5
    RETRY_S = 0.5

    def __init__(self, url: str):
        import redis
        from limits.storage import RedisStorage
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self._errors = redis.RedisError
        self.limits_storage = RedisStorage(
            url,
            key_prefix=self.PREFIX + "limits",
            socket_connect_timeout=self.TIMEOUT_S,
            socket_timeout=self.TIMEOUT_S,
            # The breaker below decides when to try again. (limits types the options it passes
            # on to redis narrower than redis takes them.)
            retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
        )
        # A redis.Redis, which limits types as the protocol of the few calls it makes itself.
        self._redis: Any = cast(Any, self.limits_storage.get_connection())
        self._journal = self.PREFIX + "requests"
        self._journal_bytes = self.PREFIX + "requests:bytes"
        self._journal_add = self._redis.register_script(_JOURNAL_ADD)
        self._sequence_names = self.PREFIX + "sequences"
        self._sequence_total = self.PREFIX + "sequences:total"
        self._sequence_add = self._redis.register_script(_SEQUENCE_ADD)
        self._sequence_take = self._redis.register_script(_SEQUENCE_TAKE)
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0

    def call(self, operation: Callable[[], T]) -> T:
        """Run ``operation()`` against Redis, or raise :class:`StoreUnavailable` (at once
        while an outage is known, so that requests do not queue behind timeouts)."""
        if self._down_since is not None and time.monotonic() < self._retry_at:
            raise StoreUnavailable(f"{redacted(self.url)} is unreachable")
        try:
            result = operation()
        except self._errors as exc:
            with self._lock:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning(
                        "state store %s unreachable (%s): rate limits are not enforced and "
                        "journal entries are counted, not kept, until it answers again",
                        redacted(self.url),
                        exc,
                    )
                self._retry_at = time.monotonic() + self.RETRY_S
            raise StoreUnavailable(f"{redacted(self.url)}: {exc}") from exc
        if self._down_since is not None:
            with self._lock:
                if self._down_since is not None:
                    log.warning(
                        "state store %s reachable again after %.1f s",
                        redacted(self.url),
                        time.monotonic() - self._down_since,
                    )
                    self._down_since = None
        return result

    def check(self) -> None:
        try:
            self._redis.ping()
        except self._errors as exc:
            raise StoreUnavailable(f"{redacted(self.url)}: {exc}") from exc

    def journal_add(self, entry: Entry, at: float, *, keep: int, max_bytes: int) -> None:
        text = entry_text(entry)
        self.call(
            lambda: self._journal_add(
                keys=[self._journal, self._journal_bytes], args=[text, keep, max_bytes]
            )
        )

    def journal_rows(self, limit: int) -> list[str]:
        rows = self.call(lambda: self._redis.lrange(self._journal, 0, limit - 1))
        return [_text(row) for row in rows]

    def journal_clear(self) -> None:
        self.call(lambda: self._redis.delete(self._journal, self._journal_bytes))

    def count_unsaved(self, count: int) -> None:
        self.call(lambda: self._redis.incrby(self.PREFIX + "unsaved", count))

    def unsaved(self) -> int:
        return int(self.call(lambda: self._redis.get(self.PREFIX + "unsaved")) or 0)

    def setting(self, name: str) -> str | None:
        value = self.call(lambda: self._redis.hget(self.PREFIX + "settings", name))
        return None if value is None else _text(value)

    def set_setting(self, name: str, value: str | None) -> None:
        key = self.PREFIX + "settings"
        if value is None:
            self.call(lambda: self._redis.hdel(key, name))
        else:
            self.call(lambda: self._redis.hset(key, name, value))

    def increment(self, name: str) -> int:
        return int(self.call(lambda: self._redis.hincrby(self.PREFIX + "counters", name, 1)))

    def reset_counter(self, name: str) -> None:
        self.call(lambda: self._redis.hdel(self.PREFIX + "counters", name))

    def sequence_add(self, name: str, answers: list[str], *, max_total: int) -> bool:
        keys = [self._sequence_names, self._sequence_total, self._sequence_key(name)]
        added = self.call(lambda: self._sequence_add(keys=keys, args=[name, max_total, *answers]))
        return bool(added)

    def sequence_take(self, names: list[str]) -> str | None:
        keys = [self._sequence_names, self._sequence_total, *map(self._sequence_key, names)]
        answer = self.call(lambda: self._sequence_take(keys=keys, args=names))
        return None if answer is None else _text(answer)

    def sequences(self) -> dict[str, list[str]]:
        def read() -> dict[str, list[str]]:
            names = sorted(map(_text, self._redis.smembers(self._sequence_names)))
            pipe = self._redis.pipeline()
            for name in names:
                pipe.lrange(self._sequence_key(name), 0, -1)
            return dict(zip(names, pipe.execute(), strict=True))

        return {
            name: [_text(answer) for answer in answers]
            for name, answers in self.call(read).items()
            if answers
        }

    def sequences_clear(self) -> None:
        def clear() -> None:
            names = self._redis.smembers(self._sequence_names)
            keys = [self._sequence_key(_text(name)) for name in names]
            self._redis.delete(self._sequence_names, self._sequence_total, *keys)

        self.call(clear)

    def _sequence_key(self, name: str) -> str:
        return self.PREFIX + "sequence:" + name

    def close(self) -> None:
        self._redis.close()


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode()


# Push an entry (ASCII JSON, so that its length in Lua is its length in characters) and drop the
# oldest until at most ARGV[2] entries of at most ARGV[3] bytes in all are left.
_JOURNAL_ADD = """
local count = redis.call('LPUSH', KEYS[1], ARGV[1])
local total = redis.call('INCRBY', KEYS[2], string.len(ARGV[1]))
local keep, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
while count > 0 and (count > keep or total > max_bytes) do
    total = redis.call('DECRBY', KEYS[2], string.len(redis.call('RPOP', KEYS[1])))
    count = count - 1
end
if count == 0 then redis.call('DEL', KEYS[2]) end
"""

# Sequences: a list per name (KEYS[3]), the set of names (KEYS[1]) and the count of answers
# waiting in all of them (KEYS[2]), which bounds what may be added.
_SEQUENCE_ADD = """
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
local max_total = tonumber(ARGV[2])
if total + #ARGV - 2 > max_total then return 0 end
for i = 3, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
redis.call('INCRBY', KEYS[2], #ARGV - 2)
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

# Take the first answer of the first sequence that has one (KEYS[3..], named ARGV[1..]).
_SEQUENCE_TAKE = """
for i = 3, #KEYS do
    local answer = redis.call('LPOP', KEYS[i])
    if answer then
        redis.call('DECR', KEYS[2])
        if redis.call('LLEN', KEYS[i]) == 0 then redis.call('SREM', KEYS[1], ARGV[i - 2]) end
        return answer
    end
end
return false
"""

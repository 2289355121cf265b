"""The embedded store's moving window: spend() answers, hit by hit, what acquire() followed by
moving_window() answered, in fewer statements."""

from __future__ import annotations

import random
import sqlite3

from mockserver.store import sqlite_limits
from mockserver.store.sqlite_limits import HITS_INDEX, HITS_TABLE, acquire, moving_window, spend


def window_db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute(f"CREATE TABLE {HITS_TABLE}")
    db.execute(HITS_INDEX)
    return db


def test_spend_answers_as_acquire_then_moving_window(monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(sqlite_limits.time, "time", lambda: clock[0])
    answers = []
    for seed in range(12):
        draw = random.Random(seed)
        limit, expiry = draw.choice([1, 2, 3, 5, 10]), draw.choice([1, 5, 60])
        one, other = window_db(), window_db()
        for _ in range(300):
            clock[0] += draw.choice([0.0, 0.0, 0.0, 0.01, 0.3, 1.0, expiry / 2, expiry * 1.5])
            key = draw.choice(["a", "b"])
            allowed = acquire(one, key, limit, expiry)
            expected = (allowed, *moving_window(one, key, limit, expiry))
            assert spend(other, key, limit, expiry) == expected, (seed, limit, expiry)
            answers.append(allowed)
    assert True in answers and False in answers  # both ways were met

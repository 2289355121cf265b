"""The ray backend's options and security variables: pure functions, no Ray imported."""

from __future__ import annotations

import pytest

from mockserver.backends import BackendError
from mockserver.backends.ray import security
from mockserver.backends.ray.options import split_options


def test_options_go_to_the_replicas_serve_or_the_client():
    replica, serve, client = split_options(
        {"max_batch": 4, "replicas": 2, "address": "auto", "auth_token": "t"}
    )
    assert (replica, serve, client) == ({"max_batch": 4}, {"replicas": 2},
                                        {"address": "auto", "auth_token": "t"})  # fmt: skip


def test_an_unknown_option_names_the_options_there_are():
    with pytest.raises(BackendError, match="no option replica;.*replicas.*max_batch"):
        split_options({"replica": 2})


def test_a_bad_replica_option_is_refused_before_any_replica_starts():
    with pytest.raises(BackendError, match="max_batch"):
        split_options({"max_batch": "many"})


def test_a_local_cluster_gets_a_new_token_per_server_and_loopback(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    first, second = security.local_cluster_environment(), security.local_cluster_environment()
    assert first["RAY_AUTH_MODE"] == "token"
    assert first["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert (
        len(first["RAY_AUTH_TOKEN"]) == 64 and first["RAY_AUTH_TOKEN"] != second["RAY_AUTH_TOKEN"]
    )
    given = security.local_cluster_environment({"auth_token": "chosen"})
    assert given["RAY_AUTH_TOKEN"] == "chosen"


def test_joining_takes_the_token_from_the_option_or_the_environment(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert security.joining_environment("h:6379", {"auth_token": "t"}) == {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": "t",
    }
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/run/secrets/ray")
    assert security.joining_environment("h:6379", {}) == {"RAY_AUTH_MODE": "token"}


def test_joining_without_a_token_needs_insecure_cluster(monkeypatch, capsys):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    with pytest.raises(BackendError, match="h:6379 needs its token"):
        security.joining_environment("h:6379", {})
    with pytest.raises(BackendError, match="expected true or false"):
        security.joining_environment("h:6379", {"insecure_cluster": "perhaps"})
    assert security.joining_environment("h:6379", {"insecure_cluster": True}) == {
        "RAY_AUTH_MODE": "disabled"
    }
    assert "can run any code on its hosts" in capsys.readouterr().err

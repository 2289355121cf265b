"""The command line: options reach the workers, and bad settings fail fast and clearly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mockserver.cli import banner, build_parser, environment_from_args
from mockserver.config import DEV_KEYS, Config
from tests.support import run_cli


def test_list_backends():
    result = run_cli("--list-backends")
    assert result.returncode == 0
    assert "placeholder" in result.stdout.split()


def test_unknown_backend_fails_fast():
    result = run_cli("--backend", "nope")
    assert result.returncode == 2
    assert "no image backend named 'nope'" in result.stderr


def test_missing_keys_file_fails_fast(tmp_path):
    result = run_cli("--keys", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "cannot start" in result.stderr


def test_options_become_worker_environment(tmp_path):
    args = build_parser().parse_args(
        [
            "--keys",
            "k.yaml",
            "--backend",
            "x",
            "--rate-limits",
            "--cors-origins",
            "http://a,http://b",
        ]
    )
    env = environment_from_args(args)
    assert env["MOCKSERVER_KEYS"].endswith("k.yaml") and Path(env["MOCKSERVER_KEYS"]).is_absolute()
    assert env["MOCKSERVER_BACKEND"] == "x"
    assert env["MOCKSERVER_RATE_LIMITS"] == "1"
    assert env["MOCKSERVER_CORS_ORIGINS"] == "http://a,http://b"


def test_a_served_mock_limits_rates_unless_told_not_to(monkeypatch):
    monkeypatch.delenv("MOCKSERVER_RATE_LIMITS", raising=False)
    parse = build_parser().parse_args
    assert environment_from_args(parse([]))["MOCKSERVER_RATE_LIMITS"] == "1"
    assert environment_from_args(parse(["--no-rate-limits"]))["MOCKSERVER_RATE_LIMITS"] == "0"
    state = environment_from_args(parse(["--state", "redis://h:6379/2"]))["MOCKSERVER_STATE"]
    assert state == "redis://h:6379/2"


def test_config_from_environment(tmp_path):
    from mockserver.config import Config

    keys = tmp_path / "keys.json"
    keys.write_text('{"sk_team": "pro"}')
    config = Config.from_env(
        {
            "MOCKSERVER_KEYS": str(keys),
            "MOCKSERVER_RATE_LIMITS": "1",
            "MOCKSERVER_SCENARIOS": "0",
            "MOCKSERVER_LATENCY": "realistic",
            "MOCKSERVER_JOURNAL_SIZE": "5",
            "MOCKSERVER_RELOAD": "off",
            "MOCKSERVER_CORS_ORIGINS": "http://a, http://b",
        }
    )
    assert config.keys == {"sk_team": "pro"}
    assert (config.rate_limits, config.scenarios, config.reload) == (True, False, False)
    assert (config.latency, config.journal_size) == ("realistic", 5)
    assert config.cors_origins == ["http://a", "http://b"]
    assert Config.from_env({}) == Config()


def test_the_banner_shows_the_public_dev_keys_and_a_call_that_works(server):
    text = banner(Config(), server.url)
    assert f"{server.url}/docs" in text
    for key in DEV_KEYS:
        assert key in text
    call = text[text.index("curl ") :]
    result = subprocess.run(["bash", "-c", call], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"][0]["data_url"].startswith("data:image/png")


def test_the_banner_masks_keys_from_a_key_file():
    secret = "alice-3f9a1c2e7b4d5a6f"
    text = banner(Config(keys={secret: "pro"}), "http://0.0.0.0:9000")
    assert secret not in text and "curl" not in text
    assert "http://0.0.0.0:9000/docs" in text


def test_a_port_in_use_fails_fast_and_the_running_server_keeps_it(server):
    """granian's workers share a port (SO_REUSEPORT): unchecked, a second mock would start on a
    port already served and take half its connections."""
    port = server.url.rsplit(":", 1)[1]
    result = run_cli("--port", port, "--workers", "1")
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert "Listening" not in result.stdout + result.stderr


def test_a_port_out_of_range_is_a_usage_error():
    for port in ("70000", "0", "http"):
        result = run_cli("--port", port)
        assert result.returncode == 2
        assert f"'{port}' is not a port (1 to 65535)" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [("MOCKSERVER_RATE_LIMITS", "maybe", "is not on or off"),
     ("MOCKSERVER_JOURNAL_SIZE", "-1", "is not a whole number"),
     ("MOCKSERVER_JOURNAL_BYTES", "10k", "is not a whole number"),
     ("MOCKSERVER_BODY_TIMEOUT", "0", "is not a number of seconds"),
     ("MOCKSERVER_LATENCY", "fast", "expected off, realistic or a number of milliseconds"),
     ("MOCKSERVER_BACKEND_OPTIONS", "{", "MOCKSERVER_BACKEND_OPTIONS: ")],
)  # fmt: skip
def test_a_bad_setting_is_refused_naming_its_variable(variable, value, says):
    with pytest.raises(ValueError, match=variable) as caught:
        Config.from_env({variable: value})
    assert says in str(caught.value)


def test_bad_settings_and_key_files_fail_fast_and_say_why(tmp_path):
    broken = tmp_path / "keys.yaml"
    broken.write_text("sk_a: [free\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    spaced = tmp_path / "spaced.yaml"
    spaced.write_text("sk_a: free\n'sk b': pro\n")
    for args, says in [
        (("--latency", "fast"), "expected off, realistic or a number of milliseconds"),
        (("--journal-size", "-1"), "--journal-size: '-1' is not a whole number"),
        (("--keys", str(broken)), f"{broken}: not valid YAML"),
        (("--keys", str(empty)), f"{empty}: no keys"),
        (("--keys", str(spaced)), f"{spaced} line 2: the key contains whitespace"),
        (("--workers", "0"), "--workers: '0' is not a whole number above 0"),
    ]:
        result = run_cli(*args)
        assert result.returncode == 2, args
        assert says in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # one line

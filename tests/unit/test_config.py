"""The settings table: each setting declared once, and the options, the variables, what the
workers are handed, the checks and the docs table all made from it."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from mockserver.cli import build_parser, check_settings, command_line_settings
from mockserver.config import (
    DEV_KEYS,
    Config,
    ServeOptions,
    SettingError,
    markdown_table,
    read,
    table,
    worker_environment,
)
from tests.support import ROOT, free_port

DOCS = ROOT / "docs" / "settings.md"
TABLE_START = "<!-- settings table:"
TABLE_END = "<!-- end of settings table -->"

# Every option and variable the server had before the table: none may go.
OPTIONS = [
    "--host",
    "--port",
    "--backend",
    "--models-dir",
    "--backend-option",
    "--keys",
    "--spec",
    "--workers",
    "--threads",
    "--rate-limits",
    "--no-rate-limits",
    "--state",
    "--keep-state",
    "--cors-origins",
    "--latency",
    "--no-scenarios",
    "--journal-size",
    "--journal-bytes",
    "--admin-token",
    "--admin-open",
    "--quiet",
    "--no-reload",
    "--list-backends",
]
VARIABLES = [
    "SPEC",
    "KEYS",
    "BACKEND",
    "BACKEND_OPTIONS",
    "RATE_LIMITS",
    "CORS_ORIGINS",
    "SCENARIOS",
    "LATENCY",
    "JOURNAL_SIZE",
    "JOURNAL_BYTES",
    "STATE",
    "RELOAD",
    "BODY_TIMEOUT",
    "WORK_SLOTS",
    "ADMIN_TOKEN",
    "ADMIN_OPEN",
    "QUIET",
]


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_the_docs_table_is_the_table_in_code():
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("\n", text.index(TABLE_START)) + 1
    documented = text[start : text.index(TABLE_END)]
    assert documented == markdown_table(), (
        "docs/settings.md's table differs from mockserver/config.py's settings: paste the "
        "output of `python -m mockserver.config --markdown` between its markers"
    )


def test_each_setting_is_one_row_of_the_docs_table_with_its_option_and_variable():
    rows = [line.split(" | ")[:2] for line in markdown_table().splitlines()[2:]]
    assert len(rows) == len(table())
    for (option, variable), row in zip(rows, table(), strict=True):
        assert (row.option[2:] in option) == row.flag and ("--" in option) == row.flag, row.name
        assert variable == (f"`{row.variable}`" if row.env else ""), row.name


def test_every_option_and_variable_of_before_is_kept():
    known = {option for action in build_parser()._actions for option in action.option_strings}
    assert set(OPTIONS) <= known
    assert {f"MOCKSERVER_{name}" for name in VARIABLES} <= {row.variable for row in table()}


def test_options_and_variables_are_named_after_the_setting():
    rows = table()
    for row in rows:
        assert row.variable == "MOCKSERVER_" + row.name.upper()
        if row.name != "backend_options":  # --backend-option, given once per option
            assert row.option == "--" + row.name.replace("_", "-")
    for names in ([r.name for r in rows], [r.option for r in rows if r.flag]):
        assert len(names) == len(set(names))


def test_each_field_of_the_settings_classes_is_a_setting():
    """A field without a row would be a setting no option, variable or docs line reaches."""
    attributes = {row.attribute for row in table()}
    for cls in (ServeOptions, Config):
        for item in dataclasses.fields(cls):
            assert item.name in attributes or item.name == "max_body_bytes", item.name


def test_the_defaults_are_the_dataclasses_defaults():
    assert Config.from_env({}) == Config()
    assert read(ServeOptions, {}, {}) == ServeOptions()
    assert Config().keys == DEV_KEYS and Config().keys is not DEV_KEYS


def test_an_option_reaches_the_workers_as_its_variable_and_reads_the_same(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text("sk_team_0123: pro\n")
    argv = [
        "--keys", str(keys), "--backend", "x", "--no-rate-limits", "--state", "redis://h:1/2",
        "--cors-origins", "http://a, http://b", "--latency", "250", "--no-scenarios",
        "--journal-size", "7", "--journal-bytes", "999", "--no-reload", "--admin-token", "t0k",
        "--admin-open", "--quiet", "--backend-option", "compile=true",
        "--backend-option", "name=tiny",
    ]  # fmt: skip
    given = command_line_settings(parse(*argv), {})
    environment = worker_environment(given)
    from_options = Config.from_env({}, given)
    from_variables = Config.from_env(environment)
    assert from_options == from_variables
    assert from_variables.keys == {"sk_team_0123": "pro"}
    assert Path(environment["MOCKSERVER_KEYS"]).is_absolute()
    assert from_variables.backend_options == {"compile": True, "name": "tiny"}
    assert (from_variables.latency, from_variables.journal_size) == ("250.0", 7)
    assert from_variables.cors_origins == ["http://a", "http://b"]
    switches = ("rate_limits", "scenarios", "reload", "admin_open", "quiet")
    assert [getattr(from_variables, name) for name in switches] == [False, False, False, True, True]


def test_models_dir_joins_the_backends_options(tmp_path):
    given = command_line_settings(
        parse("--backend-option", "compile=true", "--models-dir", str(tmp_path)), {}
    )
    options = json.loads(worker_environment(given)["MOCKSERVER_BACKEND_OPTIONS"])
    assert options == {"compile": True, "models_dir": str(tmp_path.resolve())}


def test_an_option_wins_over_its_variable_and_a_variable_over_the_default():
    given = command_line_settings(parse("--journal-size", "5"), {})
    config = Config.from_env({"MOCKSERVER_JOURNAL_SIZE": "9", "MOCKSERVER_QUIET": "1"}, given)
    assert (config.journal_size, config.quiet) == (5, True)


def test_a_served_mock_draws_its_defaults_unless_a_variable_sets_them():
    given = command_line_settings(parse(), {})
    assert given["rate_limits"] == "1"
    assert len(given["fingerprint_secret"]) == 64
    assert command_line_settings(parse(), {})["fingerprint_secret"] != given["fingerprint_secret"]
    preset = {"MOCKSERVER_RATE_LIMITS": "0", "MOCKSERVER_FINGERPRINT_SECRET": "s" * 16}
    assert not {"rate_limits", "fingerprint_secret"} & set(command_line_settings(parse(), preset))


@pytest.mark.parametrize(
    ("argv", "says"),
    [(["--journal-size", "-1"], "--journal-size: '-1' is not a whole number of 0 or more"),
     (["--workers", "0"], "--workers: '0' is not a whole number above 0"),
     (["--threads", "many"], "--threads: 'many' is not a whole number above 0"),
     (["--port", "70000"], "--port: '70000' is not a port (1 to 65535)"),
     (["--port", "٣"], "--port: '٣' is not a port"),
     (["--latency", "fast"], "--latency: latency 'fast': expected off, realistic"),
     (["--backend-option", "x=1", "--admin-token", "a b"], "--admin-token: the admin token"),
     (["--keys", "/nonexistent/keys.yaml"], "--keys: [Errno 2] No such file")],
)  # fmt: skip
def test_a_bad_option_is_refused_naming_the_option(argv, says):
    given = command_line_settings(parse(*argv), {})
    with pytest.raises(SettingError) as caught:
        read(ServeOptions, {}, given)
        Config.from_env({}, given)
    assert str(caught.value).startswith(says)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MOCKSERVER_BACKEND_OPTIONS", "[1, 2]"), ("MOCKSERVER_WORK_SLOTS", "²"),
     ("MOCKSERVER_FINGERPRINT_SECRET", "short"), ("MOCKSERVER_BODY_TIMEOUT", "inf"),
     ("MOCKSERVER_ADMIN_OPEN", "sometimes")],
)  # fmt: skip
def test_a_bad_variable_is_refused_naming_the_variable(variable, value):
    with pytest.raises(SettingError, match=f"^{variable}: "):
        Config.from_env({variable: value})


def test_an_empty_admin_token_variable_is_no_token():
    assert Config.from_env({"MOCKSERVER_ADMIN_TOKEN": ""}).admin_token is None


def test_secrets_are_not_in_the_configs_repr():
    config = Config(admin_token="adm1n-t0ken", fingerprint_secret="f" * 20)
    assert "adm1n-t0ken" not in repr(config) and "f" * 20 not in repr(config)


def test_the_settings_are_checked_without_building_an_app(spec):
    options = ServeOptions(port=free_port())
    assert check_settings(Config(), options).plans == spec.plans
    with pytest.raises(ValueError, match="plans the spec does not define"):
        check_settings(Config(keys={"sk_x": "platinum"}), options)
    with pytest.raises(LookupError, match="no image backend named 'nope'"):
        check_settings(Config(backend="nope"), options)
    with pytest.raises(ValueError, match="MOCKSERVER_ADMIN_TOKEN"):
        check_settings(Config(), ServeOptions(host="0.0.0.0", port=free_port()))


def test_a_spec_without_its_cors_rules_is_refused_at_start(tmp_path):
    text = (ROOT / "openapi.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "openapi.yaml"
    broken.write_text(re.sub(r"(?m)^x-imageapi-cors:", "x-imageapi-cors-gone:", text))
    with pytest.raises(ValueError, match="x-imageapi-cors"):
        check_settings(Config(spec_path=broken), ServeOptions(port=free_port()))

"""Keys files: a key that no request could authenticate with, or a key written twice, is
refused at start, naming its line (never the key)."""

from __future__ import annotations

import json

import pytest

from mockserver.keys_file import load_keys

# Each could never authenticate: the Bearer parser accepts letters, digits, -._~+/ then = only.
NEVER = [
    ("", "the key is empty"),
    ("sk team key", "the key contains whitespace"),
    ("sk_team\tkey", "the key contains whitespace"),
    ("Bearer sk_team_key", "the key starts with 'Bearer ': write the key alone"),
    ("bearer sk_team_key", "the key starts with 'Bearer ': write the key alone"),
    ("sk_clé_d_équipe", "the key has a character a Bearer token cannot carry"),
    ("sk_team=key", "the key has a character a Bearer token cannot carry"),
    ("sk_team,key", "the key has a character a Bearer token cannot carry"),
    ("sk_" + "k" * 70_000, "the key is longer than a request head may be"),
]


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


NAMES = [f"{says.split()[-1]}-{index}" for index, (_, says) in enumerate(NEVER)]


@pytest.mark.parametrize(("key", "says"), NEVER, ids=NAMES)
def test_a_yaml_key_that_could_never_authenticate_is_refused_naming_its_line(tmp_path, key, says):
    # A YAML key written as "? KEY" may be of any length.
    path = write(tmp_path, "keys.yaml", f"sk_good_one: free\n? {json.dumps(key)}\n: pro\n")
    with pytest.raises(ValueError) as caught:
        load_keys(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line 2: {says}")
    assert (key not in message) if key else True  # the message never shows the key


@pytest.mark.parametrize(("key", "says"), NEVER, ids=NAMES)
def test_a_json_key_that_could_never_authenticate_is_refused_naming_its_line(tmp_path, key, says):
    text = '{\n  "sk_good_one": "free",\n\n  ' + json.dumps(key) + ': "pro"\n}\n'
    path = write(tmp_path, "keys.json", text)
    with pytest.raises(ValueError, match=r"line 4: "):
        load_keys(path)


def test_a_duplicated_key_is_refused_naming_both_lines(tmp_path):
    yaml_path = write(tmp_path, "keys.yaml", "sk_a: free\nsk_b: pro\nsk_a: enterprise\n")
    with pytest.raises(ValueError, match=r"keys.yaml line 3: the key of line 1 again"):
        load_keys(yaml_path)
    json_path = write(tmp_path, "keys.json", '{"sk_a": "free", "sk_b": "pro",\n "sk_a": "pro"}')
    with pytest.raises(ValueError, match=r"keys.json line 2: the key of line 1 again"):
        load_keys(json_path)


def test_keys_of_every_token_shape_load_with_their_plans(tmp_path):
    keys = {"sk_a-1.2~3": "free", "YWxhZGRpbjpvcGVu+/==": "pro", "k": "basic", "0123": "pro"}
    expected = dict(keys)
    path = write(tmp_path, "keys.json", json.dumps(keys, indent=2))
    assert load_keys(path) == expected
    yaml_text = "".join(f"{json.dumps(key)}: {plan}\n" for key, plan in keys.items())
    assert load_keys(write(tmp_path, "keys.yaml", yaml_text)) == expected
    one_line = write(tmp_path, "one.json", json.dumps(keys, separators=(",", ":")))
    assert load_keys(one_line) == expected


def test_a_key_that_yaml_reads_as_a_number_is_not_taken_for_text(tmp_path):
    with pytest.raises(ValueError, match="expected a mapping of API key to plan id"):
        load_keys(write(tmp_path, "keys.yaml", "sk_a: free\n12345: pro\n"))


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [("keys.yaml", "sk_a: [free\n", "not valid YAML"),
     ("keys.yaml", "- sk_a\n", "expected a mapping"),
     ("keys.yaml", "sk_a:\n", "expected a mapping"),
     ("keys.yaml", "", "expected a mapping"),
     ("keys.yaml", "{}\n", "no keys"),
     ("keys.json", '{"sk_a": "free",}', "not valid JSON"),
     ("keys.json", '{"sk_a": {"plan": "free"}}', "expected a mapping"),
     ("keys.json", "[]", "expected a mapping"),
     ("keys.json", "{}", "no keys")],
)  # fmt: skip
def test_a_file_that_is_no_mapping_of_keys_is_refused(tmp_path, name, text, says):
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError, match=f"^{path}: {says}"):
        load_keys(path)

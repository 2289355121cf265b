"""The spec is one closed, bounded document: no $ref reaches outside it (or outside
--spec-root), nothing is fetched, and an alias or reference bomb is refused before it expands."""

from __future__ import annotations

import pytest
from prance import ResolvingParser

from mockserver.spec import DEFAULT_SPEC_PATH, SpecError, load_spec
from mockserver.spec_document import MAX_DEPTH, MAX_NODES, DocumentError, read_document
from tests.support import ROOT, alias_bomb, counting_listener, spec_with_ref

SPEC_TEXT = (ROOT / "openapi.yaml").read_text()


def refusal(path, root=None) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(path, root)
    message = str(caught.value)
    assert "\n" not in message and message.strip(), message  # one line, with a reason
    return message


def test_the_projects_spec_reads_as_prance_resolved_it():
    document, text = read_document(DEFAULT_SPEC_PATH)
    assert text == SPEC_TEXT
    resolved = ResolvingParser(spec_string=text, backend="openapi-spec-validator", strict=False)
    assert document == resolved.specification


@pytest.mark.parametrize("scheme", ["http", "https", "file", "ftp"])
def test_a_remote_ref_is_refused_and_never_fetched(tmp_path, scheme):
    with counting_listener() as (port, requests_made):
        url = f"{scheme}://127.0.0.1:{port}/evil.yaml#/Model"
        message = refusal(spec_with_ref(tmp_path, url))
    assert "by URL" in message and "never fetches" in message
    assert " at #/paths/" in message  # where it was met
    assert requests_made == []


def test_a_schema_dialect_by_url_is_refused_and_never_fetched(tmp_path):
    path = tmp_path / "openapi.yaml"
    anchor = "    Model:\n      type: object\n"
    assert anchor in SPEC_TEXT
    with counting_listener() as (port, requests_made):
        dialect = f"      $schema: http://127.0.0.1:{port}/meta\n"
        path.write_text(SPEC_TEXT.replace(anchor, anchor + dialect))
        assert "not a known JSON Schema dialect" in refusal(path)
    assert requests_made == []


def test_a_dynamic_ref_is_refused(tmp_path):
    path = tmp_path / "openapi.yaml"
    anchor = "    Model:\n      type: object\n"
    path.write_text(SPEC_TEXT.replace(anchor, anchor + "      $dynamicRef: '#meta'\n"))
    assert "$dynamicRef" in refusal(path)


def test_a_ref_to_another_file_needs_a_spec_root(tmp_path):
    (tmp_path / "model.yaml").write_text("type: object\n")
    message = refusal(spec_with_ref(tmp_path, "model.yaml"))
    assert "another file" in message and "--spec-root" in message


def test_etc_passwd_is_refused_with_a_reason(tmp_path):
    message = refusal(spec_with_ref(tmp_path, "/etc/passwd"))
    assert "'/etc/passwd'" in message and "another file" in message
    message = refusal(spec_with_ref(tmp_path, "/etc/passwd"), root=tmp_path)
    assert "outside the spec root" in message


def test_under_a_spec_root_a_file_ref_is_inlined_and_one_outside_is_refused(tmp_path, spec):
    root = tmp_path / "specs"
    (root / "shared").mkdir(parents=True)
    model = spec.document["components"]["schemas"]["Model"]
    import json

    (root / "shared" / "model.json").write_text(json.dumps({"Model": model}))
    path = spec_with_ref(root, "shared/model.json#/Model")
    loaded = load_spec(path, root)
    assert loaded.document["components"]["schemas"]["Model"] == model
    (tmp_path / "outside.json").write_text(json.dumps({"Model": model}))
    outside = spec_with_ref(root, "../outside.json#/Model", name="escape.yaml")
    assert "outside the spec root" in refusal(outside, root)
    # A symlink under the root that leads out of it is outside too.
    (root / "link.json").symlink_to(tmp_path / "outside.json")
    linked = spec_with_ref(root, "link.json#/Model", name="linked.yaml")
    assert "outside the spec root" in refusal(linked, root)


def test_a_ref_that_points_at_nothing_or_at_itself(tmp_path):
    assert "points at nothing" in refusal(spec_with_ref(tmp_path, "#/components/schemas/Nope"))
    assert "refers to itself" in refusal(spec_with_ref(tmp_path, "#/components/schemas/Model"))


@pytest.mark.parametrize("levels", [7, 8])
def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, levels):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels))
    assert 9**levels > MAX_NODES
    message = refusal(path)
    assert f"more than {MAX_NODES} values" in message and "alias bomb" in message


def test_a_reference_bomb_is_refused(tmp_path):
    schemas = ["    B0: {type: string}"]
    for level in range(1, 9):
        refs = ", ".join([f"{{$ref: '#/components/schemas/B{level - 1}'}}"] * 9)
        schemas.append(f"    B{level}: {{allOf: [{refs}]}}")
    anchor = "  schemas:\n"
    assert anchor in SPEC_TEXT
    path = tmp_path / "openapi.yaml"
    path.write_text(SPEC_TEXT.replace(anchor, anchor + "\n".join(schemas) + "\n", 1))
    assert "reference bomb" in refusal(path)


def test_a_recursive_alias_too_deep_a_nesting_and_too_large_a_file(tmp_path):
    path = tmp_path / "openapi.yaml"
    path.write_text("openapi: 3.1.0\nx-loop: &loop [*loop]\n")
    with pytest.raises(DocumentError):  # PyYAML itself refuses an alias to an open node
        read_document(path)
    path.write_text("x: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n")
    assert "nested deeper than" in refusal(path)
    path.write_text("x: '" + "a" * (5 * 1024 * 1024) + "'\n")
    assert "larger than" in refusal(path)


def test_not_yaml_or_not_a_mapping(tmp_path):
    path = tmp_path / "openapi.yaml"
    path.write_text("openapi: [broken\n")
    assert "not valid YAML" in refusal(path)
    path.write_text("- a list\n")
    assert "must be a mapping" in refusal(path)
    path.write_bytes(b"openapi: '\xff'\n")
    assert "not UTF-8" in refusal(path)

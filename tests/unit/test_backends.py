"""Backends are found through the mockserver.backends entry-point group."""

from __future__ import annotations

import sys

import pytest

from mockserver.backends import BackendError, available_backends, load_backend
from mockserver.backends.placeholder import PlaceholderBackend


def test_placeholder_is_registered():
    assert "placeholder" in available_backends()
    assert isinstance(load_backend("placeholder"), PlaceholderBackend)


def test_unknown_backend_names_the_installed_ones():
    with pytest.raises(BackendError, match="placeholder"):
        load_backend("nope")


def test_a_third_party_backend_registers_without_touching_this_code(tmp_path, monkeypatch):
    """A package on sys.path with an entry point in the group is loadable by name."""
    package = tmp_path / "thirdparty_backend.py"
    package.write_text(
        "class SolidBackend:\n"
        "    def __init__(self, **options):\n"
        "        self.options = options\n"
        "    def generate(self, generation):\n"
        "        return [b'solid'] * generation.num_images\n"
    )
    dist = tmp_path / "thirdparty_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-backend\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[mockserver.backends]\nsolid = thirdparty_backend:SolidBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "thirdparty_backend", raising=False)
    assert "solid" in available_backends()
    backend = load_backend("solid", colour="red")
    assert backend.options == {"colour": "red"}


def test_the_built_in_backends_are_listed_without_entry_points_and_imported_only_when_chosen():
    import json

    from tests.support import fresh_python

    code = (
        "import json, sys; from mockserver.backends import available_backends; "
        "print(json.dumps(available_backends())); "
        "print('mockserver.backends.ray.client' in sys.modules)"
    )
    listed, imported = fresh_python(code).splitlines()
    assert {"placeholder", "diffusers", "ray"} <= set(json.loads(listed))
    assert imported == "False"

"""Reading a spec file as one closed, bounded document, with every ``$ref`` inlined.

The spec is data the server trusts with its whole behaviour, and it may be edited while the
server runs, so reading it must not reach anything else or cost without bound:

- a ``$ref`` resolves inside the spec file (``#/components/...``) or, only when the server is
  given a spec root (``--spec-root DIR``), in a YAML or JSON file under that folder. A reference
  by URL (``http:``, ``https:``, ``file:``, any scheme) is refused, never fetched; so is a path
  outside the root, and, without a root, any path at all;
- a ``$schema`` names one of the JSON Schema dialects the validators know (the validators would
  otherwise fetch it), and ``$dynamicRef``/``$recursiveRef``, which nothing here inlines, are
  refused;
- the text is at most :data:`MAX_SPEC_BYTES`, nested at most :data:`MAX_DEPTH` levels, and,
  counted as it expands (YAML aliases and ``$ref`` copies included), at most
  :data:`MAX_NODES` values. Both counts are taken over the shared structure, before anything is
  expanded, so an alias or reference "bomb" is refused in milliseconds.

Each refusal is a :class:`DocumentError` with a one-line reason that names where it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_NODES = 250_000  # about 30 times the project's own spec, resolved
MAX_DEPTH = 64
MAX_SHOWN_CHARS = 80  # of a reference quoted in a reason

KNOWN_DIALECTS = frozenset(
    {
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-07/schema",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-04/schema#",
        "https://spec.openapis.org/oas/3.1/dialect/base",
    }
)
UNINLINED_KEYWORDS = ("$dynamicRef", "$recursiveRef")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """YAML's safe loader, with dates left as the strings JSON would have them."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rule) for tag, rule in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


class DocumentError(ValueError):
    """The spec is not one closed, bounded document; the message is one line."""


def _shown(text: str) -> str:
    text = repr(text)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…'"


def _where(location: tuple) -> str:
    pointer = "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in location)
    return "#/" + pointer if len(pointer) <= 200 else "#/" + pointer[:199] + "…"


def read_document(path: str | Path, root: str | Path | None = None) -> tuple[dict, str]:
    """The document at *path* with every ``$ref`` inlined, and its text.

    *root*: the folder whose files a ``$ref`` may name (None: none, only the spec itself)."""
    return _Reader(Path(root).resolve() if root is not None else None).read(Path(path))


class _Reader:
    def __init__(self, root: Path | None):
        self.root = root
        self.files: dict[Path, object] = {}
        self.bytes_read = 0
        # (file, pointer) -> (resolved value, its size in values); a ref in progress maps to None
        self.resolved: dict[tuple[Path, str], tuple[object, int] | None] = {}

    def read(self, path: Path) -> tuple[dict, str]:
        path = path.resolve()
        text = self._text(path)
        document = _parse(text, str(path))
        if not isinstance(document, dict):
            raise DocumentError(
                f"{path}: the spec must be a mapping, not {type(document).__name__}"
            )
        self.files[path] = document
        value, _ = self._resolve(document, path, ())
        assert isinstance(value, dict)  # a mapping's refs inlined: a mapping
        return value, text

    def _resolve(self, value, file: Path, location: tuple) -> tuple[object, int]:
        """*value* with its refs inlined, and how many values it holds once expanded."""
        if len(location) > MAX_DEPTH:
            raise DocumentError(
                f"{file}: nested deeper than {MAX_DEPTH} levels at {_where(location)}"
            )
        if isinstance(value, dict):
            reference = value.get("$ref")
            if isinstance(reference, str):
                return self._inline(reference, file, location)
            self._check_keywords(value, file, location)
            mapping: dict[Any, object] = {}
            size = 1
            for key, item in value.items():
                name = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
                mapping[name], item_size = self._resolve(item, file, (*location, name))
                size += item_size + 1
                self._check_size(size, file, location)
            return mapping, size
        if isinstance(value, list):
            items: list[object] = []
            size = 1
            for index, item in enumerate(value):
                resolved, item_size = self._resolve(item, file, (*location, index))
                items.append(resolved)
                size += item_size
                self._check_size(size, file, location)
            return items, size
        return value, 1

    def _check_keywords(self, value: dict, file: Path, location: tuple) -> None:
        for keyword in UNINLINED_KEYWORDS:
            if keyword in value:
                raise DocumentError(
                    f"{file}: {keyword} at {_where(location)} is not supported "
                    "(write the schema with $ref inside the spec)"
                )
        dialect = value.get("$schema")
        if isinstance(dialect, str) and dialect not in KNOWN_DIALECTS:
            raise DocumentError(
                f"{file}: $schema {_shown(dialect)} at {_where(location)} is not a known JSON "
                "Schema dialect (it would have to be fetched)"
            )

    @staticmethod
    def _check_size(size: int, file: Path, location: tuple) -> None:
        if size > MAX_NODES:
            raise DocumentError(
                f"{file}: expands to more than {MAX_NODES} values (at {_where(location)}): "
                "too large to serve, or a reference bomb"
            )

    def _inline(self, reference: str, file: Path, location: tuple) -> tuple[object, int]:
        target, pointer = self._locate(reference, file, location)
        key = (target, pointer)
        if key in self.resolved:
            done = self.resolved[key]
            if done is None:
                raise DocumentError(
                    f"{file}: $ref {_shown(reference)} at {_where(location)} refers to itself "
                    "(a recursive schema, which cannot be inlined)"
                )
            return done
        self.resolved[key] = None  # in progress: meeting it again is a cycle
        raw = _follow(self._document(target), pointer, reference, file, location)
        done = self._resolve(raw, target, location)
        self.resolved[key] = done
        return done

    def _locate(self, reference: str, file: Path, location: tuple) -> tuple[Path, str]:
        """The file and JSON pointer *reference* names, if it may be followed."""
        address, _, fragment = reference.partition("#")
        if not address:
            return file, fragment
        why = None
        if _SCHEME.match(address):
            why = "a reference by URL, which the mock never fetches"
        elif self.root is None:
            why = "a reference to another file; refs point inside the spec ('#/...') unless "
            why += "the server is given --spec-root DIR"
        else:
            target = (file.parent / unquote(address)).resolve()
            if target.is_relative_to(self.root):
                return target, fragment
            why = f"outside the spec root {self.root}"
        raise DocumentError(f"{file}: $ref {_shown(reference)} at {_where(location)}: {why}")

    def _document(self, path: Path):
        if path not in self.files:
            self.files[path] = _parse(self._text(path), str(path))
        return self.files[path]

    def _text(self, path: Path) -> str:
        """The text of *path*; all the files together are at most MAX_SPEC_BYTES."""
        text = _read_text(path, MAX_SPEC_BYTES - self.bytes_read)
        self.bytes_read += len(text)
        return text


def _follow(document, pointer: str, reference: str, file: Path, location: tuple):
    """The value at JSON pointer *pointer* (RFC 6901, as a URI fragment) in *document*."""
    value = document
    if pointer in ("", "/"):
        return value
    if not pointer.startswith("/"):
        raise DocumentError(
            f"{file}: $ref {_shown(reference)} at {_where(location)} is not a JSON pointer"
        )
    for part in unquote(pointer)[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part[:9]) < len(value):
            value = value[int(part)]
        else:
            raise DocumentError(
                f"{file}: $ref {_shown(reference)} at {_where(location)} points at nothing"
            )
    return value


def _read_text(path: Path, room: int) -> str:
    try:
        with path.open("rb") as stream:
            data = stream.read(room + 1)
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > room:
        raise DocumentError(f"{path}: the spec's files are larger than {MAX_SPEC_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse(text: str, name: str):
    """YAML (JSON is YAML) with its aliases counted before they are expanded."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise DocumentError(f"{name}: empty")
        _expanded_size(node, name)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise DocumentError(f"{name}: not valid YAML: {reason[:300]}") from None
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node, name: str) -> int:
    """How many values *root* holds with every alias expanded, counted once per shared node."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            raise DocumentError(f"{name}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            return 1
        if id(node) in open_nodes:
            raise DocumentError(
                f"{name}: a YAML alias contains itself (line {node.start_mark.line + 1})"
            )
        open_nodes.add(id(node))
        children = (
            node.value
            if isinstance(node, yaml.SequenceNode)
            else [part for pair in node.value for part in pair]
        )
        total = 1 + sum(size(child, depth + 1) for child in children)
        open_nodes.discard(id(node))
        if total > MAX_NODES:
            raise DocumentError(
                f"{name}: expands to more than {MAX_NODES} values (line "
                f"{node.start_mark.line + 1}): too large to serve, or a YAML alias bomb"
            )
        sizes[id(node)] = total
        return total

    return size(root, 0)

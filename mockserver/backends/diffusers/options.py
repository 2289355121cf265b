"""The diffusers backend's options: one frozen record, parsed once from ``--backend-option``
values (JSON values or plain strings), so that a mistyped option fails at start-up with one
line naming it, not in a replica on another host."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mockserver.backends import BackendError


@dataclass(frozen=True)
class DiffusersOptions:
    """See :class:`~mockserver.backends.diffusers.backend.DiffusersBackend` for what each does."""

    models_dir: str | None = None
    device: str | None = None  # "cuda" when available, else "cpu"
    dtype: str | None = None  # "bfloat16" on CUDA, "float32" on CPU
    max_queue: int = 32
    max_batch: int = 8
    timeout_s: float = 120.0
    compile: bool = False
    compile_sizes: tuple[tuple[int, int], ...] = ((1024, 1024),)
    batch_sizes: tuple[int, ...] | None = None  # None: 1, 2, 4, ... below max_batch
    compile_cache_dir: str | None = None
    compile_text_encoders: bool = False
    prompt_cache: int = 256
    warmup: bool | None = None  # None: on CUDA only
    warmup_negative_prompts: bool = True
    encode_workers: int = 4
    allow_download: bool = False
    png_compress_level: int = 2

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> DiffusersOptions:
        """*options* checked and converted; an unknown name or a bad value is a BackendError."""
        unknown = set(options) - cls.names()
        if unknown:
            raise BackendError(
                f"the diffusers backend has no option {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(sorted(cls.names()))}"
            )
        values: dict[str, Any] = {}
        for name, value in options.items():
            if value is None:  # JSON null: the default
                continue
            try:
                values[name] = _PARSERS[name](value)
            except (TypeError, ValueError) as exc:
                raise BackendError(f"backend option {name}={value!r}: {exc}") from None
        parsed = cls(**values)
        if parsed.max_batch < 1 or parsed.max_queue < 1 or parsed.encode_workers < 1:
            raise BackendError("max_batch, max_queue and encode_workers must be at least 1")
        if parsed.timeout_s <= 0:
            raise BackendError("timeout_s must be more than 0")
        buckets = parsed.buckets
        if buckets[0] < 1 or buckets[-1] > parsed.max_batch:
            raise BackendError(f"batch_sizes must lie between 1 and max_batch ({parsed.max_batch})")
        return parsed

    @property
    def buckets(self) -> list[int]:
        """The batch sizes a compiled pipeline runs, a batch padded up to the next. Padding 3
        images up to 4 spends a quarter of the call on nothing, and padding 2 to 8 three
        quarters: hence every power of two by default, not just 1 and max_batch."""
        sizes = self.batch_sizes
        if sizes is None:
            sizes = tuple(2**i for i in range(self.max_batch.bit_length()) if 2**i < self.max_batch)
        return sorted({*sizes, self.max_batch})


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("not an integer")
    try:
        return int(value)
    except ValueError:
        raise ValueError("not an integer") from None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("not a number")
    try:
        return float(value)
    except ValueError:
        raise ValueError("not a number") from None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.lower() in {"true", "1", "yes"}
    raise ValueError("not true or false")


def _text(value: Any) -> str:
    if not isinstance(value, str | Path):
        raise ValueError("not a string")
    return str(value)


def _items(value: Any) -> list[Any]:
    """A list given as JSON, or as one comma-separated string."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError("not a list")


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return _integer(value[0]), _integer(value[1])
    try:
        width, height = (int(side) for side in str(value).strip().lower().split("x"))
    except ValueError:
        raise ValueError(f"{value!r} is not WIDTHxHEIGHT") from None
    return width, height


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "models_dir": _text,
    "device": _text,
    "dtype": _text,
    "max_queue": _integer,
    "max_batch": _integer,
    "timeout_s": _number,
    "compile": _flag,
    "compile_sizes": lambda value: tuple(_size(item) for item in _items(value)),
    "batch_sizes": lambda value: tuple(_integer(item) for item in _items(value)),
    "compile_cache_dir": _text,
    "compile_text_encoders": _flag,
    "prompt_cache": _integer,
    "warmup": _flag,
    "warmup_negative_prompts": _flag,
    "encode_workers": _integer,
    "allow_download": _flag,
    "png_compress_level": _integer,
}

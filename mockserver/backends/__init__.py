"""Image backends: what turns a :class:`~mockserver.rules.Generation` into encoded images.

A backend is any object with ``generate(generation) -> list[bytes]``, returning
``generation.num_images`` images encoded in ``generation.output_format``. The backends of this
package are the ``BUILT_IN`` table below (one line each); another package adds one through the
``mockserver.backends`` entry-point group::

    [project.entry-points."mockserver.backends"]
    mybackend = "mypackage.backend:MyBackend"

The entry point names a factory called with the backend's options as keyword arguments; the
server also passes ``spec``, the loaded :class:`~mockserver.spec.ApiSpec`, for a backend that
reads per-model settings from the catalog (others ignore it with ``**options``).

A backend whose server workers share something started once (a Ray cluster and its Serve app)
gives its factory a ``server_scope(spec=..., **options)`` context manager: the CLI enters it
before it forks the workers and leaves it when they have stopped; what it yields is added to
the options the workers build the backend with.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Protocol, cast

from mockserver.rules import Generation

ENTRY_POINT_GROUP = "mockserver.backends"
# The backends of this package: name -> "module:factory", imported only when chosen.
BUILT_IN = {
    "placeholder": "mockserver.backends.placeholder:PlaceholderBackend",
    "diffusers": "mockserver.backends.diffusers.backend:DiffusersBackend",
    "ray": "mockserver.backends.ray.client:RayBackend",
    "replay": "mockserver.backends.replay:ReplayBackend",
}


class ImageBackend(Protocol):
    def generate(self, generation: Generation) -> list[bytes]: ...


class BackendError(LookupError):
    """The named backend is not installed or could not be built."""


class BackendUnavailable(Exception):
    """The backend cannot serve this generation now (model missing, busy, out of memory)."""

    def __init__(self, detail: str, retry_after: int = 5):
        super().__init__(detail)
        self.retry_after = retry_after

    def __reduce__(
        self,
    ) -> tuple[
        type[BackendUnavailable], tuple[str, int]
    ]:  # pickled whole (with retry_after) to cross a process, as in Ray
        return type(self), (str(self), self.retry_after)


def available_backends() -> list[str]:
    return sorted({*BUILT_IN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def backend_factory(name: str) -> Callable[..., ImageBackend]:
    """The factory registered under *name*: a built-in one, else a third party's entry point
    (which cannot take a built-in's name)."""
    if name in BUILT_IN:
        module, _, attribute = BUILT_IN[name].partition(":")
        return cast(Callable[..., ImageBackend], getattr(import_module(module), attribute))
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return cast(Callable[..., ImageBackend], ep.load())
    raise BackendError(
        f"no image backend named {name!r}; installed: {', '.join(available_backends()) or 'none'}"
    )


def load_backend(name: str, **options: Any) -> ImageBackend:
    """Build the backend registered under *name* with *options*."""
    return backend_factory(name)(**options)


def server_scope(name: str, **options: Any) -> AbstractContextManager[dict[str, Any]]:
    """The backend's ``server_scope`` (see above), or one that starts nothing."""
    scope = getattr(backend_factory(name), "server_scope", None)
    if scope is None:
        return nullcontext({})
    return cast(AbstractContextManager[dict[str, Any]], scope(**options))

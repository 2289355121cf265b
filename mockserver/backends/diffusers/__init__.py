"""The diffusers backend (see :mod:`.backend`): real images from local weights."""

from mockserver.backends.diffusers.backend import DiffusersBackend
from mockserver.backends.diffusers.options import DiffusersOptions
from mockserver.backends.diffusers.queue import batch_key

__all__ = ["DiffusersBackend", "DiffusersOptions", "batch_key"]

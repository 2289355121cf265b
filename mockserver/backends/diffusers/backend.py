"""The diffusers backend: real images from local weights, on a GPU when there is one.

    python -m mockserver --backend diffusers --models-dir /models

Its parts: ``options`` (what ``--backend-option`` may set), ``queue`` (admission and batching),
``pipelines`` (loading, compiling, caching), ``running`` (the device's one thread) and
``encoding`` (pixels to files, in a pool beside the next call). The server cannot tell that a
client has gone (granian's WSGI interface does not say), so each request's deadline is what
bounds wasted work. A generation that takes longer than ``timeout_s`` is answered with 503;
CUDA running out of memory is answered with 503 and the server keeps serving.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from mockserver.backends import BackendError, BackendUnavailable
from mockserver.backends.diffusers.encoding import encode
from mockserver.backends.diffusers.options import DiffusersOptions
from mockserver.backends.diffusers.pipelines import (
    CompileCache,
    Pipeline,
    Pipelines,
    PromptCache,
)
from mockserver.backends.diffusers.queue import (
    Job,
    Queue,
    Timings,
    batch_key,
    guidance_for,
    uses_cfg,
)
from mockserver.backends.diffusers.running import Runner
from mockserver.rules import Generation


class DiffusersBackend:
    """Options (``--models-dir`` sets the first; see :class:`DiffusersOptions`):

    models_dir, device ("cuda" when available, else "cpu"), dtype ("bfloat16" on CUDA,
    "float32" on CPU), max_queue (32 waiting requests: keep it below the server's threads, so
    that a thread is free to refuse at once), max_batch (8 images), timeout_s (120: a request's
    time limit, from its arrival), compile (False: torch.compile the denoiser, with CUDA graphs,
    and the VAE decoder), compile_sizes (["1024x1024"]: the image sizes that use the compiled
    parts; other sizes run eagerly, so that no request waits for a compile), batch_sizes (the
    batch sizes compiled for those sizes, default 1, 2, 4, ... up to max_batch; a batch is
    padded up to the next one), compile_cache_dir (None: where torch.compile's caches persist,
    so that a restart loads what the last start compiled), compile_text_encoders (False),
    prompt_cache (256: prompt encodings kept, per model, for prompts that come again; 0: off),
    warmup (on CUDA: one generation per model, compiled size and batch size at start-up),
    warmup_negative_prompts (True: warm up the guidance that a negative prompt switches on too),
    encode_workers (4), allow_download (False), png_compress_level (2: zlib-ng's level 1 makes
    files a third larger for little gain in time).

    *pipelines* (model id -> a ready pipeline) stands in for loading, in tests.
    """

    def __init__(self, *, spec: Any, pipelines: dict[str, Pipeline] | None = None, **options: Any):
        self.options = o = DiffusersOptions.parse(options)
        try:
            import torch
        except ImportError as exc:
            raise BackendError(
                "the diffusers backend needs torch, diffusers and transformers: "
                "pip install '.[gpu]'"
            ) from exc
        self.torch = torch
        self.recipes: dict[str, dict] = spec.pipelines
        self.timeout_s = o.timeout_s
        self.buckets = o.buckets
        self.models = Pipelines(torch, o, self.recipes)
        self.queue = Queue(max_queue=o.max_queue, max_batch=o.max_batch, timeout_s=o.timeout_s)
        self.runner = Runner(self.models, self.queue, self.buckets, PromptCache(o.prompt_cache))
        self._encoder = ThreadPoolExecutor(o.encode_workers, thread_name_prefix="encode")
        # The bands of one PNG deflate in parallel; a pool of its own, since an encoder thread
        # waits for them.
        self._deflater = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="deflate")
        self.compile_cache = (
            CompileCache(torch, o.compile_cache_dir) if o.compile and o.compile_cache_dir else None
        )
        if self.compile_cache is not None:
            self.compile_cache.load()
        loaded: Future[None] = Future()
        threading.Thread(
            target=self.runner.own_the_device,
            args=(loaded, pipelines or {}, self._encode_later),
            name="diffusers",
            daemon=True,
        ).start()
        loaded.result()  # raises what loading raised
        if o.warmup if o.warmup is not None else self.models.on_cuda:
            self.warm_up(negative_prompts=o.warmup_negative_prompts)

    # What tests and benchmarks read ---------------------------------------------------------

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        return self.models.loaded

    @property
    def unavailable(self) -> dict[str, str]:
        return self.models.unavailable

    @property
    def device(self) -> str:
        return self.models.device

    @property
    def dtype(self) -> Any:
        return self.models.dtype

    @property
    def compile_sizes(self) -> set[tuple[int, int]]:
        return self.models.compile_sizes

    @property
    def calls(self) -> int:
        return self.runner.calls

    @property
    def last_call_s(self) -> float:
        return self.runner.last_call_s

    @property
    def timings(self) -> Timings:
        return self.queue.timings

    # Serving -----------------------------------------------------------------------------

    def warm_up(self, *, negative_prompts: bool = True) -> None:
        """Generations through the device's thread, so that the first user pays no start-up
        cost: with ``compile``, compiling happens here. One per model, compiled size (1024x1024
        without compile), batch size, and with and without classifier-free guidance where a
        negative prompt switches it on (it doubles the denoiser's batch: another shape; leave
        it out with *negative_prompts* false when no request will carry one)."""
        for model_id in self.pipelines:
            recipe = self.recipes[model_id]
            negatives: list[str | None] = [None]
            with_negative = guidance_for(recipe, negative_prompt=True)
            flips = uses_cfg(with_negative) != uses_cfg(guidance_for(recipe, negative_prompt=False))
            if negative_prompts and flips:
                negatives.append("warm-up")
            for width, height in sorted(self.compile_sizes) or [(1024, 1024)]:
                for batch, negative in itertools.product(self.buckets, negatives):
                    generation = Generation(
                        prompt="warm-up",
                        model=model_id,
                        width=width,
                        height=height,
                        num_inference_steps=2,
                        negative_prompt=negative,
                        seed=0,
                        output_format="png",
                        num_images=batch,
                    )
                    # Compiling makes a warm-up call's time no guide to a request's.
                    job = self.queue.submit(
                        generation,
                        batch_key(generation, recipe),
                        timeout_s=math.inf,
                        measured=not self.models.parts,
                    )
                    job.future.result()  # no limit: compiling takes minutes
        if self.models.parts and self.compile_cache is not None:
            self.compile_cache.save()

    def generate(self, generation: Generation, *, timeout_s: float | None = None) -> list[bytes]:
        """The images, or BackendUnavailable (a 503). *timeout_s*, at most the backend's own,
        is a shorter limit the caller declares (a client that gives up sooner), so that its
        request is refused or dropped, not run, when it cannot be answered in time."""
        if generation.model not in self.pipelines:
            reason = self.unavailable.get(generation.model, "not configured")
            raise BackendUnavailable(f"{generation.model} is not available here: {reason}", 300)
        limit = self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)
        key = batch_key(generation, self.recipes[generation.model])
        job = self.queue.submit(generation, key, timeout_s=limit)
        try:
            return job.future.result(timeout=max(0.0, job.deadline - time.monotonic()))
        except (FutureTimeout, CancelledError):
            retry_after = self.queue.give_up(job)
            raise BackendUnavailable(
                f"the generation took longer than {limit:g} s", retry_after
            ) from None

    def _encode_later(self, job: Job, pixels: Any) -> None:
        """Encoding runs beside the next pipeline call; the job's future resolves when done."""
        self._encoder.submit(self._encode, job, pixels)

    def _encode(self, job: Job, pixels: Any) -> None:
        try:
            level = self.options.png_compress_level
            output_format = job.generation.output_format
            job.future.set_result(
                encode(pixels, output_format, png_level=level, deflater=self._deflater)
            )
        except Exception as exc:
            job.future.set_exception(exc)

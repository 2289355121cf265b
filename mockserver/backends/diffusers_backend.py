"""The diffusers backend: real images from local weights, on a GPU when there is one.

    python -m mockserver --backend diffusers --models-dir /models

Each model of the catalog is a folder ``<models-dir>/<model id>`` in the diffusers layout
(``model_index.json`` and its parts). The catalog's ``pipelines`` entry for the model says which
pipeline class the folder must hold, which scheduler to put in place of the folder's own, and
the guidance scale; nothing is downloaded unless ``allow_download`` is set. A model whose folder
is missing or does not load answers 503 ``model_unavailable``; the others serve.

One worker thread owns the device. Requests wait in a bounded FIFO queue (full: 503 with
Retry-After); the worker takes the oldest request and every other waiting request that can share
its pipeline call (same model, size, steps and guidance), up to ``max_batch`` images, and runs
them as one batch. Encoding the images happens in a thread pool, off the device's critical path:
the worker moves on to the next batch at once. Pixels become bytes on the device; PNGs are
deflated in bands on all cores (see ``png``), several times faster than Pillow. A generation
that takes longer than ``timeout_s`` is answered with 503; CUDA running out of memory is
answered with 503 and the server keeps serving.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

from mockserver.backends import BackendError, BackendUnavailable, png
from mockserver.rules import Generation

log = logging.getLogger("mockserver.diffusers")

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@dataclass
class _Job:
    generation: Generation
    future: Future = field(default_factory=Future)

    def batch_key(self, recipe: dict) -> tuple:
        g = self.generation
        guidance = guidance_for(recipe, negative_prompt=bool(g.negative_prompt))
        return (g.model, g.width, g.height, g.num_inference_steps, guidance)


def guidance_for(recipe: dict, *, negative_prompt: bool) -> float:
    """The guidance scale: the recipe's, raised to its ``negative_prompt_guidance_scale`` when
    a negative prompt must take effect (diffusers ignores negative prompts at guidance 1 or
    below)."""
    scale = float(recipe.get("guidance_scale", 0.0))
    if negative_prompt and not uses_cfg(scale):
        scale = float(recipe.get("negative_prompt_guidance_scale", scale))
    return scale


def uses_cfg(guidance_scale: float) -> bool:
    """Whether diffusers runs classifier-free guidance, which doubles the denoiser's batch."""
    return guidance_scale > 1.0


def _parse_size(size: str) -> tuple[int, int]:
    try:
        width, height = (int(side) for side in size.strip().lower().split("x"))
    except ValueError:
        raise BackendError(f"compile_sizes: {size!r} is not WIDTHxHEIGHT") from None
    return width, height


@dataclass
class _Parts:
    """The parts of a pipeline that compiling replaces."""

    denoiser: object
    decode: object

    @classmethod
    def of(cls, pipeline) -> _Parts:
        return cls(getattr(pipeline, _denoiser_name(pipeline)), pipeline.vae.decode)

    def install(self, pipeline) -> None:
        setattr(pipeline, _denoiser_name(pipeline), self.denoiser)
        pipeline.vae.decode = self.decode

    def installed_in(self, pipeline) -> bool:
        # The two parts are only ever installed together: the denoiser tells which set is in.
        return getattr(pipeline, _denoiser_name(pipeline)) is self.denoiser


def _denoiser_name(pipeline) -> str:
    return "unet" if hasattr(pipeline, "unet") else "transformer"


class DiffusersBackend:
    """See the module docstring. Options (``--models-dir`` sets the first):

    models_dir, device ("cuda" when available, else "cpu"), dtype ("bfloat16" on CUDA,
    "float32" on CPU), max_queue (64), max_batch (8 images), timeout_s (120), compile (False:
    torch.compile the denoiser, with CUDA graphs, and the VAE decoder), compile_sizes
    (["1024x1024"]: the image sizes that use the compiled parts; other sizes run eagerly, so
    that no request waits for a compile), warmup (on CUDA: one generation per model, compiled
    size and batch size at start-up), encode_workers (4),
    allow_download (False), png_compress_level (2: zlib-ng's level 1 makes files a third
    larger for little gain in time).
    """

    def __init__(
        self,
        *,
        spec,
        models_dir: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_queue: int = 64,
        max_batch: int = 8,
        timeout_s: float = 120.0,
        compile: bool = False,
        compile_sizes: str | list[str] | tuple[str, ...] = ("1024x1024",),
        warmup: bool | None = None,
        encode_workers: int = 4,
        allow_download: bool = False,
        png_compress_level: int = 2,
        pipelines: dict | None = None,
    ):
        try:
            import torch
        except ImportError as exc:
            raise BackendError(
                "the diffusers backend needs torch, diffusers and transformers: "
                "pip install '.[gpu]'"
            ) from exc
        self.torch = torch
        self.recipes = spec.pipelines
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        default_dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = getattr(torch, dtype or default_dtype)
        self.max_queue = max_queue
        self.max_batch = max_batch
        # A compiled pipeline is specialised to its shapes (and captures a CUDA graph for each),
        # and compiling takes minutes. So it serves only the sizes compiled at start-up, in
        # batches padded up to one of these two sizes; every other shape runs eagerly.
        self.buckets = sorted({1, max_batch})
        if isinstance(compile_sizes, str):  # --backend-option compile_sizes=1024x1024,768x1344
            compile_sizes = compile_sizes.split(",")
        self.compile_sizes = {_parse_size(size) for size in compile_sizes} if compile else set()
        self._parts: dict[str, tuple[_Parts, _Parts]] = {}  # model -> (eager, compiled)
        self.timeout_s = timeout_s
        self.png_compress_level = png_compress_level
        self.allow_download = allow_download
        self.pipelines: dict[str, object] = {}
        self.unavailable: dict[str, str] = {}
        self.calls = 0  # pipeline calls made: batching shows as fewer calls than images
        self.last_call_s = 0.0
        self._jobs: deque[_Job] = deque()
        self._wakeup = threading.Condition()
        self._encoder = ThreadPoolExecutor(encode_workers, thread_name_prefix="encode")
        # The bands of one PNG deflate in parallel; a pool of its own, since an encoder thread
        # waits for them.
        self._deflater = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="deflate")
        self._seconds_per_call = 1.0  # moving estimate, for Retry-After

        loaded: Future = Future()
        threading.Thread(
            target=self._own_the_device,
            args=(loaded, models_dir, pipelines or {}, compile),
            name="diffusers",
            daemon=True,
        ).start()
        loaded.result()  # raises what loading raised
        if warmup if warmup is not None else self.device.startswith("cuda"):
            self.warm_up()

    def _own_the_device(self, loaded: Future, models_dir, pipelines: dict, compile: bool):
        """The device's one thread: it loads the models, then serves them. On the CPU, torch's
        OpenMP thread pool belongs to the thread that calls it; two threads doing torch work
        make two pools that compete for the cores (measured on 2 CPUs: a tiny pipeline run from
        a second thread, after the first had run it, was 1.4x slower at 1024x1024 and 3x slower
        at 256x256)."""
        try:
            for model_id, recipe in self.recipes.items():
                if model_id in pipelines:
                    self._prepare(model_id, pipelines[model_id], recipe, compile)
                elif models_dir is not None:
                    self._load(model_id, recipe, Path(models_dir) / model_id, compile)
                else:
                    self.unavailable[model_id] = "no --models-dir given"
        except BaseException as exc:
            loaded.set_exception(exc)
            return
        loaded.set_result(None)
        self._work_forever()

    # Loading -----------------------------------------------------------------------------

    def _load(self, model_id: str, recipe: dict, folder: Path, compile: bool) -> None:
        from diffusers import DiffusionPipeline

        if not (folder / "model_index.json").exists() and not self.allow_download:
            self._unavailable(model_id, f"no weights in {folder}")
            return
        unet_weights = recipe.get("unet_weights")
        if unet_weights and not (folder / unet_weights).exists():
            self._unavailable(model_id, f"its distilled UNet {folder / unet_weights} is missing")
            return
        try:
            pipeline = DiffusionPipeline.from_pretrained(
                folder, dtype=self.dtype, local_files_only=not self.allow_download
            )
            if unet_weights:
                from safetensors.torch import load_file

                pipeline.unet.load_state_dict(load_file(folder / unet_weights), strict=True)
        except Exception as exc:  # a broken folder must not take the other models down
            reason = str(exc) if len(str(exc)) < 300 else str(exc)[:300] + "..."
            self._unavailable(model_id, f"its weights in {folder} do not load: {reason}")
            return
        self._prepare(model_id, pipeline, recipe, compile)

    def _unavailable(self, model_id: str, reason: str) -> None:
        self.unavailable[model_id] = reason
        log.error("%s: %s; it will answer 503", model_id, reason)

    def _prepare(self, model_id: str, pipeline, recipe: dict, compile: bool) -> None:
        import diffusers

        expected = recipe.get("class")
        if expected and type(pipeline).__name__ != expected:
            log.warning(
                "the catalog expects %s, the folder holds %s", expected, type(pipeline).__name__
            )
        scheduler = recipe.get("scheduler")
        if scheduler:
            overrides = {k: v for k, v in scheduler.items() if k != "class"}
            cls = getattr(diffusers, scheduler["class"])
            pipeline.scheduler = cls.from_config(pipeline.scheduler.config, **overrides)
        pipeline.to(self.device)  # loaded in self.dtype; a pipeline passed in comes ready
        pipeline.set_progress_bar_config(disable=True)
        if compile:
            self._parts[model_id] = self._compile(pipeline)
        self.pipelines[model_id] = pipeline

    def _compile(self, pipeline) -> tuple[_Parts, _Parts]:
        """The pipeline's eager parts and their compiled versions (compiled lazily, on the
        first call: during warm-up)."""
        torch = self.torch
        if hasattr(pipeline, "fuse_qkv_projections"):
            # One matmul for q, k and v instead of three: fewer, larger kernels.
            pipeline.fuse_qkv_projections()
        pipeline.vae.to(memory_format=torch.channels_last)
        eager = _Parts.of(pipeline)
        eager.denoiser.to(memory_format=torch.channels_last)
        compiled = _Parts(
            torch.compile(eager.denoiser, mode="reduce-overhead", fullgraph=True, dynamic=False),
            torch.compile(eager.decode, fullgraph=True, dynamic=False),
        )
        return eager, compiled

    def warm_up(self, *, negative_prompts: bool = True) -> None:
        """Generations through the worker thread, so that the first user pays no start-up cost:
        with ``compile``, compiling happens here. One per model, compiled size (1024x1024
        without compile), batch size, and with and without classifier-free guidance where a
        negative prompt switches it on (it doubles the denoiser's batch: another shape; leave
        it out with *negative_prompts* false when no request will carry one)."""
        for model_id in self.pipelines:
            recipe = self.recipes[model_id]
            negatives = [None]
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
                    self._submit(generation).future.result()  # no limit: compiling takes minutes

    # Serving -----------------------------------------------------------------------------

    def generate(self, generation: Generation) -> list[bytes]:
        if generation.model not in self.pipelines:
            reason = self.unavailable.get(generation.model, "not configured")
            raise BackendUnavailable(f"{generation.model} is not available here: {reason}", 300)
        job = self._submit(generation)
        try:
            return job.future.result(timeout=self.timeout_s)
        except FutureTimeout:
            job.future.cancel()  # the worker skips it if it has not started
            raise BackendUnavailable(
                f"the generation took longer than {self.timeout_s:g} s", self._retry_after()
            ) from None

    def _submit(self, generation: Generation) -> _Job:
        job = _Job(generation)
        with self._wakeup:
            if len(self._jobs) >= self.max_queue:
                raise BackendUnavailable(
                    f"{self.max_queue} generations are waiting; try again shortly",
                    self._retry_after(),
                )
            self._jobs.append(job)
            self._wakeup.notify()
        return job

    def _retry_after(self) -> int:
        return max(1, round(self._seconds_per_call * (1 + len(self._jobs) / self.max_batch)))

    def _take_batch(self) -> list[_Job]:
        """The oldest job and the waiting jobs that can share its pipeline call."""
        with self._wakeup:
            while not self._jobs:
                self._wakeup.wait()
            first = self._jobs.popleft()
            recipe = self.recipes[first.generation.model]
            key = first.batch_key(recipe)
            batch, images = [first], first.generation.num_images
            for job in list(self._jobs):
                if images + job.generation.num_images > self.max_batch:
                    continue
                if job.batch_key(self.recipes[job.generation.model]) == key:
                    self._jobs.remove(job)
                    batch.append(job)
                    images += job.generation.num_images
            return batch

    def _work_forever(self) -> None:
        while True:
            batch = [job for job in self._take_batch() if job.future.set_running_or_notify_cancel()]
            if batch:
                self._run(batch, self.recipes[batch[0].generation.model])

    def _run(self, batch: list[_Job], recipe: dict) -> None:
        torch = self.torch
        first = batch[0].generation
        prompts, negatives, seeds = [], [], []
        for job in batch:
            g = job.generation
            prompts += [g.prompt] * g.num_images
            negatives += [g.negative_prompt or ""] * g.num_images
            seeds += g.image_seeds()
        pipeline = self.pipelines[first.model]
        compiled = (first.width, first.height) in self.compile_sizes
        if first.model in self._parts:  # only the worker thread touches a pipeline
            eager, fast = self._parts[first.model]
            wanted = fast if compiled else eager
            if not wanted.installed_in(pipeline):
                wanted.install(pipeline)
        if compiled:
            size = next(b for b in self.buckets if b >= len(prompts))
            padding = size - len(prompts)
            prompts += prompts[-1:] * padding
            negatives += negatives[-1:] * padding
            seeds += seeds[-1:] * padding
        kwargs = dict(
            prompt=prompts,
            num_inference_steps=first.num_inference_steps,
            width=first.width,
            height=first.height,
            guidance_scale=guidance_for(recipe, negative_prompt=any(negatives)),
            # CPU generators: the same seed gives the same image on any device.
            generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
            output_type="pt",
        )
        if any(negatives):
            kwargs["negative_prompt"] = negatives
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                images = pipeline(**kwargs).images
                # To bytes on the device: a quarter of the float copy, and no per-pixel work
                # left for the CPU.
                images = (images * 255).round_().clamp_(0, 255).to(torch.uint8)
                images = images.permute(0, 2, 3, 1).cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            self._fail(batch, BackendUnavailable("the GPU ran out of memory", 5))
            return
        except Exception as exc:
            log.exception("generation failed")
            self._fail(batch, exc)
            return
        self.calls += 1
        elapsed = self.last_call_s = time.perf_counter() - started
        self._seconds_per_call = 0.8 * self._seconds_per_call + 0.2 * elapsed
        offset = 0
        for job in batch:
            count = job.generation.num_images
            pixels = images[offset : offset + count]
            offset += count
            # Encoding runs beside the next pipeline call; the future resolves when it is done.
            self._encoder.submit(self._encode, job, pixels)

    def _encode(self, job: _Job, pixels) -> None:
        from PIL import Image

        try:
            fmt = job.generation.output_format
            encoded = []
            for array in pixels:
                if fmt == "png":
                    data = png.encode_rgb(
                        array, level=self.png_compress_level, executor=self._deflater
                    )
                else:
                    out = io.BytesIO()
                    Image.fromarray(array).save(out, PIL_FORMATS[fmt])
                    data = out.getvalue()
                encoded.append(data)
            job.future.set_result(encoded)
        except Exception as exc:
            job.future.set_exception(exc)

    @staticmethod
    def _fail(batch: list[_Job], error: Exception) -> None:
        for job in batch:
            job.future.set_exception(error)

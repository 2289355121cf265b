"""The diffusers backend: real images from local weights, on a GPU when there is one.

    python -m mockserver --backend diffusers --models-dir /models

Each model of the catalog is a folder ``<models-dir>/<model id>`` in the diffusers layout
(``model_index.json`` and its parts). The catalog's ``pipelines`` entry for the model says which
pipeline class the folder must hold, which scheduler to put in place of the folder's own, and
the guidance scale; nothing is downloaded unless ``allow_download`` is set. A model whose folder
is missing or does not load answers 503 ``model_unavailable``; the others serve.

One worker thread owns the device. Requests wait in a FIFO queue; the worker takes the oldest
request and every other waiting request that can share its pipeline call (same model, size,
steps and guidance), up to ``max_batch`` images, and runs them as one batch. No device time goes
to a request nobody waits for: each carries a deadline (``timeout_s`` after it arrived), and one
whose deadline has passed leaves the queue unrun. Admission answers 503 at once, with
Retry-After, when ``max_queue`` requests are waiting or when the estimated wait (the measured
time per image of each waiting request's kind, summed over the queue ahead) would pass the time
limit; Retry-After is the estimated time for the queue to drain to where a request would be
admitted. The server cannot tell that a client has gone (granian's WSGI interface does not say),
so the deadline is what bounds wasted work. Encoding the images happens in a thread pool, off
the device's critical path: the worker moves on to the next batch at once. Pixels become bytes
on the device; PNGs are deflated in bands on all cores (see ``png``), several times faster than
Pillow. A generation that takes longer than ``timeout_s`` is answered with 503; CUDA running out
of memory is answered with 503 and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
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
    key: tuple  # what a batch shares: model, size, steps, guidance
    deadline: float  # time.monotonic(); past it, nobody waits for the result
    future: Future = field(default_factory=Future)
    measured: bool = True  # warm-up calls (compiles) must not teach the time estimates


def batch_key(generation: Generation, recipe: dict) -> tuple:
    guidance = guidance_for(recipe, negative_prompt=bool(generation.negative_prompt))
    g = generation
    return (g.model, g.width, g.height, g.num_inference_steps, guidance)


class _Timings:
    """Measured seconds per image, a moving average per kind of request (model, size, steps,
    guidance), and one per megapixel-step for a kind not seen yet. What the queue's estimates
    (admission, Retry-After) are made of; nothing is assumed before the first measurement."""

    SMOOTHING = 0.3

    def __init__(self):
        self.per_image: dict[tuple, float] = {}
        self.per_unit: float | None = None  # seconds per megapixel-step

    @staticmethod
    def _units(key: tuple) -> float:
        _, width, height, steps, guidance = key
        return width * height / 1e6 * max(steps, 1) * (2 if uses_cfg(guidance) else 1)

    def record(self, key: tuple, seconds: float, images: int) -> None:
        each = seconds / images
        old = self.per_image.get(key)
        self.per_image[key] = each if old is None else old + self.SMOOTHING * (each - old)
        unit = each / self._units(key)
        old = self.per_unit
        self.per_unit = unit if old is None else old + self.SMOOTHING * (unit - old)

    def seconds(self, key: tuple, images: int) -> float | None:
        """Estimated seconds for *images* images of kind *key*; None before any measurement."""
        if key in self.per_image:
            return self.per_image[key] * images
        if self.per_unit is None:
            return None
        return self.per_unit * self._units(key) * images


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


class _PromptCache:
    """Prompt encodings by (model, prompt), on the device; the least recently used go first.
    A repeated prompt skips the text encoders (two CLIP models on SDXL: about 30 ms a call
    on an H200, mostly kernel launches)."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple, tuple] = OrderedDict()

    def get(self, key: tuple):
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple, value: tuple) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _encodes_sdxl_prompts(pipeline) -> bool:
    """Whether the pipeline takes SDXL's precomputed prompt encodings (two CLIP encoders, a
    pooled embedding): the kind the prompt cache serves."""
    return type(pipeline).__name__.startswith("StableDiffusionXL") and hasattr(
        pipeline, "encode_prompt"
    )


COMPILE_ARTIFACTS = "torch-compile-artifacts.bin"


class DiffusersBackend:
    """See the module docstring. Options (``--models-dir`` sets the first):

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
    """

    def __init__(
        self,
        *,
        spec,
        models_dir: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_queue: int = 32,
        max_batch: int = 8,
        timeout_s: float = 120.0,
        compile: bool = False,
        compile_sizes: str | list[str] | tuple[str, ...] = ("1024x1024",),
        batch_sizes: str | list[int] | None = None,
        compile_cache_dir: str | Path | None = None,
        compile_text_encoders: bool = False,
        prompt_cache: int = 256,
        warmup: bool | None = None,
        warmup_negative_prompts: bool = True,
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
        # batches padded up to one of these sizes; every other shape runs eagerly. Padding 3
        # images up to 4 spends a quarter of the call on nothing, and padding 2 to 8 three
        # quarters: hence every power of two, not just 1 and max_batch.
        if isinstance(batch_sizes, str):
            batch_sizes = [int(size) for size in batch_sizes.split(",")]
        if batch_sizes is None:
            batch_sizes = [2**i for i in range(max_batch.bit_length()) if 2**i < max_batch]
        self.buckets = sorted({*batch_sizes, max_batch})
        if self.buckets[0] < 1 or self.buckets[-1] > max_batch:
            raise BackendError(f"batch_sizes must lie between 1 and max_batch ({max_batch})")
        if isinstance(compile_sizes, str):  # --backend-option compile_sizes=1024x1024,768x1344
            compile_sizes = compile_sizes.split(",")
        self.compile_sizes = {_parse_size(size) for size in compile_sizes} if compile else set()
        self._parts: dict[str, tuple[_Parts, _Parts]] = {}  # model -> (eager, compiled)
        self.timeout_s = timeout_s
        self.compile_cache_dir = Path(compile_cache_dir) if compile_cache_dir else None
        self.compile_text_encoders = compile_text_encoders
        self.prompt_cache = _PromptCache(prompt_cache)
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
        self.timings = _Timings()
        self._running: tuple[float, float] | None = None  # (started, estimated seconds)
        if compile and self.compile_cache_dir:
            self._load_compile_cache()

        loaded: Future = Future()
        threading.Thread(
            target=self._own_the_device,
            args=(loaded, models_dir, pipelines or {}, compile),
            name="diffusers",
            daemon=True,
        ).start()
        loaded.result()  # raises what loading raised
        if warmup if warmup is not None else self.device.startswith("cuda"):
            self.warm_up(negative_prompts=warmup_negative_prompts)

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
        if self.compile_text_encoders:
            # Any size of image uses them, in batches of the prompts not cached yet: one
            # compile with a symbolic batch, fused kernels (their cost is launches, not math).
            for name in ("text_encoder", "text_encoder_2"):
                if getattr(pipeline, name, None) is not None:
                    setattr(pipeline, name, torch.compile(getattr(pipeline, name), dynamic=True))
        return eager, compiled

    def _load_compile_cache(self) -> None:
        """Point inductor's on-disk caches (FX graphs, AOT autograd, Triton kernels) at
        ``compile_cache_dir`` and load what an earlier start saved there
        (``torch.compiler.save_cache_artifacts``), so that a restart skips the compiling."""
        folder = self.compile_cache_dir
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
        artifacts = folder / COMPILE_ARTIFACTS
        if artifacts.exists():
            try:
                self.torch.compiler.load_cache_artifacts(artifacts.read_bytes())
                log.info("loaded compile cache artifacts from %s", artifacts)
            except Exception:  # a stale or foreign file: compile afresh, and replace it
                log.warning("could not load %s; compiling afresh", artifacts, exc_info=True)
                artifacts.unlink()

    def _save_compile_cache(self) -> None:
        saved = self.torch.compiler.save_cache_artifacts()
        if saved is None:
            return
        data = saved[0]
        artifacts = self.compile_cache_dir / COMPILE_ARTIFACTS
        # A start that loaded everything it needed compiled little: keep the fuller file.
        if artifacts.exists() and artifacts.stat().st_size >= len(data):
            return
        partial = artifacts.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(artifacts)
        log.info("saved compile cache artifacts (%d bytes) to %s", len(data), artifacts)

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
                    # Compiling makes a warm-up call's time no guide to a request's.
                    job = self._submit(generation, timeout_s=math.inf, measured=not self._parts)
                    job.future.result()  # no limit: compiling takes minutes
        if self._parts and self.compile_cache_dir:
            self._save_compile_cache()

    # Serving -----------------------------------------------------------------------------

    def generate(self, generation: Generation, *, timeout_s: float | None = None) -> list[bytes]:
        """The images, or BackendUnavailable (a 503). *timeout_s*, at most the backend's own,
        is a shorter limit the caller declares (a client that gives up sooner), so that its
        request is refused or dropped, not run, when it cannot be answered in time."""
        if generation.model not in self.pipelines:
            reason = self.unavailable.get(generation.model, "not configured")
            raise BackendUnavailable(f"{generation.model} is not available here: {reason}", 300)
        limit = self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)
        job = self._submit(generation, timeout_s=limit)
        try:
            return job.future.result(timeout=max(0.0, job.deadline - time.monotonic()))
        except (FutureTimeout, CancelledError):
            with self._wakeup:
                if job.future.cancel():  # not started: it leaves the queue, unrun
                    self._remove(job)
                retry_after = self._retry_after(self._wait_s(self._jobs))
            raise BackendUnavailable(
                f"the generation took longer than {limit:g} s", retry_after
            ) from None

    def _submit(
        self, generation: Generation, *, timeout_s: float | None = None, measured: bool = True
    ) -> _Job:
        """Queue *generation*, or refuse it at once (503) when the queue is full or the wait
        would outlast its time limit."""
        key = batch_key(generation, self.recipes[generation.model])
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        job = _Job(generation, key, time.monotonic() + timeout_s, measured=measured)
        with self._wakeup:
            self._drop_expired()
            if len(self._jobs) >= self.max_queue:
                raise BackendUnavailable(
                    f"{len(self._jobs)} generations are waiting; try again shortly",
                    self._retry_after(self._admissible_in_s(job)),
                )
            own = self.timings.seconds(key, generation.num_images) or 0.0
            wait = self._wait_s(self._jobs)
            if wait is not None and wait + own > timeout_s:
                raise BackendUnavailable(
                    f"the queue would take about {wait + own:.1f} s, longer than the "
                    f"{timeout_s:g} s limit; try again shortly",
                    self._retry_after(self._admissible_in_s(job)),
                )
            self._jobs.append(job)
            self._wakeup.notify()
        return job

    def _remove(self, job: _Job) -> None:
        with contextlib.suppress(ValueError):  # the worker took it a moment ago
            self._jobs.remove(job)

    def _drop_expired(self) -> None:
        """Take out of the queue, unrun, the jobs whose caller gave up, and those that could
        not be done before their deadline even if they started now (their caller would have
        had a 503 by then). Called with the lock held."""
        now = time.monotonic()

        def hopeless(job: _Job) -> bool:
            run_s = self.timings.seconds(job.key, job.generation.num_images) or 0.0
            return job.deadline <= now + run_s or job.future.cancelled()

        for job in [job for job in self._jobs if hopeless(job)]:
            self._jobs.remove(job)
            if job.future.cancel():  # wakes a caller still waiting: CancelledError, a 503
                log.info("dropped a %s generation past its deadline, unrun", job.generation.model)

    def _work_s(self, jobs) -> float | None:
        """Estimated device seconds for *jobs*; None while a kind has no estimate. Batching
        makes it less when many jobs of one kind wait: the per-image figures, measured on the
        batches that ran, carry that."""
        total = 0.0
        for job in jobs:
            seconds = self.timings.seconds(job.key, job.generation.num_images)
            if seconds is None:
                return None
            total += seconds
        return total

    def _wait_s(self, jobs) -> float | None:
        """Estimated seconds until the device is through the call it is running and *jobs*."""
        work = self._work_s(jobs)
        if work is None or self._running is None:
            return work
        started, estimate = self._running
        return work + max(0.0, started + estimate - time.monotonic())

    def _admissible_in_s(self, job: _Job) -> float | None:
        """Estimated seconds until *job* would be admitted: until fewer than max_queue jobs
        wait and the rest of the queue, and the job, would be through within its time limit."""
        own = self.timings.seconds(job.key, job.generation.num_images) or 0.0
        limit = job.deadline - time.monotonic()
        jobs = list(self._jobs)
        for served in range(len(jobs) + 1):
            rest = self._work_s(jobs[served:])
            if rest is None:
                return None
            if len(jobs) - served < self.max_queue and rest + own <= limit:
                return self._wait_s(jobs[:served])
        return self._wait_s(jobs)

    @staticmethod
    def _retry_after(seconds: float | None) -> int:
        return 1 if seconds is None else max(1, math.ceil(seconds))

    def _take_batch(self) -> list[_Job]:
        """The oldest job and the waiting jobs that can share its pipeline call, all still
        awaited; they are marked running, so a caller can no longer cancel them."""
        with self._wakeup:
            while True:
                self._drop_expired()
                if self._jobs:
                    break
                self._wakeup.wait()
            first = self._jobs.popleft()
            batch, images = [first], first.generation.num_images
            for job in list(self._jobs):
                if images + job.generation.num_images > self.max_batch:
                    continue
                if job.key == first.key:
                    self._jobs.remove(job)
                    batch.append(job)
                    images += job.generation.num_images
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if batch:
                estimate = self.timings.seconds(first.key, images)
                self._running = (time.monotonic(), estimate or 0.0)
            return batch

    def _work_forever(self) -> None:
        while True:
            batch = self._take_batch()
            if batch:
                try:
                    self._run(batch, self.recipes[batch[0].generation.model])
                finally:
                    with self._wakeup:
                        self._running = None

    def _run(self, batch: list[_Job], recipe: dict) -> None:
        torch = self.torch
        first = batch[0].generation
        prompts, negatives, seeds = [], [], []
        for job in batch:
            g = job.generation
            prompts += [g.prompt] * g.num_images
            negatives += [g.negative_prompt or ""] * g.num_images
            seeds += g.image_seeds()
        real = len(prompts)
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
        guidance = guidance_for(recipe, negative_prompt=any(negatives))
        kwargs = dict(
            num_inference_steps=first.num_inference_steps,
            width=first.width,
            height=first.height,
            guidance_scale=guidance,
            # CPU generators: the same seed gives the same image on any device.
            generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
            output_type="pt",
        )
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                kwargs.update(self._prompt_arguments(first.model, pipeline, prompts, negatives))
                images = pipeline(**kwargs).images
                # To bytes on the device: a quarter of the float copy, and no per-pixel work
                # left for the CPU.
                images = (images * 255).round_().clamp_(0, 255).to(torch.uint8)
                images = images[:real].permute(0, 2, 3, 1).cpu().numpy()
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
        if all(job.measured for job in batch):
            with self._wakeup:
                self.timings.record(batch[0].key, elapsed, real)
        offset = 0
        for job in batch:
            count = job.generation.num_images
            pixels = images[offset : offset + count]
            offset += count
            # Encoding runs beside the next pipeline call; the future resolves when it is done.
            self._encoder.submit(self._encode, job, pixels)

    def _prompt_arguments(self, model: str, pipeline, prompts: list, negatives: list) -> dict:
        """The pipeline's prompt arguments: the texts, or their encodings where the prompt
        cache serves this pipeline."""
        if not (self.prompt_cache.size and _encodes_sdxl_prompts(pipeline)):
            arguments = {"prompt": prompts}
            if any(negatives):
                arguments["negative_prompt"] = negatives
            return arguments
        embeds, pooled = self._encodings(model, pipeline, prompts)
        arguments = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if any(negatives):
            embeds, pooled = self._encodings(model, pipeline, negatives)
            arguments.update(negative_prompt_embeds=embeds, negative_pooled_prompt_embeds=pooled)
        return arguments

    def _encodings(self, model: str, pipeline, texts: list) -> tuple:
        """SDXL's prompt encodings of *texts*, stacked; those not cached are encoded in one
        call and cached."""
        torch = self.torch
        found = {text: self.prompt_cache.get((model, text)) for text in dict.fromkeys(texts)}
        missing = [text for text, value in found.items() if value is None]
        if missing:
            embeds, _, pooled, _ = pipeline.encode_prompt(
                missing,
                device=pipeline._execution_device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=False,
            )
            for text, embed, pool in zip(missing, embeds, pooled, strict=True):
                # Copies: a compiled encoder's outputs may live in memory it reuses.
                found[text] = (embed.clone(), pool.clone())
                self.prompt_cache.put((model, text), found[text])
        return (
            torch.stack([found[text][0] for text in texts]),
            torch.stack([found[text][1] for text in texts]),
        )

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

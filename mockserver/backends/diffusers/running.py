"""The device's one thread: it loads the models, then runs batch after batch from the queue,
and hands each batch's pixels to the encoders without waiting for them.

On the CPU, torch's OpenMP thread pool belongs to the thread that calls it; two threads doing
torch work make two pools that compete for the cores (measured on 2 CPUs: a tiny pipeline run
from a second thread, after the first had run it, was 1.4x slower at 1024x1024 and 3x slower
at 256x256). Hence one thread for loading and running alike."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from mockserver.backends import BackendUnavailable
from mockserver.backends.diffusers.pipelines import (
    Pipeline,
    Pipelines,
    PromptCache,
    encodes_sdxl_prompts,
)
from mockserver.backends.diffusers.queue import Job, Queue, guidance_for

log = logging.getLogger("mockserver.diffusers")

Encode = Callable[[Job, Any], None]  # a job and its pixels, to be encoded off this thread


class Runner:
    def __init__(
        self, pipelines: Pipelines, queue: Queue, buckets: list[int], prompt_cache: PromptCache
    ):
        self.pipelines, self.queue, self.buckets = pipelines, queue, buckets
        self.prompt_cache = prompt_cache
        self.torch = pipelines.torch
        self.calls = 0  # pipeline calls made: batching shows as fewer calls than images
        self.last_call_s = 0.0

    def own_the_device(
        self, loaded: Future[None], given: dict[str, Pipeline], encode: Encode
    ) -> None:
        """The thread's body: loads (*loaded* tells the outcome), then serves forever."""
        try:
            self.pipelines.load_all(given)
        except BaseException as exc:
            loaded.set_exception(exc)
            return
        loaded.set_result(None)
        while True:
            batch = self.queue.take_batch()
            if not batch:
                continue
            seconds = None
            try:
                seconds = self._run(batch, encode)
            finally:
                self.queue.finished(batch, seconds)

    def _run(self, batch: list[Job], encode: Encode) -> float | None:
        """Runs *batch* as one pipeline call; its seconds, or None where it failed (each job
        then fails: 503 for an out-of-memory device)."""
        torch = self.torch
        first = batch[0].generation
        prompts: list[str] = []
        negatives: list[str] = []
        seeds: list[int] = []
        for job in batch:
            g = job.generation
            prompts += [g.prompt] * g.num_images
            negatives += [g.negative_prompt or ""] * g.num_images
            seeds += g.image_seeds()
        real = len(prompts)
        compiled = (first.width, first.height) in self.pipelines.compile_sizes
        pipeline = self.pipelines.use(first.model, compiled=compiled)
        if compiled:
            size = next(b for b in self.buckets if b >= len(prompts))
            padding = size - len(prompts)
            prompts += prompts[-1:] * padding
            negatives += negatives[-1:] * padding
            seeds += seeds[-1:] * padding
        recipe = self.pipelines.recipes[first.model]
        kwargs: dict[str, Any] = dict(
            num_inference_steps=first.num_inference_steps,
            width=first.width,
            height=first.height,
            guidance_scale=guidance_for(recipe, negative_prompt=any(negatives)),
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
            _fail(batch, BackendUnavailable("the GPU ran out of memory", 5))
            return None
        except Exception as exc:
            log.exception("generation failed")
            _fail(batch, exc)
            return None
        self.calls += 1
        elapsed = self.last_call_s = time.perf_counter() - started
        offset = 0
        for job in batch:
            count = job.generation.num_images
            encode(job, images[offset : offset + count])
            offset += count
        return elapsed

    def _prompt_arguments(
        self, model: str, pipeline: Pipeline, prompts: list[str], negatives: list[str]
    ) -> dict[str, Any]:
        """The pipeline's prompt arguments: the texts, or their encodings where the prompt
        cache serves this pipeline."""
        if not (self.prompt_cache.size and encodes_sdxl_prompts(pipeline)):
            arguments: dict[str, Any] = {"prompt": prompts}
            if any(negatives):
                arguments["negative_prompt"] = negatives
            return arguments
        embeds, pooled = self._encodings(model, pipeline, prompts)
        arguments = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if any(negatives):
            embeds, pooled = self._encodings(model, pipeline, negatives)
            arguments.update(negative_prompt_embeds=embeds, negative_pooled_prompt_embeds=pooled)
        return arguments

    def _encodings(self, model: str, pipeline: Pipeline, texts: list[str]) -> tuple[Any, Any]:
        """SDXL's prompt encodings of *texts*, stacked; those not cached are encoded in one
        call and cached."""
        torch = self.torch
        found: dict[str, tuple[Any, Any]] = {}
        missing = []
        for text in dict.fromkeys(texts):
            cached = self.prompt_cache.get((model, text))
            if cached is None:
                missing.append(text)
            else:
                found[text] = cached
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


def _fail(batch: list[Job], error: BaseException) -> None:
    for job in batch:
        job.future.set_exception(error)

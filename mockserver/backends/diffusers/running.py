"""One pipeline call for a batch of jobs: the compiled or the eager parts by image size, the
batch padded up to a compiled batch size, the prompts' encodings from the cache where it
serves, and the pixels made bytes on the device. Run on the device's thread only."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from mockserver.backends import BackendUnavailable
from mockserver.backends.diffusers.pipelines import Parts, Pipeline
from mockserver.backends.diffusers.queue import Job, guidance_for

PromptEncoding = tuple[Any, Any]  # (prompt embeddings, pooled embeddings), tensors


class PromptCache:
    """Prompt encodings by (model, prompt), on the device; the least recently used go first.
    A repeated prompt skips the text encoders (two CLIP models on SDXL: about 30 ms a call
    on an H200, mostly kernel launches)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], PromptEncoding] = OrderedDict()

    def get(self, key: tuple[str, str]) -> PromptEncoding | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple[str, str], value: PromptEncoding) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def encodes_sdxl_prompts(pipeline: Pipeline) -> bool:
    """Whether the pipeline takes SDXL's precomputed prompt encodings (two CLIP encoders, a
    pooled embedding): the kind the prompt cache serves."""
    return type(pipeline).__name__.startswith("StableDiffusionXL") and hasattr(
        pipeline, "encode_prompt"
    )


class Runner:
    def __init__(
        self,
        torch: Any,
        *,
        compile_sizes: set[tuple[int, int]],
        buckets: tuple[int, ...],
        prompt_cache: int,
    ) -> None:
        self.torch = torch
        self.compile_sizes = compile_sizes
        self.buckets = buckets
        self.prompt_cache = PromptCache(prompt_cache)
        self.pipelines: dict[str, Pipeline] = {}
        self.parts: dict[str, tuple[Parts, Parts]] = {}  # model -> (eager, compiled)

    def run(self, batch: list[Job], recipe: dict[str, Any]) -> tuple[Any, float]:
        """The batch's images (a uint8 array, NHWC, one per image asked) and the call's
        seconds. CUDA out of memory is BackendUnavailable; the device stays usable."""
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
        pipeline = self.pipelines[first.model]
        compiled = (first.width, first.height) in self.compile_sizes
        if first.model in self.parts:
            eager, fast = self.parts[first.model]
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
        kwargs: dict[str, Any] = dict(
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
            raise BackendUnavailable("the GPU ran out of memory", 5) from None
        return images, time.perf_counter() - started

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

    def _encodings(self, model: str, pipeline: Pipeline, texts: list[str]) -> PromptEncoding:
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
                encoding = (embed.clone(), pool.clone())
                found[text] = encoding
                self.prompt_cache.put((model, text), encoding)
        ready = [found[text] for text in texts]
        return (
            torch.stack([encoding[0] for encoding in ready if encoding is not None]),
            torch.stack([encoding[1] for encoding in ready if encoding is not None]),
        )

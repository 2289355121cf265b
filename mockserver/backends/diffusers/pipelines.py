"""The device's pipelines: loading them from ``--models-dir``, putting the catalog's scheduler
in, compiling their parts, and the caches that spare work across calls and restarts (the
compile cache on disk, prompt encodings in memory).

Each model is a folder ``<models-dir>/<model id>`` in the diffusers layout; the catalog's recipe
says which pipeline class it must hold, which scheduler replaces the folder's own, and an
optional distilled UNet. A folder that is missing or does not load makes its model
unavailable (503), never the others."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mockserver.backends.diffusers.options import DiffusersOptions

log = logging.getLogger("mockserver.diffusers")

COMPILE_ARTIFACTS = "torch-compile-artifacts.bin"
Pipeline = Any  # a diffusers pipeline: the library's classes carry no usable types


def denoiser_name(pipeline: Pipeline) -> str:
    return "unet" if hasattr(pipeline, "unet") else "transformer"


@dataclass
class Parts:
    """The parts of a pipeline that compiling replaces."""

    denoiser: Any
    decode: Any

    @classmethod
    def of(cls, pipeline: Pipeline) -> Parts:
        return cls(getattr(pipeline, denoiser_name(pipeline)), pipeline.vae.decode)

    def install(self, pipeline: Pipeline) -> None:
        setattr(pipeline, denoiser_name(pipeline), self.denoiser)
        pipeline.vae.decode = self.decode

    def installed_in(self, pipeline: Pipeline) -> bool:
        # The two parts are only ever installed together: the denoiser tells which set is in.
        return getattr(pipeline, denoiser_name(pipeline)) is self.denoiser


class Pipelines:
    """The loaded pipelines by model id, why the others are unavailable, and each compiled
    model's (eager, compiled) parts. Only the device's thread touches a pipeline."""

    def __init__(self, torch: Any, options: DiffusersOptions, recipes: dict[str, dict]):
        self.torch, self.options, self.recipes = torch, options, recipes
        self.device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = getattr(torch, options.dtype or ("bfloat16" if self.on_cuda else "float32"))
        self.loaded: dict[str, Pipeline] = {}
        self.unavailable: dict[str, str] = {}
        self.parts: dict[str, tuple[Parts, Parts]] = {}
        self.compile_sizes = set(options.compile_sizes) if options.compile else set()

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def load_all(self, given: dict[str, Pipeline]) -> None:
        """Every model of the catalog: from *given* (ready pipelines), else its folder."""
        models_dir = self.options.models_dir
        for model_id, recipe in self.recipes.items():
            if model_id in given:
                self._prepare(model_id, given[model_id], recipe)
            elif models_dir is not None:
                self._load(model_id, recipe, Path(models_dir) / model_id)
            else:
                self.unavailable[model_id] = "no --models-dir given"

    def use(self, model_id: str, *, compiled: bool) -> Pipeline:
        """The model's pipeline with its compiled or eager parts in."""
        pipeline = self.loaded[model_id]
        if model_id in self.parts:
            eager, fast = self.parts[model_id]
            wanted = fast if compiled else eager
            if not wanted.installed_in(pipeline):
                wanted.install(pipeline)
        return pipeline

    def _load(self, model_id: str, recipe: dict, folder: Path) -> None:
        from diffusers import DiffusionPipeline

        allow_download = self.options.allow_download
        if not (folder / "model_index.json").exists() and not allow_download:
            self._unavailable(model_id, f"no weights in {folder}")
            return
        unet_weights = recipe.get("unet_weights")
        if unet_weights and not (folder / unet_weights).exists():
            self._unavailable(model_id, f"its distilled UNet {folder / unet_weights} is missing")
            return
        try:
            pipeline = DiffusionPipeline.from_pretrained(
                folder, dtype=self.dtype, local_files_only=not allow_download
            )
            if unet_weights:
                from safetensors.torch import load_file

                pipeline.unet.load_state_dict(load_file(folder / unet_weights), strict=True)
        except Exception as exc:  # a broken folder must not take the other models down
            reason = str(exc) if len(str(exc)) < 300 else str(exc)[:300] + "..."
            self._unavailable(model_id, f"its weights in {folder} do not load: {reason}")
            return
        self._prepare(model_id, pipeline, recipe)

    def _unavailable(self, model_id: str, reason: str) -> None:
        self.unavailable[model_id] = reason
        log.error("%s: %s; it will answer 503", model_id, reason)

    def _prepare(self, model_id: str, pipeline: Pipeline, recipe: dict) -> None:
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
        if self.options.compile:
            self.parts[model_id] = self._compile(pipeline)
        self.loaded[model_id] = pipeline

    def _compile(self, pipeline: Pipeline) -> tuple[Parts, Parts]:
        """The pipeline's eager parts and their compiled versions (compiled lazily, on the
        first call: during warm-up). A compiled pipeline is specialised to its shapes (and
        captures a CUDA graph for each), and compiling takes minutes: so it serves only the
        sizes compiled at start-up, in batches padded up to a bucket; every other shape runs
        eagerly."""
        torch = self.torch
        if hasattr(pipeline, "fuse_qkv_projections"):
            # One matmul for q, k and v instead of three: fewer, larger kernels.
            pipeline.fuse_qkv_projections()
        pipeline.vae.to(memory_format=torch.channels_last)
        eager = Parts.of(pipeline)
        eager.denoiser.to(memory_format=torch.channels_last)
        compiled = Parts(
            torch.compile(eager.denoiser, mode="reduce-overhead", fullgraph=True, dynamic=False),
            torch.compile(eager.decode, fullgraph=True, dynamic=False),
        )
        if self.options.compile_text_encoders:
            # Any size of image uses them, in batches of the prompts not cached yet: one
            # compile with a symbolic batch, fused kernels (their cost is launches, not math).
            for name in ("text_encoder", "text_encoder_2"):
                if getattr(pipeline, name, None) is not None:
                    setattr(pipeline, name, torch.compile(getattr(pipeline, name), dynamic=True))
        return eager, compiled


class CompileCache:
    """Inductor's on-disk caches (FX graphs, AOT autograd, Triton kernels) in *folder*, and the
    artifacts ``torch.compiler.save_cache_artifacts`` makes, so that a restart loads what the
    last start compiled."""

    def __init__(self, torch: Any, folder: str | Path):
        self.torch, self.folder = torch, Path(folder)

    def load(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(self.folder / "inductor")
        artifacts = self.folder / COMPILE_ARTIFACTS
        if artifacts.exists():
            try:
                self.torch.compiler.load_cache_artifacts(artifacts.read_bytes())
                log.info("loaded compile cache artifacts from %s", artifacts)
            except Exception:  # a stale or foreign file: compile afresh, and replace it
                log.warning("could not load %s; compiling afresh", artifacts, exc_info=True)
                artifacts.unlink()

    def save(self) -> None:
        saved = self.torch.compiler.save_cache_artifacts()
        if saved is None:
            return
        data: bytes = saved[0]
        artifacts = self.folder / COMPILE_ARTIFACTS
        # A start that loaded everything it needed compiled little: keep the fuller file.
        if artifacts.exists() and artifacts.stat().st_size >= len(data):
            return
        partial = artifacts.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(artifacts)
        log.info("saved compile cache artifacts (%d bytes) to %s", len(data), artifacts)


class PromptCache:
    """Prompt encodings by (model, prompt), on the device; the least recently used go first.
    A repeated prompt skips the text encoders (two CLIP models on SDXL: about 30 ms a call
    on an H200, mostly kernel launches)."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> tuple[Any, Any] | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple[str, str], value: tuple[Any, Any]) -> None:
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

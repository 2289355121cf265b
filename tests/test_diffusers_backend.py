"""The diffusers backend on the CPU, with tiny random-weight pipelines loaded from disk by the
real loading code, and the contract suite run against a server that uses it."""

from __future__ import annotations

import io
import shutil
import threading
import time

import pytest
from PIL import Image

pytest.importorskip("diffusers", reason="the diffusers backend needs pip install '.[gpu]'")

import torch  # noqa: E402

from mockserver.backends import BackendUnavailable  # noqa: E402
from mockserver.backends.diffusers_backend import DiffusersBackend  # noqa: E402
from tests.conftest import RunningServer, assert_contract_suite_passes, make_generation  # noqa: E402


@pytest.fixture(scope="session")
def backend(spec, models_dir):
    return DiffusersBackend(spec=spec, models_dir=models_dir, warmup=False)


def generation(**overrides):
    return make_generation(
        **{"width": 256, "height": 256, "num_inference_steps": 4, "seed": 7, **overrides}
    )


def test_makes_decodable_images_of_the_asked_size_and_format(backend):
    for fmt, pil in [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")]:
        [data] = backend.generate(generation(output_format=fmt, width=320, height=192))
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size) == (pil, (320, 192))


def _pixels(data: bytes):
    import numpy

    return numpy.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=numpy.int16)


def test_the_seed_reproduces_the_image(backend):
    first = backend.generate(generation(seed=11))
    assert backend.generate(generation(seed=11)) == first
    assert backend.generate(generation(seed=12)) != first
    # Image i uses seed + i. In a batch the arithmetic differs in the last bits, so the same
    # seed gives the same picture to within a step of 8-bit rounding, not the same bytes.
    two = backend.generate(generation(seed=11, num_images=2))
    assert abs(_pixels(two[0]) - _pixels(first[0])).max() <= 2
    assert abs(_pixels(two[1]) - _pixels(first[0])).max() > 10


def test_the_catalog_sets_the_scheduler(backend, spec):
    scheduler = backend.pipelines["sdxl-lightning"].scheduler
    assert type(scheduler).__name__ == spec.pipelines["sdxl-lightning"]["scheduler"]["class"]
    assert scheduler.config.timestep_spacing == "trailing"
    assert backend.device == "cpu" and backend.dtype == torch.float32


def test_a_distilled_unet_is_loaded_over_the_folders_own(backend, spec, models_dir):
    from safetensors.torch import load_file

    weights = spec.pipelines["sdxl-lightning"]["unet_weights"]
    distilled = load_file(models_dir / "sdxl-lightning" / weights)
    lightning = backend.pipelines["sdxl-lightning"].unet.state_dict()
    base = backend.pipelines["sdxl"].unet.state_dict()
    assert distilled.keys() == lightning.keys()
    assert all(torch.equal(distilled[name], lightning[name]) for name in distilled)
    assert not all(torch.equal(distilled[name], base[name]) for name in distilled)


def test_without_its_distilled_unet_a_model_is_unavailable(spec, tmp_path, models_dir):
    shutil.copytree(models_dir / "sdxl", tmp_path / "sdxl-lightning", symlinks=True)
    (tmp_path / "sdxl").mkdir()
    (tmp_path / "sdxl" / "model_index.json").write_text("{not json")
    partial = DiffusersBackend(spec=spec, models_dir=tmp_path, warmup=False)
    with pytest.raises(BackendUnavailable, match="distilled UNet .* is missing"):
        partial.generate(generation(model="sdxl-lightning"))
    with pytest.raises(BackendUnavailable, match="do not load"):
        partial.generate(generation(model="sdxl"))


def test_a_missing_model_is_unavailable_not_a_crash(spec, tmp_path, models_dir):
    shutil.copytree(models_dir / "sdxl", tmp_path / "sdxl", symlinks=True)
    partial = DiffusersBackend(spec=spec, models_dir=tmp_path, warmup=False)
    assert len(partial.generate(generation(model="sdxl"))) == 1
    with pytest.raises(BackendUnavailable, match="flux-schnell is not available here"):
        partial.generate(generation(model="flux-schnell"))


class FakeVae(torch.nn.Module):
    def decode(self, latents):
        return latents


def is_compiled(part) -> bool:
    return isinstance(part, torch._dynamo.eval_frame.OptimizedModule) or hasattr(
        part, "_torchdynamo_orig_callable"
    )


class FakePipeline:
    """Stands in for a pipeline: records its calls (and whether its parts were the compiled
    ones), can be slow or fail. Nothing in it is ever run through torch.compile."""

    def __init__(self, delay=0.0, error=None):
        from diffusers import EulerDiscreteScheduler

        self.delay, self.error, self.calls = delay, error, []
        self.scheduler = EulerDiscreteScheduler()
        self.unet, self.vae = torch.nn.Linear(1, 1), FakeVae()

    def __call__(self, **kwargs):
        compiled = {is_compiled(self.unet), is_compiled(self.vae.decode)}
        assert len(compiled) == 1, "the denoiser and the decoder come from different variants"
        self.calls.append({**kwargs, "compiled": compiled.pop()})
        time.sleep(self.delay)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        count = len(kwargs["prompt"])  # output_type="pt": a batch of CHW images in [0, 1]
        return type("Out", (), {"images": torch.zeros(count, 3, kwargs["height"], kwargs["width"])})

    def to(self, *args):
        return self

    def set_progress_bar_config(self, **kwargs):
        pass


def fake_backend(spec, pipeline, **options):
    fakes = dict.fromkeys(spec.models, pipeline)
    return DiffusersBackend(spec=spec, pipelines=fakes, **{"warmup": False, **options})


def test_compiled_parts_serve_only_the_compiled_sizes_in_padded_batches(spec):
    pipeline = FakePipeline()
    backend = fake_backend(spec, pipeline, compile=True, compile_sizes="256x256", max_batch=4)
    backend.generate(generation(width=256, height=256, num_images=3))
    backend.generate(generation(width=512, height=256, num_images=3))
    backend.generate(generation(width=256, height=256, num_images=1))
    compiled, eager, single = pipeline.calls
    assert compiled["compiled"] and len(compiled["prompt"]) == 4  # padded up to max_batch
    assert not eager["compiled"] and len(eager["prompt"]) == 3  # any shape: no padding
    assert single["compiled"] and len(single["prompt"]) == 1
    assert len(backend.generate(generation(width=256, height=256, num_images=3))) == 3


def test_without_compile_nothing_is_compiled_or_padded(spec):
    pipeline = FakePipeline()
    backend = fake_backend(spec, pipeline, max_batch=4)
    backend.generate(generation(width=1024, height=1024, num_images=3))
    [call] = pipeline.calls
    assert not call["compiled"] and len(call["prompt"]) == 3


def test_warm_up_meets_every_compiled_shape_including_guidance_from_a_negative_prompt(spec):
    fakes = {model: FakePipeline() for model in spec.models}
    DiffusersBackend(
        spec=spec, pipelines=fakes, compile=True, compile_sizes=["256x256"], max_batch=4,
        warmup=True,
    )  # fmt: skip

    def shapes(model):
        return {
            (call["width"], call["height"], len(call["prompt"]), call["guidance_scale"] > 1)
            for call in fakes[model].calls
        }

    # sdxl-lightning runs without guidance, but a negative prompt turns it on: both are warmed.
    assert shapes("sdxl-lightning") == {(256, 256, b, cfg) for b in (1, 4) for cfg in (0, 1)}
    assert shapes("sdxl") == {(256, 256, b, True) for b in (1, 4)}  # guidance either way
    assert all(call["compiled"] for fake in fakes.values() for call in fake.calls)

    fakes = {model: FakePipeline() for model in spec.models}
    backend = DiffusersBackend(
        spec=spec, pipelines=fakes, compile=True, compile_sizes=["256x256"], max_batch=4
    )
    backend.warm_up(negative_prompts=False)
    assert shapes("sdxl-lightning") == {(256, 256, b, False) for b in (1, 4)}


def test_compatible_concurrent_requests_share_one_pipeline_call(spec):
    """Six requests at once, two kinds (3 steps x5, 2 steps x1). While the first call runs (the
    fake pipeline takes 0.3 s) the rest queue up, and each kind then needs one call."""
    pipeline = FakePipeline(delay=0.3)
    backend = fake_backend(spec, pipeline)
    results, barrier = [], threading.Barrier(6)

    def ask(seed, steps):
        barrier.wait()
        results.append(backend.generate(generation(seed=seed, num_inference_steps=steps)))

    threads = [threading.Thread(target=ask, args=(s, 3 if s < 5 else 2)) for s in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    assert 2 <= backend.calls <= 3
    assert sorted(len(call["prompt"]) for call in pipeline.calls)[-1] >= 4


def test_a_negative_prompt_turns_guidance_on_where_the_recipe_has_none(spec):
    pipeline = FakePipeline()
    backend = fake_backend(spec, pipeline)
    backend.generate(generation(model="sdxl-lightning"))
    backend.generate(generation(model="sdxl-lightning", negative_prompt="blur"))
    backend.generate(generation(model="sdxl", negative_prompt="blur"))
    plain, negative, sdxl = pipeline.calls
    assert plain["guidance_scale"] == 0.0 and "negative_prompt" not in plain
    recipe = spec.pipelines["sdxl-lightning"]
    assert negative["guidance_scale"] == recipe["negative_prompt_guidance_scale"] > 1
    assert negative["negative_prompt"] == ["blur"]
    assert sdxl["guidance_scale"] == spec.pipelines["sdxl"]["guidance_scale"]


def test_out_of_memory_is_503_and_the_backend_keeps_serving(spec):
    backend = fake_backend(
        spec, FakePipeline(error=torch.cuda.OutOfMemoryError("CUDA out of memory"))
    )
    with pytest.raises(BackendUnavailable, match="out of memory") as raised:
        backend.generate(generation())
    assert raised.value.retry_after >= 1
    assert len(backend.generate(generation())) == 1


def test_a_slow_generation_is_answered_not_left_hanging(spec):
    backend = fake_backend(spec, FakePipeline(delay=1.0), timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="longer than 0.2 s"):
        backend.generate(generation())
    assert time.monotonic() - started < 0.9


def test_a_full_queue_refuses_with_retry_after(spec):
    backend = fake_backend(spec, FakePipeline(delay=0.5), max_queue=1, max_batch=1)
    outcomes = []

    def ask(seed):
        try:
            backend.generate(generation(seed=seed))
            outcomes.append("ok")
        except BackendUnavailable as exc:
            outcomes.append(exc.retry_after)

    threads = [threading.Thread(target=ask, args=(s,)) for s in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    refused = [o for o in outcomes if o != "ok"]
    assert refused and all(isinstance(o, int) and o >= 1 for o in refused)
    assert "ok" in outcomes


def test_the_contract_suite_passes_against_the_diffusers_backend(models_dir):
    """The same suite, with the same examples, as against the placeholder: every test runs and
    passes. The tiny pipelines make a 1024x1024 image in about 0.2 s here (1.5 minutes for the
    suite's ~290 images), so the wait for an answer is long."""
    server = RunningServer("--backend", "diffusers", "--models-dir", str(models_dir))
    try:
        assert_contract_suite_passes(server.url)
    finally:
        server.stop()

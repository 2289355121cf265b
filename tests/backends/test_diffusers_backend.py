"""The diffusers backend on the CPU, with tiny random-weight pipelines loaded from disk by the
real loading code, and the contract suite run against a server that uses it."""

from __future__ import annotations

import io
import os
import shutil
import threading
import time

import pytest
from PIL import Image

pytest.importorskip("diffusers", reason="the diffusers backend needs pip install '.[gpu]'")

import torch  # noqa: E402

from mockserver.backends import BackendUnavailable  # noqa: E402
from mockserver.backends.diffusers import DiffusersBackend  # noqa: E402
from tests.support import RunningServer, assert_contract_suite_passes, make_generation  # noqa: E402


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
        time.sleep(self.delay(kwargs) if callable(self.delay) else self.delay)
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
    assert shapes("sdxl-lightning") == {(256, 256, b, cfg) for b in (1, 2, 4) for cfg in (0, 1)}
    assert shapes("sdxl") == {(256, 256, b, True) for b in (1, 2, 4)}  # guidance either way
    assert all(call["compiled"] for fake in fakes.values() for call in fake.calls)

    fakes = {model: FakePipeline() for model in spec.models}
    backend = DiffusersBackend(
        spec=spec, pipelines=fakes, compile=True, compile_sizes=["256x256"], max_batch=4
    )
    backend.warm_up(negative_prompts=False)
    assert shapes("sdxl-lightning") == {(256, 256, b, False) for b in (1, 2, 4)}


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
    # Without limits: the suite's free-plan examples would otherwise wait out 429s.
    server = RunningServer(  # each worker loads the pipelines: longer than 30 s on a busy host
        "--backend", "diffusers", "--models-dir", str(models_dir), "--no-rate-limits",
        ready_within=180,
    )  # fmt: skip
    try:
        assert_contract_suite_passes(server.url)
    finally:
        server.stop()


# The queue: no device time for a request nobody waits for, refusals at once, honest Retry-After.


def ask_all(backend, generations, stagger=0.02):
    """Each generation from its own thread, started *stagger* seconds apart; the outcomes in
    order: the images, or the BackendUnavailable raised, with how long the answer took."""
    outcomes = [None] * len(generations)

    def ask(index, g):
        started = time.monotonic()
        try:
            result = backend.generate(g)
        except BackendUnavailable as exc:
            result = exc
        outcomes[index] = (result, time.monotonic() - started)

    threads = [threading.Thread(target=ask, args=pair) for pair in enumerate(generations)]
    for thread in threads:
        thread.start()
        time.sleep(stagger)
    for thread in threads:
        thread.join()
    return outcomes


def test_requests_past_their_time_limit_never_reach_the_device(spec):
    """The issue's probe: three 2048x2048 requests whose callers give up, then a small one.
    Only the first big one (already running) uses the device; the two waiting behind it leave
    the queue unrun, and the small one runs next."""
    pipeline = FakePipeline(delay=lambda kw: 0.8 if kw["width"] == 2048 else 0.01)
    backend = fake_backend(spec, pipeline, max_batch=1)
    big = [generation(width=2048, height=2048, seed=s) for s in range(3)]
    for g in big:  # the callers give up after 0.3 s (a shorter limit than the backend's)
        threading.Thread(target=_ignore_503, args=(backend, g, 0.3)).start()
        time.sleep(0.02)
    time.sleep(0.9)  # the first big one has finished
    assert len(backend.generate(generation(width=256, height=256))) == 1
    assert [call["width"] for call in pipeline.calls] == [2048, 256]


def _ignore_503(backend, g, timeout_s):
    with pytest.raises(BackendUnavailable, match="longer than 0.3 s"):
        backend.generate(g, timeout_s=timeout_s)


def test_timed_out_requests_no_longer_count_as_waiting(spec):
    """The issue's probe: a queue of 3 whose requests all timed out still refused the next one
    with '3 generations are waiting'."""
    pipeline = FakePipeline(delay=1.0)
    backend = fake_backend(spec, pipeline, max_batch=1, max_queue=3, timeout_s=0.3)
    outcomes = ask_all(backend, [generation(seed=s) for s in range(4)])
    assert all("longer than 0.3 s" in str(result) for result, _ in outcomes)
    assert len(backend.queue) == 0  # what counts as waiting is the point
    # The first call is still running: the next three are queued, not refused as "waiting".
    pipeline.delay = 0.0
    outcomes = ask_all(backend, [generation(seed=s) for s in range(10, 13)], stagger=0)
    assert not any("waiting" in str(result) for result, _ in outcomes)


def test_a_full_queue_refuses_at_once_with_a_measured_retry_after(spec):
    """max_queue requests wait behind one running call of about 0.4 s; the next is refused at
    once, and told to come back after about the time for one to leave the queue, not a fixed
    or worst-case figure."""
    pipeline = FakePipeline(delay=0.4)
    backend = fake_backend(spec, pipeline, max_batch=1, max_queue=3, timeout_s=30)
    backend.generate(generation(seed=99))  # one measurement: 0.4 s an image
    outcomes = ask_all(backend, [generation(seed=s) for s in range(6)])
    refused = [(exc, took) for exc, took in outcomes if isinstance(exc, BackendUnavailable)]
    served = [took for result, took in outcomes if isinstance(result, list)]
    assert len(served) == 4 and len(refused) == 2
    for exc, took in refused:
        assert "3 generations are waiting" in str(exc)
        assert took < 0.2  # at once, not after the 0.4 s call
        assert exc.retry_after == 1  # the queue moves every 0.4 s: the old figure was 4-5


def test_a_request_that_would_wait_past_the_limit_is_refused_at_once(spec):
    """The issue's probe: with timeout_s=10, 'queue full' 503s came only after 8-9 s. Here
    the wait is estimated from the measured time per image: whoever would wait past the limit
    is refused at once, with Retry-After the time until the queue would admit them."""
    pipeline = FakePipeline(delay=0.3)
    backend = fake_backend(spec, pipeline, max_batch=1, timeout_s=1.0)
    backend.generate(generation(seed=99))  # one measurement: 0.3 s an image
    outcomes = ask_all(backend, [generation(seed=s) for s in range(8)], stagger=0.01)
    served = [took for result, took in outcomes if isinstance(result, list)]
    refused = [(exc, took) for exc, took in outcomes if isinstance(exc, BackendUnavailable)]
    assert 2 <= len(served) <= 4 and all(took < 1.0 for took in served)
    for exc, took in refused:
        assert "longer than the 1 s limit" in str(exc) and took < 0.2
        assert 1 <= exc.retry_after <= 2  # about three calls of 0.3 s must finish first
    assert len(pipeline.calls) == 1 + len(served)


def test_retry_after_follows_the_kind_of_request_waiting(spec):
    """One slow call (2048x2048) must not set Retry-After for a queue of small ones: the time
    per image is measured per model and size."""
    pipeline = FakePipeline(delay=lambda kw: 2.5 if kw["width"] == 2048 else 0.2)
    backend = fake_backend(spec, pipeline, max_batch=1, max_queue=2, timeout_s=30)
    backend.generate(generation(width=2048, height=2048))
    backend.generate(generation(width=256, height=256))
    assert backend.timings.seconds(batch_key_of(spec, width=2048, height=2048), 1) > 2
    outcomes = ask_all(backend, [generation(seed=s) for s in range(4)])
    refused = [exc for exc, _ in outcomes if isinstance(exc, BackendUnavailable)]
    assert refused and all(exc.retry_after == 1 for exc in refused)


def batch_key_of(spec, **overrides):
    from mockserver.backends.diffusers import batch_key

    g = generation(**overrides)
    return batch_key(g, spec.pipelines[g.model])


def test_the_prompt_cache_skips_the_text_encoders_and_keeps_the_image(spec, models_dir):
    """A repeated prompt reuses its encodings: the text encoders run once per new prompt (the
    new ones of a batch in one call), and the image is the one made without the cache."""
    cached = DiffusersBackend(spec=spec, models_dir=models_dir, warmup=False, prompt_cache=2)
    plain = DiffusersBackend(spec=spec, models_dir=models_dir, warmup=False, prompt_cache=0)
    encoded = []
    pipeline = cached.pipelines["sdxl-lightning"]
    encode_prompt = pipeline.encode_prompt

    def spy(prompt=None, **kwargs):  # the pipeline calls it too, with the encodings: prompt None
        if prompt is not None:
            encoded.append(prompt)
        return encode_prompt(prompt, **kwargs)

    pipeline.encode_prompt = spy
    first = cached.generate(generation(prompt="a red fox", seed=3))
    assert cached.generate(generation(prompt="a red fox", seed=3)) == first
    assert encoded == [["a red fox"]]
    assert abs(_pixels(first[0]) - _pixels(plain.generate(generation(seed=3))[0])).max() <= 2
    # A negative prompt is encoded (and cached) the same way; the least recent entry goes.
    with_negative = cached.generate(generation(prompt="a red fox", negative_prompt="blur"))
    reference = plain.generate(generation(prompt="a red fox", negative_prompt="blur"))
    assert abs(_pixels(with_negative[0]) - _pixels(reference[0])).max() <= 2
    assert encoded == [["a red fox"], ["blur"]]
    cached.generate(generation(prompt="a grey wolf"))
    cached.generate(generation(prompt="a red fox"))
    assert encoded[-2:] == [["a grey wolf"], ["a red fox"]]  # two entries: "a red fox" went


def test_the_compile_cache_is_saved_after_warm_up_and_loaded_at_the_next_start(
    spec, tmp_path, monkeypatch
):
    """With compile_cache_dir, inductor's caches live there and torch.compile's cache
    artifacts are saved after warm-up and loaded by the next start (here around a fake
    pipeline: what is saved and loaded is torch's business, where it goes is ours)."""
    loaded = []
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"artifacts", None))
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", loaded.append)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))  # undone after
    folder = tmp_path / "compile-cache"
    options = dict(compile=True, compile_sizes="256x256", compile_cache_dir=str(folder))
    fake_backend(spec, FakePipeline(), **options).warm_up(negative_prompts=False)
    assert (folder / "torch-compile-artifacts.bin").read_bytes() == b"artifacts"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder / "inductor")
    assert loaded == []
    fake_backend(spec, FakePipeline(), **options)
    assert loaded == [b"artifacts"]


def test_the_real_server_refuses_at_once_when_the_queue_is_full(models_dir):
    """The issue's probe, through `python -m mockserver --backend diffusers` with its defaults:
    150 concurrent requests all got 200, the slowest after 85.8 s. Now those beyond the queue
    get 503 at once, each with a Retry-After, while the admitted ones are served."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from tests.support import auth

    # Loading torch and diffusers in the server takes more than 30 s on a busy machine.
    server = RunningServer(
        "--backend", "diffusers", "--models-dir", str(models_dir), ready_within=180
    )
    body = {"prompt": "a red fox", "model": "sdxl-lightning", "width": 512, "height": 512}

    def post(index):
        started = time.monotonic()
        reply = requests.post(
            server.url + "/api/v1/generate", json={**body, "seed": index}, headers=auth(),
            timeout=300,
        )  # fmt: skip
        return reply, time.monotonic() - started

    try:
        with ThreadPoolExecutor(150) as pool:
            answers = list(pool.map(post, range(150)))
    finally:
        server.stop()
    served = [took for reply, took in answers if reply.status_code == 200]
    refused = [(reply, took) for reply, took in answers if reply.status_code == 503]
    assert len(served) + len(refused) == 150
    assert served and len(refused) >= 150 - 32 - 8 - 32  # queue, a running batch, a margin
    for reply, _ in refused:
        assert reply.headers["Content-Type"] == "application/problem+json"
        assert reply.json()["code"] == "model_unavailable"
        assert int(reply.headers["Retry-After"]) >= 1
    assert sorted(took for _, took in refused)[len(refused) // 2] < max(served) / 2

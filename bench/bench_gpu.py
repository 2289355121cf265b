"""`make bench-gpu`: the diffusers backend against plain diffusers, on full-size SDXL built from
its configs with random weights (the compute is the real one; nothing is downloaded).

In one run, at 1024x1024 for 4 and 8 steps, guidance 0 (the SDXL Lightning recipe); every timed
figure is min / median / max over --repeats runs (>= 5) after --warmups calls (>= 2):
  (a) plain diffusers StableDiffusionXLPipeline, fp16, eager, to PIL: the slow anchor;
  (b) our backend in-process (bf16; with --compile, CUDA graphs for the UNet and a compiled VAE
      decoder, compiled during warm-up, the compile cache in a fresh folder): time from a built
      pipeline to the first image (the first start), pipeline time, generate() to PNG bytes per
      stage, for a new prompt each call and for a repeated one (the prompt cache);
  (c) our server as users run it, `python -m mockserver --backend diffusers` under granian, on
      the same weights saved to disk, with the compile cache (b) left: time from the process
      start to the first image (the second start), then images/s and latency at concurrency
      1, 4 and 8;
  (d) diffusers' own recommended fast recipe for SDXL ("Accelerate inference of text-to-image
      diffusion models": bf16, fused QKV projections, channels-last, torch.compile of the UNet
      and the VAE decoder with mode="max-autotune" and its inductor flags), to PIL: the fast
      anchor. --short compiles it without autotuning (mode="reduce-overhead"), which alone
      takes minutes, and the report says so.
  (e) with --ray, the ray backend with one replica on the same device against (b), the same
      generations from 1 and 8 threads through generate() (the replica loads the weights
      saved for (c)).
They run in the order a, d, b, e, c. --short fits about 8 minutes on an H200, compiles included
(compiled batch sizes 1, 4 and 8 only): it keeps to --budget-s and skips
(and names) what would not fit. --tiny runs the same on tiny pipelines (for a CPU try-out).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UNET = dict(
    act_fn="silu",
    addition_embed_type="text_time",
    addition_embed_type_num_heads=64,
    addition_time_embed_dim=256,
    attention_head_dim=[5, 10, 20],
    block_out_channels=[320, 640, 1280],
    cross_attention_dim=2048,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    in_channels=4,
    layers_per_block=2,
    mid_block_type="UNetMidBlock2DCrossAttn",
    norm_eps=1e-5,
    norm_num_groups=32,
    out_channels=4,
    projection_class_embeddings_input_dim=2816,
    sample_size=128,
    transformer_layers_per_block=[1, 2, 10],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    use_linear_projection=True,
)
VAE = dict(
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    sample_size=1024,
    scaling_factor=0.13025,
    force_upcast=True,
)
CLIP_L = dict(
    hidden_act="quick_gelu", hidden_size=768, intermediate_size=3072, num_attention_heads=12,
    num_hidden_layers=12, projection_dim=768, max_position_embeddings=77, vocab_size=49408,
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)  # fmt: skip
CLIP_G = dict(
    hidden_act="gelu", hidden_size=1280, intermediate_size=5120, num_attention_heads=20,
    num_hidden_layers=32, projection_dim=1280, max_position_embeddings=77, vocab_size=49408,
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)  # fmt: skip


def build_sdxl(tiny: bool, dtype, device: str, tmp: Path, seed: int = 0):
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from tests.tiny_pipelines import build_tiny_sdxl, tokenizer_for

    torch.manual_seed(seed)
    if tiny:
        pipeline = build_tiny_sdxl(tmp / f"tokenizer-{seed}", seed=seed)
    else:
        with torch.device(device):  # random init on the GPU: seconds, not minutes
            tokenizer = tokenizer_for(tmp / f"tokenizer-{seed}")
            pipeline = StableDiffusionXLPipeline(
                vae=AutoencoderKL(**VAE),
                text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)),
                text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G)),
                tokenizer=tokenizer,
                tokenizer_2=tokenizer,
                unet=UNet2DConditionModel(**UNET),
                scheduler=EulerDiscreteScheduler(
                    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
                ),
            )
    pipeline.scheduler = EulerDiscreteScheduler.from_config(
        pipeline.scheduler.config, timestep_spacing="trailing"
    )
    pipeline.to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class StageClock:
    """Where a pipeline call's time goes: prompt encoding, the denoiser's calls (all steps), the
    VAE decode. Timed with CUDA events around each part (on the CPU, with the clock), so that
    timing adds no synchronisation; read the totals after the call has finished."""

    def __init__(self, torch, pipeline):
        self.torch = torch
        self.cuda = pipeline.device.type == "cuda"
        self.marks: dict[str, list] = {}
        encode_prompt, decode = pipeline.encode_prompt, pipeline.vae.decode
        pipeline.encode_prompt = self._timed("text encoders", encode_prompt)
        pipeline.vae.decode = self._timed("VAE decode", decode)
        # Not `unet or transformer`: a compiled module has no truth value.
        denoiser = pipeline.unet if hasattr(pipeline, "unet") else pipeline.transformer
        denoiser.register_forward_pre_hook(lambda *_: self._start("denoiser"))
        denoiser.register_forward_hook(lambda *_: self._stop("denoiser"))

    def _now(self):
        if not self.cuda:
            return time.perf_counter()
        event = self.torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _start(self, stage: str) -> None:
        self.marks.setdefault(stage, []).append([self._now(), None])

    def _stop(self, stage: str) -> None:
        self.marks[stage][-1][1] = self._now()

    def _timed(self, stage: str, fn):
        def timed(*args, **kwargs):
            self._start(stage)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stop(stage)

        return timed

    def take_ms(self) -> dict[str, float]:
        """Milliseconds per stage since the last take."""
        if self.cuda:
            self.torch.cuda.synchronize()
        totals = {}
        for stage, pairs in self.marks.items():
            if self.cuda:
                totals[stage] = sum(start.elapsed_time(end) for start, end in pairs)
            else:
                totals[stage] = sum(end - start for start, end in pairs) * 1000
        self.marks = {}
        return totals


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def show(figure: dict[str, float], unit: str = "ms") -> str:
    return f"{figure['median']:.1f} {unit} (min {figure['min']:.1f}, max {figure['max']:.1f})"


def timed_runs(fn, *, warmups: int, repeats: int, sync) -> dict[str, float]:
    """Min / median / max milliseconds of *fn* over *repeats* calls, after *warmups* calls."""
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - started) * 1000)
    return spread(times)


def diffusers_recipe(pipeline, torch, *, mode: str, autotune: bool):
    """Diffusers' recommended fast SDXL recipe on *pipeline* (already bf16 on the device), as
    its tutorial writes it; returns the inductor settings to compile under."""
    pipeline.fuse_qkv_projections()
    pipeline.unet.to(memory_format=torch.channels_last)
    pipeline.vae.to(memory_format=torch.channels_last)
    pipeline.unet = torch.compile(pipeline.unet, mode=mode, fullgraph=True)
    pipeline.vae.decode = torch.compile(pipeline.vae.decode, mode=mode, fullgraph=True)
    flags = {"conv_1x1_as_mm": True, "epilogue_fusion": False}
    if autotune:
        flags.update(coordinate_descent_tuning=True, coordinate_descent_check_all_directions=True)
    return flags


def http_level(url, key, concurrency, per_client, steps, size, rounds) -> dict:
    """*rounds* rounds in which *concurrency* clients each send *per_client* requests, one
    after another; images/s per round, and the latency of every request."""
    import requests

    latencies, rates, lock = [], [], threading.Lock()

    def client(index: int, round_: int) -> None:
        session = requests.Session()
        for i in range(per_client):
            body = {
                "prompt": f"bench round {round_} client {index} request {i}",
                "model": "sdxl-lightning", "width": size, "height": size,
                "num_inference_steps": steps,
            }  # fmt: skip
            started = time.perf_counter()
            reply = session.post(
                url + "/api/v1/generate", json=body,
                headers={"Authorization": f"Bearer {key}"}, timeout=600,
            )  # fmt: skip
            elapsed = (time.perf_counter() - started) * 1000
            assert reply.status_code == 200, reply.text[:300]
            with lock:
                latencies.append(elapsed)

    for round_ in range(-1, rounds):  # round -1 warms the connections and the batch shapes
        threads = [threading.Thread(target=client, args=(i, round_)) for i in range(concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if round_ < 0:
            latencies.clear()
        else:
            rates.append(concurrency * per_client / (time.perf_counter() - started))
    return {
        "concurrency": concurrency,
        "images": len(latencies),
        "images_per_s": spread(rates),
        "latency_ms": spread(latencies),
        "p50_ms": statistics.median(latencies),
    }


class Server:
    """`python -m mockserver --backend diffusers` in a subprocess, as users run it."""

    def __init__(self, models: Path, options: dict, log_path: Path):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "mockserver", "--backend", "diffusers", "--port",
            str(self.port), "--models-dir", str(models), "--no-reload", "--journal-size", "0",
        ]  # fmt: skip
        for name, value in options.items():
            command += ["--backend-option", f"{name}={json.dumps(value)}"]
        self.log = open(log_path, "w")  # noqa: SIM115 - open for the server's life
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )

    def first_image_s(self, key: str, size: int, timeout: float = 900) -> float:
        """Seconds from the process start to the first image served."""
        import requests

        deadline = time.monotonic() + timeout
        body = {"prompt": "first", "model": "sdxl-lightning", "width": size, "height": size}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: see {self.log.name}")
            try:
                reply = requests.post(
                    self.url + "/api/v1/generate", json=body,
                    headers={"Authorization": f"Bearer {key}"}, timeout=600,
                )  # fmt: skip
            except requests.ConnectionError:
                time.sleep(0.2)
                continue
            assert reply.status_code == 200, reply.text[:300]
            return time.perf_counter() - self.started
        raise RuntimeError("the server served no image in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def save_models(pipeline, spec, folder: Path) -> Path:
    """The pipeline in the diffusers layout, as /models/sdxl-lightning, its "distilled" UNet
    file a link to the folder's own UNet weights (same names, same tensors)."""
    target = folder / "sdxl-lightning"
    pipeline.save_pretrained(target)
    weights = spec.pipelines["sdxl-lightning"]["unet_weights"]
    (target / weights).symlink_to(target / "unet" / "diffusion_pytorch_model.safetensors")
    return folder


def ray_against_in_process(backend, spec, models: Path, device: str, args) -> dict:
    """(e): images/s at concurrency 1 and 8 through generate(), in-process and on Ray Serve
    with one replica on the same device."""
    try:
        from mockserver.backends.ray import security
        from mockserver.backends.ray.client import RayBackend, server_scope
    except ImportError:
        print("(e) skipped: ray is not installed (pip install '.[ray]')", flush=True)
        return {"skipped": "ray is not installed"}
    if not args.ray_address:  # Ray reads its token settings once, when it is imported
        os.environ.update(security.local_cluster_environment())
    import ray

    from bench.bench_ray import measure

    sizes = (args.size, 4, 16)
    report = {"in_process": measure("(e) in-process", backend.generate, *sizes)}
    started = time.perf_counter()
    options = dict(
        models_dir=str(models), replicas=1, compile=args.compile, device=device,
        max_batch=args.max_batch, timeout_s=600, compile_sizes=[f"{args.size}x{args.size}"],
        app_name="bench-gpu",
    )  # fmt: skip
    if args.ray_address:
        options["address"] = args.ray_address
    if args.ray_cpus:
        options["num_cpus"] = args.ray_cpus
    with server_scope(spec=spec, **options) as joined:
        ray_backend = RayBackend(spec=spec, **joined)
        report["ray_start_s"] = time.perf_counter() - started
        report["ray_1"] = measure("(e) Ray, 1 replica", ray_backend.generate, *sizes)
        ray.shutdown()  # this process's driver, before the cluster goes
    report["ray_1_over_in_process_c8"] = (
        report["ray_1"][8]["images_per_s"] / report["in_process"][8]["images_per_s"]
    )
    print(
        f"(e) images/s at c=8, Ray 1 replica / in-process: "
        f"{report['ray_1_over_in_process_c8']:.2f} (Ray start {report['ray_start_s']:.0f} s)",
        flush=True,
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="tiny configs, for a CPU try-out")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile ours and the recipe anchor"
    )
    parser.add_argument("--short", action="store_true", help="fit about 8 minutes on an H200")
    parser.add_argument("--budget-s", type=float, help="skip sections past this (--short: 450)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--steps", default="4,8")
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--skip-plain", action="store_true", help="leave out (a)")
    parser.add_argument("--skip-http", action="store_true", help="leave out (c)")
    parser.add_argument("--skip-recipe", action="store_true", help="leave out (d)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument(
        "--batch-sizes", help="compiled batch sizes (the backend's default; --short: 1,4,8)"
    )
    parser.add_argument(
        "--compile-text-encoders", action="store_true", help="our backend's option of that name"
    )
    parser.add_argument(
        "--ray", action="store_true", help="(e): Ray Serve, 1 replica, vs in-process"
    )
    parser.add_argument(
        "--ray-address", help="(e) in this running cluster (default: a local one, started here)"
    )
    parser.add_argument("--ray-cpus", type=float, help="(e): CPUs for the replica")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(os.environ.get("OUT", ROOT / "bench" / "results")) / "gpu.json",
    )
    args = parser.parse_args()
    budget = args.budget_s or (450.0 if args.short else float("inf"))
    # Each compiled batch size is a compile (about a minute on an H200): --short compiles the
    # ones that c=1, 4 and 8 use.
    batch_sizes = args.batch_sizes or (
        ",".join(str(b) for b in (1, 4, 8) if b <= args.max_batch) if args.short else None
    )

    import diffusers
    import torch

    logging.basicConfig(level=logging.WARNING)

    from mockserver.backends.diffusers import DiffusersBackend
    from mockserver.config import DEV_KEYS
    from mockserver.rules import Generation
    from mockserver.spec import load_spec

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    bf16 = torch.bfloat16 if device == "cuda" else torch.float32
    results: dict = {
        "device": gpu, "torch": torch.__version__, "diffusers": diffusers.__version__,
        "size": args.size, "tiny": args.tiny, "compile": args.compile, "short": args.short,
        "repeats": args.repeats, "warmups": args.warmups, "skipped": [],
    }  # fmt: skip
    print(f"device {gpu}, torch {torch.__version__}, diffusers {diffusers.__version__}", flush=True)
    run_started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    size = args.size
    steps_list = [int(s) for s in args.steps.split(",")]
    prompt = "a cinematic mountain landscape at sunrise"
    key = next(k for k, plan in DEV_KEYS.items() if plan == "enterprise")
    spec = load_spec()

    def left_s() -> float:
        return budget - (time.perf_counter() - run_started)

    def to_pil(pipeline, steps):
        return lambda: pipeline(
            prompt=prompt, num_inference_steps=steps, width=size, height=size,
            guidance_scale=0.0, output_type="pil",
        )  # fmt: skip

    # (a) plain diffusers, fp16, eager
    results["plain_fp16_ms"] = {}
    if not args.skip_plain:
        started = time.perf_counter()
        fp16 = torch.float16 if device == "cuda" else torch.float32
        plain = build_sdxl(args.tiny, fp16, device, tmp)
        results["build_s"] = time.perf_counter() - started
        for steps in steps_list:
            figure = timed_runs(
                to_pil(plain, steps), warmups=args.warmups, repeats=args.repeats, sync=sync
            )
            results["plain_fp16_ms"][steps] = figure
            print(f"(a) plain fp16 {steps} steps: {show(figure)}", flush=True)
        del plain
        if device == "cuda":
            torch.cuda.empty_cache()

    # (d) diffusers' own fast recipe
    results["recipe_ms"] = {}
    if args.skip_recipe:
        results["skipped"].append("(d) recipe: --skip-recipe")
    elif left_s() < 300:  # ours and the server come after it
        results["skipped"].append(f"(d) recipe: {left_s():.0f} s of budget left")
    else:
        mode = "reduce-overhead" if args.short else "max-autotune"
        recipe = build_sdxl(args.tiny, bf16, device, tmp, seed=2)
        flags = {}
        if args.compile:
            flags = diffusers_recipe(recipe, torch, mode=mode, autotune=not args.short)
        else:  # on the CPU try-out: the recipe's steps but compiling
            recipe.fuse_qkv_projections()
            recipe.unet.to(memory_format=torch.channels_last)
            recipe.vae.to(memory_format=torch.channels_last)
        results["recipe"] = {"compiled": args.compile, "mode": mode, "inductor": flags}
        import torch._inductor.config as inductor_config

        with inductor_config.patch(flags):
            started = time.perf_counter()
            to_pil(recipe, steps_list[0])()  # compiles
            results["recipe"]["compile_s"] = time.perf_counter() - started
            for steps in steps_list:
                figure = timed_runs(
                    to_pil(recipe, steps), warmups=args.warmups, repeats=args.repeats, sync=sync
                )
                results["recipe_ms"][steps] = figure
                print(f"(d) diffusers' recipe ({mode}) {steps} steps: {show(figure)}", flush=True)
        del recipe
        if device == "cuda":
            torch.cuda.empty_cache()

    # (b) our backend in-process: the first start, with an empty compile cache
    ours = build_sdxl(args.tiny, bf16, device, tmp, seed=1)
    wanted = not args.skip_http or args.ray  # (c) and (e) load the weights from disk
    models = save_models(ours, spec, tmp / "models") if wanted else None
    cache_dir = tmp / "compile-cache"
    options = dict(
        compile=args.compile, max_batch=args.max_batch, timeout_s=600,
        compile_sizes=[f"{size}x{size}"], compile_cache_dir=str(cache_dir),
        compile_text_encoders=args.compile_text_encoders, batch_sizes=batch_sizes,
    )  # fmt: skip
    started = time.perf_counter()
    backend = DiffusersBackend(
        spec=spec, pipelines={"sdxl-lightning": ours}, warmup=False, device=device, **options
    )
    backend.warm_up(negative_prompts=False)  # the benchmark sends none: fewer shapes

    def request(steps: int, text: str = prompt) -> Generation:
        return Generation(
            prompt=text, model="sdxl-lightning", width=size, height=size,
            num_inference_steps=steps, negative_prompt=None, seed=5, output_format="png",
            num_images=1,
        )  # fmt: skip

    backend.generate(request(steps_list[0], "the first image"))
    results["first_start_s"] = time.perf_counter() - started
    results["batch_sizes"] = backend.buckets
    print(
        f"(b) first start (compile={args.compile}, empty compile cache): warm-up and first "
        f"image {results['first_start_s']:.1f} s",
        flush=True,
    )
    # Timed through generate(), so that the pipeline runs on the backend's own thread, where
    # its CUDA graphs were captured; the backend records each pipeline call's time.
    clock = StageClock(torch, ours)
    results["ours"] = {}
    counter = iter(range(10**6))
    for steps in steps_list:
        for prompts in ("new", "repeated"):

            def text(prompts=prompts):
                return prompt if prompts == "repeated" else f"{prompt} {next(counter)}"

            for _ in range(args.warmups):
                backend.generate(request(steps, text()))
            clock.take_ms()
            walls, calls, stages = [], [], []
            for _ in range(args.repeats):
                started = time.perf_counter()
                backend.generate(request(steps, text()))
                walls.append((time.perf_counter() - started) * 1000)
                calls.append(backend.last_call_s * 1000)
                stages.append(clock.take_ms())
            # "after the pipeline": pixels to bytes, to the host, PNG, and the hand-over.
            names = ["text encoders", "denoiser", "VAE decode"]
            per_stage = {name: spread([s.get(name, 0.0) for s in stages]) for name in names}
            per_stage["after the pipeline"] = spread(
                [w - c for w, c in zip(walls, calls, strict=True)]
            )
            results["ours"].setdefault(steps, {})[prompts] = {
                "pipeline_ms": spread(calls), "generate_ms": spread(walls), "stages_ms": per_stage,
            }  # fmt: skip
            print(
                f"(b) ours {steps} steps, {prompts} prompt: generate() to PNG "
                f"{show(spread(walls))}; pipeline {show(spread(calls))}; "
                + ", ".join(f"{n} {f['median']:.1f}" for n, f in per_stage.items()),
                flush=True,
            )
    results["compile_cache_files"] = sum(1 for f in cache_dir.rglob("*") if f.is_file())
    if args.ray:
        results["ray"] = ray_against_in_process(backend, spec, models, device, args)
    del backend, ours, clock
    if device == "cuda":
        torch.cuda.empty_cache()

    # (c) the server, as users run it: the second start, then concurrency
    concurrency = [int(c) for c in args.concurrency.split(",")]
    results["http"] = {}
    if args.skip_http:
        results["skipped"].append("(c) HTTP: --skip-http")
    else:
        server_options = {
            **{k: v for k, v in options.items() if k != "timeout_s"},
            "warmup": args.compile, "warmup_negative_prompts": False,
        }  # fmt: skip
        server = Server(models, server_options, tmp / "server.log")
        try:
            results["second_start_s"] = server.first_image_s(key, size)
            print(
                f"(c) second start (server process, compile cache from (b)): first image "
                f"{results['second_start_s']:.1f} s",
                flush=True,
            )
            for steps in steps_list:
                for c in concurrency:
                    if left_s() < 20:
                        results["skipped"].append(f"(c) {steps} steps c={c}: out of budget")
                        continue
                    level = http_level(
                        server.url, key, c, max(1, 8 // c), steps, size, args.repeats
                    )
                    results["http"].setdefault(steps, []).append(level)
                    print(
                        f"(c) HTTP {steps} steps c={c}: images/s "
                        f"{show(level['images_per_s'], '')}; latency {show(level['latency_ms'])}",
                        flush=True,
                    )
        finally:
            server.stop()
            results["server_log_tail"] = (tmp / "server.log").read_text()[-2000:]

    results["total_s"] = time.perf_counter() - run_started
    print(json.dumps(results, indent=2))
    for steps in steps_list:
        ours_ms = results["ours"][steps]["new"]["generate_ms"]["median"]
        line = f"{steps} steps: ours generate() to PNG {ours_ms:.1f} ms"
        for name, anchor in (("plain fp16", "plain_fp16_ms"), ("the recipe", "recipe_ms")):
            if steps in results[anchor]:
                line += f"; ours / {name} {ours_ms / results[anchor][steps]['median']:.2f}"
        levels = results["http"].get(steps, [])
        if levels:
            rates = {lv["concurrency"]: lv["images_per_s"]["median"] for lv in levels}
            line += "; images/s " + ", ".join(f"c={c} {r:.2f}" for c, r in rates.items())
            line += f"; HTTP c=1 / in-process {levels[0]['p50_ms'] / ours_ms:.2f}"
        print(line)
    print(
        f"first start {results['first_start_s']:.1f} s; second start "
        f"{results.get('second_start_s', float('nan')):.1f} s; skipped: "
        f"{'; '.join(results['skipped']) or 'nothing'}; total {results['total_s']:.0f} s"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench-gpu`: the diffusers backend against plain diffusers, on full-size SDXL built from
its configs with random weights (the compute is the real one; nothing is downloaded).

In one run, at 1024x1024 for 4 and 8 steps, guidance 0 (the SDXL Lightning recipe):
  (a) plain diffusers StableDiffusionXLPipeline, fp16, eager, to PIL: the anchor;
  (b) our backend in-process (bf16; with --compile, CUDA graphs for the UNet and a compiled VAE
      decoder, compiled during warm-up): pipeline time to pixels, and generate() to PNG bytes;
  (c) our server end to end over HTTP, at concurrency 1, 4 and 8: latency and images/s;
  (d) with --ray, the ray backend with one replica on the same device against (b), the same
      generations from 1 and 8 threads through generate() (the replica loads the pipeline from
      disk: it is saved first).
--tiny runs the same on a tiny pipeline (for a CPU try-out).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
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


def median_ms(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def http_run(url: str, key: str, concurrency: int, per_client: int, steps: int, size: int) -> dict:
    import requests

    latencies, lock = [], threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        for i in range(per_client):
            body = {
                "prompt": f"bench client {index} request {i}",
                "model": "sdxl-lightning",
                "width": size,
                "height": size,
                "num_inference_steps": steps,
            }
            started = time.perf_counter()
            reply = session.post(
                url + "/api/v1/generate",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=600,
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert reply.status_code == 200, reply.text[:300]
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "images": len(latencies),
        "images_per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies),
        "max_ms": max(latencies),
    }


def save_for_ray(pipeline, spec, tmp: Path) -> Path:
    """*pipeline* as sdxl-lightning's weights folder, for a Ray replica to load: its UNet is
    also the distilled-UNet file the catalog's recipe names."""
    folder = tmp / "models" / "sdxl-lightning"
    pipeline.save_pretrained(folder)
    unet_file = next((folder / "unet").glob("*.safetensors"))
    (folder / spec.pipelines["sdxl-lightning"]["unet_weights"]).symlink_to(unet_file)
    return folder.parent


def ray_against_in_process(backend, spec, models: Path, device: str, args) -> dict:
    """(d): images/s at concurrency 1 and 8 through generate(), in-process and on Ray Serve
    with one replica on the same device."""
    try:
        from mockserver.backends.ray_backend import RayBackend, server_scope
    except ImportError:
        print("(d) skipped: ray is not installed (pip install '.[ray]')", flush=True)
        return {"skipped": "ray is not installed"}
    import ray

    from bench.bench_ray import measure

    sizes = (args.size, 4, 16)
    report = {"in_process": measure("(d) in-process", backend.generate, *sizes)}
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
        report["ray_1"] = measure("(d) Ray, 1 replica", ray_backend.generate, *sizes)
        ray.shutdown()  # this process's driver, before the cluster goes
    report["ray_1_over_in_process_c8"] = (
        report["ray_1"][8]["images_per_s"] / report["in_process"][8]["images_per_s"]
    )
    print(
        f"(d) images/s at c=8, Ray 1 replica / in-process: "
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
        "--compile", action="store_true", help="torch.compile our backend's pipeline"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-plain", action="store_true", help="leave out (a)")
    parser.add_argument("--skip-http", action="store_true", help="leave out (c)")
    parser.add_argument(
        "--ray", action="store_true", help="(d): Ray Serve, 1 replica, vs in-process"
    )
    parser.add_argument(
        "--ray-address", help="(d) in this running cluster (default: a local one, started here)"
    )
    parser.add_argument("--ray-cpus", type=float, help="(d): CPUs for the replica")
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(os.environ.get("OUT", ROOT / "bench" / "results")) / "gpu.json",
    )
    args = parser.parse_args()

    import torch
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    from mockserver.app import create_app
    from mockserver.backends.diffusers_backend import DiffusersBackend
    from mockserver.config import DEV_KEYS, Config
    from mockserver.rules import Generation
    from mockserver.spec import load_spec

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    results: dict = {
        "device": gpu,
        "torch": torch.__version__,
        "size": args.size,
        "tiny": args.tiny,
    }
    print(f"device {gpu}, torch {torch.__version__}", flush=True)
    run_started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp())
    size, steps_list = args.size, (4, 8)

    # (a) plain diffusers, fp16, eager
    started = time.perf_counter()
    plain = (
        None
        if args.skip_plain
        else build_sdxl(
            args.tiny, torch.float16 if device == "cuda" else torch.float32, device, tmp
        )
    )
    results["build_s"] = time.perf_counter() - started
    results["plain_fp16_ms"] = {}
    for steps in steps_list if plain is not None else ():
        results["plain_fp16_ms"][steps] = median_ms(
            lambda s=steps: plain(
                prompt="a cinematic mountain landscape at sunrise", num_inference_steps=s,
                width=size, height=size, guidance_scale=0.0, output_type="pil",
            ),
            args.repeats, sync,
        )  # fmt: skip
        print(f"(a) plain fp16 {steps} steps: {results['plain_fp16_ms'][steps]:.1f} ms", flush=True)
    plain = None  # free its memory before building ours
    if device == "cuda":
        torch.cuda.empty_cache()

    # (b) our backend in-process
    spec = load_spec()
    ours = build_sdxl(
        args.tiny, torch.bfloat16 if device == "cuda" else torch.float32, device, tmp, seed=1
    )
    models = save_for_ray(ours, spec, tmp) if args.ray else None  # before compile fuses QKV
    started = time.perf_counter()
    backend = DiffusersBackend(
        spec=spec, pipelines={"sdxl-lightning": ours}, compile=args.compile, warmup=False,
        max_batch=args.max_batch, device=device, timeout_s=600, compile_sizes=[f"{size}x{size}"],
    )  # fmt: skip
    backend.warm_up(negative_prompts=False)  # the benchmark sends none: two shapes fewer
    results["warmup_and_compile_s"] = time.perf_counter() - started
    print(
        f"(b) warm-up (compile={args.compile}): {results['warmup_and_compile_s']:.1f} s", flush=True
    )
    # Timed through generate(), so that the pipeline runs on the backend's own thread, where
    # its CUDA graphs were captured; the backend records each pipeline call's time.
    results["ours_pipeline_ms"], results["ours_generate_ms"] = {}, {}
    results["ours_stages_ms"] = {}
    clock = StageClock(torch, ours)
    for steps in steps_list:
        request = Generation(
            prompt="a cinematic mountain landscape at sunrise", model="sdxl-lightning",
            width=size, height=size, num_inference_steps=steps, negative_prompt=None, seed=5,
            output_format="png", num_images=1,
        )  # fmt: skip
        backend.generate(request)  # warm-up
        clock.take_ms()
        walls, calls, stages = [], [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            backend.generate(request)
            walls.append((time.perf_counter() - started) * 1000)
            calls.append(backend.last_call_s * 1000)
            stages.append(clock.take_ms())
        results["ours_pipeline_ms"][steps] = statistics.median(calls)
        results["ours_generate_ms"][steps] = statistics.median(walls)
        # "after the pipeline": pixels to bytes, to the host, PNG, and the hand-over.
        stages = {name: statistics.median(s[name] for s in stages) for name in stages[0]}
        after = [wall - call for wall, call in zip(walls, calls, strict=True)]
        stages["after the pipeline"] = statistics.median(after)
        results["ours_stages_ms"][steps] = stages
        print(
            f"(b) ours {steps} steps: pipeline {results['ours_pipeline_ms'][steps]:.1f} ms, "
            f"generate() to PNG {results['ours_generate_ms'][steps]:.1f} ms; "
            + ", ".join(f"{name} {ms:.1f}" for name, ms in stages.items()),
            flush=True,
        )

    if args.ray:
        results["ray"] = ray_against_in_process(backend, spec, models, device, args)

    results["total_s"] = time.perf_counter() - run_started
    if args.skip_http or args.skip_plain:
        print(json.dumps(results, indent=2))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2))
        return 0

    # (c) over HTTP (the Flask app on a threaded WSGI server in this process, sharing the backend)
    app = create_app(Config(journal_size=0, reload=False), spec=spec, backend=backend)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    key = next(k for k, plan in DEV_KEYS.items() if plan == "enterprise")
    results["http"] = {}
    for steps in steps_list:
        runs = []
        for concurrency in (1, 4, 8):
            http_run(url, key, concurrency, 1, steps, size)  # warm the connections
            run = http_run(url, key, concurrency, max(2, 8 // concurrency), steps, size)
            runs.append(run)
            print(
                f"(c) HTTP {steps} steps c={concurrency}: p50 {run['p50_ms']:.1f} ms, "
                f"{run['images_per_s']:.2f} images/s",
                flush=True,
            )
        results["http"][steps] = runs
    server.shutdown()

    results["total_s"] = time.perf_counter() - run_started
    print(json.dumps(results, indent=2))
    for steps in steps_list:
        plain_ms, ours_ms = results["plain_fp16_ms"][steps], results["ours_generate_ms"][steps]
        http = results["http"][steps]
        print(
            f"{steps} steps: ours/plain {ours_ms / plain_ms:.2f} (pipeline only "
            f"{results['ours_pipeline_ms'][steps] / plain_ms:.2f}); HTTP c=1 / in-process "
            f"{http[0]['p50_ms'] / ours_ms:.2f}; images/s c=8 / c=1 "
            f"{http[2]['images_per_s'] / http[0]['images_per_s']:.2f}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

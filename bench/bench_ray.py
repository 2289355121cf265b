"""`make bench-ray`: what Ray Serve costs and gives, on the CPU with tiny pipelines.

In one run, the same generations (256x256, 4 steps, distinct prompts and seeds) from 1 and 8
client threads through the backend's generate():
  (a) the diffusers backend in-process;
  (b) the ray backend, one replica (a local cluster started here; the replica gets the
      machine's cores, as the in-process backend has them);
  (c) the ray backend, two replicas (half the cores each).
In three rounds, each measuring the three in turn (a load that comes and goes on a shared
machine falls on all three alike), the median over the rounds of: images/s, Ray's overhead per
request (latency at concurrency 1, (b) - (a)), Ray with 1 replica over in-process at
concurrency 8 (goal >= 0.9), and 2 replicas over 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def backend_run(generate, concurrency: int, per_client: int, size: int, steps: int) -> dict:
    """*concurrency* threads, each calling *generate* *per_client* times, one after another."""
    from mockserver.rules import Generation

    latencies, lock = [], threading.Lock()

    def client(index: int) -> None:
        for i in range(per_client):
            generation = Generation(
                prompt=f"bench client {index} request {i}", model="sdxl-lightning", width=size,
                height=size, num_inference_steps=steps, negative_prompt=None,
                seed=index * 1000 + i, output_format="png", num_images=1,
            )  # fmt: skip
            started = time.perf_counter()
            generate(generation)
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)

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
    }


def measure(name: str, generate, size: int, steps: int, images: int) -> dict:
    """Images/s and latency at concurrency 1 and 8 after a warm-up, printed as they come."""
    backend_run(generate, 2, 2, size, steps)  # warm-up
    runs = {}
    for concurrency in (1, 8):
        per_client = max(2, images // concurrency)
        runs[concurrency] = run = backend_run(generate, concurrency, per_client, size, steps)
        print(
            f"{name:<22} c={concurrency}: {run['images_per_s']:6.2f} images/s, "
            f"p50 {run['p50_ms']:7.1f} ms",
            flush=True,
        )
    return runs


def tiny_models_dir(folder: Path, spec) -> Path:
    """sdxl-lightning's folder: the tiny pipeline and its distilled UNet file."""
    from tests.tiny_pipelines import save_unet_weights, tiny_sdxl

    tiny_sdxl(folder / "sdxl-lightning")
    weights = spec.pipelines["sdxl-lightning"]["unet_weights"]
    save_unet_weights(folder / "sdxl-lightning" / weights, seed=99)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--images", type=int, default=32, help="images per measurement")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(os.environ.get("OUT", ROOT / "bench" / "results")) / "ray.json",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--make-models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from mockserver.spec import load_spec

    if args.make_models:
        tiny_models_dir(args.make_models, load_spec())
        return 0

    from mockserver.backends.ray import security

    # Ray reads its authentication settings when it is imported: this process's driver must
    # see the local cluster's token from the start.
    os.environ.update(security.local_cluster_environment())
    import ray

    from mockserver.backends.diffusers import DiffusersBackend
    from mockserver.backends.ray.client import RayBackend, server_scope

    spec = load_spec()
    models = Path(tempfile.mkdtemp())
    # Built in another process: torch in this one's main thread would start a second thread
    # pool beside the in-process backend's own (see mockserver.backends.diffusers).
    subprocess.run([sys.executable, __file__, "--make-models", str(models)], check=True)
    cores = os.cpu_count() or 1
    results: dict = {"size": args.size, "steps": args.steps, "cores": cores}
    sizes = (args.size, args.steps, args.images)

    # All three stay up; each round measures them one after the other, so that a load that
    # comes and goes on a shared machine falls on all three alike. The Ray apps' replicas get
    # the cores between them (the other app is idle while one is measured).
    in_process = DiffusersBackend(spec=spec, models_dir=models, warmup=False)
    options = {"models_dir": str(models), "num_cluster_cpus": 2 * cores}
    with server_scope(spec=spec, replicas=1, num_cpus=cores, **options) as one:
        two = {"address": one["address"], "app_name": "two", "replicas": 2}
        with server_scope(spec=spec, num_cpus=max(1, cores // 2), **two, **options):
            targets = {
                "in_process": ("diffusers in-process", in_process.generate),
                "ray_1": ("ray, 1 replica", RayBackend(spec=spec, **one).generate),
                "ray_2": ("ray, 2 replicas", RayBackend(spec=spec, **two).generate),
            }
            rounds = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, (label, generate) in targets.items():
                    rounds[name].append(measure(label, generate, *sizes))
        ray.shutdown()  # this process's driver, before the cluster goes
    for name, runs in rounds.items():  # medians over the rounds
        results[name] = {
            concurrency: {
                key: statistics.median(run[concurrency][key] for run in runs)
                for key in runs[0][concurrency]
            }
            for concurrency in (1, 8)
        }

    ours, one, two = results["in_process"], results["ray_1"], results["ray_2"]
    results["overhead_ms_c1"] = one[1]["p50_ms"] - ours[1]["p50_ms"]
    results["ray_1_over_in_process_c8"] = one[8]["images_per_s"] / ours[8]["images_per_s"]
    results["ray_2_over_ray_1_c8"] = two[8]["images_per_s"] / one[8]["images_per_s"]
    print(
        f"Ray overhead per request (p50 at c=1): {results['overhead_ms_c1']:+.1f} ms; "
        f"images/s at c=8: Ray 1 replica / in-process {results['ray_1_over_in_process_c8']:.2f} "
        f"(goal >= 0.9); Ray 2 replicas / 1 replica {results['ray_2_over_ray_1_c8']:.2f} "
        f"on {cores} cores"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

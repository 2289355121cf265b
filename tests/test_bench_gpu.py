"""`make bench-gpu` runs on a GPU machine that a session gets only now and then, for minutes: the
script must not break unnoticed in between. Here it runs whole on tiny pipelines on the CPU.
It asserts what the report holds, never how fast anything was."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("diffusers", reason="the benchmark needs pip install '.[gpu]'")

from tests.conftest import ROOT  # noqa: E402


def test_the_gpu_benchmark_runs_end_to_end_on_tiny_pipelines(tmp_path):
    output = tmp_path / "gpu.json"
    result = subprocess.run(
        [
            sys.executable, "bench/bench_gpu.py", "--tiny", "--repeats", "1", "--size", "256",
            "--output", str(output),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["device"] == "cpu" and report["tiny"] and report["size"] == 256
    for steps in ("4", "8"):
        assert report["plain_fp16_ms"][steps] > 0
        assert 0 < report["ours_pipeline_ms"][steps] < report["ours_generate_ms"][steps]
        stages = report["ours_stages_ms"][steps]
        assert set(stages) == {"text encoders", "denoiser", "VAE decode", "after the pipeline"}
        assert all(ms > 0 for ms in stages.values())
        runs = report["http"][steps]
        assert [run["concurrency"] for run in runs] == [1, 4, 8]
        assert all(run["images"] >= 8 and run["images_per_s"] > 0 for run in runs)
    assert "images/s c=8 / c=1" in result.stdout

"""`make bench-gpu` runs on a GPU machine that a session gets only now and then, for minutes: the
script must not break unnoticed in between. Here it runs whole on tiny pipelines on the CPU, all
four sections: plain diffusers, ours in-process (first start), the granian server (second start,
concurrency sweep) and diffusers' recipe. It asserts what the report holds, never how fast
anything was."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("diffusers", reason="the benchmark needs pip install '.[gpu]'")

from tests.support import ROOT  # noqa: E402


def figure_ok(figure: dict) -> bool:
    return 0 <= figure["min"] <= figure["median"] <= figure["max"]


def test_the_gpu_benchmark_runs_end_to_end_on_tiny_pipelines(tmp_path):
    output = tmp_path / "gpu.json"
    result = subprocess.run(
        [
            sys.executable, "bench/bench_gpu.py", "--tiny", "--short", "--budget-s", "900",
            "--repeats", "2", "--warmups", "1", "--size", "256", "--concurrency", "1,4",
            "--steps", "2,4",
            "--max-batch", "4", "--output", str(output),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["device"] == "cpu" and report["tiny"] and report["size"] == 256
    assert report["short"] and report["skipped"] == []
    assert report["batch_sizes"] == [1, 4]  # --short: the sizes c=1, 4 and 8 pad to
    assert report["first_start_s"] > 0 and report["second_start_s"] > 0
    for steps in ("2", "4"):
        assert figure_ok(report["plain_fp16_ms"][steps]) and figure_ok(report["recipe_ms"][steps])
        for prompts in ("new", "repeated"):
            ours = report["ours"][steps][prompts]
            assert figure_ok(ours["pipeline_ms"]) and figure_ok(ours["generate_ms"])
            assert ours["pipeline_ms"]["median"] < ours["generate_ms"]["median"]
            stages = ours["stages_ms"]
            assert set(stages) == {"text encoders", "denoiser", "VAE decode", "after the pipeline"}
            assert all(figure_ok(figure) for figure in stages.values())
        # The prompt cache: a repeated prompt does not run the text encoders.
        new, repeated = (report["ours"][steps][p]["stages_ms"] for p in ("new", "repeated"))
        assert repeated["text encoders"]["median"] < new["text encoders"]["median"]
        levels = report["http"][steps]
        assert [level["concurrency"] for level in levels] == [1, 4]
        assert all(level["images"] >= 4 and figure_ok(level["images_per_s"]) for level in levels)
    assert report["recipe"]["mode"] == "reduce-overhead"  # --short: no autotuning
    assert "ours / the recipe" in result.stdout and "second start" in result.stdout

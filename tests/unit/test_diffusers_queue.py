"""The diffusers backend's queue and options: pure logic, no torch (the module must not need it)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from mockserver.backends import BackendError, BackendUnavailable
from mockserver.backends.diffusers.options import DiffusersOptions
from mockserver.backends.diffusers.queue import (
    GenerationQueue,
    Job,
    Timings,
    batch_key,
    guidance_for,
)
from tests.support import ROOT, make_generation

RECIPE = {"guidance_scale": 0.0, "negative_prompt_guidance_scale": 5.0}


def job(limit_s: float = 30.0, **overrides) -> Job:
    g = make_generation(**overrides)
    return Job(g, batch_key(g, RECIPE), limit_s)


def test_the_queue_modules_import_without_torch():
    code = (
        "import sys; import mockserver.backends.diffusers.queue, "
        "mockserver.backends.diffusers.options, mockserver.backends.ray.options; "
        "print('torch' in sys.modules, 'ray' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_a_negative_prompt_raises_guidance_and_so_the_batch_key():
    plain = make_generation()
    negative = make_generation(negative_prompt="blur")
    assert guidance_for(RECIPE, negative_prompt=False) == 0.0
    assert batch_key(negative, RECIPE)[-1] == 5.0
    assert batch_key(plain, RECIPE) != batch_key(negative, RECIPE)


def test_a_batch_takes_only_jobs_that_share_the_call_up_to_max_batch():
    queue = GenerationQueue(max_queue=10, max_batch=3)
    first, other_size, second, third, too_many = (
        job(seed=1),
        job(seed=2, width=256, height=256),
        job(seed=3, num_images=2),
        job(seed=4),
        job(seed=5),
    )
    for j in (first, other_size, second, third, too_many):
        queue.submit(j)
    assert queue.take_batch() == [first, second]  # 1 + 2 images; the next would make 4
    assert queue.take_batch() == [other_size]
    assert queue.take_batch() == [third, too_many]


def test_a_full_queue_refuses_at_once_with_retry_after():
    queue = GenerationQueue(max_queue=2, max_batch=1)
    queue.submit(job(seed=1))
    queue.submit(job(seed=2))
    with pytest.raises(BackendUnavailable, match="2 generations are waiting") as refused:
        queue.submit(job(seed=3))
    assert refused.value.retry_after >= 1
    assert len(queue) == 2


def test_a_wait_past_the_limit_is_refused_with_the_time_until_admission():
    queue = GenerationQueue(max_queue=10, max_batch=1)
    key = job().key
    queue.timings.record(key, 0.4, 1)  # 0.4 s an image
    for seed in range(3):
        queue.submit(job(limit_s=1.0, seed=seed))  # 0.4, 0.8, 1.2 s with its own image
    with pytest.raises(BackendUnavailable, match="longer than the 1 s limit") as refused:
        queue.submit(job(limit_s=1.0, seed=9))
    # Two of the three must be through before a fourth would finish within 1 s: 0.8 s.
    assert refused.value.retry_after == 1


def test_a_job_past_its_deadline_leaves_the_queue_unrun():
    queue = GenerationQueue(max_queue=10, max_batch=4)
    late = queue.submit(job(limit_s=0.05, seed=1))
    time.sleep(0.1)
    fresh = queue.submit(job(seed=2))
    assert late.future.cancelled()
    assert queue.take_batch() == [fresh]


def test_giving_up_removes_a_waiting_job_but_not_a_running_one():
    queue = GenerationQueue(max_queue=10, max_batch=1)
    running, waiting = queue.submit(job(seed=1)), queue.submit(job(seed=2))
    assert queue.take_batch() == [running]
    assert queue.give_up(waiting) >= 1 and len(queue) == 0
    queue.give_up(running)
    assert not running.future.cancelled()  # it is on the device: its result still comes


def test_take_batch_waits_for_a_job():
    queue = GenerationQueue(max_queue=10, max_batch=1)
    taken: list[list[Job]] = []
    worker = threading.Thread(target=lambda: taken.append(queue.take_batch()), daemon=True)
    worker.start()
    time.sleep(0.05)
    assert not taken
    submitted = queue.submit(job())
    worker.join(timeout=5)
    assert taken == [[submitted]]


def test_timings_are_per_kind_and_scale_to_a_kind_not_seen():
    timings = Timings()
    small = job(width=256, height=256).key
    big = job(width=1024, height=1024).key
    assert timings.seconds(small, 1) is None
    timings.record(small, 0.2, 2)
    assert timings.seconds(small, 3) == pytest.approx(0.3)
    assert timings.seconds(big, 1) == pytest.approx(0.1 * 16)  # 16 times the pixels


def test_options_are_read_from_option_texts():
    options = DiffusersOptions.parse(
        {"compile": "true", "compile_sizes": "1024x1024,768x1344", "max_batch": "4",
         "timeout_s": 30, "batch_sizes": "1,2", "models_dir": "/models"}
    )  # fmt: skip
    assert options.compile is True
    assert options.compile_sizes == ((1024, 1024), (768, 1344))
    assert options.buckets == (1, 2, 4)
    assert options.timeout_s == 30.0 and options.models_dir == "/models"
    assert DiffusersOptions().buckets == (1, 2, 4, 8)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_batchs": 4}, "no option max_batchs"),
        ({"compile": "maybe"}, "compile='maybe': expected true or false"),
        ({"compile_sizes": "big"}, "'big' is not WIDTHxHEIGHT"),
        ({"max_queue": 0}, "max_queue=0: expected a positive integer"),
        ({"batch_sizes": "16", "max_batch": 8}, "batch_sizes must lie between 1 and max_batch"),
        ({"png_compress_level": 12}, "expected a zlib level"),
    ],
)
def test_a_bad_option_is_refused_with_its_name(options, message):
    with pytest.raises(BackendError, match=message.replace("(", r"\(")):
        DiffusersOptions.parse(options)

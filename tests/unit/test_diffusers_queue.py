"""The diffusers backend's admission and batching rules, without torch: the queue is fed jobs
and emptied by hand, as the device's thread would."""

from __future__ import annotations

import threading

import pytest

from mockserver.backends import BackendError, BackendUnavailable
from mockserver.backends.diffusers.options import DiffusersOptions
from mockserver.backends.diffusers.queue import Queue, batch_key, guidance_for, uses_cfg
from tests.support import fresh_python, make_generation

RECIPE = {"guidance_scale": 0.0, "negative_prompt_guidance_scale": 5.0}


def key_of(**overrides):
    return batch_key(make_generation(**overrides), RECIPE)


def submit(queue, *, timeout_s=60.0, **overrides):
    generation = make_generation(**overrides)
    return queue.submit(generation, batch_key(generation, RECIPE), timeout_s=timeout_s)


def test_a_batch_takes_the_oldest_job_and_the_compatible_ones_up_to_max_batch():
    queue = Queue(max_queue=10, max_batch=4, timeout_s=60)
    first = submit(queue, seed=1)
    other_size = submit(queue, seed=2, width=256)
    pair = submit(queue, seed=3, num_images=2)
    too_many = submit(queue, seed=4, num_images=2)  # 1 + 2 + 2 would pass max_batch
    single = submit(queue, seed=5)
    batch = queue.take_batch()
    assert batch == [first, pair, single]
    assert all(job.future.running() for job in batch)
    queue.finished(batch, 0.4)
    assert queue.take_batch() == [other_size]
    assert queue.take_batch() == [too_many]
    assert len(queue) == 0


def test_a_negative_prompt_is_another_kind_where_it_turns_guidance_on():
    assert key_of() != key_of(negative_prompt="blur")
    assert guidance_for(RECIPE, negative_prompt=True) == 5.0 and uses_cfg(5.0)
    assert guidance_for({"guidance_scale": 7.0}, negative_prompt=True) == 7.0


def test_a_full_queue_refuses_at_once_with_retry_after():
    queue = Queue(max_queue=2, max_batch=1, timeout_s=60)
    submit(queue, seed=1)
    submit(queue, seed=2)
    with pytest.raises(BackendUnavailable, match="2 generations are waiting") as refused:
        submit(queue, seed=3)
    assert refused.value.retry_after == 1  # nothing measured yet: no estimate to give
    assert len(queue) == 2


def test_measured_times_refuse_a_job_that_would_wait_past_its_limit():
    queue = Queue(max_queue=10, max_batch=1, timeout_s=60)
    batch = [submit(queue, seed=0)]
    assert queue.take_batch() == batch
    queue.finished(batch, 2.0)  # 2 s an image of this kind
    submit(queue, seed=1, timeout_s=60)
    submit(queue, seed=2, timeout_s=60)
    with pytest.raises(BackendUnavailable, match="longer than the 5 s limit") as refused:
        submit(queue, seed=3, timeout_s=5)  # 4 s of queue ahead + 2 s of its own
    # Admitted once one of the two ahead is done: about 2 s.
    assert refused.value.retry_after == 2
    assert queue.timings.seconds(key_of(), 3) == pytest.approx(6.0)


def test_an_unmeasured_kind_is_estimated_from_the_measured_ones_by_pixels_and_steps():
    queue = Queue(max_queue=10, max_batch=1, timeout_s=60)
    batch = [submit(queue, seed=0, width=512, height=512, num_inference_steps=4)]
    queue.take_batch()
    queue.finished(batch, 1.0)
    bigger = key_of(width=1024, height=1024, num_inference_steps=8)
    assert queue.timings.seconds(bigger, 1) == pytest.approx(8.0)


def test_warm_up_jobs_and_failed_calls_teach_no_estimate():
    queue = Queue(max_queue=10, max_batch=1, timeout_s=60)
    generation = make_generation()
    warm = queue.submit(generation, batch_key(generation, RECIPE), timeout_s=60, measured=False)
    queue.take_batch()
    queue.finished([warm], 30.0)
    failed = [submit(queue)]
    queue.take_batch()
    queue.finished(failed, None)
    assert queue.timings.seconds(key_of(), 1) is None


def test_a_job_given_up_leaves_the_queue_unrun():
    queue = Queue(max_queue=10, max_batch=4, timeout_s=60)
    waiting = submit(queue, seed=1)
    kept = submit(queue, seed=2, width=256)
    assert queue.give_up(waiting) >= 1
    assert waiting.future.cancelled() and list(queue.jobs) == [kept]
    assert queue.take_batch() == [kept]


def test_a_job_past_its_deadline_is_dropped_and_its_caller_woken():
    queue = Queue(max_queue=10, max_batch=4, timeout_s=60)
    expired = submit(queue, seed=1, timeout_s=0)
    fresh = submit(queue, seed=2, width=256)
    assert expired.future.cancelled()
    assert queue.take_batch() == [fresh]


def test_the_device_thread_waits_for_work():
    queue = Queue(max_queue=10, max_batch=4, timeout_s=60)
    taken = []
    device = threading.Thread(target=lambda: taken.append(queue.take_batch()))
    device.start()
    job = submit(queue)
    device.join(timeout=30)
    assert taken == [[job]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_batch": "four"}, "max_batch='four': not an integer"),
        ({"compile": "maybe"}, "compile='maybe': not true or false"),
        ({"compile_sizes": "1024"}, "'1024' is not WIDTHxHEIGHT"),
        ({"batch_sizes": "1,16", "max_batch": 8}, "batch_sizes must lie between 1 and max_batch"),
        ({"max_queue": 0}, "at least 1"),
        ({"timeout_s": -1}, "more than 0"),
        ({"max_batchh": 4}, "has no option max_batchh; it takes allow_download, batch_sizes"),
    ],
)
def test_a_bad_option_is_refused_with_one_line_naming_it(options, message):
    with pytest.raises(BackendError, match=message.replace("(", r"\(")):
        DiffusersOptions.parse(options)


def test_options_from_the_command_line_and_from_json_mean_the_same():
    texts = DiffusersOptions.parse(
        {"max_batch": "4", "compile": "true", "compile_sizes": "256x256,768x1344", "timeout_s": "9"}
    )
    values = DiffusersOptions.parse(
        {"max_batch": 4, "compile": True, "compile_sizes": ["256x256", "768x1344"], "timeout_s": 9}
    )
    assert texts == values
    assert texts.compile_sizes == ((256, 256), (768, 1344))
    assert texts.buckets == [1, 2, 4]
    assert DiffusersOptions.parse({"max_batch": 6}).buckets == [1, 2, 4, 6]
    assert DiffusersOptions.parse({"batch_sizes": "2", "max_batch": 8}).buckets == [2, 8]
    assert DiffusersOptions.parse({"max_batch": None}).max_batch == 8  # JSON null: the default


def test_the_queue_and_options_modules_import_without_torch_or_ray():
    code = (
        "import sys; import mockserver.backends.diffusers.queue, "
        "mockserver.backends.diffusers.options, mockserver.backends.ray.options; "
        "print('torch' in sys.modules, 'ray' in sys.modules)"
    )
    assert fresh_python(code).split() == ["False", "False"]

"""Admission and batching for the device: pure logic, no torch, so that its rules are tested
without a model.

Requests wait in a FIFO queue; the device takes the oldest request and every other waiting
request that can share its pipeline call (same model, size, steps and guidance: the *key*), up
to ``max_batch`` images. No device time goes to a request nobody waits for: each carries a
deadline, and one whose deadline has passed (or that could not finish before it) leaves the
queue unrun. Admission refuses at once, with Retry-After, when ``max_queue`` requests wait or
when the estimated wait (the measured time per image of each waiting request's kind, summed
over the queue ahead) would pass the request's time limit; Retry-After is the estimated time
for the queue to drain to where the request would be admitted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from mockserver.backends import BackendUnavailable
from mockserver.rules import Generation

log = logging.getLogger("mockserver.diffusers")

Key = tuple[str, int, int, int, float]  # model, width, height, steps, guidance


def uses_cfg(guidance_scale: float) -> bool:
    """Whether diffusers runs classifier-free guidance, which doubles the denoiser's batch."""
    return guidance_scale > 1.0


def guidance_for(recipe: Mapping[str, Any], *, negative_prompt: bool) -> float:
    """The guidance scale: the recipe's, raised to its ``negative_prompt_guidance_scale`` when
    a negative prompt must take effect (diffusers ignores negative prompts at guidance 1 or
    below)."""
    scale = float(recipe.get("guidance_scale", 0.0))
    if negative_prompt and not uses_cfg(scale):
        scale = float(recipe.get("negative_prompt_guidance_scale", scale))
    return scale


def batch_key(generation: Generation, recipe: Mapping[str, Any]) -> Key:
    guidance = guidance_for(recipe, negative_prompt=bool(generation.negative_prompt))
    g = generation
    return (g.model, g.width, g.height, g.num_inference_steps, guidance)


@dataclass
class Job:
    generation: Generation
    key: Key  # what a batch shares
    deadline: float  # time.monotonic(); past it, nobody waits for the result
    future: Future[list[bytes]] = field(default_factory=Future)
    measured: bool = True  # warm-up calls (compiles) must not teach the time estimates


class Timings:
    """Measured seconds per image, a moving average per kind of request, and one per
    megapixel-step for a kind not seen yet. Nothing is assumed before the first measurement."""

    SMOOTHING = 0.3

    def __init__(self) -> None:
        self.per_image: dict[Key, float] = {}
        self.per_unit: float | None = None  # seconds per megapixel-step

    @staticmethod
    def _units(key: Key) -> float:
        _, width, height, steps, guidance = key
        return width * height / 1e6 * max(steps, 1) * (2 if uses_cfg(guidance) else 1)

    def record(self, key: Key, seconds: float, images: int) -> None:
        each = seconds / images
        old = self.per_image.get(key)
        self.per_image[key] = each if old is None else old + self.SMOOTHING * (each - old)
        unit = each / self._units(key)
        previous = self.per_unit
        self.per_unit = unit if previous is None else previous + self.SMOOTHING * (unit - previous)

    def seconds(self, key: Key, images: int) -> float | None:
        """Estimated seconds for *images* images of kind *key*; None before any measurement."""
        if key in self.per_image:
            return self.per_image[key] * images
        if self.per_unit is None:
            return None
        return self.per_unit * self._units(key) * images


def retry_after(seconds: float | None) -> int:
    return 1 if seconds is None else max(1, math.ceil(seconds))


class Queue:
    """The waiting jobs, shared by the callers' threads and the device's one thread."""

    def __init__(self, *, max_queue: int, max_batch: int, timeout_s: float):
        self.max_queue, self.max_batch, self.timeout_s = max_queue, max_batch, timeout_s
        self.jobs: deque[Job] = deque()
        self.timings = Timings()
        self._wakeup = threading.Condition()
        self._running: tuple[float, float] | None = None  # (started, estimated seconds)

    def __len__(self) -> int:
        """The jobs waiting (not those on the device)."""
        return len(self.jobs)

    def submit(
        self, generation: Generation, key: Key, *, timeout_s: float, measured: bool = True
    ) -> Job:
        """Queue *generation*, or refuse it at once (BackendUnavailable) when the queue is full
        or the wait would outlast *timeout_s*."""
        job = Job(generation, key, time.monotonic() + timeout_s, measured=measured)
        with self._wakeup:
            self._drop_expired()
            if len(self.jobs) >= self.max_queue:
                raise BackendUnavailable(
                    f"{len(self.jobs)} generations are waiting; try again shortly",
                    retry_after(self._admissible_in_s(job)),
                )
            own = self.timings.seconds(key, generation.num_images) or 0.0
            wait = self._wait_s(self.jobs)
            if wait is not None and wait + own > timeout_s:
                raise BackendUnavailable(
                    f"the queue would take about {wait + own:.1f} s, longer than the "
                    f"{timeout_s:g} s limit; try again shortly",
                    retry_after(self._admissible_in_s(job)),
                )
            self.jobs.append(job)
            self._wakeup.notify()
        return job

    def give_up(self, job: Job) -> int:
        """The caller stops waiting for *job*: a job not started leaves the queue, unrun.
        Returns the Retry-After to answer with."""
        with self._wakeup:
            if job.future.cancel():
                with contextlib.suppress(ValueError):  # the device took it a moment ago
                    self.jobs.remove(job)
            return retry_after(self._wait_s(self.jobs))

    def take_batch(self) -> list[Job]:
        """The oldest job and the waiting jobs that can share its pipeline call, all still
        awaited (waits for one); they are marked running, so a caller can no longer cancel
        them. Call :meth:`finished` when they have run."""
        with self._wakeup:
            while True:
                self._drop_expired()
                if self.jobs:
                    break
                self._wakeup.wait()
            first = self.jobs.popleft()
            batch, images = [first], first.generation.num_images
            for job in list(self.jobs):
                if images + job.generation.num_images > self.max_batch:
                    continue
                if job.key == first.key:
                    self.jobs.remove(job)
                    batch.append(job)
                    images += job.generation.num_images
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if batch:
                estimate = self.timings.seconds(first.key, images)
                self._running = (time.monotonic(), estimate or 0.0)
            return batch

    def finished(self, batch: list[Job], seconds: float | None) -> None:
        """*batch* is off the device; *seconds*, the pipeline call's time where it succeeded,
        teaches the estimates unless a job was a warm-up."""
        with self._wakeup:
            self._running = None
            if seconds is not None and batch and all(job.measured for job in batch):
                images = sum(job.generation.num_images for job in batch)
                self.timings.record(batch[0].key, seconds, images)

    # Estimates; called with the lock held -----------------------------------------------

    def _drop_expired(self) -> None:
        """Take out of the queue, unrun, the jobs whose caller gave up, and those that could
        not be done before their deadline even if they started now (their caller would have
        had a 503 by then)."""
        now = time.monotonic()

        def hopeless(job: Job) -> bool:
            run_s = self.timings.seconds(job.key, job.generation.num_images) or 0.0
            return job.deadline <= now + run_s or job.future.cancelled()

        for job in [job for job in self.jobs if hopeless(job)]:
            self.jobs.remove(job)
            if job.future.cancel():  # wakes a caller still waiting: CancelledError, a 503
                log.info("dropped a %s generation past its deadline, unrun", job.generation.model)

    def _work_s(self, jobs: Iterable[Job]) -> float | None:
        """Estimated device seconds for *jobs*; None while a kind has no estimate. Batching
        makes it less when many jobs of one kind wait: the per-image figures, measured on the
        batches that ran, carry that."""
        total = 0.0
        for job in jobs:
            seconds = self.timings.seconds(job.key, job.generation.num_images)
            if seconds is None:
                return None
            total += seconds
        return total

    def _wait_s(self, jobs: Iterable[Job]) -> float | None:
        """Estimated seconds until the device is through the call it is running and *jobs*."""
        work = self._work_s(jobs)
        if work is None or self._running is None:
            return work
        started, estimate = self._running
        return work + max(0.0, started + estimate - time.monotonic())

    def _admissible_in_s(self, job: Job) -> float | None:
        """Estimated seconds until *job* would be admitted: until fewer than max_queue jobs
        wait and the rest of the queue, and the job, would be through within its time limit."""
        own = self.timings.seconds(job.key, job.generation.num_images) or 0.0
        limit = job.deadline - time.monotonic()
        jobs = list(self.jobs)
        for served in range(len(jobs) + 1):
            rest = self._work_s(jobs[served:])
            if rest is None:
                return None
            if len(jobs) - served < self.max_queue and rest + own <= limit:
                return self._wait_s(jobs[:served])
        return self._wait_s(jobs)

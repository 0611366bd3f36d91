"""How the attribution engine uses CPU threads: whole backward passes in parallel, each of its
operations on one thread.

A backward pass of the frozen model is a few thousand small operations (adds, copies, index
reads, matrix products of a few hundred rows). Torch's intra-op pool splits each of them across
its OpenMP threads and meets at a barrier after each one, so every operation waits for the
slowest thread: when another process holds a core, that is a scheduler time slice per
operation, and two threads ran the full graph of a 64-token prompt 8-12x slower than one.
Instead the engine turns intra-op threads off for the duration of a call and hands out whole
blocks of rows (one backward pass each, tens of milliseconds) to that many worker threads;
a worker that loses its core delays only its own block.

Between two operations a worker runs a little Python and must take the GIL back; by default a
thread waits up to 5 ms for it (`sys.getswitchinterval`) while the other one runs Python, once
per operation. While the workers run the interval is 0.2 ms (which the two-thread full graph
of a 64-token prompt needed to beat one thread), and restored after.
"""

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

SWITCH_INTERVAL_S = 2e-4
"""How long a worker may hold the GIL while another waits for it (Python's default: 5 ms)."""

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def engine_threads(threads: int | None = None) -> Iterator[int]:
    """Run the body with torch's intra-op threads set to 1; yields the number of worker threads
    to use (`threads`, default the intra-op threads set before the call), restored after."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    before = torch.get_num_threads()
    interval = sys.getswitchinterval()
    workers = before if threads is None else threads
    torch.set_num_threads(1)
    if workers > 1:
        sys.setswitchinterval(min(interval, SWITCH_INTERVAL_S))
    try:
        yield workers
    finally:
        torch.set_num_threads(before)
        sys.setswitchinterval(interval)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """`map(fn, items)` with up to `workers` threads (in the calling thread when 1), in order.
    Fewer run at once while the machine gives the process no more cores (see `Throttle`)."""
    if workers == 1:
        yield from map(fn, items)
        return
    gate = Gate(workers)
    throttle = Throttle(gate, workers)

    def gated(item: T) -> R:
        with gate.held():
            return fn(item)

    with ThreadPoolExecutor(workers, thread_name_prefix="attribution") as pool:
        # threads started by the pool read torch's global thread count, already 1 here
        for out in pool.map(gated, items):
            throttle.update()
            yield out


class Gate:
    """At most `limit` threads inside at once; the limit may change while threads wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._inside = 0
        self._changed = threading.Condition()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._changed:
            while self._inside >= self.limit:
                self._changed.wait()
            self._inside += 1
        try:
            yield
        finally:
            with self._changed:
                self._inside -= 1
                self._changed.notify_all()

    def set_limit(self, limit: int) -> None:
        with self._changed:
            self.limit = limit
            self._changed.notify_all()


class Throttle:
    """Lowers a gate's limit while the workers do not get the cores they would use.

    Over each window of `WINDOW_S`, the process's CPU time per wall second says how many cores
    it got. Where other processes hold the cores, several workers get about one between them
    and lose a little to taking turns at the GIL: measured on 2 cores with another job on
    both, two workers took 1.05-1.13x the time of one. The limit then drops to the cores
    actually used, and after `BACKOFF_WINDOWS` windows goes back up to see whether they freed.
    """

    WINDOW_S = 0.2
    BACKOFF_WINDOWS = 4
    MIN_GAIN = 0.35
    """Share of a core each worker past the first must add to keep its place."""

    def __init__(self, gate: Gate, workers: int) -> None:
        self.gate, self.workers = gate, workers
        self.backoff = 0
        self._start()

    def _start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def update(self) -> None:
        elapsed = time.perf_counter() - self.wall
        if elapsed < self.WINDOW_S:
            return
        cores = (time.process_time() - self.cpu) / elapsed
        limit = self.gate.limit
        if limit > 1 and cores < 1 + self.MIN_GAIN * (limit - 1):
            self.gate.set_limit(max(1, min(limit - 1, round(cores))))
            self.backoff = self.BACKOFF_WINDOWS
        elif limit < self.workers:
            self.backoff -= 1
            if self.backoff <= 0:
                self.gate.set_limit(self.workers)
        self._start()

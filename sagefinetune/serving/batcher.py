"""Dynamic batching: the inputs of concurrent requests go through the model in one forward pass.

The event loop only queues requests and answers them; ``workers`` threads take batches from that queue themselves,
so a worker that finishes a forward pass starts the next one at once, without waiting for the event loop to be
scheduled between the two (torch and ONNX Runtime release the GIL while they compute, so the event loop keeps reading
and parsing requests meanwhile). A batch starts with the oldest waiting request and takes every request that is
already queued; while other requests are still on their way (being read or parsed: inside :meth:`request`, but not
yet at :meth:`predict`) it waits for them up to ``max_wait_ms``, and never past ``max_batch_size`` inputs.
A lone client therefore never waits for the window, and under load the requests that arrive during a forward pass
form the next batch. ``workers`` > 1 runs that many forward passes at once (each with fewer threads), which keeps
every core busy where one pass cannot. A batch waits for requests on their way only while no other worker is free: a
free worker takes them as they come, and waiting would leave its core idle. (With 16 clients and 2 workers over the
ONNX export, 12 to 14% of the two cores stayed idle before this rule and the server's smaller ONNX batches, 4 to 8%
after: see :func:`sagefinetune.serving.server.default_max_batch`.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["DynamicBatcher", "ShuttingDown"]


class ShuttingDown(RuntimeError):
    """The server stopped before this request's forward pass ran (its grace period was over)."""


@dataclass
class _Arrival:
    arrived: bool = False  # this request reached predict(): no longer on its way


_ARRIVAL: ContextVar[_Arrival | None] = ContextVar("sft_arrival", default=None)


@dataclass
class _Pending:
    items: list[Any]
    future: asyncio.Future[tuple[Any, int]]


class DynamicBatcher:
    """Batches the inputs of concurrent requests into calls of ``forward(items) -> rows`` (one row per item).

    Args:
        forward: runs in a worker thread; returns an indexable of one row per item (a numpy array).
        max_batch_size: most inputs in one forward pass (a single larger request still runs, alone).
        max_wait_ms: how long a batch waits for requests that are on their way but not queued yet (while every
            other worker is busy).
        workers: forward passes that may run at once, each in its own thread.

    Example:
        >>> async def demo():
        ...     batcher = DynamicBatcher(lambda items: [len(t) for t in items], max_batch_size=8)
        ...     await batcher.start()
        ...     async with batcher.request():
        ...         rows, batch = await batcher.predict(["ab", "abc"])
        ...     await batcher.stop()
        ...     return rows, batch
        >>> asyncio.run(demo())
        ([2, 3], 2)
    """

    def __init__(self, forward: Callable[[list[Any]], Any], *, max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 workers: int = 1) -> None:
        self.forward = forward
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.workers = workers
        self.in_flight = 0
        self.arriving = 0  # requests in flight that have not reached predict() yet: a batch may wait for them
        self.batches = 0
        self.inputs = 0
        self._queue: collections.deque[_Pending] = collections.deque()
        self._changed = threading.Condition()  # guards the queue and the counts; workers wait on it
        self._stopping = False
        self._collecting = False  # a worker is forming a batch
        self._idle = 0  # workers waiting for work (a collecting worker stops waiting for arrivals when one is)
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), False
        self._threads = [threading.Thread(target=self._work, name=f"sft-forward_{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        """Let the forward passes running now finish and answer; fail what is still queued with ShuttingDown."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        with self._changed:
            left, self._queue = list(self._queue), collections.deque()
        self._fail(left, ShuttingDown("the server is shutting down"))
        await asyncio.sleep(0)  # the answers the workers handed to the loop are delivered before stop() returns

    @contextlib.asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """Count a request as in flight from its first byte to its answer (batches wait for such requests)."""
        arrival = _Arrival()
        token = _ARRIVAL.set(arrival)
        self._count(in_flight=1, arriving=1)
        try:
            yield
        finally:
            _ARRIVAL.reset(token)
            self._count(in_flight=-1, arriving=0 if arrival.arrived else -1)

    async def predict(self, items: list[Any]) -> tuple[Any, int]:
        """The rows of ``items``, and how many inputs shared their forward pass."""
        assert self._loop is not None, "start() the batcher first"
        future: asyncio.Future[tuple[Any, int]] = self._loop.create_future()
        arrival = _ARRIVAL.get()
        with self._changed:
            self._queue.append(_Pending(items, future))
            if arrival is not None and not arrival.arrived:
                arrival.arrived = True
                self.arriving -= 1
            self._changed.notify_all()
        return await future

    def _count(self, **changes: int) -> None:
        with self._changed:
            for name, change in changes.items():
                setattr(self, name, getattr(self, name) + change)
            self._changed.notify_all()

    def _work(self) -> None:
        """A worker thread: take a batch, run it, hand the rows to the event loop; until stop()."""
        while (batch := self._take()) is not None:
            items = [item for pending in batch for item in pending.items]
            try:
                rows, error = self.forward(items), None
            except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
                rows, error = None, exc
            if error is None:
                with self._changed:
                    self.batches, self.inputs = self.batches + 1, self.inputs + len(items)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._answer, batch, rows, error, len(items))

    def _take(self) -> list[_Pending] | None:
        """The next batch (see the module docstring), or None once the batcher stops. One worker collects at a
        time: the others wait for it, so requests on their way join its batch instead of starting another."""
        with self._changed:
            self._idle += 1
            self._changed.notify_all()  # a worker collecting now stops waiting: this one takes what comes next
            while (not self._queue or self._collecting) and not self._stopping:
                self._changed.wait()
            self._idle -= 1
            if self._stopping:
                return None
            self._collecting = True
            try:
                return self._collect()
            finally:
                self._collecting = False
                self._changed.notify_all()

    def _collect(self) -> list[_Pending]:
        """Called holding the lock, with a request queued."""
        batch = [self._queue.popleft()]
        size = len(batch[0].items)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch_size:
            if self._queue:
                batch.append(self._queue.popleft())
                size += len(batch[-1].items)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.arriving <= 0 or self._idle or self._stopping:  # none on the way, or a free worker
                break
            self._changed.wait(remaining)
        return batch

    def _answer(self, batch: list[_Pending], rows: Any, error: BaseException | None, inputs: int) -> None:
        """On the event loop: each request's rows (or the batch's error)."""
        if error is not None:
            self._fail(batch, error)
            return
        start = 0
        for pending in batch:
            end = start + len(pending.items)
            if not pending.future.done():  # the client may have gone away
                pending.future.set_result((rows[start:end], inputs))
            start = end

    @staticmethod
    def _fail(batch: list[_Pending], exc: BaseException) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

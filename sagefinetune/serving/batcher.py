"""Dynamic batching: the inputs of concurrent requests go through the model in one forward pass.

One asyncio task collects requests and hands each batch to a worker thread (torch releases the GIL while it computes,
so the event loop keeps reading and parsing requests meanwhile). A batch is collected only once a worker is free; it
starts with the oldest waiting request and takes every request that is already queued; while other requests are still
in flight (being read or parsed, not those in another worker's forward pass) it waits for them up to ``max_wait_ms``,
and never past ``max_batch_size`` inputs.
A lone client therefore never waits for the window, and under load the requests that arrive during a forward pass
form the next batch. ``workers`` > 1 runs that many forward passes at once (each with fewer torch threads), which
keeps every core busy where one pass cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

__all__ = ["DynamicBatcher", "ShuttingDown"]


class ShuttingDown(RuntimeError):
    """The server stopped before this request's forward pass ran (its grace period was over)."""


@dataclass
class _Pending:
    items: list[Any]
    future: asyncio.Future[tuple[Any, int]]


class DynamicBatcher:
    """Batches the inputs of concurrent requests into calls of ``forward(items) -> rows`` (one row per item).

    Args:
        forward: runs in the worker thread; returns an indexable of one row per item (a numpy array).
        max_batch_size: most inputs in one forward pass (a single larger request still runs, alone).
        max_wait_ms: how long a batch waits for requests that are in flight but not queued yet.
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
        self.computing = 0  # requests in a running forward pass: in flight, but not on their way to a batch
        self.batches = 0
        self.inputs = 0
        self._queue: asyncio.Queue[_Pending] | None = None
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._free: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._queue, self._changed = asyncio.Queue(), asyncio.Event()
        self._free = asyncio.Semaphore(self.workers)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="sft-forward")
        self._task = asyncio.create_task(self._run(), name="sft-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.wait(set(self._running))
        while self._queue is not None and not self._queue.empty():
            self._fail([self._queue.get_nowait()], ShuttingDown("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @contextlib.asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """Count a request as in flight from its first byte to its answer (batches wait for such requests)."""
        self.in_flight += 1
        self._notify()
        try:
            yield
        finally:
            self.in_flight -= 1
            self._notify()

    async def predict(self, items: list[Any]) -> tuple[Any, int]:
        """The rows of ``items``, and how many inputs shared their forward pass."""
        assert self._queue is not None, "start() the batcher first"
        future: asyncio.Future[tuple[Any, int]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(items, future))
        self._notify()
        return await future

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _run(self) -> None:
        assert self._free is not None
        while True:
            await self._free.acquire()  # collect the next batch only when a worker can take it
            try:
                batch = await self._collect()
            except BaseException:
                self._free.release()
                raise
            task = asyncio.create_task(self._forward(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _forward(self, batch: list[_Pending]) -> None:
        assert self._free is not None
        items = [item for pending in batch for item in pending.items]
        self.computing += len(batch)
        try:
            rows = await asyncio.get_running_loop().run_in_executor(self._executor, self.forward, items)
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
            self._fail(batch, exc)
            return
        finally:
            self.computing -= len(batch)
            self._free.release()
        self.batches += 1
        self.inputs += len(items)
        start = 0
        for pending in batch:
            end = start + len(pending.items)
            if not pending.future.done():  # the client may have gone away
                pending.future.set_result((rows[start:end], len(items)))
            start = end

    async def _collect(self) -> list[_Pending]:
        assert self._queue is not None and self._changed is not None
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        size = len(batch[0].items)
        deadline = loop.time() + self.max_wait
        while size < self.max_batch_size:
            if not self._queue.empty():
                pending = self._queue.get_nowait()
                batch.append(pending)
                size += len(pending.items)
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or self.in_flight - self.computing <= len(batch):  # nobody else is on the way
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch

    @staticmethod
    def _fail(batch: list[_Pending], exc: BaseException) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

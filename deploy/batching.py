"""Dynamic batching on asyncio: many small requests become few model calls.

Each request puts its texts on one bounded queue (``max_queue`` texts waiting at most; a request that
does not fit is refused at once with :class:`QueueFullError`, never parked). One worker takes up to
``max_batch_size`` texts, waiting at most ``max_wait_ms`` after the oldest waiting text arrived for
more to come, runs the model in a worker thread (ONNX Runtime releases the GIL, so the event loop
keeps serving), and hands every request its results in input order. A request larger than a batch is
split over several. When a model call raises, each request of its batch is run again alone: only the request
that caused the failure gets the error, the others their results. :meth:`DynamicBatcher.close` stops
accepting, finishes queued and in-flight work, then stops the worker.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from deploy import DeployError
from deploy.metrics import Metrics

logger = logging.getLogger(__name__)

PredictFn = Callable[[list[str]], list[Any]]


class QueueFullError(DeployError):
    """The queue holds ``max_queue`` texts already; retry later (HTTP 503)."""


class ShuttingDownError(DeployError):
    """The batcher no longer accepts work (HTTP 503)."""


@dataclass(eq=False)
class _Request:
    texts: list[str]
    future: asyncio.Future
    results: list[Any] = field(default_factory=list)
    remaining: int = 0


@dataclass(frozen=True)
class _Item:
    request: _Request
    index: int
    enqueued: float


class DynamicBatcher:
    """Collect texts from concurrent :meth:`submit` calls into batches for ``predict_fn``.

    ``predict_fn(texts) -> results`` (one result per text, same order) runs in a dedicated thread.
    """

    def __init__(self, predict_fn: PredictFn, max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 256, metrics: Metrics | None = None) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_wait_ms >= 0")
        self.predict_fn = predict_fn
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.metrics = metrics or Metrics()
        self._queue: deque[_Item] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._accepting = False
        self._flush = False

    @property
    def depth(self) -> int:
        """Texts waiting for a batch (not counting the batch being run)."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        """True while the worker task is alive and new work is accepted."""
        return self._accepting and self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wakeup = asyncio.Event()
        self._accepting = True
        self._worker = asyncio.create_task(self._run(), name="batch-worker")

    def drain(self) -> None:
        """Stop waiting for batches to fill (shutdown is coming); call on the event loop thread."""
        self._flush = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def close(self) -> None:
        """Stop accepting, finish every queued and running batch, stop the worker and its thread."""
        self._accepting = False
        self.drain()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str]) -> list[Any]:
        """Queue ``texts`` and wait for their results (in input order).

        Raises :class:`QueueFullError` at once when they do not fit, :class:`ShuttingDownError` after
        :meth:`close`, or whatever ``predict_fn`` raised on these texts alone.
        """
        if not self._accepting or self._wakeup is None:
            raise ShuttingDownError("the server is shutting down" if self._worker else "not started")
        if len(self._queue) + len(texts) > self.max_queue:
            self.metrics.count_queue_full()
            raise QueueFullError(f"queue full ({len(self._queue)} of {self.max_queue} texts waiting); "
                                 "retry later")
        if not texts:
            return []
        request = _Request(list(texts), asyncio.get_running_loop().create_future(),
                           [None] * len(texts), len(texts))
        now = time.monotonic()
        self._queue.extend(_Item(request, i, now) for i in range(len(texts)))
        self._wakeup.set()
        return await request.future

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if not self._accepting:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._queue[0].enqueued + self.max_wait
            while len(self._queue) < self.max_batch_size and not self._flush:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch: list[_Item] = []
            while self._queue and len(batch) < self.max_batch_size:
                item = self._queue.popleft()
                if not item.request.future.done():  # skip requests whose caller went away
                    batch.append(item)
            if batch:
                await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Item], isolate: bool = True) -> None:
        """Run one model call and hand out its results. When it raises and the batch holds several requests,
        each request is run again alone, so only the one that caused the failure gets the error."""
        texts = [item.request.texts[item.index] for item in batch]
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.predict_fn, texts)
            if len(results) != len(texts):
                raise RuntimeError(f"predict_fn returned {len(results)} results for {len(texts)} texts")
        except Exception as exc:
            self.metrics.count_model_error()
            groups: dict[_Request, list[_Item]] = {}
            for item in batch:
                groups.setdefault(item.request, []).append(item)
            if isolate and len(groups) > 1:
                logger.warning("model call on %d texts of %d requests failed (%s: %s); running each request "
                               "alone", len(texts), len(groups), type(exc).__name__, exc)
                for items in groups.values():
                    if not items[0].request.future.done():
                        await self._run_batch(loop, items, isolate=False)
                return
            logger.exception("model call on %d texts failed", len(texts))
            for request in groups:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        truncated = sum(1 for r in results if isinstance(r, dict) and r.get("truncated"))
        self.metrics.observe_batch(len(texts), time.perf_counter() - start, truncated)
        for item, result in zip(batch, results):
            request = item.request
            if request.future.done():
                continue
            request.results[item.index] = result
            request.remaining -= 1
            if request.remaining == 0:
                request.future.set_result(request.results)

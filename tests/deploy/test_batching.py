"""The asyncio dynamic batcher on its own (the HTTP tests run it with the real model)."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from deploy.batching import DynamicBatcher, QueueFullError, ShuttingDownError


class Recorder:
    """predict_fn that records its batches; optionally slow or failing on a given text."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.started = threading.Event()

    def __call__(self, texts: list[str]) -> list[str]:
        self.batches.append(list(texts))
        self.started.set()
        time.sleep(self.delay)
        if self.fail_on in texts:
            raise ValueError(f"cannot tag {self.fail_on}")
        return [t.upper() for t in texts]


def test_batches_concurrent_requests_and_keeps_order():
    async def main():
        fn = Recorder()
        batcher = DynamicBatcher(fn, max_batch_size=4, max_wait_ms=50, max_queue=64)
        await batcher.start()
        requests = [[f"r{i}a", f"r{i}b"] for i in range(5)] + [[f"big{j}" for j in range(9)]]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.close()
        return fn, requests, results

    fn, requests, results = asyncio.run(main())
    assert results == [[t.upper() for t in r] for r in requests]
    assert all(len(b) <= 4 for b in fn.batches)
    assert len(fn.batches) == 5  # 19 texts in batches of at most 4, no half-empty batch mid-way
    assert sum(map(len, fn.batches)) == 19


def test_full_queue_refuses_at_once_and_close_drains():
    async def main():
        fn = Recorder(delay=0.2)
        batcher = DynamicBatcher(fn, max_batch_size=1, max_wait_ms=0, max_queue=2)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(["a"]))
        while not fn.started.is_set():
            await asyncio.sleep(0.005)
        queued = asyncio.create_task(batcher.submit(["b", "c"]))
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        t0 = time.monotonic()
        with pytest.raises(QueueFullError, match="queue full"):
            await batcher.submit(["d"])
        refused_in = time.monotonic() - t0
        await batcher.close()  # finishes "a", "b", "c" before returning
        assert first.done() and queued.done()
        with pytest.raises(ShuttingDownError):
            await batcher.submit(["e"])
        return refused_in, first.result(), queued.result(), batcher.metrics.rejected_queue_full

    refused_in, a, bc, rejected = asyncio.run(main())
    assert refused_in < 0.05
    assert a == ["A"] and bc == ["B", "C"] and rejected == 1


def test_a_failing_batch_fails_its_requests_only():
    async def main():
        fn = Recorder(fail_on="bad")
        batcher = DynamicBatcher(fn, max_batch_size=2, max_wait_ms=20, max_queue=16)
        await batcher.start()
        outcome = await asyncio.gather(batcher.submit(["ok", "bad"]), return_exceptions=True)
        later = await batcher.submit(["fine"])
        await batcher.close()
        return outcome, later, batcher.metrics.model_errors

    outcome, later, errors = asyncio.run(main())
    assert isinstance(outcome[0], ValueError) and later == ["FINE"] and errors == 1


def test_a_failing_batch_of_several_requests_fails_only_the_culprit():
    """One model call on three requests raises: each runs again alone, only the one holding "bad" fails."""
    async def main():
        fn = Recorder(fail_on="bad")
        batcher = DynamicBatcher(fn, max_batch_size=8, max_wait_ms=200, max_queue=16)
        await batcher.start()
        outcome = await asyncio.gather(batcher.submit(["a", "b"]), batcher.submit(["x", "bad"]),
                                       batcher.submit(["c"]), return_exceptions=True)
        await batcher.close()
        return fn.batches, outcome, batcher.metrics.model_errors

    batches, outcome, errors = asyncio.run(main())
    assert batches == [["a", "b", "x", "bad", "c"], ["a", "b"], ["x", "bad"], ["c"]]
    assert outcome[0] == ["A", "B"] and outcome[2] == ["C"]
    assert isinstance(outcome[1], ValueError) and errors == 2

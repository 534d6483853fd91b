"""Coalescing writes into bulk calls: items submitted by many worker threads are flushed at
the CRM's batch size or after a short debounce, and each thread gets its own item's result.

A partial batch is cut after the debounce only while no other flush is in flight (or once
its items have waited `max_hold`, so one hung call does not hold everything): when the CRM
or its rate limit is slow, items keep gathering behind the running flush and the next call
is full, instead of many small calls each spending a request of the CRM's budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Collects items and calls `flush(items) -> results` (same order) in batches.

    Args:
        flush: the bulk call; must return one result per item (exceptions as values are fine).
        max_size: flush as soon as this many items wait (the CRM's batch limit).
        max_wait: seconds the first waiting item may wait for others (debounce); a partial
            batch also waits until no flush is in flight, up to `max_hold` seconds.
        concurrency: flushes that may run at once.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Sequence[R]],
        *,
        max_size: int,
        max_wait: float = 0.2,
        max_hold: float = 2.0,
        concurrency: int = 4,
        name: str = "batcher",
    ) -> None:
        self._flush = flush
        self.max_size = max(1, max_size)
        self.max_wait = max_wait
        self.max_hold = max(max_hold, max_wait)
        self.concurrency = max(1, concurrency)
        self._pending: list[tuple[T, Future[R]]] = []
        self._inflight = 0
        self._first_at = 0.0
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{name}-flush")
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.flushes = 0

    def submit(self, item: T) -> Future[R]:
        """Queue an item; the future resolves to its result."""
        future: Future[R] = Future()
        with self._cond:
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append((item, future))
            self._cond.notify()
        return future

    def call(self, item: T) -> R:
        """Submit and wait for the result (raises what the flush raised for the batch)."""
        return self.submit(item).result()

    def _take(self) -> list[tuple[T, Future[R]]] | None:
        with self._cond:
            while True:
                if self._closed and not self._pending:
                    return None
                if self._pending and (self._inflight < self.concurrency or self._closed):
                    due = self._first_at + (self.max_hold if self._inflight else self.max_wait)
                    full = len(self._pending) >= self.max_size
                    if full or self._closed or time.monotonic() >= due:
                        batch = self._pending[: self.max_size]
                        self._pending = self._pending[self.max_size :]
                        self._first_at = time.monotonic()
                        self._inflight += 1
                        return batch
                    # Wake when due, or when a flush ends or an item arrives (both notify).
                    self._cond.wait(max(0.0, due - time.monotonic()))
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._pool.submit(self._do_flush, batch)

    def _do_flush(self, batch: list[tuple[T, Future[R]]]) -> None:
        self.flushes += 1
        try:
            results = self._flush([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                future.set_exception(exc)
            return
        else:
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
        finally:
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()  # closed: it hands every pending item to the pool and ends
        self._pool.shutdown(wait=True)

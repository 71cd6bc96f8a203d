"""Overlapping one step of work with the next, in one worker thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def one_ahead(fn: Callable[[T], R], items: Sequence[T], *, name: str) -> Iterator[R]:
    """``fn`` over ``items``, in order, yielding each result; while the caller works on one
    result, ``fn`` already runs on the next item in a worker thread named ``name``. At most
    two results are alive at a time. An exception in ``fn`` is raised where its result
    would have been yielded."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending: Future[R] | None = None
        for item in items:
            upcoming = pool.submit(fn, item)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()

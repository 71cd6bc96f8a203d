"""Overlapping steps of work with the next ones, in worker threads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def one_ahead(fn: Callable[[T], R], items: Sequence[T], *, name: str) -> Iterator[R]:
    """``fn`` over ``items``, in order, yielding each result; while the caller works on one
    result, ``fn`` already runs on the next item in a worker thread named ``name``. At most
    two results are alive at a time. An exception in ``fn`` is raised where its result
    would have been yielded."""
    return in_order([fn], items, name=name)


def in_order(fns: Sequence[Callable[[T], R]], items: Sequence[T], *, name: str) -> Iterator[R]:
    """:func:`one_ahead` with ``len(fns)`` workers: item ``k`` is done by ``fns[k % n]`` in
    worker ``k % n`` (each function only ever runs in its own worker: give each one a
    resource of its own, such as a database connection), and the results are yielded in
    the order of ``items``. At most ``n + 1`` results are alive at a time."""
    if not fns:
        raise ValueError("in_order needs at least one function")
    with ExitStack() as stack:
        pools = [stack.enter_context(ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{name}-{i}")) for i in range(len(fns))]
        pending: list[Future[R]] = []
        for k, item in enumerate(items):
            pending.append(pools[k % len(pools)].submit(fns[k % len(fns)], item))
            if len(pending) > len(pools):
                yield pending.pop(0).result()
        for f in pending:
            yield f.result()

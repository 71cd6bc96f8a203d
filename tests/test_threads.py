"""jukicore._threads: work overlapped in worker threads, results in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from jukicore._threads import in_order, one_ahead


def test_results_come_in_order_and_each_function_stays_in_its_worker() -> None:
    seen: dict[int, set[str]] = {0: set(), 1: set()}

    def worker(k: int) -> Callable[[int], int]:
        def fn(item: int) -> int:
            seen[k].add(threading.current_thread().name)
            time.sleep(0.001 * (item % 3))  # finish out of order
            return item * 10
        return fn

    assert list(in_order([worker(0), worker(1)], range(12), name="t")) == [
        i * 10 for i in range(12)]
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1]
    assert list(one_ahead(lambda i: -i, [1, 2, 3], name="t")) == [-1, -2, -3]
    assert list(in_order([str], [], name="t")) == []


def test_an_error_is_raised_where_its_result_would_come() -> None:
    def fn(i: int) -> int:
        if i == 3:
            raise ValueError("three")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="three"):
        for r in in_order([fn, fn], range(6), name="t"):
            got.append(r)
    assert got == [0, 1, 2]
    with pytest.raises(ValueError):
        list(in_order([], range(2), name="t"))

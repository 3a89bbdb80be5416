"""The planner covers every byte once within the chunk size; the budget is never exceeded."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loadhelp import StagedNumpy

from paramio.core.errors import InvalidArgumentError
from paramio.loading import load, parse_size
from paramio.loading.budget import ByteBudget, StagingPool
from paramio.loading.engine import choose_chunk
from paramio.loading.plan import plan_tasks


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 5000), max_size=40), st.integers(1, 3000))
def test_plan_covers_every_byte_once_in_order(lengths: list[int], chunk: int) -> None:
    tasks = plan_tasks(lengths, chunk)
    seen: dict[int, list[tuple[int, int]]] = {}
    order = []
    for t in tasks:
        assert t.nbytes == sum(p.length for p in t.pieces) <= chunk
        for p in t.pieces:
            seen.setdefault(p.slot, []).append((p.offset, p.length))
            order.append(p.slot)
    assert order == sorted(order)  # tensors start in the order given
    assert sorted(seen) == list(range(len(lengths)))
    for slot, spans in seen.items():
        pos = 0
        for off, n in spans:
            assert off == pos
            pos += n
        assert pos == lengths[slot]


def test_small_tensors_share_tasks() -> None:
    tasks = plan_tasks([10] * 1000, 1000)
    assert len(tasks) == 10 and all(len(t.pieces) == 100 for t in tasks)
    assert [len(t.pieces) for t in plan_tasks([600, 600, 2500, 1], 1000)] == [1, 1, 1, 1, 1, 1]


def test_parse_size() -> None:
    assert parse_size("256MiB") == 256 << 20
    assert parse_size("1GiB") == parse_size("1G") == 1 << 30
    assert parse_size("64k") == 65536
    assert parse_size("1.5M") == 3 << 19
    assert parse_size(4096) == 4096
    for bad in ("", "ten", "5 parsecs", "-1MiB"):
        with pytest.raises(InvalidArgumentError):
            parse_size(bad)


def test_chunk_never_exceeds_budget() -> None:
    for budget in (4096, 65536, 1 << 20, 256 << 20, 1 << 34):
        for conc in (1, 2, 16):
            assert 0 < choose_chunk(budget, conc) <= budget


def test_budget_semaphore_counts_bytes() -> None:
    b = ByteBudget(10_000)
    assert b.try_acquire(6000) and not b.try_acquire(6000)
    b.release(6000)
    assert b.try_acquire(10_000) and b.high_water == 10_000
    with pytest.raises(InvalidArgumentError, match="can never fit"):
        b.try_acquire(10_001)
    released = threading.Timer(0.05, b.release, args=(10_000,))
    released.start()
    assert b.acquire(5000)  # waits for the release
    assert not b.acquire(9000, cancelled=lambda: True)


def test_staging_pool_is_bounded_and_freed() -> None:
    pool = StagingPool(10_000, 4000)
    a, b = pool.get(), pool.get()
    with pytest.raises(InvalidArgumentError, match="exhausted"):
        pool.get()
    pool.put(a)
    assert pool.get() is a  # reused, not allocated again
    pool.put(a)
    pool.put(b)
    assert pool.high_water == 8000
    pool.clear()
    assert pool.allocated == 0


@pytest.mark.parametrize("budget", [4096, 64 << 10, 200 << 10])
def test_staged_load_never_holds_more_than_the_budget(st_file: tuple[Path, dict[str, np.ndarray]], budget: int) -> None:
    path, a = st_file
    target = StagedNumpy()
    got = load(path, into=target, budget=budget, concurrency=4)
    for k, w in a.items():
        assert got[k].tobytes() == w.tobytes()  # type: ignore[attr-defined]
    s = got.summary
    assert 0 < s.peak_staging <= budget and s.peak_in_flight <= budget
    assert max(x.nbytes for x in a.values()) > budget  # the big tensor streamed through in pieces
    uploads = sum(1 for e in target.events if e[0] == "upload")
    assert uploads >= a["embed"].nbytes // s.chunk


def test_direct_load_in_flight_within_budget(st_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = st_file
    got = load(path, budget="16KiB", concurrency=8)
    assert 0 < got.summary.peak_in_flight <= 16 << 10
    assert got.summary.peak_staging == 0  # host arrays: read straight into them

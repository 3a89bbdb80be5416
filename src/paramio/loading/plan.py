"""The read plan: which bytes of which tensor each task reads. Pure, so sync and async share it.

A tensor larger than the chunk size is split into pieces of at most `chunk` bytes (each its own
task), so a tensor bigger than the budget streams through it; small tensors are grouped into one
task up to `chunk` bytes, so ten thousand norms cost a few hundred tasks, not ten thousand.
Tasks are in the tensors' order: the first tensors land first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

__all__ = ["Piece", "Task", "plan_tasks"]


@dataclasses.dataclass(frozen=True, slots=True)
class Piece:
    """Bytes ``[offset, offset + length)`` of tensor number `slot` (offsets within the entry)."""

    slot: int
    offset: int
    length: int


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """Pieces one worker reads in a row; `nbytes` is what the task holds of the budget."""

    pieces: tuple[Piece, ...]
    nbytes: int


def plan_tasks(lengths: Sequence[int], chunk: int) -> list[Task]:
    """Tasks covering every byte of every tensor once, each at most `chunk` bytes, in order.

    An empty tensor gets an empty piece (so it still completes and is delivered).
    """
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    tasks: list[Task] = []
    group: list[Piece] = []
    group_bytes = 0

    def close() -> None:
        nonlocal group, group_bytes
        if group:
            tasks.append(Task(tuple(group), group_bytes))
            group, group_bytes = [], 0

    for slot, length in enumerate(lengths):
        if length > chunk:
            close()
            for start in range(0, length, chunk):
                n = min(chunk, length - start)
                tasks.append(Task((Piece(slot, start, n),), n))
            continue
        if group_bytes + length > chunk:
            close()
        group.append(Piece(slot, 0, length))
        group_bytes += length
    close()
    return tasks

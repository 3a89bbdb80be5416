"""The read plan: which bytes of which tensor each task reads. Pure, so sync and async share it.

A tensor larger than the chunk size is split into pieces of at most `chunk` bytes (each its own
task), so a tensor bigger than the budget streams through it; small tensors are grouped into one
task up to `chunk` bytes, so ten thousand norms cost a few hundred tasks, not ten thousand.
Tasks are in the tensors' order: the first tensors land first.

With ``whole`` (a verified load, `paramio.loading.verified`: True, or per tensor) a tensor larger
than the chunk is one task, one piece of its whole length, that a single worker reads front to back in chunks
(holding one chunk of the budget at a time): its digest is a sequential hash, fed in the worker
as each chunk lands, so no byte is read twice; different tensors still go to different workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

__all__ = ["Piece", "Task", "TaskPlan", "plan_tasks"]


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


class TaskPlan:
    """The tasks of `plan_tasks`, made as they are taken: memory and time are O(tensors), whatever
    the tensors' sizes (a splat that claims 2**56 bytes is one entry here, not 2**32 tasks).

    Used like the deque it replaces: ``plan[0]`` (the next task), `popleft`, ``bool(plan)``,
    ``len(plan)`` (`remaining` past ``sys.maxsize``), iteration (which takes nothing),
    `pieces_per_slot`."""

    def __init__(self, lengths: Sequence[int], chunk: int, *, whole: bool | Sequence[bool] = False) -> None:
        if chunk <= 0:
            raise ValueError("chunk must be positive")
        self._chunk = chunk
        self._whole = [whole] * len(lengths) if isinstance(whole, bool) else list(whole)
        # Runs: (slot, length) of a tensor split into pieces, or (-1, [(slot, length), ...]) of a group.
        self._runs: list[tuple[int, int] | tuple[int, list[tuple[int, int]]]] = []
        self._pieces = [1] * len(lengths)
        group: list[tuple[int, int]] = []
        group_bytes = 0
        total = 0
        for slot, length in enumerate(lengths):
            if length > chunk:
                if group:
                    self._runs.append((-1, group))
                    total += 1
                    group, group_bytes = [], 0
                self._runs.append((slot, length))
                self._pieces[slot] = 1 if self._whole[slot] else -(-length // chunk)
                total += self._pieces[slot]
                continue
            if group_bytes + length > chunk and group:
                self._runs.append((-1, group))
                total += 1
                group, group_bytes = [], 0
            group.append((slot, length))
            group_bytes += length
        if group:
            self._runs.append((-1, group))
            total += 1
        self._left = total
        self._made = self._make()
        self._head: Task | None = None

    def _make(self) -> Iterator[Task]:
        for slot, run in self._runs:
            if isinstance(run, list):
                pieces = tuple(Piece(s, 0, n) for s, n in run)
                yield Task(pieces, sum(p.length for p in pieces))
                continue
            if self._whole[slot]:
                yield Task((Piece(slot, 0, run),), run)
                continue
            for start in range(0, run, self._chunk):
                n = min(self._chunk, run - start)
                yield Task((Piece(slot, start, n),), n)

    def pieces_per_slot(self) -> list[int]:
        """How many pieces each tensor is read in (all tasks, taken or not)."""
        return list(self._pieces)

    @property
    def remaining(self) -> int:
        """Tasks not yet taken (any size: ``len()`` cannot pass ``sys.maxsize``)."""
        return self._left

    def __len__(self) -> int:
        return self._left  # OverflowError past sys.maxsize tasks: use `remaining`

    def __bool__(self) -> bool:
        return self._left > 0

    def __getitem__(self, i: int) -> Task:
        if i != 0 or not self._left:
            raise IndexError("a task plan shows only its next task")
        if self._head is None:
            self._head = next(self._made)
        return self._head

    def popleft(self) -> Task:
        task = self[0]
        self._head = None
        self._left -= 1
        return task

    def __iter__(self) -> Iterator[Task]:
        """Every task not yet taken, in order (a fresh pass: nothing is taken)."""
        if not self._left:
            return
        fresh = self._make()
        skip = self._total() - self._left
        for _ in range(skip):
            next(fresh)
        yield from fresh

    def _total(self) -> int:
        return sum(
            1 if isinstance(run, list) or self._whole[slot] else -(-run // self._chunk) for slot, run in self._runs
        )


def plan_tasks(lengths: Sequence[int], chunk: int, *, whole: bool | Sequence[bool] = False) -> TaskPlan:
    """Tasks covering every byte of every tensor once, each at most `chunk` bytes, in order
    (made as they are taken: see `TaskPlan`); with `whole`, a larger tensor is one task of one
    piece, read in chunks by one worker (see the module docstring).

    An empty tensor gets an empty piece (so it still completes and is delivered).
    """
    return TaskPlan(lengths, chunk, whole=whole)

"""`load`, `load_async`, `stream`, `astream`: many tensors into a target, within a byte budget.

``what`` is anything paramio opens: a path (IRPA, safetensors, GGUF, a sharded set through any
of its files or its ``.index.json``), a `ParameterIndex`, a `Provider` (every scope, overlays
first, keys ``scope::key``), or a sequence of `ParameterEntry`. A path may be a URL
(``https://``, ``s3://`` ...): its header is read at open, its tensors with ranged reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from typing import TypeAlias, Union

from paramio.core.entries import collector_paused
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.formats.progress import ByteProgress  # the one progress bar paramio has
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.index.provider import Provider
from paramio.index.scopes import split_scoped_key
from paramio.loading.budget import parse_size
from paramio.loading.engine import REMOTE_CONCURRENCY, LoadJob, run_async, run_sync
from paramio.loading.io import check_io
from paramio.loading.slices import ShardingSpec, SplitSpec, prepare
from paramio.loading.summary import LoadSummary
from paramio.loading.targets import Target, make_target
from paramio.loading.verified import Verifier, open_for_verify

__all__ = [
    "REMOTE_CONCURRENCY",
    "Loadable",
    "Loaded",
    "LoadStream",
    "astream",
    "load",
    "load_async",
    "resolve",
    "stream",
]

#: What `load` accepts as its source of parameters.
Loadable: TypeAlias = Union[str, "os.PathLike[str]", ParameterIndex, Provider, Sequence[ParameterEntry]]
#: A progress callback gets the bytes each finished task added; True shows a bar on a terminal.
Progress: TypeAlias = Callable[[int], None] | bool | None

DEFAULT_BUDGET = "256MiB"


class Loaded(dict[str, object]):
    """The arrays by key (a plain dict), plus `summary`: bytes, seconds, GB/s, peaks."""

    summary: LoadSummary


def resolve(what: Loadable, keys: Iterable[str] | None = None) -> list[tuple[str, ParameterEntry]]:
    """(key, entry) pairs to load, in the source's order or the order of `keys`.

    Raises `ParameterNotFoundError` for a key that is not there (before anything is read),
    `InvalidArgumentError` for an object paramio cannot load from, and what opening a
    file raises (`FormatError`, `SourceError`).
    """
    if isinstance(what, (str, os.PathLike)):
        what = ParameterIndex.open(os.fspath(what), duplicates=DuplicatePolicy.KEEP)
    if isinstance(what, ParameterIndex):
        if keys is None:
            return _first_of_each(what.items())
        return [(k, what[k]) for k in keys]
    if isinstance(what, Provider):
        if keys is None:
            keys = list(what)
        out = []
        for k in keys:
            scope, key = split_scoped_key(k)
            out.append((k, what.lookup(scope, key)))
        return out
    if isinstance(what, Sequence) and not isinstance(what, str) and all(isinstance(e, ParameterEntry) for e in what):
        index = ParameterIndex(list(what), duplicates=DuplicatePolicy.KEEP)
        return resolve(index, keys)
    raise InvalidArgumentError(
        f"cannot load from a {type(what).__name__}: give a path, a ParameterIndex, a Provider or entries"
    )


def _first_of_each(items: list[tuple[str, ParameterEntry]]) -> list[tuple[str, ParameterEntry]]:
    seen: dict[str, ParameterEntry] = {}
    for k, e in items:
        seen.setdefault(k, e)  # IREE's rule for a key held twice: the first is the one found
    return list(seen.items())


def _concurrency(concurrency: int | None) -> int | None:
    """`concurrency` if valid; None lets the job choose (`engine.default_concurrency`)."""
    if concurrency is not None and concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be at least 1, not {concurrency}")
    return concurrency


class LoadStream:
    """``(key, array)`` pairs as each tensor lands (iterate once); `summary` when done.

    Leaving early (``break``, an exception, `close`) cancels the reads still in flight and
    frees their memory before control returns.
    """

    def __init__(self, job: LoadJob, bar: contextlib.AbstractContextManager[object] | None) -> None:
        self._job = job
        self._bar = bar
        self._it = self._run()

    def _run(self) -> Generator[tuple[str, object], None, None]:
        # With verify=True the job's workers check each tensor before it is delivered.
        with self._bar if self._bar is not None else contextlib.nullcontext():
            with contextlib.closing(run_sync(self._job)) as landed:
                yield from landed

    def __iter__(self) -> Iterator[tuple[str, object]]:
        return self._it

    def __next__(self) -> tuple[str, object]:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    def __enter__(self) -> LoadStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def summary(self) -> LoadSummary:
        return self._job.summary()

    @property
    def job(self) -> LoadJob:
        return self._job


def _job(
    what: Loadable,
    keys: Iterable[str] | None,
    into: str | Target,
    device: str | None,
    budget: int | str,
    concurrency: int | None,
    progress: Progress,
    slicing: dict[str, object],
    io: str = "auto",
    drop_cache: bool = False,
    verify: bool = False,
) -> tuple[LoadJob, contextlib.AbstractContextManager[object] | None]:
    check_io(io, drop_cache)  # before opening anything
    with collector_paused():  # set-up builds entries and slots: no cyclic garbage among them
        return _set_up(what, keys, into, device, budget, concurrency, progress, slicing, io, drop_cache, verify)


def _set_up(
    what: Loadable,
    keys: Iterable[str] | None,
    into: str | Target,
    device: str | None,
    budget: int | str,
    concurrency: int | None,
    progress: Progress,
    slicing: dict[str, object],
    io: str,
    drop_cache: bool,
    verify: bool,
) -> tuple[LoadJob, contextlib.AbstractContextManager[object] | None]:
    record = None
    if verify:
        if any(v is not None for v in slicing.values()):
            raise InvalidArgumentError("verify=True checks whole tensors: it cannot be combined with slices")
        what, record = open_for_verify(what)
    items = resolve(what, keys)
    verifier = Verifier(record, items) if record is not None else None
    target = make_target(into, device)
    if any(v is not None for v in slicing.values()):
        items, target = prepare(items, target, **slicing)  # type: ignore[arg-type]
    callback: Callable[[int], None] | None = None
    bar = None
    if progress is True:
        bp = ByteProgress(sum(e.length for _, e in items), "loading", quiet=False)
        callback, bar = bp.callback, bp
    elif callable(progress):
        callback = progress
    job = LoadJob(
        items,
        target,
        budget=parse_size(budget),
        concurrency=_concurrency(concurrency),
        progress=callback,
        io=io,
        drop_cache=drop_cache,
        verifier=verifier,
    )
    return job, bar


def stream(
    what: Loadable,
    keys: Iterable[str] | None = None,
    *,
    into: str | Target = "numpy",
    device: str | None = None,
    budget: int | str = DEFAULT_BUDGET,
    concurrency: int | None = None,
    progress: Progress = None,
    # Slices (`paramio.loading.slices`): a JAX sharding, or this rank's pieces.
    sharding: ShardingSpec | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    split: SplitSpec | None = None,
    io: str = "auto",
    drop_cache: bool = False,
    verify: bool = False,
) -> LoadStream:
    """Load tensors and yield each ``(key, array)`` as it lands, so initialisation can start
    on the first layers while the last are still being read. Tasks start in key order.

    `into`: ``"numpy"``, ``"torch"``, ``"jax"``, ``"cupy"``, ``"iree"`` or a `Target`;
    `device`: the framework's device name (``"cuda:0"``, ``"local-task"``); `budget`: the most
    bytes in flight (reads and staging buffers) at once, e.g. ``"256MiB"``; `concurrency`:
    worker threads (default: the CPU count, 2..16, and at least 8 when a URL is read or a file
    with O_DIRECT: those threads wait on the device, not a core); `progress`: a callable given byte counts, or
    True for a bar on a terminal. `io`: how local files are read, ``"auto"`` (``pread`` through
    the page cache, with read-ahead hints), ``"pread"``, ``"direct"`` (``O_DIRECT``: nothing
    enters the page cache; ``pread`` where the filesystem refuses it) or ``"mmap"`` (NumPy and
    CPU torch tensors are copy-on-write views of the mapped file, as
    ``safetensors.torch.load_file`` gives: no copy, but a file truncated underneath kills the
    process with SIGBUS when a lost page is read); the summary's ``io`` says what was used.
    `drop_cache`: drop each file's pages from the page cache once copied (not with ``"mmap"``).
    `verify`: check each tensor against the digest its file stores (``paramio digest
    --write``) before it is handed over; `IntegrityError` names the entry, file and bytes of
    one that does not match (`paramio.loading.verified`).

    Slices, reading only their bytes (`paramio.loading.slices`): `sharding`, with
    ``into="jax"``, a ``jax.sharding.Sharding`` for every tensor, a mapping of keys or glob
    patterns to shardings (None: unsharded), or a callable ``(key, shape) -> Sharding | None``:
    each device gets its slice and the result is a ``jax.Array`` over them. `rank`,
    `world_size` and `split` (``{"pattern": axis}``, the rules of ``paramio shard --split``):
    the tensors a pattern matches come back as this rank's piece along the axis, the rest whole.
    A split `paramio shard` refuses (a dimension not a multiple of `world_size`, a cut through
    a quantisation block) raises `InvalidArgumentError` naming the key before any read.

    Raises what `resolve` raises before any read; during the load, the first failed read
    (`SourceError`, `TruncatedError` naming file, key and byte range) cancels the rest.
    """
    job, bar = _job(
        what,
        keys,
        into,
        device,
        budget,
        concurrency,
        progress,
        dict(sharding=sharding, rank=rank, world_size=world_size, split=split),
        io,
        drop_cache,
        verify,
    )
    return LoadStream(job, bar)


def load(
    what: Loadable,
    keys: Iterable[str] | None = None,
    *,
    into: str | Target = "numpy",
    device: str | None = None,
    budget: int | str = DEFAULT_BUDGET,
    concurrency: int | None = None,
    progress: Progress = None,
    # Slices (`paramio.loading.slices`): a JAX sharding, or this rank's pieces.
    sharding: ShardingSpec | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    split: SplitSpec | None = None,
    io: str = "auto",
    drop_cache: bool = False,
    verify: bool = False,
) -> Loaded:
    """Every tensor (or those in `keys`) as arrays of `into`, by key in the source's order (or
    that of `keys`); see `stream` for the arguments and errors. The result's `summary` has
    bytes, seconds and GB/s."""
    s = stream(
        what,
        keys,
        into=into,
        device=device,
        budget=budget,
        concurrency=concurrency,
        progress=progress,
        sharding=sharding,
        rank=rank,
        world_size=world_size,
        split=split,
        io=io,
        drop_cache=drop_cache,
        verify=verify,
    )
    with s, collector_paused() if s.job.reads_nothing else contextlib.nullcontext():
        got = dict(s)  # a mapped load runs here, in this thread, to the end: paused as its set-up
    return _in_order(got, s.job)


async def astream(
    what: Loadable,
    keys: Iterable[str] | None = None,
    *,
    into: str | Target = "numpy",
    device: str | None = None,
    budget: int | str = DEFAULT_BUDGET,
    concurrency: int | None = None,
    progress: Progress = None,
    # Slices (`paramio.loading.slices`): a JAX sharding, or this rank's pieces.
    sharding: ShardingSpec | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    split: SplitSpec | None = None,
    io: str = "auto",
    drop_cache: bool = False,
    verify: bool = False,
) -> AsyncIterator[tuple[str, object]]:
    """The async twin of `stream` (an async generator; wrap it in `contextlib.aclosing` to
    leave early). Cancelling the task that iterates it stops every read and frees staging
    memory before the `CancelledError` propagates."""
    job, bar = _job(
        what,
        keys,
        into,
        device,
        budget,
        concurrency,
        progress,
        dict(sharding=sharding, rank=rank, world_size=world_size, split=split),
        io,
        drop_cache,
        verify,
    )
    with bar if bar is not None else contextlib.nullcontext():
        async with contextlib.aclosing(run_async(job)) as it:
            async for key, array in it:
                yield key, array


async def load_async(
    what: Loadable,
    keys: Iterable[str] | None = None,
    *,
    into: str | Target = "numpy",
    device: str | None = None,
    budget: int | str = DEFAULT_BUDGET,
    concurrency: int | None = None,
    progress: Progress = None,
    # Slices (`paramio.loading.slices`): a JAX sharding, or this rank's pieces.
    sharding: ShardingSpec | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    split: SplitSpec | None = None,
    io: str = "auto",
    drop_cache: bool = False,
    verify: bool = False,
) -> Loaded:
    """The awaitable twin of `load`."""
    job, bar = _job(
        what,
        keys,
        into,
        device,
        budget,
        concurrency,
        progress,
        dict(sharding=sharding, rank=rank, world_size=world_size, split=split),
        io,
        drop_cache,
        verify,
    )
    got: dict[str, object] = {}
    with bar if bar is not None else contextlib.nullcontext():
        async with contextlib.aclosing(run_async(job)) as it:
            async for k, a in it:
                got[k] = a
    return _in_order(got, job)


def _in_order(got: dict[str, object], job: LoadJob) -> Loaded:
    """The arrays in the source's (or `keys`') order, whatever order they landed in."""
    out = Loaded((k, got[k]) for k in job.keys)
    out.summary = job.summary()
    return out

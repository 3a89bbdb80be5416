"""Entries as a task carries them: plain records (key, type, where the bytes are), not objects
holding open sources; a worker reopens each source by its name (a path on a shared filesystem or
a URL) with the job's remote options, once per task, reading only the headers the open needs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo

__all__ = ["entry_record", "open_entries", "records_of", "source_name"]


def source_name(entry: ParameterEntry) -> str | None:
    """What a worker opens to read `entry`: its source's path or URL (None for a splat).
    Raises `InvalidArgumentError` for bytes only this process has (a memory source)."""
    src = entry.source
    if src is None:
        return None
    from paramio.formats.inputs import is_url
    from paramio.sources.file import FileSource

    name = getattr(src, "name", "")
    if isinstance(src, FileSource) or is_url(name) or (name.startswith("/") and _is_file(name)):
        return str(name)
    raise InvalidArgumentError(
        f"entry {entry.key!r} is held by {type(src).__name__} {name!r}, which a Ray worker cannot open; "
        "engine='ray' reads files on a shared path or URLs"
    )


def _is_file(path: str) -> bool:
    import os

    return os.path.isfile(path)


def entry_record(entry: ParameterEntry) -> dict[str, Any]:
    """`entry` as plain data (no source object)."""
    info = entry.declared_tensor
    return {
        "key": entry.key,
        "kind": str(entry.kind),
        "length": entry.length,
        "metadata": bytes(entry.metadata),
        "source": source_name(entry),
        "offset": entry.offset,
        "pattern": bytes(entry.pattern),
        "declared": None if info is None else (info.dtype, list(info.shape), dict(info.extra)),
        "origin": entry.origin,
    }


@contextlib.contextmanager
def open_entries(
    records: Sequence[Mapping[str, Any]], options: Mapping[str, Any] | None
) -> Iterator[list[ParameterEntry]]:
    """The entries `records` describe, each source opened once (with the remote `options`) and
    closed when the block ends."""
    from paramio.formats.inputs import input_options, open_input

    sources: dict[str, ByteSource] = {}
    out: list[ParameterEntry] = []
    try:
        with input_options(dict(options or {})):
            _build(records, sources, out, open_input)
        yield out
    finally:
        for src in sources.values():
            close = getattr(src, "close", None)
            if close is not None:
                close()


def _build(
    records: Sequence[Mapping[str, Any]],
    sources: dict[str, ByteSource],
    out: list[ParameterEntry],
    open_input: Callable[[str], ByteSource],
) -> None:
    for r in records:
        name = r["source"]
        src = None
        if name is not None:
            src = sources.get(name)
            if src is None:
                src = sources[name] = open_input(name)
        declared = r["declared"]
        out.append(
            ParameterEntry(
                key=r["key"],
                kind=EntryKind(r["kind"]),
                length=r["length"],
                metadata=r["metadata"],
                source=src,
                offset=r["offset"],
                pattern=r["pattern"],
                declared_tensor=None
                if declared is None
                else TensorInfo(declared[0], tuple(declared[1]), dict(declared[2])),
                origin=r["origin"],
            )
        )


def records_of(entries: Iterable[ParameterEntry]) -> list[dict[str, Any]]:
    return [entry_record(e) for e in entries]

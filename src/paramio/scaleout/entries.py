"""Entries as a task carries them: plain records (key, type, where the bytes are), not objects
holding open sources; a worker reopens each source by its name (a path on a shared filesystem or
a URL) with the job's remote options, once per task, reading only the headers the open needs.

Entries whose bytes are not one span of one source (a tensor-parallel set's tensors, joined from
their pieces on the fly; a vLLM set's) travel as a *reopen* form instead (`reopen_records`): the
set's path and the rules it is opened with, and each entry's key and planned type; the worker
opens the set as `paramio.sharding` does (headers only) and takes its entries by key."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo

__all__ = ["entry_record", "open_entries", "records_of", "source_name", "source_version"]


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
        "version": source_version(entry.source),
    }


def source_version(src: object) -> str | None:
    """The version of a remote object (ETag, date, size) a worker must find again, or None (a
    local file, or a source that does not say)."""
    inner = getattr(src, "inner", src)
    version = getattr(inner, "validator", None)
    return str(version) if isinstance(version, str) and version else None


@contextlib.contextmanager
def open_entries(
    records: Sequence[Mapping[str, Any]] | Mapping[str, Any], options: Mapping[str, Any] | None
) -> Iterator[list[ParameterEntry]]:
    """The entries `records` describe, each source opened once (with the remote `options`) and
    closed when the block ends."""
    from paramio.formats.inputs import input_options, open_input

    sources: dict[str, ByteSource] = {}
    out: list[ParameterEntry] = []
    if isinstance(records, Mapping):  # the reopen form: the set opens (and closes) its own files
        with input_options(dict(options or {})):
            yield _reopened(records)
        return
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
                planned, found = r.get("version"), source_version(src)
                if planned is not None and found is not None and planned != found:
                    raise FormatError(  # permanent: a retry reads the new object again
                        f"changed since the job was planned (version {planned}, now {found}): its offsets "
                        "no longer hold; run the job again",
                        path=name,
                    )
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


def reopen_records(
    source: str,
    entries: Iterable[ParameterEntry],
    *,
    split: Sequence[tuple[str, int]] = (),
    replicate: Sequence[str] | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """`entries` of the set at `source` (opened with `split` and `replicate`, as
    `paramio.sharding.api.open_source` takes them) as the reopen form: their keys and the type,
    metadata and length each was planned with, and the set's `fingerprint` (`set_fingerprint`)
    when the driver took it, which the worker checks."""
    return {
        "reopen": {
            "source": source,
            "split": [list(r) for r in split],
            "replicate": None if replicate is None else list(replicate),
            "fingerprint": fingerprint,
        },
        "entries": [
            {
                "key": e.key,
                "length": e.length,
                "kind": str(e.kind),
                "metadata": bytes(e.metadata),
                "declared": None
                if e.declared_tensor is None
                else (e.declared_tensor.dtype, list(e.declared_tensor.shape), dict(e.declared_tensor.extra)),
            }
            for e in entries
        ],
    }


def set_fingerprint(contents: Any) -> str:
    """What identifies one save of a set as a worker reopens it: every entry's key, length,
    kind, type and metadata, the attributes, the save stamp, and each local file's size and
    modification time (a set saved again in place changes at least those)."""
    import hashlib
    import os

    h = hashlib.sha256()
    for e in contents.entries:
        info = e.tensor
        h.update(
            repr((e.key, e.length, str(e.kind), None if info is None else (info.dtype, tuple(info.shape)))).encode()
        )
        h.update(bytes(e.metadata))
    h.update(repr(sorted((str(k), repr(v)) for k, v in contents.attributes.items())).encode())
    h.update(repr(contents.stamp).encode())
    for p in contents.paths:
        try:
            st = os.stat(p)
        except (OSError, ValueError):  # a URL: its entries and stamp say what changed
            continue
        h.update(repr((p, st.st_size, st.st_mtime_ns)).encode())
    return h.hexdigest()


def _reopened(form: Mapping[str, Any]) -> list[ParameterEntry]:
    """The entries of a reopen form, from the set opened here. Raises `FormatError` when the set
    no longer holds an entry as it was planned (it changed since)."""
    from paramio.core.errors import FormatError
    from paramio.sharding.api import open_source

    spec = form["reopen"]
    rules = [(str(p), int(a)) for p, a in spec["split"]]
    kept = spec["replicate"]
    contents, _ = open_source(spec["source"], split=rules, replicate=None if kept is None else list(kept))
    if spec.get("fingerprint") is not None and set_fingerprint(contents) != spec["fingerprint"]:
        raise FormatError("the set changed since the job was planned (saved again)", path=spec["source"])
    table: dict[str, ParameterEntry] = {}
    for e in contents.entries:
        table.setdefault(e.key, e)
    out = []
    for r in form["entries"]:
        found = table.get(r["key"])
        if found is None or found.length != r["length"] or str(found.kind) != r["kind"]:
            raise FormatError(
                "the set changed since the job was planned: this entry is not as planned",
                path=spec["source"],
                key=r["key"],
            )
        declared = r["declared"]
        info = None if declared is None else TensorInfo(declared[0], tuple(declared[1]), dict(declared[2]))
        out.append(found.replace(metadata=r["metadata"], declared_tensor=info))
    return out


def records_of(entries: Iterable[ParameterEntry]) -> list[dict[str, Any]]:
    return [entry_record(e) for e in entries]

"""The task of a ``convert`` job (`paramio.scaleout.convert`), run on a worker: one member of the
output written with its format's own writer, staged beside its final name or uploaded to its
final object, then read back (headers) to check it holds its entries; a member larger than a
task is written a byte range at a time (`_write_part`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, WriteError
from paramio.scaleout.engine import Task, TaskContext, TaskResult, copy_chunk, upload_part

if TYPE_CHECKING:
    from paramio.formats.digests import DigestSink

__all__ = ["check_member", "write_member"]


def write_member(task: Task, context: TaskContext) -> TaskResult:
    """Write one member with the format's own writer (on a worker), stage or upload it, and
    check it reads back with its entries."""
    from paramio.formats.contract import get_format
    from paramio.scaleout.entries import open_entries

    a = task.args
    fmt = get_format(a["format"])
    _load_writer(fmt)
    with open_entries(a["entries"], a["source_options"]) as entries:
        options = {**a["writer_options"], "progress": context.advance}
        sink = None
        if a.get("digests") is not None:  # hashed as copied; other tasks' digests patched in at commit
            from paramio.formats.digests import DigestSink

            sink = DigestSink.for_task(a["digests"], entries)
        if a["remote"]:
            from paramio.formats.uploads import UPLOAD_OPTIONS
            from paramio.sources.objectstore import store_for

            store_for(a["final"], **{k: v for k, v in a["source_options"].items() if k in UPLOAD_OPTIONS})
            with tempfile.TemporaryDirectory(prefix="paramio-member-") as folder:
                local = os.path.join(folder, os.path.basename(a["final"]))
                with context.measuring():
                    head = _write(fmt, a, entries, local, options, sink)
                    if head is not None:  # a single file: this task holds every entry, the record is whole
                        assert sink is not None
                        sink.patch_file(local, head)
                    size = os.path.getsize(local)
                    check_member(a["format"], local, entries)
                    _upload_file(local, a["final"], a["source_options"], context.memory_bound)
            return TaskResult(
                task.id, output=a["final"], size=size, values=_digest_values(sink), bytes_read=context.done
            )
        staging = a["staging"]
        if "parts" in a:  # one byte range of a huge member: built aside, its range copied in
            return _write_part(task, context, fmt, entries, options, sink)
        with context.measuring():
            head = _write(fmt, a, entries, staging, options, sink)
            check_member(a["format"], staging, entries)
        return TaskResult(
            task.id,
            output=a["final"],
            size=os.path.getsize(staging),
            values={"staging": staging, **_digest_values(sink, head)},
            bytes_read=context.done,
        )


def _digest_values(sink: Any, head: int | None = None) -> dict[str, Any]:
    """What a task returns of its digests: those it hashed while copying, and the length of its
    file's header when it still holds other tasks' placeholders (the commit patches it)."""
    if sink is None:
        return {}
    return {"digests": sink.computed(), "head": head}


class _Picker:
    """`paramio.formats.output.copying_parts`' choice for one part: its entries' ranges; it
    records where every entry goes (the rest of the file, headers and padding, every part
    writes: the same bytes)."""

    def __init__(self, parts: Mapping[str, list[list[int]]]) -> None:
        self.parts = parts
        self.entries: list[tuple[int, int]] = []
        self.mine: list[tuple[int, int]] = []

    def __call__(self, entry: ParameterEntry, offset: int) -> list[tuple[int, int]]:
        self.entries.append((offset, offset + entry.length))
        ranges = [(int(lo), int(hi)) for lo, hi in self.parts.get(entry.key, [])]
        self.mine.extend((offset + lo, offset + hi) for lo, hi in ranges)
        return ranges

    def ranges(self, size: int) -> list[tuple[int, int]]:
        """What this part puts in the shared file: its entries' ranges and every byte no entry holds."""
        out = list(self.mine)
        pos = 0
        for start, end in sorted(self.entries):
            if start > pos:
                out.append((pos, start))
            pos = max(pos, end)
        if pos < size:
            out.append((pos, size))
        return sorted(r for r in out if r[1] > r[0])


def _write_part(
    task: Task, context: TaskContext, fmt: Any, entries: list[ParameterEntry], options: dict[str, Any], sink: Any
) -> TaskResult:
    """Write one part of a huge member: the member's writer runs into a private sparse file
    copying only this part's bytes, then those bytes (and the headers) go into the shared
    staging file at their offsets."""
    from paramio.formats.output import copying_parts

    a = task.args
    picker = _Picker(a["parts"])
    with tempfile.TemporaryDirectory(prefix="paramio-part-") as folder:
        private = os.path.join(folder, os.path.basename(a["final"]))
        with context.measuring():
            with copying_parts(picker):  # an entry copied whole is hashed; a cut one was hashed before
                head = _write(fmt, a, entries, private, options, sink)
            size = os.path.getsize(private)
            _copy_ranges(private, a["staging"], picker.ranges(size), size, max(1 << 20, context.memory_bound // 8))
    return TaskResult(
        task.id,
        output=a["final"],
        size=size,
        values={"staging": a["staging"], "part": a["part"][0], **_digest_values(sink, head)},
        bytes_read=context.done,
    )


def _copy_ranges(src: str, dst: str, ranges: Sequence[tuple[int, int]], size: int, chunk: int) -> None:
    """Copy `ranges` of `src` into `dst` at the same offsets (`dst` made `size` bytes long)."""
    fin = os.open(src, os.O_RDONLY)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            if os.fstat(fout).st_size != size:
                os.ftruncate(fout, size)  # every part sets the same size
            buf = bytearray(chunk)
            for start, end in ranges:
                pos = start
                while pos < end:
                    n = os.preadv(fin, [memoryview(buf)[: min(chunk, end - pos)]], pos)
                    if n <= 0:
                        raise WriteError(f"the part's file ended at {pos} of {size}", path=src)
                    os.pwrite(fout, memoryview(buf)[:n], pos)
                    pos += n
            os.fsync(fout)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _load_writer(fmt: Any) -> None:
    """Import the writer's modules now (a worker's first task would else count them as its data)."""
    import importlib

    from paramio.formats import output, uploads  # noqa: F401
    from paramio.formats.sets import writing  # noqa: F401
    from paramio.sources import upload  # noqa: F401

    module = getattr(fmt.write_path, "__module__", None)
    if module:
        importlib.import_module(module)
    for name in (f"paramio.formats.{fmt.name}.writer", f"paramio.formats.{fmt.name}.sharded"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def _write(
    fmt: Any,
    a: Mapping[str, Any],
    entries: list[ParameterEntry],
    path: str,
    options: dict[str, Any],
    sink: DigestSink | None = None,
) -> int | None:
    """Write the task's file at `path`; returns the length of its header when it still holds
    digests to come (`sink`: the task's own, hashing its entries as they are copied)."""
    from paramio.formats.digests import activated
    from paramio.formats.sets.writing import OneMember, writing_one_member

    with activated(sink):
        if a["single"]:
            fmt.write_path(path, entries, attributes=a["attributes"], **options)
        else:
            index, count, total, stamp = a["member"]
            with writing_one_member(OneMember(index, count, total, stamp, path)):
                fmt.write_path(a["plan_path"], entries, attributes=a["attributes"], **options)
    if sink is None:
        return None
    sink.settle()
    lengths = {length for _, length in sink.heads}
    if len(lengths) > 1:
        raise WriteError("the task's file has two headers holding digests", path=path)
    return lengths.pop() if lengths else None


def check_member(format: str, path: str, entries: Sequence[ParameterEntry]) -> None:
    """The member reads back (its headers) with exactly its entries' keys and lengths."""
    from paramio.formats.registry import read_source
    from paramio.sources.file import FileSource

    source = FileSource(path)
    try:  # the file alone: a member names its set, whose other members are elsewhere
        got = [(e.key, e.length) for e in read_source(source, format).entries]
    finally:
        source.close()
    want = [(e.key, e.length) for e in entries]
    if got != want:
        raise FormatError(f"the member written does not hold its {len(want)} entries as planned", path=path)


def _upload_file(local: str, url: str, options: Mapping[str, Any], memory_bound: int) -> None:
    """`local` up to `url` as a multipart upload within the task's memory bound."""
    from paramio.formats.uploads import UPLOAD_OPTIONS
    from paramio.sources.upload import open_upload

    size = os.path.getsize(local)
    upload_options = {k: v for k, v in options.items() if k in UPLOAD_OPTIONS}
    buf = bytearray(copy_chunk(memory_bound))
    with (
        open(local, "rb") as f,
        open_upload(url, size=size, part_size=upload_part(memory_bound), max_concurrency=1, **upload_options) as up,
    ):
        while n := f.readinto(buf):
            up.write(memoryview(buf)[:n])

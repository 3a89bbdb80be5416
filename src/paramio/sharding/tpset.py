"""Tensor-parallel sets: per-device archives (or ``.shard.<i>`` keys) plus a ``*.tp.json`` manifest.

The manifest says, for every tensor in the original order, whether it was split (axis, dtype,
whole shape) or replicated, and which file and key hold each piece::

    {"paramio.tp": 1, "tp": 4, "layout": "devices", "format": "irpa",
     "files": ["model.rank0.irpa", ...],
     "tensors": {"blk.0.attn_q.weight": {"split": 0, "dtype": "float32", "shape": [4096, 4096],
                                         "pieces": [["model.rank0.irpa", "blk.0.attn_q.weight"], ...]},
                 "token_embd.weight": {"replicate": true, "pieces": [["model.rank0.irpa", ...], ...]}}}

Reading a manifest (`read_path`; the registered format ``tp``, `FORMAT`) gives the original tensors, each
split one joined from its pieces on the fly (`paramio.sharding.tensor.JoinedSource`): a merge is
a plain write of what it reads, and any writer (or another split) streams from it. Each file is
written atomically and the manifest last, so a manifest never names a file that is incomplete.
File-level attributes are written to every file and read back from the first.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError, SourceError
from paramio.core.tensor import TensorInfo, encode_tensor_metadata, is_numpy_shape
from paramio.formats import sets
from paramio.formats.contract import ARCHIVE, Format, FormatContents, file_format, formats, register_format
from paramio.formats.members import member_path, read_manifest_json
from paramio.formats.output_set import AtomicOutputSet
from paramio.sharding.plan import Layout, Plan, make_plan
from paramio.sharding.tensor import geometry, join_pieces, split_entry
from paramio.sources.paths import AllowExternal

if TYPE_CHECKING:
    from paramio.formats.conversion import Prepared

__all__ = [
    "FORMAT",
    "MANIFEST_SUFFIX",
    "FilesPlan",
    "TPSet",
    "is_manifest_path",
    "plan_files",
    "read_path",
    "set_files",
    "write_set",
    "write_path",
]

MANIFEST_SUFFIX = ".tp.json"
VERSION = 1
#: A manifest claiming more devices than this is refused before any file is opened.
MAX_TP = 65_536


def is_manifest_path(path: str) -> bool:
    return path.lower().endswith(MANIFEST_SUFFIX)


def set_files(output: str, stem: str, tp: int, layout: Layout, fmt: str) -> tuple[str, list[str]]:
    """(manifest path, file names) for a set written to `output`: a folder, or a ``.tp.json``
    path. Device i's file is ``{stem}.rank{i}{ext}``; the keys layout writes ``{stem}.tp{N}{ext}``."""
    if is_manifest_path(output):
        manifest = output
        stem = os.path.basename(output)[: -len(MANIFEST_SUFFIX)]
    else:
        manifest = os.path.join(output, stem + MANIFEST_SUFFIX)
    ext = file_format(fmt).extension
    if layout is Layout.DEVICES:
        return manifest, [f"{stem}.rank{i}{ext}" for i in range(tp)]
    return manifest, [f"{stem}.tp{tp}{ext}"]


def shard_key(key: str, index: int) -> str:
    """sharktank's name for piece `index` of `key`."""
    return f"{key}.shard.{index}"


def _files_entries(
    entries: Sequence[ParameterEntry], plan: Plan, files: list[str]
) -> tuple[list[list[ParameterEntry]], dict[str, dict[str, object]]]:
    """The entries each file gets, and the manifest's tensor records."""
    per: list[list[ParameterEntry]] = [[] for _ in files]
    records: dict[str, dict[str, object]] = {}
    for e, p in zip(entries, plan.placements, strict=True):
        rec: dict[str, object]
        pieces: list[list[str]] = []
        if p.geometry is not None:
            g = p.geometry
            rec = {"split": g.axis, "dtype": g.info.dtype, "shape": list(g.info.shape)}
            for i in range(plan.tp):
                if plan.layout is Layout.DEVICES:
                    fi, key = i, e.key
                else:
                    fi, key = 0, shard_key(e.key, i)
                per[fi].append(split_entry(e, g, i, key))
                pieces.append([files[fi], key])
            info = e.tensor
            if e.metadata and info is not None and bytes(e.metadata) != encode_tensor_metadata(info):
                rec["metadata"] = base64.b64encode(bytes(e.metadata)).decode("ascii")
        else:
            rec = {"replicate": True}
            targets = range(len(files)) if plan.layout is Layout.DEVICES else range(1)
            for fi in targets:
                per[fi].append(e)
                pieces.append([files[fi], e.key])
        rec["pieces"] = pieces
        records[e.key] = rec
    return per, records


def write_set(
    output: str,
    entries: Sequence[ParameterEntry],
    plan: Plan,
    *,
    stem: str = "model",
    attributes: Mapping[str, object] | None = None,
    fmt: str = ARCHIVE,
    alignment: int | None = None,
    max_shard_size: int | None = None,
    on_loss: str = "warn",
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write the files of `plan` and then the manifest; returns the paths (files, manifest).

    `max_shard_size` makes each device file a size-sharded set of its own (irpa, safetensors),
    named in the manifest by its index. What the files' format cannot hold is reported once,
    by `on_loss`, before anything is written (see `paramio.write_path`). Raises
    `InvalidArgumentError` for a plan that does not match `entries`, `WriteError` when a file
    cannot be written."""
    if plan.layout is Layout.VLLM:
        from paramio.sharding import vllm

        if fmt != vllm.FORMAT:
            raise InvalidArgumentError(f"the vllm layout writes {vllm.FORMAT} files, not {fmt}")
        if alignment is not None:
            raise InvalidArgumentError("the vllm layout writes safetensors files, which take no alignment")
        return vllm.write_set(
            output,
            entries,
            plan,
            attributes=attributes,
            max_shard_size=max_shard_size,
            on_loss=on_loss,
            durable=durable,
            progress=progress,
        )
    if plan.layout is Layout.SHARKTANK:
        from paramio.sharding import sharktank

        if fmt != ARCHIVE or alignment is not None or max_shard_size is not None:
            raise InvalidArgumentError("the sharktank layout writes one IRPA file per rank, with no other options")
        return sharktank.write_dataset(
            output, entries, plan, stem=stem, attributes=attributes, durable=durable, progress=progress
        )
    planned = plan_files(
        output,
        entries,
        plan,
        stem=stem,
        attributes=attributes,
        fmt=fmt,
        alignment=alignment,
        max_shard_size=max_shard_size,
        on_loss=on_loss,
        durable=durable,
        progress=progress,
    )
    written: list[str] = []
    manifest, folder = planned.manifest, planned.folder
    previous = planned.previous
    # One commit for the whole set: the device files (each may be a sharded set of its own) are
    # finished as they are written and put in place together, the manifest last.
    with AtomicOutputSet(durable=durable) as outputs:
        out = outputs.add(manifest, index=True)
        # Once in place: remove what the previous set held that this one does not (4 ranks -> 2).
        outputs.on_published(
            lambda: sets.remove_files(previous - {os.path.abspath(p) for p in outputs.paths}, manifest)
        )
        with outputs.gathering():
            for i, name in enumerate(planned.names):
                target = os.path.join(folder, name)
                planned.write_file(i, target)
                written.append(target)
        out.pwrite(planned.manifest_bytes(), 0)
        outputs.commit()
    written.append(manifest)
    return written


@dataclasses.dataclass(slots=True)
class FilesPlan:
    """What `write_set` writes for a devices or keys layout, before writing it: the manifest's
    path and folder, each file's name and entries, the manifest's document (with the save's
    stamp), what each file is written with, and the previous set's files there. The scale-out
    engine (`paramio.scaleout`) makes the same plan on every worker (same `stamp`) and has each
    write one file, so its files are byte for byte `write_set`'s."""

    manifest: str
    folder: str
    names: list[str]
    groups: list[list[ParameterEntry]]
    doc: dict[str, object]
    fmt: str
    file_attributes: dict[str, object]
    options: dict[str, object]
    previous: set[str]

    def manifest_bytes(self) -> bytes:
        return (json.dumps(self.doc, indent=2) + "\n").encode("utf-8")

    def write_file(self, index: int, target: str, progress: Callable[[int], None] | None = None) -> None:
        """Write file `index` (a plain file, or a size-sharded set of its own) at `target`."""
        from paramio.formats.registry import write_path as write_any

        options = dict(self.options)
        if progress is not None:
            options["progress"] = progress
        write_any(
            target,
            self.groups[index],
            format=self.fmt,
            attributes=dict(self.file_attributes),
            on_loss="ignore",
            **options,
        )


def plan_files(
    output: str,
    entries: Sequence[ParameterEntry],
    plan: Plan,
    *,
    stem: str = "model",
    attributes: Mapping[str, object] | None = None,
    fmt: str = ARCHIVE,
    alignment: int | None = None,
    max_shard_size: int | None = None,
    on_loss: str = "warn",
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
    stamp: str | None = None,
) -> FilesPlan:
    """The plan of `write_set` for the devices and keys layouts (what it checks, it raises;
    losses are reported by `on_loss` here). `stamp`: the save's stamp (a new one when None)."""
    from paramio.formats.conversion import report_losses
    from paramio.formats.registry import plan_losses

    entries = list(entries)
    if [e.key for e in entries] != [p.key for p in plan.placements]:
        raise InvalidArgumentError("the plan was made for other entries")
    manifest, names = set_files(output, stem, plan.tp, plan.layout, fmt)
    report_losses(
        plan_losses(manifest, entries, format=fmt, attributes=dict(attributes or {})), on_loss, path=manifest, fmt=fmt
    )
    folder = os.path.dirname(manifest) or "."
    os.makedirs(folder, exist_ok=True)
    if max_shard_size is not None:
        files = file_format(fmt)
        if files.index_suffix is None:  # a set the manifest could not name by one file
            usable = ", ".join(f.name for f in _indexed_formats())
            raise InvalidArgumentError(f"max_shard_size with {files.name} device files is not supported; use {usable}")
        names = [n[: -len(files.extension)] + files.index_suffix for n in names]
    per, records = _files_entries(entries, plan, names)
    # Each save stamps the manifest and every device file (written whole), so an open that races
    # a new save of the set sees one save or fails (`read_set`). A device file that is a
    # size-sharded set of its own carries its own set's stamp instead, checked by that set.
    files_layout = file_format(fmt).set_layout
    file_attributes = dict(attributes or {})
    if max_shard_size is not None or files_layout is None or files_layout.put_stamp is None:
        stamp = None
    else:
        stamp = stamp or uuid.uuid4().hex
        file_attributes = files_layout.put_stamp(file_attributes, stamp)
    options: dict[str, object] = {"durable": durable, "progress": progress}
    if alignment is not None:
        options["alignment"] = alignment
    if max_shard_size is not None:
        options["max_shard_size"] = max_shard_size
    doc: dict[str, object] = {
        "paramio.tp": VERSION,
        "tp": plan.tp,
        "layout": plan.layout.value,
        "format": fmt,
        "files": names,
        "tensors": records,
    }
    if stamp is not None:
        doc[sets.STAMP_KEY] = stamp
    return FilesPlan(manifest, folder, names, per, doc, fmt, file_attributes, options, _previous_files(manifest))


def _previous_files(manifest: str) -> set[str]:
    """The files (absolute) of the tensor-parallel set now at `manifest`, and the members of
    those that are sets themselves: what a new set written there replaces. A manifest that
    cannot be read names none."""
    from paramio.core.errors import ParamioError

    if not os.path.isfile(manifest):
        return set()
    try:
        names = read_manifest_json(manifest).get("files")
        if not isinstance(names, list):
            return set()
        found: set[str] = set()
        for n in names:
            path = member_path(manifest, n)
            found.add(os.path.abspath(path))
            found.update(os.path.abspath(m) for m in sets.set_files(path) or [])
    except ParamioError:
        return set()
    return found


@dataclasses.dataclass(slots=True)
class TPSet:
    """A manifest as read: device count, layout, the files (paths) and the joined entries."""

    manifest: str
    tp: int
    layout: Layout
    files: list[str]
    contents: FormatContents


def _int(doc: Mapping[str, object], name: str, path: str) -> int:
    v = doc.get(name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise FormatError(f"manifest field {name!r} must be an integer", path=path)
    return v


def read_set(
    path: str,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> TPSet:
    """Read a tensor-parallel manifest and its files. Raises `FormatError` naming the manifest
    and the tensor when the manifest and the files disagree, `SourceError` for a missing file.

    A manifest with a save stamp (``paramio.set``) is checked against every device file's; an
    open racing a new save of the set reads the manifest again and retries, and never returns
    the tensors of two saves (`SourceError` if the set keeps changing)."""
    for attempt in range(1, _OPEN_ATTEMPTS + 1):
        doc = read_manifest_json(path)
        stamp = doc.get(sets.STAMP_KEY)
        try:
            return _read_set_once(path, doc, writable, use_mmap, allow_external, strict)
        except (_Replaced, SourceError) as exc:
            if not isinstance(stamp, str) or attempt == _OPEN_ATTEMPTS or not _vanished(exc):
                if isinstance(exc, _Replaced):
                    raise SourceError(
                        f"the set was replaced while it was being opened, {attempt} times ({exc}); try again",
                        path=path,
                    ) from None
                raise
            time.sleep(0.005 * 2**attempt)  # a new save is renaming its files into place
    raise AssertionError("unreachable")


class _Replaced(Exception):
    """A device file of another save than the manifest's."""


def _vanished(exc: BaseException) -> bool:
    """Another save's file, or a file gone (renamed away while a new save is put in place)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (_Replaced, FileNotFoundError)):
            return True
        seen = seen.__cause__
    return False


_OPEN_ATTEMPTS = 6


def _read_set_once(
    path: str,
    doc: dict[str, object],
    writable: bool,
    use_mmap: bool,
    allow_external: AllowExternal,
    strict: bool,
) -> TPSet:
    from paramio.formats.registry import read_path as read_any

    if doc.get("paramio.tp") != VERSION:
        raise FormatError(f"not a paramio tensor-parallel manifest (version {doc.get('paramio.tp')!r})", path=path)
    tp = _int(doc, "tp", path)
    if not 1 <= tp <= MAX_TP:
        raise FormatError(f"tp={tp} is outside 1..{MAX_TP}", path=path)
    try:
        layout = Layout(str(doc.get("layout")))
    except ValueError:
        raise FormatError(f"unknown layout {doc.get('layout')!r}", path=path) from None
    names = doc.get("files")
    tensors = doc.get("tensors")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise FormatError("manifest 'files' must be a non-empty list of file names", path=path)
    if not isinstance(tensors, dict):
        raise FormatError("manifest 'tensors' must be an object", path=path)
    for n in names:
        if is_manifest_path(n):  # a manifest naming itself (or another) would never end
            raise FormatError(f"file {n!r} is a tensor-parallel manifest; 'files' must name archives", path=path)
    paths = [member_path(path, n, allow_external) for n in names]
    parts = [
        read_any(p, writable=writable, use_mmap=use_mmap, allow_external=allow_external, strict=strict) for p in paths
    ]
    stamp = doc.get(sets.STAMP_KEY)
    if isinstance(stamp, str):
        for n, part in zip(names, parts, strict=True):
            if part.stamp != stamp:
                raise _Replaced(f"{n} has stamp {part.stamp!r}, the manifest {stamp!r}")
    by_file: dict[str, dict[str, ParameterEntry]] = {}
    for n, part in zip(names, parts, strict=True):
        table: dict[str, ParameterEntry] = {}
        for e in part.entries:
            table.setdefault(e.key, e)
        by_file[n] = table
    used: set[tuple[str, str]] = set()
    entries: list[ParameterEntry] = []
    for key, rec in tensors.items():
        entries.append(_joined(path, key, rec, tp, by_file, used))
    for n, table in by_file.items():
        for k in table:
            if (n, k) not in used:
                raise FormatError(f"file {n!r} holds a key the manifest does not list", path=path, key=k)
    attributes = dict(parts[0].attributes)
    all_paths = [path] + [p for part in parts for p in part.paths]
    return TPSet(path, tp, layout, paths, FormatContents(entries, attributes, all_paths))


def _joined(
    path: str,
    key: str,
    rec: object,
    tp: int,
    by_file: dict[str, dict[str, ParameterEntry]],
    used: set[tuple[str, str]],
) -> ParameterEntry:
    if not isinstance(rec, dict):
        raise FormatError("tensor record must be an object", path=path, key=key)
    raw = rec.get("pieces")
    if not isinstance(raw, list) or not raw:
        raise FormatError("tensor record needs a non-empty 'pieces' list", path=path, key=key)
    pieces: list[ParameterEntry] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise FormatError("each piece must be [file, key]", path=path, key=key)
        fname, pkey = item
        table = by_file.get(fname)
        if table is None:
            raise FormatError(f"piece names file {fname!r}, which is not in 'files'", path=path, key=key)
        entry = table.get(pkey)
        if entry is None:
            raise FormatError(f"piece {pkey!r} is missing from {fname!r}", path=path, key=key)
        used.add((fname, pkey))
        pieces.append(entry)
    if rec.get("replicate") is True:
        first = pieces[0]
        for other in pieces[1:]:
            if other.length != first.length:
                raise FormatError("replicated copies differ in length", path=path, key=key)
        return first.replace(key=key)
    axis = rec.get("split")
    dtype = rec.get("dtype")
    shape = rec.get("shape")
    if isinstance(axis, bool) or not isinstance(axis, int) or not isinstance(dtype, str):
        raise FormatError("a split tensor needs an integer 'split' axis and a 'dtype'", path=path, key=key)
    if not is_numpy_shape(shape):  # bounded before any product of it is made (or printed)
        raise FormatError(
            "a split tensor needs a 'shape' of at most 64 non-negative integers with fewer than 2**63 elements",
            path=path,
            key=key,
        )
    assert isinstance(shape, list)
    if len(pieces) != tp:
        raise FormatError(f"{len(pieces)} pieces listed for tp={tp}", path=path, key=key)
    piece_info = pieces[0].tensor
    if piece_info is None or piece_info.dtype != dtype:
        got = piece_info.dtype if piece_info is not None else "untyped"
        raise FormatError(f"pieces are {got}, the manifest says {dtype}", path=path, key=key)
    info = TensorInfo(dtype, tuple(shape), piece_info.extra)
    try:
        g = geometry(key, info, sum(p.length for p in pieces), axis, tp)
        for i, p in enumerate(pieces):
            if p.tensor is None or tuple(p.tensor.shape) != g.piece_info.shape:
                raise InvalidArgumentError(
                    f"piece {i} has shape {p.shape}, expected {list(g.piece_info.shape)}", key=key
                )
        joined = join_pieces(pieces, g, key)
    except InvalidArgumentError as exc:
        raise FormatError(exc.reason, path=path, key=key) from exc
    md = rec.get("metadata")
    if isinstance(md, str):
        try:
            joined = joined.replace(metadata=base64.b64decode(md, validate=True))
        except ValueError as exc:
            raise FormatError("tensor 'metadata' is not base64", path=path, key=key) from exc
    return joined


def read_path(
    path: str,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> FormatContents:
    """The registry's entry point: the original tensors of a tensor-parallel set (its files,
    and files they name, must resolve beside the manifest or in `allow_external`; `strict`
    applies to reading each file)."""
    return read_set(path, writable=writable, use_mmap=use_mmap, allow_external=allow_external, strict=strict).contents


def write_path(
    path: str,
    entries: Sequence[ParameterEntry],
    *,
    attributes: dict[str, object] | None = None,
    tp: int | None = None,
    split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
    replicate: Iterable[str] = (),
    layout: str = "devices",
    shard_format: str = ARCHIVE,
    alignment: int | None = None,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
    max_shard_size: int | None = None,
) -> None:
    """The registry's entry point: `path` is the ``.tp.json`` manifest to write (see `write_set`).
    Raises `InvalidArgumentError` without `tp` (``paramio shard`` is the command for it)."""
    if tp is None:
        raise InvalidArgumentError(
            "writing a tensor-parallel set needs tp= and split rules; use paramio shard", path=path
        )
    plan = make_plan(entries, tp, split=split, replicate=replicate, layout=layout)
    write_set(
        path,
        entries,
        plan,
        attributes=attributes,
        fmt=shard_format,
        alignment=alignment,
        max_shard_size=max_shard_size,
        durable=durable,
        progress=progress,
    )


def prepare(
    entries: Sequence[ParameterEntry], attributes: dict[str, object] | None, options: dict[str, object] | None = None
) -> Prepared:
    """What the device files' format loses (each file is then written with those losses known)."""
    from paramio.formats.conversion import Prepared

    files = file_format(str((options or {}).get("shard_format", ARCHIVE)))
    losses = files.prepare(list(entries), dict(attributes or {}), {}).losses
    return Prepared(list(entries), dict(attributes or {}), losses)


def _indexed_formats() -> list[Format]:
    return [f for f in formats() if not f.composite and f.index_suffix is not None]


#: A JSON manifest: recognised by its name only (no magic bytes), read by path only.
FORMAT = Format(
    name="tp",
    extensions=(MANIFEST_SUFFIX,),
    read_path=read_path,
    write_path=write_path,
    prepare=prepare,
    composite=True,
)
register_format(FORMAT)

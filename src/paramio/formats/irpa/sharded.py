"""IRPA sharded sets: ``model-00001-of-00004.irpa`` ... plus a manifest ``model.irpa.index.json``.

IREE has no sharding of its own beyond merging several files into one scope at load time
(``--parameters=model=a.irpa --parameters=model=b.irpa``). A set is exactly that, plus a
manifest shaped like Hugging Face's safetensors index, so tools can find every shard::

    {"metadata": {"total_size": N, "format": "irpa"}, "weight_map": {key: shard file}}

Each shard is an ordinary archive IREE loads on its own. Opening the manifest, or any shard,
gives one set of entries: every shard in shard order, each shard's entries in table order.
The weight map must match the shards exactly. File-level attributes live in the first shard.

Writing splits entries greedily in order (a new shard when the next entry would pass
`max_shard_size`; a larger entry gets a shard of its own) and commits the shards and the
manifest as one set (`paramio.formats.output_set.AtomicOutputSet`): a failure on any shard changes
no file, and an interrupted commit leaves shards missing, never old and new shards that open
together as a mix of two saves.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError, SourceError, WriteError
from paramio.formats.inputs import beside, exists, is_url
from paramio.formats.members import member_path, read_manifest_json
from paramio.formats.output import AtomicOutput
from paramio.formats.output_set import AtomicOutputSet
from paramio.formats.registry import FormatContents
from paramio.formats.targets import resolve_output
from paramio.sources.paths import AllowExternal, Confinement

__all__ = [
    "MANIFEST_SUFFIX",
    "find_set",
    "is_manifest_path",
    "read_manifest",
    "read_set",
    "set_names",
    "shard_name",
    "split_greedy",
    "write_set",
]

MANIFEST_SUFFIX = ".irpa.index.json"
FILE_SUFFIX = ".irpa"
SHARD_DIGITS = 5
SHARD_RE = re.compile(r"^(?P<prefix>.*)-(?P<index>\d+)-of-(?P<count>\d+)\.irpa$", re.IGNORECASE)
#: More shards than this in a set is refused (a name like ``-00001-of-99999999`` claims nothing).
MAX_SHARDS = 100_000


def is_manifest_path(path: str) -> bool:
    return path.lower().endswith(MANIFEST_SUFFIX)


def shard_name(prefix: str, index: int, count: int) -> str:
    """``{prefix}-{index:05d}-of-{count:05d}.irpa``, 1-based."""
    return f"{prefix}-{index:0{SHARD_DIGITS}d}-of-{count:0{SHARD_DIGITS}d}{FILE_SUFFIX}"


def set_names(path: str) -> tuple[str, str]:
    """(manifest path, shard prefix) for an output path ending ``.irpa`` or ``.irpa.index.json``."""
    if is_manifest_path(path):
        prefix = path[: -len(MANIFEST_SUFFIX)]
    elif path.lower().endswith(FILE_SUFFIX):
        prefix = path[: -len(FILE_SUFFIX)]
    else:
        prefix = path
    return prefix + MANIFEST_SUFFIX, prefix


def read_manifest(path: str) -> tuple[dict[str, object], dict[str, str]]:
    """The ``metadata`` object and the ``weight_map`` of a manifest. Raises `FormatError`."""
    doc = read_manifest_json(path)
    meta = doc.get("metadata") or {}
    wmap = doc.get("weight_map")
    if not isinstance(meta, dict):
        raise FormatError("manifest 'metadata' must be an object", path=path)
    if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
        raise FormatError("manifest needs a 'weight_map' object mapping keys to shard files", path=path)
    return meta, wmap


def _shard_order(files: Sequence[str]) -> list[str]:
    """Shards by their number when named ``-NNNNN-of-NNNNN``, else in order of first mention."""
    unique = list(dict.fromkeys(files))
    first = {name: i for i, name in enumerate(unique)}

    def key(name: str) -> tuple[int, int]:
        m = SHARD_RE.match(name)
        return (int(m["index"]) if m else 1 << 62, first[name])

    return sorted(unique, key=key)


def read_set(
    path: str, *, writable: bool = False, use_mmap: bool = True, allow_external: AllowExternal = None
) -> FormatContents:
    """The entries of the set behind a manifest. Raises `FormatError` when the weight map and
    the shards disagree, `SourceError` when a shard cannot be opened."""
    from paramio.formats.irpa.reader import read_path as read_one

    meta, wmap = read_manifest(path)
    if len(set(wmap.values())) > MAX_SHARDS:
        raise FormatError(f"manifest names more than {MAX_SHARDS} shards", path=path)
    order = _shard_order(list(wmap.values()))
    parts = [
        read_one(
            member_path(path, name, allow_external), writable=writable, use_mmap=use_mmap, allow_external=allow_external
        )
        for name in order
    ]
    owner: dict[str, str] = {}
    for name, part in zip(order, parts, strict=True):
        for e in part.entries:
            listed = wmap.get(e.key)
            if e.key in owner:
                raise FormatError(f"key is in both {owner[e.key]!r} and {name!r}", path=path, key=e.key)
            owner[e.key] = name
            if listed is None:
                raise FormatError(f"key in shard {name!r} is missing from the weight_map", path=path, key=e.key)
            if listed != name:
                raise FormatError(f"weight_map puts the key in {listed!r} but it is in {name!r}", path=path, key=e.key)
    for key, name in wmap.items():
        if key not in owner:
            raise FormatError(f"weight_map puts the key in {name!r} but that shard lacks it", path=path, key=key)
    attributes: dict[str, object] = {}
    for part in parts:
        for k, v in part.attributes.items():
            attributes.setdefault(k, v)
    entries = [e for part in parts for e in part.entries]
    return FormatContents(entries, attributes, [path] + [p for part in parts for p in part.paths])


def find_set(path: str, allow_external: AllowExternal = None) -> str | list[str] | None:
    """For a shard path: the manifest that lists it, else every sibling shard (paths in order),
    else None when the name is not a shard name. Raises `SourceError` when a sibling shard
    named by the numbering is missing."""
    base = os.path.basename(path)
    m = SHARD_RE.match(base)
    if m is None:
        return None
    count, index = int(m["count"]), int(m["index"])
    if count < 1 or not 1 <= index <= count or count > MAX_SHARDS:
        return None
    # For a URL, `beside` and `exists` (a HEAD) stand in for the folder (no symlinks to check).
    manifest = beside(path, m["prefix"] + MANIFEST_SUFFIX)
    if exists(manifest) if is_url(path) else os.path.exists(manifest):
        _, wmap = read_manifest(manifest)
        if base in wmap.values():
            return manifest
    digits = len(m["index"])
    ext = base[len(base) - len(FILE_SUFFIX) :]
    siblings = [beside(path, f"{m['prefix']}-{i:0{digits}d}-of-{m['count']}{ext}") for i in range(1, count + 1)]
    confinement = None if is_url(path) else Confinement.beside(path, allow_external)
    for s in siblings:
        if not exists(s):
            raise SourceError(f"shard {os.path.basename(s)} of the set is missing", path=s)
        if confinement is not None:
            confinement.resolve(os.path.basename(s), what="shard")  # a symlink out of the folder
    return siblings


def read_path(
    path: str, *, writable: bool = False, use_mmap: bool = True, allow_external: AllowExternal = None
) -> FormatContents | None:
    """The set `path` opens (a manifest, or a shard of a set), or None for a plain archive."""
    if is_manifest_path(path):
        return read_set(path, writable=writable, use_mmap=use_mmap, allow_external=allow_external)
    found = find_set(path, allow_external)
    if isinstance(found, str):
        return read_set(found, writable=writable, use_mmap=use_mmap, allow_external=allow_external)
    if isinstance(found, list):
        from paramio.formats.irpa.reader import read_path as read_one

        parts = [read_one(p, writable=writable, use_mmap=use_mmap, allow_external=allow_external) for p in found]
        seen: dict[str, str] = {}
        for p, part in zip(found, parts, strict=True):
            for e in part.entries:
                if e.key in seen:
                    raise FormatError(f"key is also in shard {seen[e.key]}", path=p, key=e.key)
                seen[e.key] = p
        attributes: dict[str, object] = {}
        for part in parts:
            for k, v in part.attributes.items():
                attributes.setdefault(k, v)
        return FormatContents([e for part in parts for e in part.entries], attributes, list(found))
    return None


def split_greedy(entries: Sequence[ParameterEntry], max_shard_size: int) -> list[list[ParameterEntry]]:
    """Greedy split in order, as ``huggingface_hub`` does; splats count no storage bytes."""
    if isinstance(max_shard_size, bool) or not isinstance(max_shard_size, int) or max_shard_size < 1:
        raise InvalidArgumentError(f"max_shard_size must be a positive integer, not {max_shard_size!r}")
    shards: list[list[ParameterEntry]] = []
    current: list[ParameterEntry] = []
    size = 0
    for e in entries:
        n = 0 if e.is_splat else e.length
        if current and size + n > max_shard_size:
            shards.append(current)
            current, size = [], 0
        current.append(e)
        size += n
    if current or not shards:
        shards.append(current)
    return shards


def write_set(
    path: str,
    entries: Sequence[ParameterEntry],
    *,
    max_shard_size: int,
    plan_one: Callable[[Sequence[ParameterEntry], bool], Callable[[AtomicOutput], None]],
    durable: bool = True,
) -> list[str]:
    """Write the shards, then the manifest; returns the paths written. ``plan_one(entries,
    first)`` plans one shard (raising before anything is written if it cannot be) and returns
    what writes it into an output. When everything fits one shard and `path` names an
    ``.irpa`` file, that one archive is written without a manifest (as ``save_pretrained``
    does for safetensors). A set is committed as a whole (`AtomicOutputSet`): a failure on any
    shard changes no file; the manifest changes last."""
    seen: set[str] = set()
    for e in entries:
        if e.key in seen:
            raise InvalidArgumentError("duplicate key; a sharded set's weight_map holds each key once", key=e.key)
        seen.add(e.key)
    groups = split_greedy(entries, max_shard_size)
    manifest, prefix = set_names(path)
    if len(groups) == 1 and not is_manifest_path(path):
        write = plan_one(groups[0], True)
        with AtomicOutput(path, durable=durable) as single:
            write(single)
            single.commit()
        return [path]
    if resolve_output(path).streamed:
        raise WriteError("is not a regular file; a sharded set is several files and cannot be streamed", path=path)
    names = [shard_name(prefix, i, len(groups)) for i in range(1, len(groups) + 1)]
    writers = [plan_one(group, i == 0) for i, group in enumerate(groups)]
    wmap = {e.key: os.path.basename(name) for name, group in zip(names, groups, strict=True) for e in group}
    meta = {"total_size": sum(0 if e.is_splat else e.length for e in entries), "format": "irpa"}
    text = json.dumps({"metadata": meta, "weight_map": wmap}, indent=2) + "\n"
    with AtomicOutputSet(durable=durable) as outputs:
        index = outputs.add(manifest, index=True)  # first: a bad manifest path fails before any work
        for name, write in zip(names, writers, strict=True):
            out = outputs.add(name)
            write(out)
            out.finish()  # on disk and closed: a set of many shards holds one descriptor at a time
        index.pwrite(text.encode("utf-8"), 0)
        outputs.commit()
    return [*names, manifest]

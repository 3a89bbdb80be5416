"""Sharded checkpoints: Hugging Face's ``model.safetensors.index.json`` convention.

The index is ``{"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}`` next to
shards named ``model-00001-of-00003.safetensors``. Opening the index, or any one shard, gives
one set of entries: every shard in shard order, each shard's tensors in its header's order.
The weight map must match the shards exactly (every tensor listed lives in the shard named for
it, every tensor in a shard is listed, no tensor in two shards). Without an index, the sibling
shards found by name must all exist.

Writing splits entries greedily in the given order, as ``huggingface_hub`` does (a new shard
starts when the next tensor would pass `max_shard_size`; a larger tensor gets a shard of its
own) and commits the shards and the index as one set (`paramio.formats.output_set.AtomicOutputSet`):
a failure on any shard changes no file, and an interrupted commit leaves shards missing, never
old and new shards that open together as a mix of two saves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError, SourceError, WriteError
from paramio.formats.inputs import beside, exists, is_url, open_input
from paramio.formats.members import read_manifest_json
from paramio.formats.output import sync_folder
from paramio.formats.output_set import AtomicOutputSet
from paramio.formats.safetensors.layout import (
    FILE_SUFFIX,
    INDEX_SUFFIX,
    MAX_HEADER_SIZE,
    SHARD_DIGITS,
    SHARD_RE,
    is_index_path,
    shard_name,
)
from paramio.formats.safetensors.reader import SafetensorsFile, read_file
from paramio.formats.safetensors.writer import plan_file, write_file, write_planned
from paramio.formats.targets import resolve_output
from paramio.sources.paths import AllowExternal, Confinement

__all__ = ["ShardedSet", "find_set", "read_index", "read_set", "split_shards", "write_sharded"]

#: An index file larger than this is refused before it is read (the headers it describes are
#: themselves capped at 100 MB each).
MAX_INDEX_SIZE = MAX_HEADER_SIZE


class ShardedSet:
    """A sharded checkpoint as read: the index (if any), the shards and their entries."""

    def __init__(
        self,
        index_path: str | None,
        index_metadata: dict[str, object],
        shards: list[SafetensorsFile],
    ) -> None:
        self.index_path = index_path
        self.index_metadata = index_metadata
        self.shards = shards

    @property
    def entries(self) -> list[ParameterEntry]:
        return [e for s in self.shards for e in s.entries]

    @property
    def paths(self) -> list[str]:
        shard_paths = [s.source.name for s in self.shards]
        return ([self.index_path] if self.index_path else []) + shard_paths


def read_index(path: str) -> tuple[dict[str, object], dict[str, str]]:
    """The ``metadata`` object and the ``weight_map`` of an index file. Raises `FormatError`,
    and `SourceError` when it cannot be read (or is not a regular file: a FIFO never blocks)."""
    doc = read_manifest_json(path, what="index file", limit=MAX_INDEX_SIZE)
    meta = doc.get("metadata", {})
    wmap = doc.get("weight_map")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise FormatError("index 'metadata' must be an object", path=path)
    if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
        raise FormatError("index needs a 'weight_map' object mapping tensor names to shard files", path=path)
    return meta, wmap


def _shard_order(files: Sequence[str]) -> list[str]:
    """Shards by their number when named ``-NNNNN-of-NNNNN``, else in order of first mention."""
    # First mentions numbered once (a dict keeps insertion order): the sort key is then O(1),
    # where a search of the list made 50,000 shard names cost 26 s.
    first = {name: i for i, name in enumerate(dict.fromkeys(files))}

    def key(name: str) -> tuple[int, int]:
        m = SHARD_RE.match(os.path.basename(name))
        # An index.json name is not a path on disk (NAME_MAX): thousands of digits would pass
        # Python's int() digit limit, so numbers past 18 digits sort as unnumbered.
        numbered = m is not None and len(m["index"]) <= 18
        return (int(m["index"]) if m and numbered else 1 << 62, first[name])

    return sorted(first, key=key)


def _resolve(confinement: Confinement | None, name: str, index_path: str) -> str:
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        shown = name.encode("unicode_escape", "backslashreplace").decode("ascii")
        raise FormatError(f"shard {shown!r} must be a file name next to the index", path=index_path, key=name)
    # A plain name can still be a symlink out of the folder: resolve it and check, then open it
    # by the name given (so the set's paths read as the user's folder, not the link targets).
    # A URL's shards have no symlinks: `beside` applies the lexical rule.
    if confinement is not None:
        confinement.resolve(name, key=name, what="shard")
    return beside(index_path, name)


def read_set(
    path: str, *, writable: bool = False, use_mmap: bool = True, allow_external: AllowExternal = None
) -> ShardedSet:
    """Read the sharded set behind an index file. Shards must resolve (symlinks followed)
    inside the index's folder or a folder in `allow_external`. Raises `FormatError` when the
    weight map and the shards disagree, `SourceError` when a shard cannot (or may not) be opened."""
    meta, wmap = read_index(path)
    confinement = None if is_url(path) else Confinement.beside(path, allow_external)
    order = _shard_order(list(wmap.values()))
    shards = []
    for name in order:
        full = _resolve(confinement, name, path)
        try:
            source = open_input(full, writable=writable, use_mmap=use_mmap)
        except SourceError as exc:
            raise SourceError(f"shard {name!r}: {exc.reason}", path=path, key=name) from exc
        shards.append(read_file(source))
    _check_weight_map(path, wmap, order, shards)
    return ShardedSet(path, meta, shards)


def _check_weight_map(path: str, wmap: dict[str, str], order: list[str], shards: list[SafetensorsFile]) -> None:
    owner: dict[str, str] = {}
    for name, shard in zip(order, shards, strict=True):
        for e in shard.entries:
            if e.key in owner:
                raise FormatError(f"tensor is in both {owner[e.key]!r} and {name!r}", path=path, key=e.key)
            owner[e.key] = name
            listed = wmap.get(e.key)
            if listed is None:
                raise FormatError(f"tensor in shard {name!r} is missing from the weight_map", path=path, key=e.key)
            if listed != name:
                raise FormatError(
                    f"weight_map puts the tensor in {listed!r} but it is in {name!r}", path=path, key=e.key
                )
    for key, name in wmap.items():
        if key not in owner:
            raise FormatError(f"weight_map puts the tensor in {name!r} but that shard lacks it", path=path, key=key)


def find_set(path: str, allow_external: AllowExternal = None) -> str | list[str] | None:
    """For a shard path: the index that lists it (a path), else every sibling shard (paths in
    order), else None when the name is not a shard name. Siblings must resolve inside the
    shard's folder (or `allow_external`). Raises `SourceError` if a sibling shard named by the
    numbering is missing or may not be opened."""
    base = os.path.basename(path)
    m = SHARD_RE.match(base)
    if m is None:
        return None
    # A URL's siblings: `beside` and `exists` (a HEAD) in place of the folder and its symlinks.
    confinement = None if is_url(path) else Confinement.beside(path, allow_external)
    index = beside(path, m["prefix"] + INDEX_SUFFIX)
    if exists(index):
        if confinement is not None:
            confinement.resolve(os.path.basename(index), what="index file")
        _, wmap = read_index(index)
        if base in wmap.values():
            return index
    count = int(m["count"])
    digits = len(m["index"])
    if count < 1 or int(m["index"]) > count or count > 100_000:
        return None
    siblings = [beside(path, shard_name(m["prefix"], i, count, digits)) for i in range(1, count + 1)]
    for s in siblings:
        if not exists(s):
            raise SourceError(f"shard {os.path.basename(s)} of the set is missing", path=s)
        if confinement is not None:
            confinement.resolve(os.path.basename(s), what="shard")
    return siblings


def split_shards(entries: Sequence[ParameterEntry], max_shard_size: int) -> list[list[ParameterEntry]]:
    """Greedy split in order, as ``huggingface_hub.split_torch_state_dict_into_shards``."""
    if max_shard_size < 1:
        raise InvalidArgumentError(f"max_shard_size must be positive, not {max_shard_size}")
    shards: list[list[ParameterEntry]] = []
    current: list[ParameterEntry] = []
    size = 0
    for e in entries:
        if current and size + e.length > max_shard_size:
            shards.append(current)
            current, size = [], 0
        current.append(e)
        size += e.length
    if current or not shards:
        shards.append(current)
    return shards


def set_names(path: str) -> tuple[str, str]:
    """(index path, shard prefix) for an output path ending ``.safetensors`` or ``.index.json``."""
    if is_index_path(path):
        prefix = path[: -len(INDEX_SUFFIX)]
    elif path.lower().endswith(FILE_SUFFIX):
        prefix = path[: -len(FILE_SUFFIX)]
    else:
        prefix = path
    return prefix + INDEX_SUFFIX, prefix


def write_sharded(
    path: str,
    entries: Sequence[ParameterEntry],
    *,
    max_shard_size: int,
    metadata: dict[str, str] | None = None,
    index_metadata: dict[str, object] | None = None,
    alignment: int | None = None,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write shards and the index; returns the paths written (shards, then the index).

    When everything fits one shard and `path` names a ``.safetensors`` file, that single file
    is written without an index, as ``save_pretrained`` does. Otherwise the shards and the
    index are committed as one set (`AtomicOutputSet`): every shard is planned, then written
    and fsynced, before any final name changes; the index changes last. Shards of the previous
    set that the new index does not name are removed once it is in place. Raises
    `InvalidArgumentError` for entries safetensors cannot describe (before anything is
    written), `WriteError` when a file cannot be written (every old file stays as it was).
    """
    entries = list(entries)
    groups = split_shards(entries, max_shard_size)
    index_path, prefix = set_names(path)
    if len(groups) == 1 and not is_index_path(path):
        write_file(path, groups[0], metadata=metadata, alignment=alignment, durable=durable, progress=progress)
        return [path]
    names = [shard_name(prefix, i, len(groups), SHARD_DIGITS) for i in range(1, len(groups) + 1)]
    plans = [plan_file(g, metadata=metadata, alignment=alignment) for g in groups]
    wmap = {e.key: os.path.basename(name) for name, group in zip(names, groups, strict=True) for e in group}
    meta: dict[str, object] = dict(index_metadata or {})
    meta["total_size"] = sum(e.length for e in entries)
    text = json.dumps({"metadata": meta, "weight_map": dict(sorted(wmap.items()))}, indent=2) + "\n"
    if resolve_output(path).streamed:
        raise WriteError("is not a regular file; a sharded set is several files and cannot be streamed", path=path)
    with AtomicOutputSet(durable=durable) as outputs:
        index = outputs.add(index_path, index=True)  # first: a bad index path fails before any work
        stale = _previous_shards(index_path, prefix) - {os.path.abspath(n) for n in names}
        for name, group, plan in zip(names, groups, plans, strict=True):
            shard = outputs.add(name)
            write_planned(shard, plan, group, progress=progress)
            shard.finish()  # on disk and closed: a set of many shards holds one descriptor at a time
        index.pwrite(text.encode("utf-8"), 0)
        outputs.on_published(lambda: _remove_stale(stale, index_path))
        outputs.commit()
    return [*names, index_path]


def _previous_shards(index_path: str, prefix: str) -> set[str]:
    """The shard names (absolute) the index now at `index_path` lists under this prefix, with
    any shard count: the previous set's. An index that cannot be read lists none."""
    if not os.path.isfile(index_path):
        return set()
    try:
        _, wmap = read_index(index_path)
    except (SourceError, FormatError):
        return set()
    folder, stem = os.path.split(os.path.abspath(prefix))
    found = set()
    for name in set(wmap.values()):
        m = SHARD_RE.match(name)
        if m is not None and m["prefix"] == stem and "/" not in name and os.sep not in name:
            found.add(os.path.join(folder, name))
    return found


def _remove_stale(paths: set[str], index_path: str) -> None:
    """Remove the previous set's shards the new index does not name (a symlink is removed, not
    the file it points to)."""
    for p in sorted(paths):
        try:
            if os.path.islink(p) or os.path.isfile(p):
                os.unlink(p)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise WriteError(
                f"the new set is in place but a shard of the old one could not be removed: {exc.strerror or exc}",
                path=p,
            ) from exc
    if paths:
        sync_folder(index_path)

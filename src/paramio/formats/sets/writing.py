"""Writing a set: split, plan every member, commit as one, remove what the previous set left."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError, SourceError, WriteError
from paramio.formats.contract import SetLayout
from paramio.formats.output import AtomicOutput, sync_folder
from paramio.formats.output_set import AtomicOutputSet
from paramio.formats.sets.names import member_name, parse_member_name
from paramio.formats.sets.reading import STAMP_KEY, is_manifest, read_weight_map
from paramio.formats.targets import resolve_output

__all__ = [
    "MemberPlan",
    "OneMember",
    "PlanMember",
    "SetPlan",
    "planning_only",
    "previous_members",
    "remove_files",
    "set_names",
    "split_members",
    "write_set",
    "writing_one_member",
]


@dataclasses.dataclass(frozen=True, slots=True)
class MemberPlan:
    """Which member a format is asked to plan: its place, the set's size and stamp."""

    #: 0-based.
    index: int
    count: int
    #: Entries in the whole set.
    total_entries: int
    #: The set's generation stamp (`put_stamp` it into the member's attributes); None for a
    #: single file, which carries none.
    stamp: str | None

    @property
    def first(self) -> bool:
        return self.index == 0


#: ``plan_member(entries, member)``: plan one member (raising before anything is written if it
#: cannot be) and return what writes it into an output.
PlanMember = Callable[[Sequence[ParameterEntry], MemberPlan], Callable[[AtomicOutput], None]]


@dataclasses.dataclass(slots=True)
class SetPlan:
    """What `write_set` would write, recorded instead of written (`planning_only`): the scale-out
    engine (`paramio.scaleout`) plans a set on its driver this way and has each member written
    elsewhere (`writing_one_member`), then commits the manifest itself."""

    #: The members' paths, as `write_set` names them from the path it was given.
    names: list[str] = dataclasses.field(default_factory=list)
    #: The entries of each member, in order (the format's own, typed as its writer types them).
    groups: list[list[ParameterEntry]] = dataclasses.field(default_factory=list)
    manifest: str | None = None
    #: The manifest's exact bytes (None without a manifest).
    manifest_text: str | None = None
    stamp: str | None = None
    total_entries: int = 0
    #: Where the previous set under the same stem lives (to remove after publishing).
    stale: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass(frozen=True, slots=True)
class OneMember:
    """`writing_one_member`'s order: the entries given to `write_set` are member `index` of
    `count` (already split by a `SetPlan`), stamped `stamp`, written into the file `path`."""

    index: int
    count: int
    total_entries: int
    stamp: str | None
    path: str


_MODE: contextvars.ContextVar[SetPlan | OneMember | None] = contextvars.ContextVar("paramio_set_mode", default=None)


@contextlib.contextmanager
def planning_only() -> Iterator[SetPlan]:
    """Within the block, `write_set` plans (split, names, stamp, manifest bytes) into the yielded
    `SetPlan` and writes nothing. A writer that writes a single file does not call `write_set`:
    the plan then stays empty (``names == []``)."""
    plan = SetPlan()
    token = _MODE.set(plan)
    try:
        yield plan
    finally:
        _MODE.reset(token)


@contextlib.contextmanager
def writing_one_member(member: OneMember) -> Iterator[None]:
    """Within the block, `write_set` writes only `member` (its entries are the ones given) into
    ``member.path``, atomically, with the set's stamp; no manifest, no other member."""
    token = _MODE.set(member)
    try:
        yield
    finally:
        _MODE.reset(token)


def split_members(
    entries: Sequence[ParameterEntry],
    max_size: int | None,
    *,
    max_entries: int | None = None,
    stores_splats: bool,
) -> list[list[ParameterEntry]]:
    """Greedy split in order, as ``huggingface_hub`` and gguf-py do: a new member starts when
    the next entry would take the current one past `max_size` bytes (or past `max_entries`
    entries); an entry larger than `max_size` gets a member of its own; never an empty member.

    The one rule for splats: an entry counts the bytes the member will hold for it, so a splat
    counts nothing where the format stores splats (`stores_splats`: IRPA) and its full length
    where the writer expands it (safetensors, GGUF)."""
    for name, v in (("max_shard_size", max_size), ("max_entries", max_entries)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise InvalidArgumentError(f"{name} must be a positive integer, not {v!r}")
    groups: list[list[ParameterEntry]] = []
    current: list[ParameterEntry] = []
    size = 0
    for e in entries:
        n = 0 if (stores_splats and e.is_splat) else e.length
        if current and (
            (max_size is not None and size + n > max_size) or (max_entries is not None and len(current) >= max_entries)
        ):
            groups.append(current)
            current, size = [], 0
        current.append(e)
        size += n
    if current or not groups:
        groups.append(current)
    return groups


def set_names(path: str, layout: SetLayout) -> tuple[str | None, str]:
    """(manifest path or None, member stem path) for an output path ending with the member
    suffix or the manifest suffix (any case)."""
    low = path.lower()
    if layout.manifest_suffix is not None and low.endswith(layout.manifest_suffix):
        stem = path[: -len(layout.manifest_suffix)]
    elif low.endswith(layout.member_suffix):
        stem = path[: -len(layout.member_suffix)]
    else:
        stem = path
    return (stem + layout.manifest_suffix if layout.manifest_suffix else None), stem


def previous_members(manifest: str | None, stem: str, layout: SetLayout) -> set[str]:
    """The files (absolute) of the set now written under `stem`, whatever its member count:
    those its manifest names under this stem, and members named ``{stem}-NNNNN-of-NNNNN``
    beside it. A manifest that cannot be read names none."""
    folder, base = os.path.split(os.path.abspath(stem))
    found: set[str] = set()
    if manifest is not None and os.path.isfile(manifest):
        try:
            _, wmap = read_weight_map(manifest)
        except (SourceError, FormatError):
            wmap = {}
        for name in set(wmap.values()):
            parsed = parse_member_name(name, layout.member_suffix)
            if parsed is not None and parsed.stem == base and "/" not in name and os.sep not in name:
                found.add(os.path.join(folder, name))
    try:
        names = os.listdir(folder)
    except OSError:
        names = []
    for name in names:
        parsed = parse_member_name(name, layout.member_suffix)
        if parsed is not None and parsed.stem == base:
            found.add(os.path.join(folder, name))
    return found


def remove_files(paths: Sequence[str] | set[str], beside: str) -> None:
    """Remove files a new set replaced (a symlink is removed, not its target); then sync the folder."""
    for p in sorted(paths):
        try:
            if os.path.islink(p) or os.path.isfile(p):
                os.unlink(p)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise WriteError(
                f"the new set is in place but a file of the old one could not be removed: {exc.strerror or exc}",
                path=p,
            ) from exc
    if paths:
        sync_folder(beside)


def write_set(
    path: str,
    entries: Sequence[ParameterEntry],
    layout: SetLayout,
    *,
    plan_member: PlanMember,
    max_shard_size: int | None,
    max_entries: int | None = None,
    stores_splats: bool,
    manifest_metadata: dict[str, object] | None = None,
    sort_weight_map: bool = False,
    durable: bool = True,
) -> list[str]:
    """Write `entries` at `path` as a set of `layout`, or as one file when everything fits
    one member and `path` does not name a manifest; returns the paths written (members, then
    the manifest).

    Every member is planned before anything is written; the members and the manifest are
    committed as one (`AtomicOutputSet`): a failure changes no file, and the manifest changes
    last. Every member and the manifest carry one new stamp, so a reader opening the set while
    it is replaced sees one save or fails. Once the new set is in place, the files of the
    previous set under the same stem that it does not reuse are removed (a 3-member set
    re-saved as 2 leaves no third member behind)."""
    seen: set[str] = set()
    for e in entries:
        if e.key in seen:
            raise InvalidArgumentError("duplicate key; a set holds each key once", key=e.key)
        seen.add(e.key)
    mode = _MODE.get()
    if isinstance(mode, OneMember):
        write_one = plan_member(list(entries), MemberPlan(mode.index, mode.count, mode.total_entries, mode.stamp))
        with AtomicOutput(mode.path, durable=durable) as one:
            write_one(one)
            one.commit()
        return [mode.path]
    groups = split_members(entries, max_shard_size, max_entries=max_entries, stores_splats=stores_splats)
    manifest, stem = set_names(path, layout)
    total = len(entries)
    if len(groups) == 1 and not is_manifest(path, layout):
        write = plan_member(groups[0], MemberPlan(0, 1, total, None))
        if isinstance(mode, SetPlan):  # one file: one member, no manifest, no stamp
            mode.names, mode.groups, mode.total_entries = [path], [list(groups[0])], total
            return [path]
        with AtomicOutput(path, durable=durable) as single:
            write(single)
            single.commit()
        return [path]
    if resolve_output(path).streamed:
        raise WriteError("is not a regular file; a set is several files and cannot be streamed", path=path)
    n = len(groups)
    stamp = uuid.uuid4().hex if layout.put_stamp is not None else None
    names = [member_name(stem, i, n, layout.member_suffix) for i in range(1, n + 1)]
    writers = [plan_member(g, MemberPlan(i, n, total, stamp)) for i, g in enumerate(groups)]
    text = None
    if manifest is not None:
        wmap = {e.key: os.path.basename(name) for name, group in zip(names, groups, strict=True) for e in group}
        meta: dict[str, object] = dict(layout.manifest_metadata)
        meta.update(manifest_metadata or {})
        meta["total_size"] = sum(0 if (stores_splats and e.is_splat) else e.length for e in entries)
        if stamp is not None:
            meta[STAMP_KEY] = stamp
        shown = dict(sorted(wmap.items())) if sort_weight_map else wmap
        text = json.dumps({"metadata": meta, "weight_map": shown}, indent=2) + "\n"
    if isinstance(mode, SetPlan):  # every member planned above: what refuses before writing refused
        mode.names, mode.groups, mode.manifest, mode.manifest_text = names, [list(g) for g in groups], manifest, text
        mode.stamp, mode.total_entries = stamp, total
        mode.stale = previous_members(manifest, stem, layout) - {os.path.abspath(p) for p in names}
        return [*names, *([manifest] if manifest is not None else [])]
    with AtomicOutputSet(durable=durable) as outputs:
        index = outputs.add(manifest, index=True) if manifest is not None else None  # a bad path fails first
        stale = previous_members(manifest, stem, layout) - {os.path.abspath(p) for p in names}
        for name, write in zip(names, writers, strict=True):
            out = outputs.add(name)
            write(out)
            out.finish()  # on disk and closed: a set of many members holds one descriptor at a time
        if index is not None and text is not None:
            index.pwrite(text.encode("utf-8"), 0)
        outputs.on_published(lambda: remove_files(stale, names[0]))
        outputs.commit()
    return [*names, *([manifest] if manifest is not None else [])]

"""Opening a set: from its manifest, or from any member by its name, checked as it is read."""

from __future__ import annotations

import os
import time

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, SourceError
from paramio.core.records import Record
from paramio.core.source import ByteSource
from paramio.formats.contract import FormatContents, SetLayout
from paramio.formats.inputs import beside, exists, is_url, open_input
from paramio.formats.sets import STAMP_KEY, is_manifest, read_file, read_plain
from paramio.formats.sets.names import MAX_MEMBERS, parse_member_name, shard_order
from paramio.sources.paths import AllowExternal, Confinement

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "STAMP_KEY",
    "is_manifest",
    "manifest_path",
    "member_paths",
    "read_file",
    "read_path",
    "read_weight_map",
]

#: Opens of a set retried when it was replaced while being opened (its manifest changed).
OPEN_ATTEMPTS = 6


class _Opts(Record):
    __slots__ = ("writable", "use_mmap", "allow_external", "strict")
    __match_args__ = __slots__
    writable: bool
    use_mmap: bool
    allow_external: AllowExternal
    strict: bool

    def __init__(self, writable: bool, use_mmap: bool, allow_external: AllowExternal, strict: bool) -> None:
        object.__setattr__(self, "writable", writable)
        object.__setattr__(self, "use_mmap", use_mmap)
        object.__setattr__(self, "allow_external", allow_external)
        object.__setattr__(self, "strict", strict)


class _Replaced(Exception):
    """A member's stamp is not the manifest's: another save's member (or a manifest replaced)."""

    def __init__(self, member: str, found: str | None, expected: str | None) -> None:
        super().__init__(member)
        self.member, self.found, self.expected = member, found, expected


def manifest_path(stem_path: str, layout: SetLayout) -> str | None:
    """The manifest of the set whose members are ``{stem_path}-NNNNN-of-NNNNN...``, or None."""
    return stem_path + layout.manifest_suffix if layout.manifest_suffix else None


def read_weight_map(path: str) -> tuple[dict[str, object], dict[str, str]]:
    """A manifest's ``metadata`` object and ``weight_map`` (key -> member file name).

    Raises `FormatError` for anything else (and for more than `MAX_MEMBERS` member names),
    `SourceError` when it cannot be read (or is not a regular file)."""
    from paramio.formats.members import MAX_MANIFEST_SIZE, read_manifest_json  # a set's only

    doc = read_manifest_json(path, limit=MAX_MANIFEST_SIZE)
    meta = doc.get("metadata")
    wmap = doc.get("weight_map")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise FormatError("manifest 'metadata' must be an object", path=path)
    if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
        raise FormatError("manifest needs a 'weight_map' object mapping keys to member files", path=path)
    if len(set(wmap.values())) > MAX_MEMBERS:
        raise FormatError(f"manifest names more than {MAX_MEMBERS} member files", path=path)
    return meta, wmap


def _stamp_of(meta: dict[str, object]) -> str | None:
    stamp = meta.get(STAMP_KEY)
    return stamp if isinstance(stamp, str) else None


def _open_member(path: str, *, writable: bool, use_mmap: bool) -> ByteSource:
    """A member's source: local read-only members are `MemberSource` (open while in use)."""
    if not writable and not is_url(path):
        local = path[len("file://") :] if path.startswith("file://") else path
        if os.path.isfile(local):
            # Here: only a member of a set is opened this way (a plain file's listing imports
            # no descriptor pool, nor the `threading` and `weakref` it needs).
            from paramio.formats.sets.member_source import MemberSource

            return MemberSource(local, use_mmap=use_mmap)
    return open_input(path, writable=writable, use_mmap=use_mmap)


def _read_member(layout: SetLayout, path: str, what: str, opts: _Opts) -> FormatContents:
    try:
        source = _open_member(path, writable=opts.writable, use_mmap=opts.use_mmap)
    except SourceError as exc:
        raise SourceError(
            f"shard {os.path.basename(path)} of the set is missing or cannot be opened ({what}): {exc.reason}",
            path=path,
        ) from exc
    return layout.read_member(
        source, path, writable=opts.writable, allow_external=opts.allow_external, strict=opts.strict
    )


def _keys(entries: Sequence[ParameterEntry]) -> list[str]:
    keys = getattr(entries, "keys", None)  # `LazyEntries`: the keys without building entries
    if callable(keys):
        return list(keys())
    return [e.key for e in entries]


def read_path(
    path: str,
    layout: SetLayout,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> FormatContents:
    """What `path` opens: a manifest's set, the set a member belongs to, or one plain file.

    A member (named ``-NNNNN-of-NNNNN``) opens the manifest beside it when that lists it, else
    its siblings by name, each read and checked against those before it (keys held once, one
    save's stamp, the place it states) so a bad set fails at its first bad member. Raises
    `FormatError` for a set whose parts disagree, `SourceError` for a member that is missing or
    may not be opened (or a set replaced again and again while it was being opened)."""
    opts = _Opts(writable, use_mmap, allow_external, strict)
    if is_manifest(path, layout):
        return _read_manifest_set(path, layout, opts)
    base = os.path.basename(path)
    name = parse_member_name(base, layout.member_suffix)
    confinement = None if is_url(path) else Confinement.beside(path, allow_external)
    if name is not None and layout.manifest_suffix is not None:
        manifest = beside(path, name.stem + layout.manifest_suffix)
        if exists(manifest):
            if confinement is not None:
                confinement.resolve(os.path.basename(manifest), what="manifest")
            meta, wmap = read_weight_map(manifest)
            if base in wmap.values():
                return _read_manifest_set(manifest, layout, opts, (meta, wmap))
    if name is None:
        return read_plain(
            path, layout, writable=writable, use_mmap=use_mmap, allow_external=allow_external, strict=strict
        )
    first = _read_member(layout, path, "the file named", opts)
    claim = layout.claim(first, path) if layout.claim is not None else None
    if layout.claim is not None and claim is None:  # a member by name only: the file says nothing
        if first.stamp is None:
            first.stamp = layout.take_stamp(first.attributes)
        return first
    if claim is not None and (claim[0] + 1, claim[1]) != (name.index, name.count):
        raise FormatError(
            f"file name says member {name.index} of {name.count} but the file says {claim[0] + 1} of {claim[1]}",
            path=path,
        )
    return _read_siblings(path, name.count, name.index, first, claim, layout, confinement, opts)


def _read_siblings(
    path: str,
    count: int,
    index: int,
    first: FormatContents,
    claim: tuple[int, int, object] | None,
    layout: SetLayout,
    confinement: Confinement | None,
    opts: _Opts,
) -> FormatContents:
    name = parse_member_name(os.path.basename(path), layout.member_suffix)
    assert name is not None
    stamp = layout.take_stamp(first.attributes)
    paths: list[str] = []
    parts: list[FormatContents] = []
    owner: dict[str, str] = {}
    for i in range(1, count + 1):
        p = beside(path, name.sibling(i))
        if i == index:
            part = first
        else:
            if confinement is not None and os.path.lexists(p):
                confinement.resolve(os.path.basename(p), what=f"member {i} of {count}")
            part = _read_member(layout, p, f"{i} of {count}", opts)
            got = layout.take_stamp(part.attributes)
            if got != stamp:
                raise FormatError(
                    f"shard {i} of {count} belongs to another save of the set than {os.path.basename(path)} "
                    f"(stamp {got!r}, not {stamp!r}); the set was replaced while it was being opened?",
                    path=p,
                )
            if layout.claim is not None:
                got_claim = layout.claim(part, p)
                if got_claim is None or got_claim[:2] != (i - 1, count) or got_claim[2] != (claim or (0, 0, None))[2]:
                    raise FormatError(
                        f"shard {i} of {count} states its place as {got_claim}, expected {(i - 1, count)} "
                        f"with {claim[2] if claim else None} entries in the set",
                        path=p,
                    )
        for key in _keys(part.entries):
            if key in owner:
                raise FormatError(f"key is also in shard {owner[key]}", path=p, key=key)
            owner[key] = os.path.basename(p)
        paths.append(p)
        parts.append(part)
    total = claim[2] if claim is not None else None
    if isinstance(total, int) and total != len(owner):
        raise FormatError(f"the set says it holds {total} entries but its {count} members hold {len(owner)}", path=path)
    attributes = layout.join_attributes([p.attributes for p in parts], None)
    entries = [e for part in parts for e in part.entries]
    return FormatContents(entries, attributes, paths, stamp)


def _vanished(exc: BaseException) -> bool:
    """Whether `exc` is another save's member, or a member gone (renamed away mid-replace)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (_Replaced, FileNotFoundError)):
            return True
        seen = seen.__cause__
    return False


def _read_manifest_set(
    path: str, layout: SetLayout, opts: _Opts, first: tuple[dict[str, object], dict[str, str]] | None = None
) -> FormatContents:
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        meta, wmap = first if first is not None and attempt == 1 else read_weight_map(path)
        stamp = _stamp_of(meta)
        try:
            return _manifest_members(path, layout, meta, wmap, stamp, opts)
        except (_Replaced, SourceError) as exc:
            if stamp is None and not isinstance(exc, _Replaced):
                raise  # a set without stamps (older, or another tool's): nothing to race-check
            try:
                again = _stamp_of(read_weight_map(path)[0])
            except (SourceError, FormatError):
                again = stamp
            # A new save in progress: its members are being renamed into place and its manifest
            # comes last. Retry when the manifest changed, or (a local stamped set) it may yet.
            racing = again != stamp or (stamp is not None and not is_url(path) and _vanished(exc))
            if racing and attempt < OPEN_ATTEMPTS:
                time.sleep(0.005 * 2**attempt)
                continue
            if isinstance(exc, SourceError):
                raise
            if again != stamp:
                raise SourceError(
                    f"the set was replaced while it was being opened, {OPEN_ATTEMPTS} times; try again", path=path
                ) from None
            raise FormatError(
                f"shard {exc.member!r} belongs to another save of the set (stamp {exc.found!r}, expected "
                f"{exc.expected!r})",
                path=path,
            ) from None
    raise AssertionError("unreachable")


def _manifest_members(
    path: str,
    layout: SetLayout,
    meta: dict[str, object],
    wmap: dict[str, str],
    stamp: str | None,
    opts: _Opts,
) -> FormatContents:
    from paramio.formats.members import member_path

    order = shard_order(list(wmap.values()), layout.member_suffix)
    parts: list[FormatContents] = []
    paths: list[str] = []
    owner: dict[str, str] = {}
    # The manifest's stamp, or where it has none (written before stamps, or rewritten by a tool
    # that dropped the key) the first member's: every member must carry the same.
    reference = stamp
    for position, name in enumerate(order):
        full = member_path(path, name, opts.allow_external)
        try:
            part = _read_member(layout, full, "named by the manifest", opts)
        except SourceError as exc:
            raise SourceError(exc.reason, path=path, key=name) from exc
        got = layout.take_stamp(part.attributes)
        if position == 0 and stamp is None:
            reference = got
        elif got != reference:
            raise _Replaced(name, got, reference)
        for key in _keys(part.entries):
            listed = wmap.get(key)
            if key in owner:
                raise FormatError(f"key is in both {owner[key]!r} and {name!r}", path=path, key=key)
            owner[key] = name
            if listed is None:
                raise FormatError(f"key in shard {name!r} is missing from the weight_map", path=path, key=key)
            if listed != name:
                raise FormatError(f"weight_map puts the key in {listed!r} but it is in {name!r}", path=path, key=key)
        parts.append(part)
        paths.append(full)
    if len(owner) != len(wmap):
        for key, name in wmap.items():
            if key not in owner:
                raise FormatError(f"weight_map puts the key in {name!r} but that shard lacks it", path=path, key=key)
    manifest_meta = {k: v for k, v in meta.items() if k != STAMP_KEY}
    attributes = layout.join_attributes([p.attributes for p in parts], manifest_meta)
    entries = parts[0].entries if len(parts) == 1 else [e for part in parts for e in part.entries]
    return FormatContents(entries, attributes, [path, *paths], reference)


def member_paths(path: str, layout: SetLayout, allow_external: AllowExternal = None) -> list[str] | None:
    """The member files of the set `path` opens (its manifest, or a member by name), in order,
    without reading them; None when `path` is one plain file. Raises `FormatError` for a bad
    manifest."""
    if is_manifest(path, layout):
        from paramio.formats.members import member_path

        _, wmap = read_weight_map(path)
        return [member_path(path, n, allow_external) for n in shard_order(list(wmap.values()), layout.member_suffix)]
    base = os.path.basename(path)
    name = parse_member_name(base, layout.member_suffix)
    if name is None or name.count < 2:
        return None
    if layout.manifest_suffix is not None:
        manifest = beside(path, name.stem + layout.manifest_suffix)
        if exists(manifest):
            found = member_paths(manifest, layout, allow_external)
            if found is not None and any(os.path.basename(f) == base for f in found):
                return found
    return [beside(path, name.sibling(i)) for i in range(1, name.count + 1)]

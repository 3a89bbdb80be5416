"""Sharded sets, one implementation for every format: naming, finding, reading, checking,
writing and replacing.

A set is several files of one format that open as one: IRPA and safetensors sets
(``model-00001-of-00003.irpa`` ... with a manifest ``model.irpa.index.json`` in Hugging Face's
index shape), GGUF splits (``model-00001-of-00003.gguf``, each member stating its place in its
``split.*`` keys, no manifest), and the device files of a tensor-parallel set. A format takes part
by giving its `paramio.formats.contract.Format` a `SetLayout`: its member and manifest suffixes,
how to read one member, where a member's stamp lives and what a member says about its place.
Everything else is here, the same for every format:

* **names**: ``{stem}-{i}-of-{n}{suffix}``, matched ignoring case, ASCII digits, at most
  `MAX_MEMBERS` members; a name outside those rules is a plain file name (`names`).
* **reading** (`read_path`): a manifest opens its set; a member opens the manifest beside it when
  that lists it, else its siblings by name. Members are read in order and each is checked
  against those before it (keys held once, the weight map, the place it states, one save's
  stamp), so a bad set fails at its first bad member: a URL named like member 1 of 2,000 on a
  server that answers every path costs two members' requests, not 2,000.
* **one save per open**: every member written as part of a set carries the set's generation
  stamp (``paramio.set``) in its file-level attributes, and the manifest in its metadata. An open
  whose members' stamps differ from the manifest's was racing a new save: it reads the manifest
  again and retries, and never returns members of two saves. Sets written before stamps existed
  carry none and open as before.
* **descriptors**: local members are opened lazily (`MemberSource`): at most `MAX_OPEN_MEMBERS`
  are open at once, so a set of thousands of members opens under ``ulimit -n 1024``.
* **writing** (`write_set`): a greedy split (`split_members`; a splat counts the bytes the member
  holds for it: nothing where the format stores splats, its length where it is written out),
  every member planned before any is written, all committed as one with the manifest last,
  then the previous set's files under the same stem that the new one does not reuse removed.
  Everything that fits one member is written as one plain file unless a manifest was named: a
  file written as one file stays one file, and `read_file` reads it so whatever its name.
"""

from __future__ import annotations

import os

from paramio.core.errors import FormatError
from paramio.formats.contract import Format, FormatContents, SetLayout, format_for_path
from paramio.formats.inputs import is_url, open_input
from paramio.sources.paths import AllowExternal, Confinement

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from paramio.formats.sets.member_source import MAX_OPEN_MEMBERS, MemberSource
    from paramio.formats.sets.names import MAX_MEMBERS, ShardName, member_name, parse_member_name, shard_order
    from paramio.formats.sets.reading import member_paths, read_weight_map
    from paramio.formats.sets.writing import (
        MemberPlan,
        PlanMember,
        previous_members,
        remove_files,
        set_names,
        split_members,
        write_set,
    )

#: Names imported from the submodules on first use: reading (and listing, ``paramio dump``) one
#: plain file imports neither the set reader and its member-name pattern (`reading`, `names`),
#: nor the descriptor pool (`member_source`), nor the writer side (`writing`: `paramio.formats.output`,
#: its worker pool).
_LAZY = {
    "MAX_MEMBERS": "names",
    "ShardName": "names",
    "member_name": "names",
    "parse_member_name": "names",
    "shard_order": "names",
    "member_paths": "reading",
    "read_weight_map": "reading",
    "MAX_OPEN_MEMBERS": "member_source",
    "MemberSource": "member_source",
    **dict.fromkeys(
        ("MemberPlan", "PlanMember", "previous_members", "remove_files", "set_names", "split_members", "write_set"),
        "writing",
    ),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from paramio.core.exports import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)


#: The key of a set's generation stamp: in the manifest's ``metadata`` and in every member's
#: file-level attributes (where the format keeps them).
STAMP_KEY = "paramio.set"


def is_manifest(path: str, layout: SetLayout) -> bool:
    return layout.manifest_suffix is not None and path.lower().endswith(layout.manifest_suffix)


def member_stem(bare: str, suffix: str) -> str | None:
    """For a file name without its extension (``model-00001-of-00003``), the stem of the set it
    is a member of (``model``), or None when it names no member: `Format.member_stem` of every
    format with sets, by the one rule of `parse_member_name` (`names.member_stem`)."""
    if "-of-" not in bare.lower():  # what a member name holds literally (case ignored)
        return None
    from paramio.formats.sets import names

    return names.member_stem(bare, suffix)


def read_file(
    path: str,
    layout: SetLayout,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> FormatContents:
    """The one file at `path`, never the set its name or contents may place it in (a file the
    user wrote as one file stays one file, whatever its name)."""
    source = open_input(path, writable=writable, use_mmap=use_mmap)
    contents = layout.read_member(source, path, writable=writable, allow_external=allow_external, strict=strict)
    contents.stamp = layout.take_stamp(contents.attributes)
    return contents


def read_plain(
    path: str,
    layout: SetLayout,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> FormatContents:
    """`read_path` of a path whose name is neither a manifest's nor a member's: the one file,
    refused when it says it is a member of a larger set (its name would have to say so too)."""
    first = read_file(path, layout, writable=writable, use_mmap=use_mmap, allow_external=allow_external, strict=strict)
    claim = layout.claim(first, path) if layout.claim is not None else None
    if claim is not None and claim[1] > 1:
        raise FormatError(
            f"file is member {claim[0] + 1} of a {claim[1]}-file set but its name does not end in "
            f"-NNNNN-of-{claim[1]:05d}{layout.member_suffix}",
            path=path,
        )
    if first.stamp is None:  # (`read_file` took it already)
        first.stamp = layout.take_stamp(first.attributes)
    return first


def read_path(
    path: str,
    layout: SetLayout,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> FormatContents:
    """What `path` opens: a manifest's set, the set a member belongs to, or one plain file
    (`paramio.formats.sets.reading.read_path`, which a name that cannot be a set's never needs).

    Raises `FormatError` for a set whose parts disagree, `SourceError` for a member that is
    missing or may not be opened (or a set replaced again and again while it was being opened)."""
    if not is_manifest(path, layout) and "-of-" not in os.path.basename(path).lower():
        if not is_url(path):  # refuses a malformed `allow_external` before reading, as for a set
            Confinement.beside(path, allow_external)
        return read_plain(
            path, layout, writable=writable, use_mmap=use_mmap, allow_external=allow_external, strict=strict
        )
    from paramio.formats.sets import reading

    return reading.read_path(
        path, layout, writable=writable, use_mmap=use_mmap, allow_external=allow_external, strict=strict
    )


__all__ = [
    "MAX_MEMBERS",
    "MAX_OPEN_MEMBERS",
    "STAMP_KEY",
    "MemberPlan",
    "MemberSource",
    "PlanMember",
    "SetLayout",
    "ShardName",
    "is_manifest",
    "member_name",
    "member_paths",
    "member_stem",
    "opened_by",
    "parse_member_name",
    "previous_members",
    "read_file",
    "read_path",
    "read_plain",
    "read_weight_map",
    "remove_files",
    "set_files",
    "set_names",
    "shard_order",
    "split_members",
    "write_set",
]


def set_files(path: str) -> list[str] | None:
    """The member files of the set `path` opens (a manifest or a member), in order, or None
    when `path` is one plain file (or of a format without sets)."""
    from paramio.formats.sets.reading import member_paths

    fmt = format_for_path(path)
    if fmt is None or fmt.set_layout is None:
        return None
    return member_paths(path, fmt.set_layout)


def opened_by(output: str, fmt: Format) -> str | None:
    """The path that opens what a writer of `fmt` just wrote for `output`: `output` itself when
    it is one file (or a manifest), else the set's manifest, else its first member; None when
    none is there (a URL's manifest-less set is not listed)."""
    import glob

    from paramio.formats.sets.names import parse_member_name
    from paramio.formats.sets.writing import set_names

    layout = fmt.set_layout
    if os.path.exists(output) or layout is None:
        return output if os.path.exists(output) else None
    manifest, stem = set_names(output, layout)
    if manifest is not None and (os.path.exists(manifest) or "://" in manifest):
        return manifest
    folder, base = os.path.split(stem)
    pattern = f"{glob.escape(base)}-*-of-*{layout.member_suffix}"
    firsts = sorted(
        p
        for p in glob.glob(os.path.join(glob.escape(folder or "."), pattern))
        if (parsed := parse_member_name(os.path.basename(p), layout.member_suffix)) is not None and parsed.index == 1
    )
    return firsts[0] if firsts else None

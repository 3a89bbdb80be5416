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

from paramio.formats.contract import Format, SetLayout, format_for_path
from paramio.formats.sets.names import (
    MAX_MEMBERS,
    ShardName,
    member_name,
    member_stem,
    parse_member_name,
    shard_order,
)
from paramio.formats.sets.reading import STAMP_KEY, is_manifest, member_paths, read_file, read_path, read_weight_map

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from paramio.formats.sets.member_source import MAX_OPEN_MEMBERS, MemberSource
    from paramio.formats.sets.writing import (
        MemberPlan,
        PlanMember,
        previous_members,
        remove_files,
        set_names,
        split_members,
        write_set,
    )

#: `writing`'s names, imported on first use: reading a set (and listing a file, ``paramio
#: dump``) imports no writer side (`paramio.formats.output`, its worker pool).
_WRITING = ("MemberPlan", "PlanMember", "previous_members", "remove_files", "set_names", "split_members", "write_set")


def __getattr__(name: str) -> object:
    if name in _WRITING:
        from paramio.formats.sets import writing

        return getattr(writing, name)
    if name in ("MAX_OPEN_MEMBERS", "MemberSource"):  # a plain file's listing needs no descriptor pool
        from paramio.formats.sets import member_source

        return getattr(member_source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    fmt = format_for_path(path)
    if fmt is None or fmt.set_layout is None:
        return None
    return member_paths(path, fmt.set_layout)


def opened_by(output: str, fmt: Format) -> str | None:
    """The path that opens what a writer of `fmt` just wrote for `output`: `output` itself when
    it is one file (or a manifest), else the set's manifest, else its first member; None when
    none is there (a URL's manifest-less set is not listed)."""
    import glob

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

"""The `Format` contract every file format declares, and the registry formats register with.

A format is one `Format` record: its name and extensions, a `sniff` of the first bytes, a reader
of a path (and, for file handles, of one `ByteSource`), the writer and what it keeps, carries and
drops (`prepare`), the inverse of that carrying (`take_carried`, `stands_in`), `verify`'s
structure check (`check_structure`), how a path of it names a model (`stem`), where its
file-level metadata lives (`file_metadata`), the block layout of its own element types
(`blocks`), and the few facts callers used to branch on by name (`index_suffix`, `splats`,
`types_in_metadata`, `composite`, `iree_handle_order`).
Conversion, the index and the CLI reach a format only through this record, so adding one is an
addition in its own package: build a `Format` and call `register_format` (docs/architecture.md).

Start-up stays light: the built-in formats are *declared* here by name, extensions and the module
that registers each (imported on the first lookup that needs it). Formats defined above this
layer (the tensor-parallel set, registered by `paramio.sharding.tpset`) are declared by the
package root through the floor (`paramio.core.exports.declare_format_above`), so this layer
names no module above it.
"""

from __future__ import annotations

import _thread
import os
import sys
from _collections_abc import Mapping  # `collections.abc.Mapping` itself, loaded with `os`: no import

from paramio.core.errors import InvalidArgumentError
from paramio.core.exports import formats_above
from paramio.core.records import MutableRecord, Record, factory, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import ModuleType
    from typing import Any

    from paramio.core.entry import ParameterEntry
    from paramio.core.source import ByteSource
    from paramio.core.tensor import TensorInfo
    from paramio.formats.conversion import Carried
    from paramio.formats.protocols import MemberReader, PathReader, Preparer
    from paramio.formats.verify import Problem

__all__ = [
    "ARCHIVE",
    "FileMetadata",
    "Format",
    "FormatContents",
    "MemberReader",
    "PathReader",
    "Preparer",
    "archive_format",
    "SetLayout",
    "declare_format",
    "declared_extensions",
    "deferred",
    "file_format",
    "file_formats",
    "format_for_dtype",
    "format_for_attribute",
    "format_for_path",
    "format_name_for_path",
    "format_names",
    "formats",
    "get_format",
    "register_format",
    "unregister_format",
]


@record(frozen=False)
class FormatContents(MutableRecord):
    """What a reader found: entries in file order, file-level attributes, the files read."""

    #: A list, or `LazyEntries` whose entries are built on first use.
    entries: Sequence[ParameterEntry]
    attributes: dict[str, object] = factory(dict)
    paths: list[str] = factory(list)
    #: (sets) The save stamp the file or set carried (`SetLayout.take_stamp`, taken out of the
    #: attributes), or None: what a manifest over whole files (a tensor-parallel set) checks.
    stamp: str | None = None


def _no_magic(head: bytes) -> bool:
    return False


def _nothing_carried(attributes: dict[str, object]) -> Carried | None:
    return None


def _no_stand_in(entry: ParameterEntry, claim: TensorInfo | None) -> bool:
    return False


def _not_a_member(name: str) -> str | None:
    return None


def _no_blocks(dtype: str) -> tuple[int, int] | None:
    return None


class FileMetadata(Record):
    """Where a format's file-level metadata (key/values about the whole file, not one entry)
    lives once read: ``attributes[attribute]``, a mapping. A value that is a record with a
    ``"type"`` (``{"type": "array", "item_type": ..., "value": [...]}``) is typed."""

    __slots__ = ("attribute", "title", "unit")
    __match_args__ = __slots__
    #: The attributes key; it starts with the format's name and a dot (``<name>.``).
    attribute: str
    #: What a listing calls it (``paramio dump --metadata``), e.g. ``"GGUF metadata"``.
    title: str
    #: What one item is called in the count beside the title: ``"keys"``, ``"key/values"``.
    unit: str

    def __init__(self, attribute: str, title: str, unit: str = "keys") -> None:
        object.__setattr__(self, "attribute", attribute)
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "unit", unit)


# -- sets (owned with paramio.formats.sets): what set code needs from a format ------------------


def _first_attributes(members: list[dict[str, object]], manifest: dict[str, object] | None) -> dict[str, object]:
    return dict(members[0]) if members else {}


class SetLayout(Record):
    """How a format's files make a sharded set; `paramio.formats.sets` does everything else
    (names, finding, reading, checking, writing, replacing) the same way for every format.

    Members are named ``{stem}-{i:05d}-of-{n:05d}{member_suffix}`` (1-based); a manifest, where
    the format has one, is ``{stem}{manifest_suffix}``: ``{"metadata": {...}, "weight_map":
    {key: member file}}`` (Hugging Face's index). Each member written as part of a set carries
    the set's generation stamp in its file-level attributes (`put_stamp`), and so does the
    manifest, so a reader never joins members of two saves."""

    __slots__ = (
        "member_suffix",
        "manifest_suffix",
        "read_member",
        "put_stamp",
        "take_stamp",
        "claim",
        "join_attributes",
        "manifest_metadata",
    )
    __match_args__ = __slots__
    #: Suffix of every member file (lower case): ``.irpa``.
    member_suffix: str
    #: Suffix of the manifest naming the members, or None where members are found by their names
    #: alone (GGUF splits, whose members state their place in their own key/values).
    manifest_suffix: str | None
    #: Read one member (`MemberReader`).
    read_member: MemberReader
    #: ``put_stamp(attributes, stamp)``: the member attributes with the set's stamp added (a copy);
    #: None where members carry no stamp (GGUF splits stay byte for byte gguf-py's).
    put_stamp: Callable[[Mapping[str, object] | None, str], dict[str, object]] | None
    #: ``take_stamp(attributes)``: take the stamp `put_stamp` added back out (in place), or None.
    take_stamp: Callable[[dict[str, object]], str | None]
    #: ``claim(contents, path)``: ``(index, count, total)`` a member states about its own place
    #: (0-based index; ``total``: the entries of the whole set, or None), or None for a file that
    #: is no member (then its name does not make it one). None where members state nothing and
    #: their names decide. Raises `FormatError` for a bad claim.
    claim: Callable[[FormatContents, str], tuple[int, int, object] | None] | None
    #: ``join_attributes(members, manifest_metadata)``: the set's attributes from its members'
    #: (in order, stamps taken out) and the manifest's metadata (None without a manifest).
    join_attributes: Callable[[list[dict[str, object]], dict[str, object] | None], dict[str, object]]
    #: Extra manifest metadata every manifest of this format holds (IRPA: ``{"format": "irpa"}``).
    manifest_metadata: Mapping[str, object]

    def __init__(
        self,
        *,
        member_suffix: str,
        manifest_suffix: str | None,
        read_member: MemberReader,
        put_stamp: Callable[[Mapping[str, object] | None, str], dict[str, object]] | None,
        take_stamp: Callable[[dict[str, object]], str | None],
        claim: Callable[[FormatContents, str], tuple[int, int, object] | None] | None = None,
        join_attributes: Callable[
            [list[dict[str, object]], dict[str, object] | None], dict[str, object]
        ] = _first_attributes,
        manifest_metadata: Mapping[str, object] | None = None,
    ) -> None:
        set_field = object.__setattr__
        set_field(self, "member_suffix", member_suffix)
        set_field(self, "manifest_suffix", manifest_suffix)
        set_field(self, "read_member", read_member)
        set_field(self, "put_stamp", put_stamp)
        set_field(self, "take_stamp", take_stamp)
        set_field(self, "claim", claim)
        set_field(self, "join_attributes", join_attributes)
        set_field(self, "manifest_metadata", {} if manifest_metadata is None else manifest_metadata)


# -- end of the sets block ---------------------------------------------------------------------


@record(kw_only=True)
class Format(Record):
    """One file format, as conversion, the index and the CLI see it.

    The callables are the format package's own functions; the facts replace every branch on a
    format's name outside its package."""

    #: Lower-case name: ``format=`` arguments, ``--format=`` flags, `ParameterEntry.origin`.
    name: str
    #: Lower-case suffixes, matched case-insensitively (as IREE), the longest first across
    #: formats. The first is the one a single file of this format is written with.
    extensions: tuple[str, ...]
    #: Read a path (`PathReader`).
    read_path: PathReader
    #: ``write_path(path, entries, *, attributes, <options>)``: atomic. Its keyword-only
    #: parameters are the options it takes (`paramio.formats.registry.writer_options`), so it
    #: must list them, never take ``**kwargs``; every writer takes ``alignment``, ``durable``,
    #: ``progress`` and ``max_shard_size``.
    write_path: Callable[..., None]
    #: What the writer keeps, carries and drops (`Preparer`).
    prepare: Preparer
    #: Whether the first (up to 64) bytes of a file look like this format.
    sniff: Callable[[bytes], bool] = _no_magic
    #: One file read from a `ByteSource` (IREE's file handles, `ParameterIndex.load_from_file_handle`);
    #: None when the format cannot be read from one object (a manifest naming other files).
    read_source: Callable[[ByteSource], FormatContents] | None = None
    #: `read_source` without its bulk path, for a format whose reader checks large tables at
    #: once (`paramio.formats.bulk`): every check entry by entry, in the format's order. The two
    #: must agree, same entries or the same error class and message
    #: (`paramio.testing.check_bulk_agrees`); None where `read_source` has one path only.
    read_reference: Callable[[ByteSource], FormatContents] | None = None
    #: Take the ``paramio.carried`` record the writer put in the attributes back out of
    #: `attributes` (as read; changed in place) and return it, or None if there is none.
    take_carried: Callable[[dict[str, object]], Carried | None] = _nothing_carried
    #: Whether `entry`, as this format types it, is the stand-in the writer stores for the type
    #: `claim` (None: untyped), so that a carried claim may replace it. Only asked when the
    #: claim's size is the entry's length and the two types differ.
    stands_in: Callable[[ParameterEntry, TensorInfo | None], bool] = _no_stand_in
    #: `paramio.verify`'s structure check of the files `contents` was read from (IRPA: data
    #: sharing bytes with the archive's own tables); None where the reader's checks are all.
    check_structure: Callable[[FormatContents], list[Problem]] | None = None
    #: The suffix of the index file that names a size-sharded set's files when the writer is
    #: given ``max_shard_size`` (its path names the set); None where a set has no such file.
    index_suffix: str | None = None
    #: Whether splat entries are stored as splats (their bytes are not written).
    splats: bool = False
    #: Whether an entry's type can live only in its metadata (IRPA's ``TENSORv0``): the format has
    #: no dtype or shape field of its own, so an untyped output drops declared types.
    types_in_metadata: bool = False
    #: A manifest over files of other formats (a tensor-parallel set): never the format of those
    #: files, nor the output of a merge.
    composite: bool = False
    #: Given a file name with this format's extension taken off, the stem of the set it is a
    #: member of (``model-00001-of-00003`` -> ``model``), or None when it names no member.
    member_stem: Callable[[str], str | None] = _not_a_member
    #: Where the file-level metadata the reader returns lives in the attributes; None if none.
    file_metadata: FileMetadata | None = None
    #: For an element type this format defines (its name starts with ``<name>.``): elements and
    #: bytes per block when it is stored in blocks (quantised), else None.
    blocks: Callable[[str], tuple[int, int] | None] = _no_blocks
    #: Where IREE's ``load_from_file_handle`` lists this format in its error message (its order);
    #: None for a format IREE does not read from a handle.
    iree_handle_order: int | None = None
    #: (sets) How this format's files make a sharded set (`SetLayout`); None: no sets.
    set_layout: SetLayout | None = None
    #: For an entry of an element type this format defines (a quantised GGUF tensor): its values
    #: as a float32 array of its shape (`paramio.diff` compares such tensors by value); None where
    #: the format defines no such type.
    dequantize: Callable[[ParameterEntry], Any] | None = None

    def __post_init__(self) -> None:
        """Refuse a malformed format (`InvalidArgumentError`): run by the constructor and `replace`."""
        if not self.name or self.name != self.name.lower():
            raise InvalidArgumentError(f"format name {self.name!r} must be non-empty and lower case")
        if not self.extensions or any(not e.startswith(".") or e != e.lower() for e in self.extensions):
            raise InvalidArgumentError(f"format {self.name!r}: extensions must be lower case and start with '.'")
        if self.index_suffix is not None and self.index_suffix not in self.extensions:
            raise InvalidArgumentError(f"format {self.name!r}: its index suffix must be one of its extensions")
        if self.file_metadata is not None and not self.file_metadata.attribute.startswith(self.name + "."):
            raise InvalidArgumentError(f"format {self.name!r}: its metadata attribute must start with '{self.name}.'")

    def strip_extension(self, name: str) -> str | None:
        """`name` without this format's longest matching extension (case ignored), or None."""
        lower = name.lower()
        for ext in sorted(self.extensions, key=len, reverse=True):
            if lower.endswith(ext):
                return name[: len(name) - len(ext)]
        return None

    def stem(self, path: str | os.PathLike[str]) -> str:
        """The model name a path of this format gives output names: the file name without the
        extension and, for a member of a set, without its numbering (``model``)."""
        base = os.path.basename(os.fspath(path))
        bare = self.strip_extension(base)
        bare = base if bare is None else bare
        member = self.member_stem(bare)
        return (member if member is not None else bare) or "model"

    @property
    def extension(self) -> str:
        """The extension a single file of this format is written with."""
        return self.extensions[0]


def _import(module: str) -> ModuleType:
    """`importlib.import_module` of an absolute name, without importing `importlib` (a
    listing's start-up)."""
    __import__(module)
    return sys.modules[module]


class _Deferred:
    """A function of `module` imported on its first call (or first look at its signature), so
    that a format's package can register its writer side (`Format.write_path`, `prepare`)
    without importing it: reading and listing a file (``paramio dump``) import no writer."""

    __slots__ = ("_module", "_name", "_target")

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name
        self._target: Callable[..., Any] | None = None

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        """The function itself: `inspect.signature` (`registry.writer_options`) follows this."""
        target = self._target
        if target is None:
            target = self._target = getattr(_import(self._module), self._name)
        return target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<deferred {self._module}.{self._name}>"


def deferred(module: str, name: str) -> Callable[..., Any]:
    """`module`'s function `name`, imported when first called (`_Deferred`)."""
    return _Deferred(module, name)


class _Declared(Record):
    """A format known by name and extensions before its module is imported."""

    __slots__ = ("name", "extensions", "module")
    __match_args__ = __slots__
    name: str
    extensions: tuple[str, ...]
    module: str

    def __init__(self, name: str, extensions: tuple[str, ...], module: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "extensions", extensions)
        object.__setattr__(self, "module", module)


#: The formats of this layer, in the order `format_names` lists them (and sniffing tries them).
_BUILTIN = (
    _Declared("irpa", (".irpa", ".irpa.index.json"), "paramio.formats.irpa"),
    _Declared("safetensors", (".safetensors", ".safetensors.index.json"), "paramio.formats.safetensors"),
    _Declared("gguf", (".gguf",), "paramio.formats.gguf"),
)

#: IREE's parameter archive, the format IREE's own tools and APIs write (`create_archive_file`,
#: ``iree-create-parameters``, a stream of ``iree-convert-parameters``): paramio's default output.
ARCHIVE = "irpa"

_LOCK = _thread.RLock()
_DECLARED: dict[str, _Declared] = {}
_REGISTERED: dict[str, Format] = {}
_ready = False


def _declarations() -> dict[str, _Declared]:
    """The declared formats: this layer's, then those the package root declares from above."""
    global _ready
    with _LOCK:
        if not _ready:
            for d in _BUILTIN:
                _DECLARED.setdefault(d.name, d)
            for name, extensions, module in formats_above():
                _DECLARED.setdefault(name, _Declared(name, tuple(extensions), module))
            _ready = True
        return _DECLARED


def declare_format(name: str, extensions: Sequence[str], module: str) -> None:
    """Make format `name` known by its `extensions` without importing `module`, which registers
    it (`register_format`) when imported: the first lookup that needs the format imports it."""
    with _LOCK:
        _declarations()[name] = _Declared(name, tuple(extensions), module)


def register_format(fmt: Format) -> None:
    """Register `fmt` (replacing an earlier registration of its name). A format also declared
    (`declare_format`) must register the extensions it was declared with: `InvalidArgumentError`
    (a `ValueError`) if not."""
    with _LOCK:
        declared = _declarations().get(fmt.name)
        if declared is not None and declared.extensions != fmt.extensions:
            raise InvalidArgumentError(
                f"format {fmt.name!r} registers extensions {fmt.extensions} but {declared.module} "
                f"was declared with {declared.extensions}"
            )
        _REGISTERED[fmt.name] = fmt


def unregister_format(name: str) -> None:
    """Forget a format registered (or declared) by `register_format` (`declare_format`); tests
    use it to leave the registry as they found it. Unknown names are ignored; a format declared
    by paramio cannot be forgotten (`InvalidArgumentError`): register a replacement instead."""
    with _LOCK:
        if name in _DECLARED and name in {d.name for d in _BUILTIN} | {n for n, _, _ in formats_above()}:
            raise InvalidArgumentError(f"format {name!r} is paramio's own; register a replacement instead")
        _REGISTERED.pop(name, None)
        _declarations().pop(name, None)


def format_names() -> list[str]:
    """Every format's name, declared ones first, without importing any format."""
    with _LOCK:
        return [*_declarations(), *(n for n in _REGISTERED if n not in _DECLARED)]


def declared_extensions() -> dict[str, tuple[str, ...]]:
    """Every format's name -> its extensions (the first is a single file's), importing none."""
    with _LOCK:
        out = {d.name: d.extensions for d in _declarations().values()}
        out.update({f.name: f.extensions for f in _REGISTERED.values() if f.name not in out})
    return out


def _unknown(name: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"unknown format {name!r}; known: {', '.join(format_names())}")


def get_format(name: str) -> Format:
    """The format called `name` (case ignored), importing its module on first use. Raises
    `InvalidArgumentError` naming the known formats for any other name."""
    key = name.lower()
    with _LOCK:
        fmt = _REGISTERED.get(key)
        if fmt is not None:
            return fmt
        declared = _declarations().get(key)
    if declared is None:
        raise _unknown(name)
    _import(declared.module)  # registers it (outside the lock: it may import others)
    with _LOCK:
        fmt = _REGISTERED.get(key)
    if fmt is None:
        raise AssertionError(f"{declared.module} was imported but did not register format {key!r}")
    return fmt


def formats() -> list[Format]:
    """Every format, imported (so the optional ones whose dependencies are missing are left out)."""
    out: list[Format] = []
    for name in format_names():
        try:
            out.append(get_format(name))
        except ImportError:
            continue
    return out


def file_formats() -> list[Format]:
    """The formats the files making up a set can have (a tensor-parallel set's device files, a
    merge's output): every format but the composite ones."""
    return [f for f in formats() if not f.composite]


def file_format(name: str) -> Format:
    """`file_formats`' format `name`. Raises `InvalidArgumentError` naming those formats."""
    choices = file_formats()
    for fmt in choices:
        if fmt.name == name.lower():
            return fmt
    raise InvalidArgumentError(
        f"unknown format {name!r} for the files of a set; expected one of {', '.join(f.name for f in choices)}"
    )


def _extensions() -> list[tuple[str, str]]:
    """``(extension, format name)`` for every format, the longest extension first."""
    with _LOCK:
        pairs = [(e, d.name) for d in _declarations().values() for e in d.extensions]
        pairs += [(e, f.name) for f in _REGISTERED.values() if f.name not in _DECLARED for e in f.extensions]
    return sorted(pairs, key=lambda p: -len(p[0]))


def format_name_for_path(path: str | os.PathLike[str]) -> str | None:
    """The name of the format whose extension `path` ends with (case ignored, the longest
    match), or None; imports no format."""
    lower = os.fspath(path).lower()
    for ext, name in _extensions():
        if lower.endswith(ext):
            return name
    return None


def format_for_path(path: str | os.PathLike[str]) -> Format | None:
    """The format whose extension `path` ends with (`format_name_for_path`), or None."""
    name = format_name_for_path(path)
    return get_format(name) if name is not None else None


def archive_format() -> Format:
    """IREE's parameter archive format (`ARCHIVE`), imported."""
    return get_format(ARCHIVE)


def _owner(name: str) -> Format | None:
    """The format a dotted name (``<format>.<rest>``: an attribute key, an element type) belongs
    to, or None; imports that format only (a reader that produced the name has imported it)."""
    prefix, dot, _ = name.partition(".")
    if not dot or prefix.lower() not in format_names():
        return None
    try:
        return get_format(prefix)
    except ImportError:
        return None


def format_for_attribute(key: str) -> Format | None:
    """The format whose file-level metadata lives under attributes key `key`, or None."""
    fmt = _owner(key)
    return fmt if fmt is not None and fmt.file_metadata is not None and fmt.file_metadata.attribute == key else None


def format_for_dtype(dtype: str) -> Format | None:
    """The format that defines element type `dtype` (``gguf.q4_0``), or None for a plain one."""
    return _owner(dtype)


def format_for_head(head: bytes) -> Format | None:
    """The first format (in `format_names` order) whose `sniff` recognises `head`, or None."""
    for fmt in formats():
        if fmt.sniff(head):
            return fmt
    return None


class FormatTable(Mapping[str, Format]):
    """A live read-only view of the registry, name -> `Format`: ``name in FORMATS`` and listing
    the names import nothing; looking one up imports its module."""

    def __getitem__(self, name: str) -> Format:
        if name.lower() not in format_names():
            raise KeyError(name)
        return get_format(name)

    def __iter__(self) -> Iterator[str]:
        return iter(format_names())

    def __len__(self) -> int:
        return len(format_names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in format_names()


def __getattr__(name: str) -> object:
    """The readers' Protocols (`paramio.formats.protocols`), imported on first use: this module
    names them only in annotations."""
    if name in ("MemberReader", "PathReader", "Preparer"):
        from paramio.formats import protocols

        return getattr(protocols, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

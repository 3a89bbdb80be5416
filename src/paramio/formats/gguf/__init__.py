"""GGUF (ggml/llama.cpp): the current ggml type table, typed metadata, split sets, reader and writer.

`read_path` opens one file or a whole split set from any of its files; metadata key/values land
in ``attributes["gguf.kv"]`` as typed JSON records (see `paramio.formats.gguf.kv`), so a writer
reproduces them exactly, also after a trip through IRPA. Plain tensors (F32, F16, BF16, F64,
I8..I64) are typed entries with zero-copy `to_numpy()`; quantised ones are raw blocks typed
``gguf.<type>`` with their logical shape; `dequantize` turns them into float32 (extra ``gguf``).
"""

from __future__ import annotations

from collections.abc import Iterable

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo, encode_tensor_metadata
from paramio.formats.contract import FileMetadata, Format, FormatContents, deferred, register_format
from paramio.formats.conversion import Carried, detach_carried, flat_bytes, itemsize
from paramio.formats.gguf.constants import ATTRIBUTES_KEY, GGML_BY_NAME, GGML_TYPES, MAGIC, GGMLType
from paramio.formats.gguf.reader import GGUFFile, read_gguf
from paramio.formats.gguf.split import LAYOUT
from paramio.formats.sets import member_stem
from paramio.formats.sets import read_path as read_set_path
from paramio.sources.paths import AllowExternal

TYPE_CHECKING = False  # `typing` is not imported to read a file (mypy reads this as typing's)
if TYPE_CHECKING:
    from paramio.formats.gguf.dequant import dequantize
    from paramio.formats.gguf.writer import ggml_type_of, write_gguf, write_path

#: The writer side, imported on first use: reading and listing a file import no writer.
_WRITER = "paramio.formats.gguf.writer"
_DEQUANT = "paramio.formats.gguf.dequant"  # `dequantize` too (the `Format` field imports it on its call)


def __getattr__(name: str) -> object:
    if name in ("ggml_type_of", "write_gguf", "write_path", "dequantize"):
        import importlib

        return getattr(importlib.import_module(_DEQUANT if name == "dequantize" else _WRITER), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ATTRIBUTES_KEY",
    "FORMAT",
    "GGML_TYPES",
    "GGMLType",
    "GGUFFile",
    "dequantize",
    "ggml_type_of",
    "read_gguf",
    "read_path",
    "read_source",
    "sniff",
    "to_irpa_entries",
    "write_gguf",
    "write_path",
]


def sniff(head: bytes) -> bool:
    return head[:4] == MAGIC


def read_path(
    path: str,
    *,
    writable: bool = False,
    use_mmap: bool = True,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> FormatContents:
    """Read a GGUF file, or the whole split set it belongs to (its other shards must resolve
    inside its folder or a folder in `allow_external`). A URL reads the header and tables
    only (`paramio.formats.gguf.opening`); a split set's other shards are its siblings.

    Attributes: ``{"gguf.kv": {key: typed record}}`` from the (first) file, without ``split.*``.
    Raises `FormatError` and its subclasses for malformed files, `SourceError` if a file (or a
    shard of the set) cannot be opened. A repeated metadata key warns (`FormatWarning`); with
    `strict` it is refused (see `paramio.formats.gguf.kv`).
    """
    return read_set_path(
        path, LAYOUT, writable=writable, use_mmap=use_mmap, allow_external=allow_external, strict=strict
    )


def to_irpa_entries(entries: Iterable[ParameterEntry]) -> list[ParameterEntry]:
    """Entries with ``TENSORv0`` metadata added where they have a type but no metadata.

    IRPA stores only an entry's metadata bytes; without this, a GGUF tensor's ggml type and shape
    are lost on the way to IRPA (as in ``iree-convert-parameters``).
    """
    out: list[ParameterEntry] = []
    for e in entries:
        info = e.tensor
        if not e.metadata and info is not None:
            e = e.replace(metadata=encode_tensor_metadata(info))
        out.append(e)
    return out


def read_source(source: ByteSource, *, bulk: bool = True) -> FormatContents:
    """One GGUF file read from `source` (a file handle's bytes), its key/values as attributes;
    a large tensor table is read at once unless `bulk` is false (`paramio.formats.bulk`)."""
    f = read_gguf(source, bulk=bulk)
    return FormatContents(f.entries, {ATTRIBUTES_KEY: f.kv}, [source.name])


def read_reference(source: ByteSource) -> FormatContents:
    """`read_source` tensor by tensor, every table (the reference the bulk path must agree with)."""
    return read_source(source, bulk=False)


def _record_value(record: object) -> object:
    return record.get("value") if isinstance(record, dict) else record


def take_carried(attributes: dict[str, object]) -> Carried | None:
    """The ``paramio.carried`` record the writer put among the key/values (`writer.prepare`)."""
    return detach_carried(attributes, ATTRIBUTES_KEY, "paramio.had_gguf_kv", _record_value)


_SIGNED = ("int8", "int16", "int32", "int64")


def stands_in(entry: ParameterEntry, claim: TensorInfo | None) -> bool:
    """The writer's stand-ins: raw bytes as ``I8[length]``, or an unsigned type as the signed
    integer of the same width and shape (GGUF has no unsigned tensor types)."""
    seen = entry.tensor
    if seen is None:
        return False
    if flat_bytes(entry, "int8"):
        return True
    if claim is None or tuple(seen.shape) != tuple(claim.shape) or seen.dtype not in _SIGNED:
        return False
    return itemsize(claim.dtype) == itemsize(seen.dtype)


def _member_stem(bare: str) -> str | None:
    return member_stem(bare, ".gguf")


def _blocks(dtype: str) -> tuple[int, int] | None:
    """(elements, bytes) per block of a quantised ggml type; `InvalidArgumentError` if unknown."""
    g = GGML_BY_NAME.get(dtype)
    if g is None:
        raise InvalidArgumentError(f"unknown GGUF tensor type {dtype!r}")
    return (g.block_size, g.type_size) if g.quantized else None


def _dequantize(entry: ParameterEntry) -> object:
    from paramio.formats.gguf.dequant import dequantize

    return dequantize(entry)


FORMAT = Format(
    name="gguf",
    extensions=(".gguf",),
    read_path=read_path,
    write_path=deferred(_WRITER, "write_path"),
    prepare=deferred(_WRITER, "prepare"),
    sniff=sniff,
    read_source=read_source,
    read_reference=read_reference,
    take_carried=take_carried,
    stands_in=stands_in,
    member_stem=_member_stem,
    file_metadata=FileMetadata(ATTRIBUTES_KEY, "GGUF metadata", "key/values"),
    blocks=_blocks,
    iree_handle_order=1,
    set_layout=LAYOUT,
    dequantize=_dequantize,
)
register_format(FORMAT)

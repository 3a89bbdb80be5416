"""Hostile headers built byte by byte, one builder per class of unbounded work (issue 18).

Each builder writes a small file whose header makes a naive reader do far more work than the
file's size: many dimensions, deep or wide nesting, many references to one range, many names,
long strings. The tests in `test_bounded.py` assert time and memory per header byte on them,
and `mutations.py` draws its structure-aware cases from the same builders.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

# -- IRPA ---------------------------------------------------------------------------------

_ENTRY_HEADER = struct.Struct("<QIQQQQQQ")
_HEADER = struct.Struct("<IHHQQQQ6Q")


def irpa_bytes(
    entries: Sequence[tuple[int, tuple[int, int], tuple[int, int], bytes]],
    metadata: bytes,
    storage: bytes = b"",
) -> bytes:
    """An IRPA v0 archive from raw entries: (type, (name_off, name_len), (meta_off, meta_len),
    type-specific tail bytes), with `metadata` and `storage` as the segments."""
    table = bytearray()
    for etype, (n_off, n_len), (m_off, m_len), tail in entries:
        size = _ENTRY_HEADER.size + len(tail)
        table += _ENTRY_HEADER.pack(size, etype, 0, n_off, n_len, m_off, m_len, 64) + tail
        table += bytes(-len(table) % 16)
    e_off = 96
    m_off = e_off + len(table)
    s_off = (m_off + len(metadata) + 63) // 64 * 64
    head = _HEADER.pack(
        0x41505249, 0, 0, 88, 0, 0, len(entries), e_off, len(table), m_off, len(metadata), s_off, len(storage)
    )
    out = bytearray(head.ljust(e_off, b"\0") + table + metadata)
    out += bytes(s_off - len(out)) + storage
    return bytes(out)


def data_tail(off: int, length: int) -> bytes:
    return struct.pack("<QQ", off, length)


def splat_tail(length: int, pattern: bytes) -> bytes:
    return struct.pack("<Q16sB", length, pattern, len(pattern))


def external_tail(p_off: int, p_len: int, r_off: int, r_len: int) -> bytes:
    return struct.pack("<QQQQ", p_off, p_len, r_off, r_len)


def irpa_shared_metadata(path: Path, entries: int = 20_000, meta_size: int = 1 << 20) -> Path:
    """Every entry (each with its own name) references the same `meta_size` bytes of metadata:
    legal, and cheap when the bytes are shared."""
    names = b"".join(b"%08d" % i for i in range(entries))
    meta = tensor_metadata([2]).ljust(meta_size, b" ")
    rows = [(2, (meta_size + 8 * i, 8), (0, meta_size), data_tail(0, 8)) for i in range(entries)]
    path.write_bytes(irpa_bytes(rows, meta + names, bytes(8)))
    return path


def irpa_shared_names(path: Path, entries: int = 2000, name_size: int = 1 << 20) -> Path:
    """Every entry references the same `name_size` bytes as its name."""
    rows = [(2, (0, name_size), (0, 0), data_tail(0, 0)) for _ in range(entries)]
    path.write_bytes(irpa_bytes(rows, b"x" * name_size))
    return path


def irpa_shifted_metadata(path: Path, entries: int = 2000, meta_size: int = 1 << 20) -> Path:
    """Every entry references a different but overlapping `meta_size` range: no sharing helps."""
    metadata = b"y" * (meta_size + entries)
    rows = [(2, (i, 4), (i, meta_size), data_tail(0, 0)) for i in range(entries)]
    path.write_bytes(irpa_bytes(rows, metadata))
    return path


def irpa_shifted_names(path: Path, entries: int = 2000, name_size: int = 1 << 20) -> Path:
    metadata = b"n" * (name_size + entries)
    rows = [(2, (i, name_size), (0, 0), data_tail(0, 0)) for i in range(entries)]
    path.write_bytes(irpa_bytes(rows, metadata))
    return path


def tensor_metadata(shape: Sequence[int], dtype: str = "float32", *, prefix: str = "TENSORv0") -> bytes:
    return f"{prefix}:{json.dumps({'type': 'Tensor', 'dtype': dtype, 'shape': list(shape)})}".encode()


def irpa_huge_dims(path: Path, dims: int = 40_000, value: int = 2**63 - 1, entries: int = 1) -> Path:
    """A data entry whose TENSORv0 shape has `dims` huge dimensions."""
    meta = tensor_metadata([value] * dims)
    storage = bytes(64)
    rows = [(2, (len(meta) + i, 1), (0, len(meta)), data_tail(0, 64)) for i in range(entries)]
    names = bytes(ord("a") + i % 26 for i in range(entries))
    path.write_bytes(irpa_bytes(rows, meta + names, storage))
    return path


def irpa_deep_attributes(path: Path, depth: int = 100_000) -> Path:
    """The attributes entry (`__paramio_attributes__`) holds JSON nested `depth` deep."""
    blob = b'{"paramio_attributes": 1, "attributes": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    name = b"__paramio_attributes__"
    rows = [(2, (0, len(name)), (0, 0), data_tail(0, len(blob)))]
    path.write_bytes(irpa_bytes(rows, name, blob))
    return path


def irpa_external(path: Path, target: bytes, length: int = 4) -> Path:
    """One EXTERNAL entry naming `target` (a NUL byte, a long or absolute path ...)."""
    name = b"ext"
    rows = [(3, (0, 3), (0, 0), external_tail(3, len(target), 0, length))]
    path.write_bytes(irpa_bytes(rows, name + target))
    return path


def irpa_splat(path: Path, length: int = 2**63, pattern: bytes = b"\1") -> Path:
    name = b"s"
    rows = [(1, (0, 1), (0, 0), splat_tail(length, pattern))]
    path.write_bytes(irpa_bytes(rows, name))
    return path


# -- GGUF ---------------------------------------------------------------------------------


def _gstr(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def gguf_bytes(kvs: Sequence[bytes], tensors: Sequence[bytes], *, data: bytes = b"") -> bytes:
    """A GGUF v3 file from raw key/value records and raw tensor infos."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for kv in kvs:
        out += kv
    for t in tensors:
        out += t
    out += bytes(-len(out) % 32) + data
    return bytes(out)


def gguf_tensor(name: bytes, dims: Sequence[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    return _gstr(name) + struct.pack(f"<I{len(dims)}Q", len(dims), *dims) + struct.pack("<IQ", ggml_type, offset)


def gguf_many_dims(path: Path, tensors: int = 30, dims: int = 40_000, value: int = 3) -> Path:
    path.write_bytes(gguf_bytes([], [gguf_tensor(b"t%d" % i, [value] * dims) for i in range(tensors)]))
    return path


def gguf_nested_array(depth: int, leaf_count: int = 0) -> bytes:
    """The value bytes (after the value type) of an array nested `depth` deep."""
    inner = struct.pack("<IQ", 0, leaf_count) + bytes(leaf_count)  # u8 leaves
    for _ in range(depth - 1):
        inner = struct.pack("<IQ", 9, 1) + inner
    return inner


def gguf_kv(key: bytes, vtype: int, value: bytes) -> bytes:
    return _gstr(key) + struct.pack("<I", vtype) + value


def gguf_deep_nesting(path: Path, depth: int = 100_000) -> Path:
    path.write_bytes(gguf_bytes([gguf_kv(b"deep", 9, gguf_nested_array(depth))], []))
    return path


def gguf_wide_nesting(path: Path, count: int = 200_000) -> Path:
    """One array of `count` empty u8 arrays (12 bytes each in the file)."""
    value = struct.pack("<IQ", 9, count) + struct.pack("<IQ", 0, 0) * count
    path.write_bytes(gguf_bytes([gguf_kv(b"wide", 9, value)], []))
    return path


def gguf_long_string(path: Path, size: int = 20_000_000) -> Path:
    path.write_bytes(gguf_bytes([gguf_kv(b"long", 8, _gstr(b"s" * size))], []))
    return path


def gguf_out_of_range(path: Path) -> Path:
    """Values the GGUF writer must refuse cleanly when converting back (NaN u32 cannot occur;
    these are the edges: u64 max, i64 min, an f64 beyond f32, a bool byte of 2)."""
    kvs = [
        gguf_kv(b"u64", 10, struct.pack("<Q", 2**64 - 1)),
        gguf_kv(b"i64", 11, struct.pack("<q", -(2**63))),
        gguf_kv(b"f64", 12, struct.pack("<d", 1e300)),
        gguf_kv(b"bool", 7, b"\x02"),
    ]
    data = bytes(32)
    path.write_bytes(gguf_bytes(kvs, [gguf_tensor(b"w", [8])], data=data))
    return path


# -- safetensors --------------------------------------------------------------------------


def safetensors_bytes(header: dict[str, object] | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def safetensors_long_metadata(path: Path, size: int = 20_000_000) -> Path:
    header = {"__metadata__": {"k": "x" * size}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    path.write_bytes(safetensors_bytes(header, bytes(4)))
    return path


def safetensors_many_dims(path: Path, dims: int = 1_000_000, value: int = 1) -> Path:
    header = {"w": {"dtype": "U8", "shape": [value] * dims, "data_offsets": [0, 1]}}
    path.write_bytes(safetensors_bytes(header, b"\0"))
    return path


def safetensors_many_pairs(path: Path, pairs: int = 1_000_000) -> Path:
    meta = {f"{i}": "" for i in range(pairs)}
    header = {"__metadata__": meta, "w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    path.write_bytes(safetensors_bytes(header, b"\0"))
    return path


def index_many_shards(folder: Path, shards: int = 50_000, *, name: str = "s{}.safetensors") -> Path:
    wm = {f"t{i}": name.format(i) for i in range(shards)}
    path = folder / "model.safetensors.index.json"
    path.write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    return path

"""Structure-aware fuzz cases: whole files whose headers are valid in shape but hostile in the
numbers, names and references they hold (issue 18's classes: dims, nesting, references, names,
paths). Where `mutations` flips bytes of a valid seed, each generator here writes a file of
one format from random choices, built with `specimens`' byte builders, so that every case
reaches the code that follows a count, a depth or a reference.

A generator takes a folder and a `random.Random` and returns the path to open; it may write
companion files (shards, external files) next to it.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable
from pathlib import Path

import specimens as S

#: Dimension values that break naive arithmetic: zero, one, int64 and uint64 edges, 2**32.
EDGE_DIMS = (0, 1, 2, 3, 7, 32, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1)
#: Lengths and offsets at the edges of u64 and of the file.
EDGE_U64 = (0, 1, 8, 64, 4096, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 16, 2**64 - 1)


def _dims(rng: random.Random) -> list[int]:
    r = rng.random()
    if r < 0.6:
        n = rng.randrange(0, 6)
    elif r < 0.95:
        n = rng.randrange(6, 80)
    else:
        n = rng.choice((1000, 5000, 20_000))
    pool = EDGE_DIMS if rng.random() < 0.5 else (1, 2, 3, 4)
    few = [rng.choice(pool) for _ in range(min(n, 8))]  # repeated: cheap to make, same hostility
    return (few * (n // 8 + 1))[:n] if n > 8 else few


def _name(rng: random.Random, i: int) -> bytes:
    r = rng.random()
    if r < 0.6:
        return b"t%d" % i
    if r < 0.7:
        return b"\xff\xfe%d" % i  # not UTF-8
    if r < 0.8:
        return b"a\x00b%d" % i  # NUL
    if r < 0.85:
        return b"\x1b[31m\nRED%d" % i  # terminal controls
    if r < 0.9:
        return b"n" * rng.choice((64, 4096, 100_000))
    return "größe-%d".encode() % i


def _deep_json(rng: random.Random, depth: int) -> str:
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
    return opener * depth + "1" + closer * depth


def _number(rng: random.Random) -> object:
    return rng.choice((0, -1, 1, 2**63, 2**64, 10**30, 1.5, -0.0, True, None, "3", 1e308))


# -- IRPA ---------------------------------------------------------------------------------


def _tensor_json(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.5:
        body: object = {
            "type": "Tensor",
            "dtype": rng.choice(("float32", "int8", "bfloat16", "q4", "")),
            "shape": _dims(rng),
        }
        text = json.dumps(body)
    elif r < 0.65:
        text = '{"type": "Tensor", "dtype": "float32", "shape": ' + _deep_json(rng, rng.choice((50, 999, 5000))) + "}"
    elif r < 0.8:
        text = json.dumps(
            {"type": "Tensor", "dtype": "float32", "shape": [_number(rng) for _ in range(rng.randrange(4))]}
        )
    elif r < 0.9:  # integers with thousands of digits (Python's int/str conversion limit is 4300)
        text = '{"type": "Tensor", "dtype": "int8", "shape": [' + "9" * rng.choice((20, 4000, 5000)) + "]}"
    else:
        text = json.dumps({"type": "Tensor", "dtype": "float32", "shape": [2], "paramio": {"ggml_type": _number(rng)}})
    return (rng.choice(("TENSORv0", "PYTORCH", "TENSORv1")) + ":" + text).encode()


def _attributes_blob(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.4:
        inner = _deep_json(rng, rng.choice((100, 130, 900, 2000, 100_000)))
    elif r < 0.7:
        inner = json.dumps(
            {"gguf.kv": {"k": {"type": rng.choice(("u32", "array", "string", "x")), "value": _number(rng)}}}
        )
    else:
        inner = json.dumps({"safetensors.metadata": {"k": _number(rng)}, "paramio.carried": "{" * rng.randrange(3)})
    return b'{"paramio_attributes": 1, "attributes": {"a": ' + inner.encode() + b"}}"


def irpa_case(folder: Path, rng: random.Random) -> Path:
    """Entries whose names and metadata reference shared, overlapping or out-of-range spans of
    the metadata segment; TENSORv0 shapes and attributes JSON from the hostile pool; splats
    of any length; EXTERNAL paths with NUL bytes, `..`, absolute or missing targets."""
    (folder / "ext.bin").write_bytes(bytes(range(256)) * 4)
    meta = bytearray()
    rows: list[tuple[int, tuple[int, int], tuple[int, int], bytes]] = []
    storage = bytes(rng.choice((0, 64, 4096)))
    n = rng.choices((1, 2, 5, 20, 200, 2000), weights=(4, 4, 4, 4, 2, 1))[0]
    shared_name = shared_meta = None
    blobs = [_tensor_json(rng) if rng.random() < 0.8 else b"x" * rng.choice((1, 1 << 16, 1 << 20)) for _ in range(4)]
    placed: dict[int, tuple[int, int]] = {}
    for i in range(n):
        name = _name(rng, i)
        r = rng.random()
        if r < 0.15 and shared_name is not None:
            name_ref = shared_name
        elif r < 0.2:
            name_ref = (rng.choice(EDGE_U64), rng.choice(EDGE_U64))
        else:
            name_ref = (len(meta), len(name))
            meta += name
        shared_name = shared_name or name_ref
        r = rng.random()
        if r < 0.3:
            meta_ref = (0, 0)
        elif r < 0.5 and shared_meta is not None:
            meta_ref = shared_meta
        elif r < 0.55:
            meta_ref = (rng.choice(EDGE_U64), rng.choice(EDGE_U64))
        else:
            j = rng.randrange(len(blobs))
            if j in placed and (len(blobs[j]) > 4096 or rng.random() < 0.7):
                meta_ref = placed[j]  # many entries naming one range: the shared-reference class
            else:
                meta_ref = placed[j] = (len(meta), len(blobs[j]))
                meta += blobs[j]
            shared_meta = shared_meta or meta_ref
        kind = rng.random()
        if kind < 0.55:
            span = (0, len(storage)) if rng.random() < 0.7 else (rng.choice(EDGE_U64), rng.choice(EDGE_U64))
            rows.append((2, name_ref, meta_ref, S.data_tail(*span)))
        elif kind < 0.8:
            pattern = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 2, 4, 16, 17))))
            tail = S.splat_tail(rng.choice(EDGE_U64), pattern[:16])
            if len(pattern) > 16:
                tail = tail[:-1] + bytes([rng.randrange(17, 256)])
            rows.append((1, name_ref, meta_ref, tail))
        elif kind < 0.9:
            target = rng.choice(
                (b"ext.bin", b"ext\x00.bin", b"../ext.bin", b"/nonexistent/x", b".", b"", b"x" * 5000, b"\xff.bin")
            )
            p_ref = (len(meta), len(target))
            meta += target
            rows.append((3, name_ref, meta_ref, S.external_tail(*p_ref, rng.choice((0, 8)), rng.choice((0, 4, 2000)))))
        else:
            rows.append((rng.choice((0, 4, 2**31)), name_ref, meta_ref, b""))
    if rng.random() < 0.3:
        blob = _attributes_blob(rng)
        key = b"__paramio_attributes__"
        name_ref = (len(meta), len(key))
        meta += key
        storage += blob
        rows.append((2, name_ref, (0, 0), S.data_tail(len(storage) - len(blob), len(blob))))
    path = folder / "case.irpa"
    path.write_bytes(S.irpa_bytes(rows, bytes(meta), storage))
    return path


# -- GGUF ---------------------------------------------------------------------------------

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}


def _gguf_value(rng: random.Random, depth: int) -> tuple[int, bytes]:
    r = rng.random()
    if r < 0.4 or depth > 40:
        t = rng.choice(list(_SCALARS))
        fmt = _SCALARS[t]
        if fmt in ("<f", "<d"):
            v: object = rng.choice((0.0, float("nan"), float("inf"), 1e300 if fmt == "<d" else 3e38, -1.5))
        else:
            bits = struct.calcsize(fmt) * 8
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if fmt.islower() else (0, (1 << bits) - 1)
            v = rng.choice((lo, hi, 0, 1, 2))
        return t, struct.pack(fmt, v)
    if r < 0.6:
        s = rng.choice((b"", b"x", b"\xff\xfe", b"a\x00b", b"s" * rng.choice((100, 1 << 16, 1 << 20))))
        return 8, struct.pack("<Q", len(s)) + s
    if r < 0.75:  # a nested chain, possibly past the depth limit
        return 9, S.gguf_nested_array(rng.choice((2, 3, 32, 33, 34, 200, 20_000)), rng.choice((0, 3)))
    if r < 0.85:  # wide: many empty arrays inside one
        count = rng.choice((10, 1000, 4096, 4097, 100_000))
        return 9, struct.pack("<IQ", 9, count) + struct.pack("<IQ", 0, 0) * count
    item = rng.choice((0, 4, 6, 8, 10, 13, 2**31))
    count = rng.choice((0, 1, 3, 1000, 2**40, 2**64 - 1))
    body = b""
    if item in _SCALARS and count <= 1000:
        body = bytes(struct.calcsize(_SCALARS[item]) * count)
    elif item == 8 and count <= 1000:
        body = (struct.pack("<Q", 1) + b"w") * count
    return 9, struct.pack("<IQ", item, count) + body


def _gguf_kvs(rng: random.Random, extra: list[bytes] | None = None) -> list[bytes]:
    kvs = list(extra or [])
    for i in range(rng.choice((0, 1, 3, 8))):
        t, v = _gguf_value(rng, 1)
        kvs.append(S.gguf_kv(_name(rng, i) if rng.random() < 0.3 else b"k%d" % i, t, v))
    if rng.random() < 0.2:
        t, v = rng.choice(((4, struct.pack("<I", rng.choice((0, 3, 32, 2**31)))), (10, struct.pack("<Q", 32))))
        kvs.append(S.gguf_kv(b"general.alignment", t, v))
    if rng.random() < 0.1 and kvs:
        kvs.append(kvs[0])  # a repeated key
    return kvs


def _gguf_tensors(rng: random.Random, data_len: int) -> list[bytes]:
    tensors = []
    for i in range(rng.choices((0, 1, 3, 30), weights=(2, 4, 4, 1))[0]):
        dims = _dims(rng) if rng.random() < 0.6 else [rng.choice((1, 2, 4, 8, 32))]
        gtype = rng.choice((0, 1, 2, 8, 12, 24, 30, 39, 1000, 2**31))
        offset = rng.choice((0, 0, 32, data_len, 2**63, 2**64 - 32))
        tensors.append(S.gguf_tensor(_name(rng, i) if rng.random() < 0.3 else b"t%d" % i, dims, gtype, offset))
    return tensors


def gguf_case(folder: Path, rng: random.Random) -> Path:
    """Tensor infos with many or huge dimensions, unknown or quantised types, edge offsets;
    key/values nested deep or wide, long strings, huge array counts, non-UTF-8 keys."""
    data = bytes(rng.choice((0, 32, 4096)))
    path = folder / "case.gguf"
    path.write_bytes(S.gguf_bytes(_gguf_kvs(rng), _gguf_tensors(rng, len(data)), data=data))
    return path


def gguf_split_case(folder: Path, rng: random.Random) -> Path:
    """A split set (``case-0000N-of-0000M.gguf``) whose split keys and names disagree in the
    ways a hostile or half-copied set can: counts, numbers, types, missing shards."""
    count = rng.choice((2, 3))
    claimed = rng.choice((count, count, 1, 0, 65_535, count + 1))
    total = rng.choice((count, 0, -1, 2**31 - 1))
    for i in range(count):
        if rng.random() < 0.1 and i:
            continue  # a missing shard
        no = i if rng.random() < 0.85 else rng.choice((0, count, 65_535))
        typ = rng.choice((2, 2, 2, 4, 10, 8))
        fmt = {2: "<H", 4: "<I", 10: "<Q"}.get(typ)
        pack = (
            (lambda v, fmt=fmt: struct.pack(fmt, v % (1 << (8 * struct.calcsize(fmt)))))
            if fmt
            else (lambda v: struct.pack("<Q", 1) + b"1")
        )
        split = [
            S.gguf_kv(b"split.no", typ, pack(no)),
            S.gguf_kv(b"split.count", typ, pack(claimed)),
            S.gguf_kv(b"split.tensors.count", 5, struct.pack("<i", total)),
        ]
        kvs = _gguf_kvs(rng, split) if i == 0 else split
        data = bytes(32)
        tensors = [S.gguf_tensor(b"t%d" % i, [8] if rng.random() < 0.8 else _dims(rng))]
        (folder / f"case-{i + 1:05d}-of-{count:05d}.gguf").write_bytes(S.gguf_bytes(kvs, tensors, data=data))
    return folder / f"case-00001-of-{count:05d}.gguf"


# -- safetensors ----------------------------------------------------------------------------

_ST_DTYPES = ("F32", "F16", "BF16", "I8", "U8", "BOOL", "F8_E4M3", "F4", "C64", "X9", "")


def _st_header(rng: random.Random, data_len: int) -> str:
    parts = []
    if rng.random() < 0.5:
        r = rng.random()
        if r < 0.3:
            meta = json.dumps({"k": "x" * rng.choice((10, 1 << 16, 1 << 20))})
        elif r < 0.5:
            meta = json.dumps({f"{i}": "" for i in range(rng.choice((10, 10_000, 100_000)))})
        elif r < 0.7:
            meta = _deep_json(rng, rng.choice((2, 127, 128, 1000, 50_000)))
        elif r < 0.8:
            meta = '{"k": "\\ud800"}'
        else:
            meta = json.dumps(
                {
                    "k": _number(rng),
                    "paramio.carried": json.dumps(
                        {"version": 1, "tensors": {"w": {"dtype": "int32", "shape": _dims(rng)}}}
                    ),
                }
            )
        parts.append(f'"__metadata__": {meta}')
    offset = 0
    for i in range(rng.choices((0, 1, 3, 50), weights=(2, 4, 4, 1))[0]):
        dims = _dims(rng) if rng.random() < 0.5 else [rng.choice((1, 2, 4))]
        dtype = rng.choice(_ST_DTYPES)
        begin, end = offset, min(data_len, offset + 4)
        if rng.random() < 0.2:
            begin, end = rng.choice(EDGE_U64), rng.choice(EDGE_U64)
        offset = end
        name = _name(rng, i).decode("utf-8", "replace") if rng.random() < 0.3 else f"t{i}"
        shape = (
            json.dumps(dims)
            if rng.random() < 0.9
            else rng.choice(("[-1]", "[1.5]", "[1e309]", "[-0]", "[" + "9" * 5000 + "]", _deep_json(rng, 300)))
        )
        parts.append(f'{json.dumps(name)}: {{"dtype": "{dtype}", "shape": {shape}, "data_offsets": [{begin}, {end}]}}')
    if rng.random() < 0.1 and parts:
        parts.append(parts[-1])  # a repeated key
    return "{" + ", ".join(parts) + "}"


def _st_valid_tensors(rng: random.Random) -> tuple[str, int]:
    """Tensors that tile their data exactly (one byte each, or none), hostile only in shape:
    thousands of 1s, or a 0 beside dimensions at the u64 edge."""
    parts = []
    offset = 0
    for i in range(rng.choice((1, 2, 10))):
        if rng.random() < 0.5:
            dims, n = [1] * rng.choice((1, 5, 65, 5000)), 1
        else:
            dims, n = [0, *(rng.choice(EDGE_DIMS[1:]) for _ in range(rng.choice((1, 3, 70))))], 0
        parts.append(
            f'"t{i}": {{"dtype": "U8", "shape": {json.dumps(dims)}, "data_offsets": [{offset}, {offset + n}]}}'
        )
        offset += n
    return ", ".join(parts), offset


def safetensors_case(folder: Path, rng: random.Random) -> Path:
    """Headers with many or huge dimensions, long or many or deep ``__metadata__`` values,
    lone surrogates, numbers beyond u64, offsets at the u64 edges, repeated keys; some with
    tensors that tile their data exactly, so that the shape reaches every later step."""
    if rng.random() < 0.4:
        tensors, n = _st_valid_tensors(rng)
        meta = _st_header(rng, 0)[1:-1] if rng.random() < 0.5 else ""
        meta = meta if meta.startswith('"__metadata__"') else ""
        meta = meta.split(', "t0"')[0]
        raw = ("{" + (meta + ", " if meta else "") + tensors + "}").encode("utf-8", "surrogatepass")
        path = folder / "case.safetensors"
        path.write_bytes(S.safetensors_bytes(raw, bytes(n)))
        return path
    data = bytes(rng.choice((0, 4, 16, 200)))
    raw = _st_header(rng, len(data)).encode("utf-8", "surrogatepass")
    path = folder / "case.safetensors"
    path.write_bytes(S.safetensors_bytes(raw, data))
    return path


# -- sharded safetensors (index.json) ---------------------------------------------------------


def index_case(folder: Path, rng: random.Random) -> Path:
    """A ``model.safetensors.index.json`` whose shard names hold NUL bytes, paths, thousands of
    digits or thousands of entries, next to shards that may or may not match it."""
    shard = S.safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4))
    good = "model-00001-of-00002.safetensors"
    (folder / good).write_bytes(shard)
    (folder / "model-00002-of-00002.safetensors").write_bytes(
        S.safetensors_bytes({"v": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4))
    )
    names = [
        good,
        "model-00002-of-00002.safetensors",
        "a\x00b.safetensors",
        "../model-00001-of-00002.safetensors",
        "/etc/hostname",
        "",
        ".",
        "x" * 300 + ".safetensors",
        "model-" + "9" * 5000 + "-of-00002.safetensors",
        "missing.safetensors",
        "model.safetensors.index.json",
    ]
    wmap: dict[str, object] = {"w": good}
    if rng.random() < 0.8:
        wmap["v"] = "model-00002-of-00002.safetensors"
    for i in range(rng.choice((0, 1, 3, 1000, 20_000))):
        wmap[f"k{i}"] = rng.choice(names) if rng.random() < 0.5 else f"s{i}-{i:05d}-of-{i + 1:05d}.safetensors"
    if rng.random() < 0.1:
        wmap["n"] = _number(rng)
    doc: dict[str, object] = {"weight_map": wmap}
    r = rng.random()
    if r < 0.2:
        text = '{"metadata": ' + _deep_json(rng, rng.choice((100, 5000))) + ', "weight_map": ' + json.dumps(wmap) + "}"
    else:
        doc["metadata"] = {"total_size": _number(rng)} if r < 0.5 else {}
        text = json.dumps(doc)
    path = folder / "model.safetensors.index.json"
    path.write_text(text)
    return path


def tensorv0_case(folder: Path, rng: random.Random) -> Path:
    """IRPA entries whose TENSORv0/PYTORCH metadata and attributes JSON are the hostile part:
    huge or many dimensions, digits past Python's int limit, deep nesting, wrong types."""
    meta = bytearray()
    rows = []
    storage = bytes(64)
    for i in range(rng.choice((1, 3, 20))):
        name = b"t%d" % i
        blob = _tensor_json(rng)
        rows.append(
            (2, (len(meta), len(name)), (len(meta) + len(name), len(blob)), S.data_tail(0, rng.choice((0, 4, 64))))
        )
        meta += name + blob
    if rng.random() < 0.6:
        blob = _attributes_blob(rng)
        key = b"__paramio_attributes__"
        rows.append((2, (len(meta), len(key)), (0, 0), S.data_tail(len(storage), len(blob))))
        meta += key
        storage += blob
    path = folder / "case.irpa"
    path.write_bytes(S.irpa_bytes(rows, bytes(meta), storage))
    return path


GENERATORS: dict[str, Callable[[Path, random.Random], Path]] = {
    "tensorv0": tensorv0_case,
    "irpa": irpa_case,
    "safetensors": safetensors_case,
    "gguf": gguf_case,
    "index.json": index_case,
    "gguf-split": gguf_split_case,
}

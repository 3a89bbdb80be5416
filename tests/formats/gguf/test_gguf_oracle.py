"""paramio against the oracles: files written by gguf-py, read by gguf-py, and IREE's tools."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import paramio.formats.gguf as pg
from conftest import ALL_VALUES, EXPECTED_RECORDS, all_type_tensors, tensor_for, write_oracle
from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, SourceError
from paramio.core.tensor import TensorInfo
from paramio.sources.memory import MemorySource

gguf = pytest.importorskip("gguf")
from gguf.constants import GGMLQuantizationType as Q  # noqa: E402

pytestmark = pytest.mark.interop

_ROW = re.compile(r"^\s*(\d+|-) \|\s*(\d+|-) \|\s*(\d+) \| `(.*)`$")


def _iree_rows(out: str) -> list[tuple[int, int, int, str]]:
    rows = []
    for line in out.splitlines():
        m = _ROW.match(line)
        if m:
            rows.append((int(m[1]), int(m[2]), int(m[3]), m[4]))
    return rows


def _ours(entries: list[ParameterEntry]) -> list[tuple[int, int, int, str]]:
    return [(e.offset, e.offset + e.length, e.length, e.key) for e in entries]


def test_reads_every_value_type_written_by_gguf(tmp_path: Path) -> None:
    p = tmp_path / "kv.gguf"
    write_oracle(p, [("x", np.ones(4, np.float32), None)], values=ALL_VALUES)
    kv = pg.read_path(str(p)).attributes["gguf.kv"]
    assert isinstance(kv, dict)
    assert list(kv) == ["general.architecture", *EXPECTED_RECORDS]
    assert {k: kv[k] for k in EXPECTED_RECORDS} == EXPECTED_RECORDS


def test_reads_every_ggml_type_as_gguf_does(tmp_path: Path) -> None:
    p = tmp_path / "types.gguf"
    write_oracle(p, all_type_tensors(), alignment=64)
    ours = pg.read_path(str(p)).entries
    theirs = gguf.GGUFReader(str(p)).tensors
    assert len(ours) == len(theirs) == len(list(Q))
    raw = p.read_bytes()
    for e, t in zip(ours, theirs, strict=True):
        assert e.key == t.name
        assert e.tensor is not None
        gtype = pg.GGML_TYPES[int(t.tensor_type)]
        assert e.tensor.dtype == gtype.paramio_dtype
        assert e.tensor.shape == tuple(int(d) for d in reversed(t.shape))
        assert (e.offset, e.length) == (t.data_offset, t.n_bytes)
        assert e.offset % 64 == 0
        assert e.read() == raw[t.data_offset : t.data_offset + t.n_bytes]
        if gtype.quantized:
            assert dict(e.tensor.extra) == {"ggml_type": gtype.id}
        else:
            arr = e.to_numpy()
            assert arr.dtype.name == gtype.numpy_name
            assert np.shares_memory(arr, np.frombuffer(e.source.view(0, e.source.size), np.uint8))  # type: ignore[union-attr]


def test_bf16_values(tmp_path: Path) -> None:
    p = tmp_path / "bf16.gguf"
    values = np.array([[1.0, -2.5, 3.0e10]], dtype=ml_dtypes.bfloat16)
    write_oracle(p, [("b", values.view(np.uint8), Q.BF16)])
    (e,) = pg.read_path(str(p)).entries
    assert e.tensor == TensorInfo("bfloat16", (1, 3))
    np.testing.assert_array_equal(e.to_numpy(), values)


def test_gguf_file_rewritten_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "in.gguf"
    write_oracle(src, all_type_tensors(), values=ALL_VALUES)
    c = pg.read_path(str(src))
    out = tmp_path / "out.gguf"
    pg.write_path(str(out), c.entries, attributes=c.attributes, durable=False)
    assert out.read_bytes() == src.read_bytes()


def test_paramio_output_read_by_gguf(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f16": rng.standard_normal((4,)).astype(np.float16),
        "i64": np.arange(6, dtype=np.int64).reshape(2, 3),
    }
    entries = [
        ParameterEntry.data(k, MemorySource(a.tobytes()), 0, a.nbytes, tensor=TensorInfo(a.dtype.name, a.shape))
        for k, a in arrays.items()
    ]
    q = rng.integers(0, 256, (2, 144), dtype=np.uint8).tobytes()  # Q4_K: 2 rows of 256 weights
    entries.append(ParameterEntry.data("q", MemorySource(q), 0, len(q), tensor=TensorInfo("gguf.q4_k", (2, 256))))
    entries.append(ParameterEntry.splat("s", b"\x01\x02", 8, tensor=TensorInfo("int16", (4,))))
    p = tmp_path / "ours.gguf"
    pg.write_path(str(p), entries, attributes={"gguf.kv": EXPECTED_RECORDS}, alignment=128, durable=False)
    r = gguf.GGUFReader(str(p))
    assert r.alignment == 128
    for key, vtype, value, _sub in ALL_VALUES:
        f = r.fields[key]
        assert f.types[0] == vtype
        if "nested" not in key:
            assert f.contents() == value
    by_name = {t.name: t for t in r.tensors}
    for k, a in arrays.items():
        np.testing.assert_array_equal(by_name[k].data, a)
    assert by_name["q"].tensor_type == Q.Q4_K and list(by_name["q"].shape) == [256, 2]
    assert bytes(by_name["q"].data) == q
    np.testing.assert_array_equal(by_name["s"].data, np.full(4, 0x0201, np.int16))
    # and paramio reads back what it wrote
    back = pg.read_path(str(p))
    kv = back.attributes["gguf.kv"]
    assert isinstance(kv, dict)
    assert list(kv.items()) == [*EXPECTED_RECORDS.items(), ("general.alignment", {"type": "u32", "value": 128})]
    assert [(e.key, e.dtype, e.shape, e.read()) for e in back.entries] == [
        (e.key, e.dtype, e.shape, e.read()) for e in entries
    ]


def test_split_set_written_by_gguf_opens_from_any_shard(tmp_path: Path) -> None:
    tensors = [(f"t{i}", np.full((2, 3), i, np.float32), None) for i in range(5)]
    write_oracle(tmp_path / "m.gguf", tensors, values=ALL_VALUES[:3], split_max_tensors=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    for name in names:
        c = pg.read_path(str(tmp_path / name))
        assert [e.key for e in c.entries] == [f"t{i}" for i in range(5)]
        assert c.paths == [str(tmp_path / n) for n in names]
        for i, e in enumerate(c.entries):
            np.testing.assert_array_equal(e.to_numpy(), np.full((2, 3), i, np.float32))
        kv = c.attributes["gguf.kv"]
        assert isinstance(kv, dict) and "split.no" not in kv and kv["t.u8"] == {"type": "u8", "value": 200}
    # paramio's own split writer gives the same bytes as gguf-py's
    c = pg.read_path(str(tmp_path / names[0]))
    out = tmp_path / "ours"
    out.mkdir()
    written = pg.write_gguf(out / "m.gguf", c.entries, attributes=c.attributes, split_max_tensors=2, durable=False)
    assert [Path(w).name for w in written] == names
    for name in names:
        assert (out / name).read_bytes() == (tmp_path / name).read_bytes()


def test_split_set_by_size(tmp_path: Path) -> None:
    entries = [
        ParameterEntry.data(f"t{i}", MemorySource(bytes([i]) * 100), 0, 100, tensor=TensorInfo("int8", (100,)))
        for i in range(5)
    ]
    written = pg.write_gguf(tmp_path / "s.gguf", entries, split_max_size=250, durable=False)
    assert len(written) == 3
    r = gguf.GGUFReader(written[1])
    assert r.fields["split.no"].contents() == 1 and r.fields["split.count"].contents() == 3
    assert r.fields["split.tensors.count"].contents() == 5
    c = pg.read_path(written[2])
    assert [e.read() for e in c.entries] == [bytes([i]) * 100 for i in range(5)]


def test_split_set_inconsistencies(tmp_path: Path) -> None:
    tensors = [(f"t{i}", np.zeros(2, np.float32), None) for i in range(4)]
    write_oracle(tmp_path / "m.gguf", tensors, split_max_tensors=2)
    first = tmp_path / "m-00001-of-00002.gguf"
    second = tmp_path / "m-00002-of-00002.gguf"
    renamed = tmp_path / "x-00001-of-00002.gguf"
    first.rename(renamed)
    with pytest.raises(SourceError, match="shard x-00002-of-00002.gguf of the set is missing"):
        pg.read_path(str(renamed))
    with pytest.raises(SourceError, match="shard m-00001-of-00002.gguf of the set is missing"):
        pg.read_path(str(second))
    renamed.rename(first)
    wrong = tmp_path / "m-00001-of-00003.gguf"
    first.rename(wrong)
    with pytest.raises(FormatError, match="file name says member 1 of 3 but the file says 1 of 2"):
        pg.read_path(str(wrong))
    wrong.rename(first)
    # the second shard claims to be shard 0
    data = bytearray(second.read_bytes())
    c = pg.read_path(str(first))
    at = data.find(b"split.no") + len("split.no") + 4
    data[at : at + 2] = b"\x00\x00"
    second.write_bytes(bytes(data))
    with pytest.raises(
        FormatError, match=r"shard 2 of 2 states its place as \(0, 2, 4\), expected \(1, 2\) with 4 entries"
    ):
        pg.read_path(str(first))
    assert len(c.entries) == 4


def test_iree_agrees_on_offsets_and_lengths(
    tmp_path: Path, iree_tool: Callable[[str], str], run_tool: Callable[..., object]
) -> None:
    # The types IREE's stale table still sizes right: ids 0..15 without 4/5.
    iree_ok = [q for q in Q if int(q) <= 15]
    p = tmp_path / "iree.gguf"
    write_oracle(p, [(f"w.{q.name.lower()}", *tensor_for(q, 3, int(q))) for q in iree_ok], values=ALL_VALUES[:12])
    res = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={p}"])
    assert res.returncode == 0, res.stderr  # type: ignore[attr-defined]
    c = pg.read_path(str(p))
    assert _iree_rows(res.stdout) == _ours(c.entries)  # type: ignore[attr-defined]
    # and on a file paramio wrote, with a larger alignment
    mine = tmp_path / "mine.gguf"
    pg.write_path(str(mine), c.entries, attributes=c.attributes, alignment=256, durable=False)
    res = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={mine}"])
    assert res.returncode == 0, res.stderr  # type: ignore[attr-defined]
    rows = _iree_rows(res.stdout)  # type: ignore[attr-defined]
    assert rows == _ours(pg.read_path(str(mine)).entries)
    assert all(start % 256 == 0 for start, *_ in rows)


def test_iree_stale_table_missizes_iq2_xxs(
    tmp_path: Path, iree_tool: Callable[[str], str], run_tool: Callable[..., object]
) -> None:
    p = tmp_path / "iq.gguf"
    raw = np.random.default_rng(0).integers(0, 256, (2, 66), dtype=np.uint8)  # 2 rows of 256 weights
    write_oracle(p, [("iq", raw, Q.IQ2_XXS), ("after", np.ones(128, np.float32), None)])
    (iq, after) = pg.read_path(str(p)).entries
    t = gguf.GGUFReader(str(p)).tensors[0]
    assert iq.length == t.n_bytes == 132
    assert iq.tensor == TensorInfo("gguf.iq2_xxs", (2, 256), {"ggml_type": 16})
    res = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={p}"])
    assert res.returncode == 0, res.stderr  # type: ignore[attr-defined]
    rows = _iree_rows(res.stdout)  # type: ignore[attr-defined]
    # IREE reads id 16 as its old I8: one byte per weight, 512 bytes running into the next tensor
    assert rows[0] == (iq.offset, iq.offset + 512, 512, "iq")
    assert rows[0][1] > after.offset
    assert rows[1] == (after.offset, after.offset + 512, 512, "after")


def test_iree_rejects_bf16_that_paramio_reads(
    tmp_path: Path, iree_tool: Callable[[str], str], run_tool: Callable[..., object]
) -> None:
    p = tmp_path / "bf.gguf"
    values = np.arange(8, dtype=np.float32).astype(ml_dtypes.bfloat16).reshape(2, 4)
    write_oracle(p, [("b", values.view(np.uint8), Q.BF16)])
    res = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={p}"])
    assert res.returncode != 0  # type: ignore[attr-defined]
    assert "GGML tensor type 30 not supported" in res.stderr  # type: ignore[attr-defined]
    (e,) = pg.read_path(str(p)).entries
    np.testing.assert_array_equal(e.to_numpy(), values)

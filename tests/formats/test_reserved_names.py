"""Names paramio gives meaning to never swallow user data, and never retype what a file declares.

- File-level attributes in IRPA live in a SKIP entry that IREE drops: IREE's tools and runtime
  list exactly the model's entries, and ``iree-dump-parameters`` prints what ``paramio dump``
  prints. The old placement (a DATA entry) is still read.
- A tensor literally named ``__paramio_attributes__`` stays a tensor through every conversion.
- ``paramio.carried`` in a file from elsewhere cannot change the type of a tensor the file
  declares (it can only replace the stand-in paramio's own writer would have used).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatWarning
from paramio.formats.irpa.attributes import ATTRIBUTES_KEY, encode_record
from paramio.formats.irpa.writer import plan_archive
from paramio.formats.registry import read_path, write_path
from paramio.sources.memory import MemorySource

gguf = pytest.importorskip("gguf")


def _model(tmp_path: Path) -> Path:
    """A GGUF model with key/values (which become IRPA attributes) and four tensors."""
    p = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_name("tiny")
    w.add_uint32("layers", 2)
    for i in range(4):
        w.add_tensor(f"t{i}", np.full((2, 3), i, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p


def _convert(src: Path, dst: Path) -> None:
    c = read_path(src)
    write_path(dst, c.entries, attributes=c.attributes, on_loss="ignore")


@pytest.mark.interop
def test_iree_sees_exactly_the_models_entries(tmp_path: Path, iree_tool, run_tool, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.irpa"
    _convert(_model(tmp_path), out)
    ours = paramio.ParameterIndex.open(out)
    assert ours.keys() == ["t0", "t1", "t2", "t3"]
    assert ours.attributes["gguf.kv"]["general.name"]["value"] == "tiny"  # type: ignore[index]
    theirs = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={out}"], check=True).stdout
    assert "(4 entries" in theirs and ATTRIBUTES_KEY not in theirs
    code, text, _ = paramio_cli("dump", f"--parameters={out}")
    assert code == 0 and text == theirs
    rt = pytest.importorskip("iree.runtime")
    index = rt.ParameterIndex()
    index.load(str(out))
    assert [k for k, _ in index.items()] == ["t0", "t1", "t2", "t3"]
    for k, e in index.items():
        assert bytes(e.file_view) == ours[k].read()


def test_attributes_are_a_skip_entry_after_the_models(tmp_path: Path) -> None:
    out = tmp_path / "m.irpa"
    _convert(_model(tmp_path), out)
    raw = out.read_bytes()
    count = struct.unpack_from("<Q", raw, 32)[0]
    assert count == 5  # four tensors, then the record
    # entry table at 96, 16-aligned entries: data entries are 76 bytes (80 with padding)
    size, etype = struct.unpack_from("<QI", raw, 96 + 4 * 80)
    assert (size, etype) == (60, 0)
    name_off, name_len, md_off, md_len = struct.unpack_from("<4Q", raw, 96 + 4 * 80 + 20)
    m_seg = struct.unpack_from("<Q", raw, 56)[0]
    assert raw[m_seg + name_off : m_seg + name_off + name_len] == ATTRIBUTES_KEY.encode()
    record = json.loads(raw[m_seg + md_off : m_seg + md_off + md_len])
    assert record["paramio_attributes"] == 1 and "gguf.kv" in record["attributes"]


def _legacy(path: Path, entries: list[ParameterEntry]) -> None:
    """An archive as paramio wrote it before the SKIP record: attributes as a DATA entry."""
    plan = plan_archive(entries)
    buf = bytearray(plan.total_size)
    buf[: len(plan.header_and_tables)] = plan.header_and_tables
    for e, off in zip(entries, plan.data_offsets, strict=True):
        if off is not None:
            buf[off : off + e.length] = e.read()
    path.write_bytes(bytes(buf))


def _data(key: str, raw: bytes) -> ParameterEntry:
    return ParameterEntry.data(key, MemorySource(raw), 0, len(raw))


def _both_paths(p: Path) -> list[tuple[list[str], dict[str, object]]]:
    """(keys, attributes) from the vectorised table path and from the entry-by-entry loop."""
    from paramio.formats.irpa.reader import read_archive, take_attributes

    fast = read_path(p)
    skipped: list[tuple[str, bytes]] = []
    entries, attributes = take_attributes(read_archive(MemorySource(p.read_bytes()), skipped=skipped), skipped)
    return [([e.key for e in fast.entries], fast.attributes), ([e.key for e in entries], attributes)]


def test_old_placement_still_read(tmp_path: Path) -> None:
    p = tmp_path / "old.irpa"
    entries = [
        ParameterEntry.splat("s", b"\x00", 4),
        _data("w", b"\x01\x02"),
        _data(ATTRIBUTES_KEY, encode_record({"k": "v"})),
    ]
    _legacy(p, entries)
    assert _both_paths(p) == [(["s", "w"], {"k": "v"})] * 2
    index = paramio.ParameterIndex.open(p)
    assert ATTRIBUTES_KEY not in index and index["w"].read() == b"\x01\x02"


def test_new_placement_read_by_both_paths(tmp_path: Path) -> None:
    p = tmp_path / "new.irpa"
    write_path(
        p, [_data("w", b"\x01\x02"), _data(ATTRIBUTES_KEY, b"user bytes")], attributes={"k": "v"}, on_loss="ignore"
    )
    assert _both_paths(p) == [(["w", ATTRIBUTES_KEY], {"k": "v"})] * 2


def test_a_data_entry_under_the_reserved_name_that_is_not_the_record_is_data(tmp_path: Path) -> None:
    """Old code raised FormatError ("attributes entry is not valid JSON") for this file."""
    p = tmp_path / "user.irpa"
    _legacy(p, [_data(ATTRIBUTES_KEY, np.arange(4, dtype=np.float32).tobytes()), _data("b", b"\x07")])
    index = paramio.ParameterIndex.open(p)
    assert index.keys() == [ATTRIBUTES_KEY, "b"] and index.attributes == {}
    assert index[ATTRIBUTES_KEY].read() == np.arange(4, dtype=np.float32).tobytes()


@pytest.mark.parametrize("with_attributes", [False, True])
def test_a_tensor_named_like_the_record_survives_conversion(tmp_path: Path, with_attributes: bool) -> None:
    """A safetensors tensor named ``__paramio_attributes__`` is converted to IRPA and back: on
    today's main it vanished into the attributes (or made the IRPA file unreadable)."""
    from safetensors.numpy import load_file, save_file

    src = tmp_path / "in.safetensors"
    tensors = {ATTRIBUTES_KEY: np.arange(6, dtype=np.float32), "w": np.ones(2, dtype=np.int16)}
    save_file(tensors, str(src), metadata={"note": "kept"} if with_attributes else None)
    mid, back = tmp_path / "mid.irpa", tmp_path / "back.safetensors"
    _convert(src, mid)
    index = paramio.ParameterIndex.open(mid)
    assert sorted(index.keys()) == sorted(tensors)
    np.testing.assert_array_equal(index[ATTRIBUTES_KEY].to_numpy(), tensors[ATTRIBUTES_KEY])
    assert ("safetensors.metadata" in index.attributes) == with_attributes
    _convert(mid, back)
    again = load_file(str(back))
    assert sorted(again) == sorted(tensors)
    for k, v in tensors.items():
        np.testing.assert_array_equal(again[k], v)


def _forged_safetensors(path: Path, claim: dict[str, object]) -> None:
    """A safetensors file from someone else whose metadata holds a ``paramio.carried`` record."""
    from safetensors.numpy import save_file

    record = json.dumps({"version": 1, "tensors": claim}, separators=(",", ":"))
    save_file(
        {"w": np.arange(4, dtype=np.float32), "b": np.arange(8, dtype=np.uint8)},
        str(path),
        metadata={"paramio.carried": record},
    )


def test_carried_record_cannot_retype_a_declared_tensor(tmp_path: Path) -> None:
    """On today's main ``w`` read as int32 in paramio and float32 in safetensors."""
    from safetensors.numpy import load_file

    p = tmp_path / "forged.safetensors"
    _forged_safetensors(p, {"w": {"dtype": "int32", "shape": [4]}})
    with pytest.warns(
        FormatWarning, match=r"'w': paramio.carried claims type int32\[4\] but the file declares float32\[4\]"
    ):
        index = paramio.ParameterIndex.open(p)
    assert index["w"].dtype == "float32"
    assert index["w"].to_numpy().dtype == load_file(str(p))["w"].dtype


def test_carried_record_cannot_retype_through_metadata(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    p = tmp_path / "forged_meta.safetensors"
    record = json.dumps(
        {"version": 1, "metadata": {"w": 'TENSORv0:{"type": "Tensor", "dtype": "int32", "shape": [4]}'}}
    )
    save_file({"w": np.arange(4, dtype=np.float32)}, str(p), metadata={"paramio.carried": record})
    with pytest.warns(FormatWarning, match="claims metadata typing it int32"):
        index = paramio.ParameterIndex.open(p)
    assert index["w"].metadata == b"" and index["w"].dtype == "float32"
    out = tmp_path / "o.irpa"
    with pytest.warns(FormatWarning):
        _convert(p, out)  # IREE would read the carried metadata's type from the IRPA entry
    assert paramio.ParameterIndex.open(out)["w"].dtype == "float32"


def test_carried_record_still_restores_what_paramio_wrote(tmp_path: Path) -> None:
    """The stand-ins paramio writes are still read back as the type they stand for."""
    import ml_dtypes

    index = paramio.ParameterIndex()
    index.add_array("bf", np.ones(3, dtype=ml_dtypes.float8_e4m3fn))
    index.add_array("u16", np.arange(4, dtype=np.uint16))
    index.add_buffer("raw", b"\x01\x02\x03", metadata="")
    for ext in ("safetensors", "gguf"):
        p = tmp_path / f"x.{ext}"
        write_path(p, index.values(), on_loss="ignore")
        back = paramio.ParameterIndex.open(p)
        assert back["bf"].dtype == "float8_e4m3fn", ext
        assert back["u16"].dtype == "uint16", ext
        assert back["raw"].tensor is None, ext


def test_a_claim_of_the_wrong_size_is_refused_even_for_a_stand_in(tmp_path: Path) -> None:
    p = tmp_path / "size.safetensors"
    _forged_safetensors(p, {"b": {"dtype": "float32", "shape": [4]}})  # b is U8[8]: a stand-in, but 16 bytes claimed
    with pytest.warns(FormatWarning):
        index = paramio.ParameterIndex.open(p)
    assert index["b"].dtype == "uint8"


def test_a_matching_claim_on_a_byte_stand_in_is_honoured(tmp_path: Path) -> None:
    p = tmp_path / "standin.safetensors"
    _forged_safetensors(p, {"b": {"dtype": "float32", "shape": [2]}})
    index = paramio.ParameterIndex.open(p)
    assert index["b"].dtype == "float32" and index["b"].shape == (2,)


@pytest.mark.interop
def test_every_archive_paramio_writes_lists_only_its_entries_in_iree(tmp_path: Path, iree_tool, run_tool) -> None:  # type: ignore[no-untyped-def]
    """Conversions from each format, with and without attributes, through the library and the CLI."""
    from safetensors.numpy import save_file

    st = tmp_path / "a.safetensors"
    save_file({"x": np.ones(3, np.float32)}, str(st), metadata={"k": "v"})
    sources = [_model(tmp_path), st]
    for i, src in enumerate(sources):
        out = tmp_path / f"o{i}.irpa"
        _convert(src, out)
        listing = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={out}"], check=True).stdout
        assert ATTRIBUTES_KEY not in listing
        assert f"({len(paramio.ParameterIndex.open(src))} entries" in listing
        cli_out = tmp_path / f"c{i}.irpa"
        from paramio.cli.main import main

        assert main(["convert", f"--parameters={src}", f"--output={cli_out}", "--typed", "--quiet"]) == 0
        listing = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={cli_out}"], check=True).stdout
        assert ATTRIBUTES_KEY not in listing


@pytest.mark.interop
def test_sharded_irpa_sets_carry_attributes_invisibly(tmp_path: Path, iree_tool, run_tool) -> None:  # type: ignore[no-untyped-def]
    c = read_path(_model(tmp_path))
    manifest = tmp_path / "set.irpa.index.json"
    write_path(manifest, c.entries, attributes=c.attributes, max_shard_size=48, on_loss="ignore")
    shards = sorted(tmp_path.glob("set*.irpa"))
    assert len(shards) > 1
    for shard in shards:
        listing = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={shard}"], check=True).stdout
        assert ATTRIBUTES_KEY not in listing
    back = paramio.ParameterIndex.open(manifest)
    assert back.keys() == ["t0", "t1", "t2", "t3"] and back.attributes["gguf.kv"] == c.attributes["gguf.kv"]

"""Every (source format, target format) pair, from rich files written by the peers.

Sources: safetensors (the `safetensors` package: several dtypes, ``__metadata__``), GGUF (the
`gguf` package: plain and quantised tensors, typed key/values), IRPA (IREE's own
``create_archive_file``: typed arrays, splats, ``PYTORCH:`` and free-text metadata). Each is
converted with `paramio.write_path` and read back with `paramio.read_path`; the test compares
what an entry *is* before and after (bytes, splat or data, dtype/shape, the metadata an IRPA
writer would store, file attributes) and asserts that every difference is a reported loss and
every reported loss a difference (losses paramio carries must show no difference at all).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from paramio.core.errors import ConversionWarning, InvalidArgumentError
from paramio.formats.conversion import CARRIED_KEY, Loss, regenerated_metadata
from paramio.formats.registry import FormatContents, plan_losses, read_path, write_path

pytestmark = pytest.mark.interop

FORMATS = ("irpa", "safetensors", "gguf")
EXT = {"irpa": ".irpa", "safetensors": ".safetensors", "gguf": ".gguf"}


def make_safetensors(path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    tensors = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "u8": np.arange(5, dtype=np.uint8),
        "flags": np.array([True, False, True]),
        "h": np.array([1.5], dtype=np.float16),
        "i64": np.arange(4, dtype=np.int64).reshape(2, 2),
        "c": np.array([1 + 2j], dtype=np.complex64),
    }
    st.save_file(tensors, str(path), metadata={"format": "np", "note": "ünïcode"})


def make_gguf(path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.name", "tiny")
    w.add_uint32("llama.block_count", 2)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a"])
    w.add_tensor("tok.weight", np.arange(8, dtype=np.float32).reshape(2, 4))
    q = np.random.default_rng(0).integers(0, 256, (2, 34), dtype=np.uint8)  # Q8_0: 2 rows of 32
    w.add_tensor("q.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("ids", np.arange(3, dtype=np.int32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_irpa(path: Path) -> None:
    rt = pytest.importorskip("iree.runtime")
    idx = rt.ParameterIndex()
    rt.parameter_index_add_numpy_ndarray(idx, "typed", np.arange(6, dtype=np.float32).reshape(3, 2))
    rt.parameter_index_add_numpy_ndarray(idx, "typed_u8", np.arange(4, dtype=np.uint8))
    idx.add_buffer("raw", b"raw bytes!")
    turbine = 'PYTORCH:{"type": "Tensor", "dtype": "int16", "shape": [2]}'
    idx.add_buffer("turbine", np.array([7, 8], dtype=np.int16).tobytes(), metadata=turbine)
    idx.add_buffer("noted", b"abcd", metadata="free text, not a tensor")
    idx.add_splat("zeros", np.int32(0), 64)
    idx.add_splat("halves", np.float32(0.5), 32)
    idx.create_archive_file(str(path))


MAKERS = {"safetensors": make_safetensors, "gguf": make_gguf, "irpa": make_irpa}


def snapshot(c: FormatContents) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    """What each entry is (independent of where the format keeps it), and the attributes."""
    entries: dict[str, dict[str, object]] = {}
    for e in c.entries:
        info = e.tensor
        entries[e.key] = {
            "bytes": e.read(),
            "kind": "splat" if e.is_splat else "data",
            "tensor": None if info is None else (info.dtype, tuple(info.shape), dict(info.extra)),
            # what an IRPA writer stores for the entry: its own metadata or regenerated TENSORv0
            "metadata": bytes(e.metadata) or regenerated_metadata(info),
        }
    return entries, json.loads(json.dumps(c.attributes))


def differences(before: FormatContents, after: FormatContents) -> set[tuple[str | None, str]]:
    b_entries, b_attrs = snapshot(before)
    a_entries, a_attrs = snapshot(after)
    out: set[tuple[str | None, str]] = set()
    assert list(a_entries) == list(b_entries), "entries and their order survive every conversion"
    for key, b in b_entries.items():
        a = a_entries[key]
        out |= {(key, field) for field in b if a[field] != b[field]}
    for k in set(a_attrs) | set(b_attrs):
        if a_attrs.get(k) != b_attrs.get(k):
            out.add((None, f"attribute {k}"))
    return out


def expected_field(loss: Loss) -> str:
    if loss.what.startswith("splat of"):
        return "kind"
    raise AssertionError(f"unexpected loss: {loss}")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    out = {}
    for fmt, make in MAKERS.items():
        p = folder / f"src{EXT[fmt]}"
        make(p)
        out[fmt] = p
    return out


@pytest.mark.parametrize("target", FORMATS)
@pytest.mark.parametrize("source", FORMATS)
def test_conversion_keeps_or_reports(sources: dict[str, Path], tmp_path: Path, source: str, target: str) -> None:
    before = read_path(sources[source])
    out = tmp_path / f"out{EXT[target]}"
    planned = plan_losses(out, before.entries, attributes=before.attributes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_path(out, before.entries, attributes=before.attributes, durable=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConversionWarning)]
    assert [w for w in caught if not issubclass(w.category, ConversionWarning)] == []
    assert messages == [f"{out}: {loss}" for loss in planned]

    after = read_path(out)
    diffs = differences(before, after)
    reported = {(loss.key, expected_field(loss)) for loss in planned if not loss.paramio_keeps}
    assert diffs == reported
    # a carried loss is one other readers see, never paramio: its entry must not differ at all
    for loss in planned:
        if loss.paramio_keeps:
            assert not {d for d in diffs if d[0] == loss.key}, loss
    # and the stand-ins are what other readers see, so the list is exactly this:
    kinds = sorted((loss.key or "", loss.what.split(" ")[0], loss.paramio_keeps) for loss in planned)
    assert kinds == EXPECTED_LOSSES[source, target]


#: (key, first word of `what`, paramio_keeps) per pair: the loss table of docs/conversions.md.
EXPECTED_LOSSES: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    ("irpa", "irpa"): [],
    ("irpa", "safetensors"): [("halves", "splat", False), ("zeros", "splat", False)],
    ("irpa", "gguf"): [
        ("halves", "splat", False),
        ("typed_u8", "uint8[4]", True),  # turbine's int16 is GGUF's I16: kept, metadata carried
        ("zeros", "splat", False),
    ],
    ("safetensors", "irpa"): [],
    ("safetensors", "safetensors"): [],
    ("safetensors", "gguf"): [
        ("c", "complex64[1]", True),
        ("flags", "bool[3]", True),
        ("u8", "uint8[5]", True),
    ],
    ("gguf", "irpa"): [],
    ("gguf", "safetensors"): [("q.weight", "gguf.q8_0[2,", True)],
    ("gguf", "gguf"): [],
}


def test_carried_facts_are_text_other_readers_can_see(sources: dict[str, Path], tmp_path: Path) -> None:
    """GGUF key/values in safetensors ride in ``__metadata__`` as JSON; the library reads the file."""
    st = pytest.importorskip("safetensors")
    before = read_path(sources["gguf"])
    out = tmp_path / "g.safetensors"
    write_path(out, before.entries, attributes=before.attributes, on_loss="ignore")
    with st.safe_open(str(out), "np") as f:
        meta = f.metadata()
        assert sorted(f.keys()) == sorted(e.key for e in before.entries)
    carried = json.loads(meta[CARRIED_KEY])
    assert carried["attributes"]["gguf.kv"]["general.name"] == {"type": "string", "value": "tiny"}
    assert carried["tensors"]["q.weight"] == {"dtype": "gguf.q8_0", "shape": [2, 32], "extra": {"ggml_type": 8}}


def test_gguf_through_safetensors_gives_the_same_gguf(sources: dict[str, Path], tmp_path: Path) -> None:
    src = read_path(sources["gguf"])
    direct, via, mid = tmp_path / "direct.gguf", tmp_path / "via.gguf", tmp_path / "mid.safetensors"
    write_path(direct, src.entries, attributes=src.attributes)
    write_path(mid, src.entries, attributes=src.attributes, on_loss="ignore")
    back = read_path(mid)
    write_path(via, back.entries, attributes=back.attributes)
    assert via.read_bytes() == direct.read_bytes()


def test_irpa_through_gguf_and_safetensors_gives_the_same_irpa(sources: dict[str, Path], tmp_path: Path) -> None:
    """IREE's archive, through GGUF then safetensors, back to IRPA: only the splats became data."""
    src = read_path(sources["irpa"])
    a, b = tmp_path / "a.gguf", tmp_path / "b.safetensors"
    write_path(a, src.entries, attributes=src.attributes, on_loss="ignore")
    mid = read_path(a)
    write_path(b, mid.entries, attributes=mid.attributes, on_loss="ignore")
    assert differences(src, read_path(b)) == {("zeros", "kind"), ("halves", "kind")}


def test_on_loss_error_writes_nothing(sources: dict[str, Path], tmp_path: Path) -> None:
    src = read_path(sources["irpa"])
    out = tmp_path / "x.safetensors"
    with pytest.raises(InvalidArgumentError, match=r"safetensors cannot hold everything given \(2 losses"):
        write_path(out, src.entries, attributes=src.attributes, on_loss="error")
    assert list(tmp_path.iterdir()) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_path(out, src.entries, attributes=src.attributes, on_loss="ignore")
    with pytest.raises(InvalidArgumentError, match="on_loss='sometimes'"):
        write_path(out, src.entries, on_loss="sometimes")


def test_binary_metadata_and_unjsonable_attributes(tmp_path: Path) -> None:
    from paramio.core.entry import ParameterEntry
    from paramio.sources.memory import MemorySource

    e = ParameterEntry.data("b", MemorySource(b"1234", name="<m>"), 0, 4, metadata=b"\xff\x00binary")
    attrs: dict[str, object] = {"ok": [1, "x"], "bad": object()}
    for fmt in FORMATS:
        out = tmp_path / f"m{EXT[fmt]}"
        losses = plan_losses(out, [e], attributes=attrs)
        assert [str(x) for x in losses] == [
            "attribute 'bad' dropped (its value is not JSON-serialisable: Object of type object is not JSON serializable)"
        ]
        write_path(out, [e], attributes=attrs, on_loss="ignore")
        back = read_path(out)
        (f,) = back.entries
        assert (f.read(), bytes(f.metadata), back.attributes.get("ok")) == (b"1234", b"\xff\x00binary", [1, "x"])
        assert "bad" not in back.attributes and CARRIED_KEY not in json.dumps(back.attributes)


def test_many_losses_with_one_reason_are_one_warning(tmp_path: Path) -> None:
    from paramio.core.entry import ParameterEntry

    entries = [ParameterEntry.splat(f"s{i}", b"\x01", 8) for i in range(20)]
    with pytest.warns(ConversionWarning) as record:
        write_path(tmp_path / "s.safetensors", entries)
    assert len(record) == 1
    assert "20 entries ('s0', 's1', 's2', ...): splat of 8 bytes" in str(record[0].message)

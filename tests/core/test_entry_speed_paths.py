"""The fast paths of entries and lazy tables keep the documented behaviour."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from paramio.core.entries import LazyEntries
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import InvalidArgumentError, TruncatedError
from paramio.index.index import ParameterIndex
from paramio.sources.file import FileSource
from paramio.sources.memory import MemorySource


def test_entry_is_an_immutable_slotted_record_with_a_keyword_constructor() -> None:
    src = MemorySource(b"\0" * 16)
    e = ParameterEntry.data("w", src, 0, 16, origin="irpa", file_index=2)
    assert not hasattr(e, "__dict__") and ParameterEntry.__mro__[1].__slots__[:3] == ("key", "kind", "length")
    with pytest.raises(TypeError):
        ParameterEntry("k", EntryKind.DATA, 3)  # type: ignore[misc]  # two byte counts could swap
    with pytest.raises(TypeError, match="no field"):
        e.replace(lenght=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.key = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del e.length  # type: ignore[misc]
    assert (e.key, e.kind, e.length, e.offset, e.origin, e.file_index) == ("w", EntryKind.DATA, 16, 0, "irpa", 2)
    assert e != ParameterEntry.data("w", src, 0, 16, origin="irpa", file_index=2)  # identity, as eq=False
    r = e.replace(key="v")
    assert (r.key, r.source, r.file_index) == ("v", src, 2) and type(r) is ParameterEntry
    c = copy.copy(e)
    assert (c.key, c.source, c.length) == ("w", src, 16)
    s = ParameterEntry.splat("b", b"\1\0", 8)
    assert copy.deepcopy(s).read() == b"\1\0" * 4
    assert ParameterEntry(key="k", kind=EntryKind.DATA, length=3).metadata == b""


def test_metadata_decoding_is_shared_but_per_entry_correct() -> None:
    idx = ParameterIndex()
    idx.add_array("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    idx.add_array("b", np.arange(6, dtype=np.float32).reshape(2, 3) + 1)
    idx.add_array("c", np.arange(4, dtype=np.int16))
    assert idx["a"].shape == idx["b"].shape == (2, 3)
    assert idx["b"].to_numpy().tolist() == [[1, 2, 3], [4, 5, 6]]
    assert idx["c"].to_numpy().dtype == np.int16
    odd = ParameterEntry.data("o", MemorySource(b"\0" * 8), 0, 8, metadata=bytearray(b"TENSORv0:{}"))  # type: ignore[arg-type]
    assert odd.tensor is None and odd.to_numpy().dtype == np.uint8


def test_views_follow_the_source(tmp_path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(np.arange(8, dtype=np.float32).tobytes())
    info_meta = b'TENSORv0:{"type": "Tensor", "dtype": "float32", "shape": [2, 2]}'
    ro = FileSource(p)
    a = ParameterEntry.data("a", ro, 16, 16, metadata=info_meta).to_numpy()
    assert a.tolist() == [[4, 5], [6, 7]] and not a.flags.writeable
    rw = FileSource(p, writable=True)
    b = ParameterEntry.data("b", rw, 0, 16, metadata=info_meta).to_numpy()
    assert b.flags.writeable
    b[0, 0] = 42
    rw.flush()
    assert np.frombuffer(p.read_bytes()[:4], np.float32)[0] == 42
    nomap = FileSource(p, use_mmap=False)
    assert ParameterEntry.data("c", nomap, 16, 16, metadata=info_meta).to_numpy().tolist() == [[4, 5], [6, 7]]
    with pytest.raises(TruncatedError):
        ParameterEntry.data("d", ro, 24, 16).to_numpy()
    mem = bytearray(16)
    m = ParameterEntry.data("m", MemorySource(mem, writable=True), 0, 16, metadata=info_meta).to_numpy()
    m[1, 1] = 3
    assert np.frombuffer(bytes(mem), np.float32)[3] == 3


def test_lazy_entries_keep_identity_and_changes() -> None:
    made: list[int] = []

    def make(i: int) -> ParameterEntry:
        made.append(i)
        return ParameterEntry.splat(f"k{i}", b"\0", 4)

    def make_all() -> list[ParameterEntry]:
        return [make(i) for i in range(3)]

    lazy = LazyEntries(["k0", "k1", "k2"], make, make_all)
    assert lazy.keys() == ["k0", "k1", "k2"] and not made
    first = lazy[1]
    lazy[2] = ParameterEntry.splat("z", b"\1", 4)
    items = list(lazy)
    assert items[1] is first and items[2].key == "z" and lazy.keys() == ["k0", "k1", "z"]
    assert sorted(made) == [0, 1]  # make_all is only for a table nothing was taken from
    fresh = LazyEntries(["k0", "k1", "k2"], make, make_all)
    assert [e.key for e in fresh] == ["k0", "k1", "k2"] and list(fresh)[0] is fresh[0]


@pytest.mark.parametrize("count", [8, 200_000])  # copied from the mapping / read with readinto
def test_copies_own_their_data(tmp_path, count: int) -> None:
    p = tmp_path / "c.bin"
    p.write_bytes(b"\0" + np.arange(count, dtype=np.float32).tobytes())
    meta = f'TENSORv0:{{"type": "Tensor", "dtype": "float32", "shape": [{count}]}}'.encode()
    e = ParameterEntry.data("c", FileSource(p), 1, 4 * count, metadata=meta)
    for arr in (e.to_numpy(), e.to_numpy(copy=True)):  # misaligned: both are copies
        assert arr.flags.owndata and arr.flags.writeable and arr.flags.c_contiguous
        assert arr.dtype == np.float32 and arr[-1] == count - 1
        arr[0] = 5
    assert e.to_numpy()[0] == 0


def test_irpa_entries_built_at_once_share_decoded_metadata(tmp_path) -> None:
    idx = ParameterIndex()
    arrays = {f"w{i}": np.full((2, 3), i, dtype=np.float32) for i in range(6)}
    arrays["odd"] = np.arange(5, dtype=np.int16)
    for k, a in arrays.items():
        idx.add_array(k, a)
    idx.add_buffer("raw", b"12345678")  # no metadata: untyped
    path = tmp_path / "m.irpa"
    idx.create_archive_file(str(path))
    entries = list(ParameterIndex.open(path).values())  # built all at once
    by_key = {e.key: e for e in entries}
    same = [by_key[f"w{i}"] for i in range(6)]
    assert len({id(e.metadata) for e in same}) == 1 and len({id(e.tensor) for e in same}) == 1
    for k, a in arrays.items():
        got = by_key[k].to_numpy(copy=True)
        assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a)
    assert by_key["odd"].tensor is not same[0].tensor
    assert by_key["raw"].tensor is None and by_key["raw"].to_numpy().tobytes() == b"12345678"
    # The same as entries built one at a time.
    one = ParameterIndex.open(path)
    for e in entries:
        single = one[e.key]
        assert (single.metadata, single.tensor, single.offset, single.length) == (
            e.metadata,
            e.tensor,
            e.offset,
            e.length,
        )


def test_entries_from_columns_match_the_keyword_constructor() -> None:
    from paramio.core.entry import entries_from_columns
    from paramio.core.tensor import TensorInfo

    src = MemorySource(bytes(range(64)))
    info = TensorInfo("float32", (2,))
    meta = b'TENSORv0:{"type": "Tensor", "dtype": "int16", "shape": [4]}'
    made = entries_from_columns(
        keys=["a", "b"],
        lengths=[8, 8],
        offsets=[0, 16],
        source=src,
        origin="irpa",
        declared=[info, None],
        metadata=[b"", meta],
        file_indices=[3, 5],
    )
    one_by_one = [
        ParameterEntry(
            key="a",
            kind=EntryKind.DATA,
            length=8,
            source=src,
            offset=0,
            declared_tensor=info,
            origin="irpa",
            file_index=3,
        ),
        ParameterEntry(
            key="b", kind=EntryKind.DATA, length=8, metadata=meta, source=src, offset=16, origin="irpa", file_index=5
        ),
    ]
    for e, f in zip(made, one_by_one, strict=True):
        assert type(e) is ParameterEntry
        assert e.__getstate__() == f.__getstate__()  # every field, in order
        assert (e.tensor, e.read(), e.to_numpy().tolist()) == (f.tensor, f.read(), f.to_numpy().tolist())
        with pytest.raises(dataclasses.FrozenInstanceError):
            e.offset = 1  # type: ignore[misc]
    with pytest.raises(InvalidArgumentError, match="differ in length"):
        entries_from_columns(keys=["a"], lengths=[1, 2], offsets=[0], source=src, origin="irpa")


def test_the_whole_view_is_kept_on_the_source_not_in_a_global() -> None:
    """`to_numpy` asks a source for its whole view once and keeps the answer on the source
    (issue 23.8: no id-keyed global cache)."""
    import paramio.core.entry as entry_module

    assert not [n for n, v in vars(entry_module).items() if isinstance(v, dict) and n.endswith("VIEWS")]
    src = MemorySource(np.arange(4, dtype=np.uint8).tobytes())
    assert src.whole_view_cache is None
    assert ParameterEntry.data("a", src, 1, 2).to_numpy().tolist() == [1, 2]
    assert isinstance(src.whole_view_cache, memoryview)


def test_building_every_entry_pauses_the_collector_and_restores_it() -> None:
    """`LazyEntries.all()` builds with the cyclic collector paused (a third of the time went to
    collections) and leaves it as it found it, also when building fails."""
    import gc

    seen: list[bool] = []

    def make_all() -> list[ParameterEntry]:
        seen.append(gc.isenabled())
        return [ParameterEntry.splat("k", b"\0", 4)]

    def failing() -> list[ParameterEntry]:
        raise RuntimeError("boom")

    assert gc.isenabled()
    LazyEntries(["k"], lambda i: ParameterEntry.splat("k", b"\0", 4), make_all).all()
    assert seen == [False] and gc.isenabled()
    with pytest.raises(RuntimeError):
        LazyEntries(["k"], lambda i: ParameterEntry.splat("k", b"\0", 4), failing).all()
    assert gc.isenabled()
    gc.disable()
    try:
        LazyEntries(["k"], lambda i: ParameterEntry.splat("k", b"\0", 4), make_all).all()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_items_of_a_table_run_no_collection(tmp_path) -> None:
    """``items()`` of 10,000 entries builds the entries and their pairs with the collector
    paused: at most the one collection re-enabling it lets run (10,000 new tuples right after
    the entries set off 15 here before)."""
    import gc

    idx = ParameterIndex()
    for i in range(10_000):
        idx.add_buffer(f"w{i}", b"1234")
    path = tmp_path / "many.irpa"
    idx.create_archive_file(str(path))
    opened = ParameterIndex.open(path)
    seen: list[int] = []

    def during(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.collect()
    gc.callbacks.append(during)
    try:
        pairs = opened.items()
    finally:
        gc.callbacks.remove(during)
    assert len(seen) <= 1, seen
    assert len(pairs) == 10_000 and pairs[-1][0] == "w9999" and pairs[-1][1].read() == b"1234"
    assert [k for k, _ in pairs] == opened.keys() and all(e.metadata == b"" for _, e in pairs[:5])

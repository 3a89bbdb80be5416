"""`TensorInfo`, `Format` and `FormatContents` as records (`paramio.core.records`): the value
semantics they had as dataclasses, checked against the dataclass each used to be where one can
stand in (repr, equality, hash, signature, match), and `record`, the decorator two are built by."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import paramio
from paramio.core.errors import InvalidArgumentError
from paramio.core.planner import Span
from paramio.core.records import MutableRecord, Record, factory, record
from paramio.core.tensor import TensorInfo
from paramio.formats.contract import Format, FormatContents, SetLayout, get_format


def _old_tensor_info() -> type:
    """`TensorInfo` as it was: ``@dataclass(frozen=True, slots=True)``."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class TensorInfo:
        dtype: str
        shape: tuple[int, ...]
        extra: Mapping[str, object] = dataclasses.field(default_factory=dict)

    TensorInfo.__qualname__ = "TensorInfo"  # what its repr names
    return TensorInfo


def _old_format_contents() -> type:
    @dataclasses.dataclass(slots=True)
    class FormatContents:
        entries: list[object]
        attributes: dict[str, object] = dataclasses.field(default_factory=dict)
        paths: list[str] = dataclasses.field(default_factory=list)
        stamp: str | None = None

    FormatContents.__qualname__ = "FormatContents"
    return FormatContents


# -- TensorInfo -------------------------------------------------------------------------------


def test_tensor_info_is_a_record_without_the_decorator() -> None:
    assert issubclass(TensorInfo, Record) and not dataclasses.is_dataclass(TensorInfo)
    assert TensorInfo.__slots__ == TensorInfo.__match_args__ == ("dtype", "shape", "extra")
    assert not hasattr(TensorInfo("float32", (1,)), "__dict__")


def test_tensor_info_compares_hashes_and_prints_as_its_dataclass_did() -> None:
    old = _old_tensor_info()
    cases = [("float32", (2, 3)), ("gguf.q4_k", (256,), {"type": 12}), ("bool", ())]
    for args in cases:
        new_value, old_value = TensorInfo(*args), old(*args)  # type: ignore[arg-type]
        assert repr(new_value) == repr(old_value)
        assert new_value == TensorInfo(*args)  # type: ignore[arg-type]
    a, b = TensorInfo("float32", (2, 3), ()), old("float32", (2, 3), ())
    assert hash(a) == hash(b) == hash(("float32", (2, 3), ()))
    assert len({a, TensorInfo("float32", (2, 3), ()), TensorInfo("float32", (3, 2), ())}) == 2
    assert TensorInfo("f", (1,)) != TensorInfo("f", (2,))
    assert TensorInfo("f", (1,)) != ("f", (1,), {})  # another class: not equal
    assert TensorInfo("f", (1,)) != old("f", (1,))
    with pytest.raises(TypeError, match="unhashable"):
        hash(TensorInfo("f", (1,)))  # its default extra is a dict, as before
    assert str(inspect.signature(TensorInfo)) == (
        "(dtype: 'str', shape: 'tuple[int, ...]', extra: 'Mapping[str, object] | None' = None) -> 'None'"
    )


def test_tensor_info_takes_its_fields_by_position_or_name_and_a_fresh_extra() -> None:
    assert TensorInfo(dtype="int8", shape=(4,), extra={"k": 1}) == TensorInfo("int8", (4,), {"k": 1})
    a, b = TensorInfo("int8", (4,)), TensorInfo("int8", (4,))
    assert a.extra == {} and a.extra is not b.extra
    assert TensorInfo("int8", (4,), None).extra == {}
    with pytest.raises(TypeError):
        TensorInfo("int8")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        TensorInfo("int8", (4,), {}, 1)  # type: ignore[call-arg]


def test_tensor_info_cannot_be_changed_only_replaced() -> None:
    info = TensorInfo("float16", (8, 8))
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'dtype'"):
        info.dtype = "float32"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'shape'"):
        del info.shape  # type: ignore[misc]
    with pytest.raises(AttributeError):
        info.other = 1  # type: ignore[attr-defined]
    changed = info.replace(shape=(64,))
    assert changed == TensorInfo("float16", (64,)) and info == TensorInfo("float16", (8, 8))
    assert changed.extra is info.extra  # the fields not named are carried over as they are
    assert info.__replace__(dtype="bfloat16") == TensorInfo("bfloat16", (8, 8))  # copy.replace (3.13)
    with pytest.raises(TypeError, match="TensorInfo has no field"):
        info.replace(shapes=(1,))


def test_tensor_info_pickles_copies_and_matches_by_value() -> None:
    info = TensorInfo("gguf.q8_0", (32, 4), {"ggml_type": 8})
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(info, protocol)) == info
    assert copy.copy(info) == info and copy.copy(info).extra is info.extra
    deep = copy.deepcopy(info)
    assert deep == info and deep.extra is not info.extra
    match info:
        case TensorInfo(dtype, (rows, cols)):
            assert (dtype, rows, cols) == ("gguf.q8_0", 32, 4)
        case _:
            pytest.fail("no match")
    match info:
        case TensorInfo(dtype="gguf.q8_0", extra={"ggml_type": code}):
            assert code == 8
        case _:
            pytest.fail("no match")


# -- FormatContents ---------------------------------------------------------------------------


def test_format_contents_is_a_mutable_value_as_its_dataclass_was() -> None:
    old = _old_format_contents()
    assert issubclass(FormatContents, MutableRecord) and not dataclasses.is_dataclass(FormatContents)
    assert FormatContents.__match_args__ == old.__match_args__ == ("entries", "attributes", "paths", "stamp")
    assert repr(FormatContents([], {"a": 1}, ["f"])) == repr(old([], {"a": 1}, ["f"]))
    assert str(inspect.signature(FormatContents)) == str(inspect.signature(old)).replace(
        "list[object]", "Sequence[ParameterEntry]"
    )
    a, b = FormatContents([]), FormatContents(entries=[])
    assert a == b and a.attributes is not b.attributes and a.paths is not b.paths
    a.paths.append("m.irpa")
    a.stamp = "s1"
    assert a != b and a == FormatContents([], {}, ["m.irpa"], "s1")
    with pytest.raises(TypeError, match="unhashable"):
        hash(a)
    with pytest.raises(TypeError):
        FormatContents()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        FormatContents([], nope=1)  # type: ignore[call-arg]
    assert not hasattr(a, "__dict__")


def test_format_contents_replaces_pickles_and_copies() -> None:
    contents = FormatContents(["e"], {"k": [1]}, ["m.irpa"], "stamp")  # type: ignore[list-item]
    emptied = contents.replace(entries=[])
    assert emptied == FormatContents([], {"k": [1]}, ["m.irpa"], "stamp")
    assert emptied.attributes is contents.attributes and contents.entries == ["e"]
    assert pickle.loads(pickle.dumps(contents)) == contents
    deep = copy.deepcopy(contents)
    assert deep == contents and deep.attributes["k"] is not contents.attributes["k"]
    match contents:
        case FormatContents(entries, attributes):
            assert entries == ["e"] and attributes == {"k": [1]}


# -- Format -----------------------------------------------------------------------------------


def _toy(**changes: object) -> Format:
    irpa = get_format("irpa")
    fields: dict[str, object] = {
        "name": "toy",
        "extensions": (".toy",),
        "read_path": irpa.read_path,
        "write_path": irpa.write_path,
        "prepare": irpa.prepare,
    }
    return Format(**(fields | changes))  # type: ignore[arg-type]


def test_format_is_keyword_only_frozen_and_equal_by_value() -> None:
    assert issubclass(Format, Record) and not dataclasses.is_dataclass(Format)
    assert Format.__match_args__ == ()  # keyword-only: no positional pattern, as the dataclass
    irpa = get_format("irpa")
    with pytest.raises(TypeError, match="positional"):
        Format("toy", (".toy",), irpa.read_path, irpa.write_path, irpa.prepare)  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing required argument.*'prepare'"):
        Format(name="toy", extensions=(".toy",), read_path=irpa.read_path, write_path=irpa.write_path)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nmae'"):
        _toy(nmae="x")
    toy = _toy()
    assert toy == _toy() and toy != _toy(splats=True) and hash(toy) == hash(_toy())
    assert (toy.sniff(b"IRPA"), toy.read_source, toy.splats, toy.file_metadata) == (False, None, False, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy.name = "other"  # type: ignore[misc]
    assert repr(toy).startswith("Format(name='toy', extensions=('.toy',), read_path=")
    assert "iree_handle_order=None, set_layout=None, dequantize=None)" in repr(toy)
    signature = inspect.signature(Format)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())
    assert list(signature.parameters)[:6] == ["name", "extensions", "read_path", "write_path", "prepare", "sniff"]
    assert signature.parameters["splats"].default is False
    assert signature.parameters["name"].default is inspect.Parameter.empty


def test_format_replace_checks_what_the_constructor_checks() -> None:
    """As `dataclasses.replace` did: the copy is made by the constructor, so ``__post_init__``
    refuses a malformed change."""
    toy = _toy()
    assert toy.replace(extensions=(".toy", ".toy2")).extensions == (".toy", ".toy2")
    assert toy.replace(name="toy2") == _toy(name="toy2")
    with pytest.raises(InvalidArgumentError, match="lower case"):
        toy.replace(name="Toy")
    with pytest.raises(InvalidArgumentError, match="index suffix"):
        _toy(index_suffix=".json")


def test_registered_formats_copy_and_pickle() -> None:
    for name in ("irpa", "safetensors", "gguf"):
        fmt = get_format(name)
        assert copy.copy(fmt) == fmt and copy.deepcopy(fmt).name == name
        again = pickle.loads(pickle.dumps(fmt))
        assert again.name == name and again.extensions == fmt.extensions and again.stem("a/m.x") == fmt.stem("a/m.x")


def test_a_keyword_only_hand_written_record_copies_and_pickles() -> None:
    """A record whose constructor takes keywords only (`SetLayout`) could not be copied while
    records were rebuilt by calling the constructor with their values in order."""
    layout = get_format("irpa").set_layout
    assert isinstance(layout, SetLayout)
    assert copy.copy(layout) == layout
    assert copy.deepcopy(layout).member_suffix == layout.member_suffix
    assert pickle.loads(pickle.dumps(layout)) == layout


def test_a_hand_written_record_replaces_too() -> None:
    assert Span(1, 2).replace(length=5) == Span(1, 5)


# -- record -----------------------------------------------------------------------------------


@record
class _Point(Record):
    x: int
    y: int = 0
    tags: list[str] = factory(list)
    dims: ClassVar[int] = 2  # a class variable, not a field

    def __repr__(self) -> str:
        return "P" + super().__repr__()  # zero-argument super() works in the rebuilt class


@record(frozen=False)
class _Box(MutableRecord):
    items: list[int] = factory(list)
    label: str = "box"


def test_record_builds_slots_init_and_defaults_from_annotations() -> None:
    assert _Point.__slots__ == _Point.__match_args__ == ("x", "y", "tags")
    assert _Point.dims == 2
    assert str(inspect.signature(_Point)) == "(x: 'int', y: 'int' = 0, tags: 'list[str]' = <factory>) -> None"
    p = _Point(1)
    assert (p.x, p.y, p.tags) == (1, 0, [])
    assert _Point(1).tags is not _Point(1).tags
    assert _Point(1, 2, ["a"]) == _Point(x=1, tags=["a"], y=2)
    assert repr(p) == "P_Point(x=1, y=0, tags=[])"
    with pytest.raises(TypeError, match="missing required argument"):
        _Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        _Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 3 positional"):
        _Point(1, 2, [], 4)  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    box = _Box()
    box.items.append(1)
    box.label = "full"
    assert box == _Box([1], "full") and box != _Box()


def test_record_refuses_what_dataclass_refuses() -> None:
    with pytest.raises(TypeError, match="mutable default"):

        @record
        class Shared(Record):
            items: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="without a default follows"):

        @record
        class Order(Record):
            a: int = 0
            b: int

    with pytest.raises(TypeError, match="derive"):

        @record
        class Plain:
            a: int

    with pytest.raises(TypeError, match="derive"):

        @record
        class Mutable(MutableRecord):  # frozen=False is needed for a MutableRecord
            a: int


def test_record_keeps_a_hand_written_init_and_runs_post_init() -> None:
    seen: list[int] = []

    @record(kw_only=True)
    class Checked(Record):
        n: int
        half: int = 0

        def __post_init__(self) -> None:
            seen.append(self.n)
            if self.n % 2:
                raise ValueError("odd")

    assert Checked(n=4) == Checked(n=4, half=0) and seen == [4, 4]
    with pytest.raises(ValueError, match="odd"):
        Checked(n=4).replace(n=3)

    @record
    class Own(Record):
        a: int
        b: int

        def __init__(self, a: int) -> None:
            object.__setattr__(self, "a", a)
            object.__setattr__(self, "b", a * 2)

    assert (Own(2).a, Own(2).b) == (2, 4)


# -- what a listing imports -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_a_listing_imports_neither_dataclasses_nor_inspect_nor_importlib(
    fmt: str, make_archive: Callable[..., Path], tmp_path: Path
) -> None:
    """``paramio dump FILE`` of typed entries (a `TensorInfo` each) and the registry's `Format`
    and `FormatContents` records: the ``dataclasses`` module (and ``inspect``, ``ast``, ``dis``,
    ``tokenize`` it imports) is no part of it."""
    irpa = make_archive(tmp_path / "m.irpa", w=np.ones((2, 3), np.float32), b=np.arange(4, dtype=np.int8))
    path = irpa if fmt == "irpa" else tmp_path / f"m.{fmt}"
    if fmt != "irpa":
        paramio.write_path(path, paramio.read_path(irpa).entries)
    probe = (
        "import contextlib, io, json, sys\n"
        "from paramio.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    assert main(['dump', {str(path)!r}]) == 0\n"
        "assert '`w`' in out.getvalue(), out.getvalue()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    env["PYTHONPATH"] = str(Path(paramio.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "paramio.core.tensor" in modules and "paramio.formats.contract" in modules
    assert {"dataclasses", "inspect", "ast", "dis", "tokenize"} & modules == set()
    assert "importlib" not in modules  # the registry imports a format's module with __import__
    assert "paramio.formats.protocols" not in modules  # the readers' Protocols: annotations only


def test_the_readers_protocols_are_still_importable_from_the_contract() -> None:
    from paramio.formats import contract, protocols
    from paramio.formats.contract import MemberReader, PathReader, Preparer

    assert (PathReader, Preparer, MemberReader) == (protocols.PathReader, protocols.Preparer, protocols.MemberReader)
    assert {"PathReader", "Preparer", "MemberReader"} <= set(contract.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        contract.Nope  # noqa: B018


# -- ParameterEntry.replace -------------------------------------------------------------------


def test_entry_replace_is_the_keyword_constructor_with_fields_changed() -> None:
    """`ParameterEntry.replace` stores slots directly (readers replace an entry each): every
    public field, changed or carried over, is what the keyword constructor would store, and the
    decoded metadata is kept only while neither metadata nor the declared tensor changes."""
    from paramio.core.entry import _FIELDS, EntryKind, ParameterEntry
    from paramio.core.tensor import encode_tensor_metadata
    from paramio.sources.memory import MemorySource

    src, other = MemorySource(bytes(32)), MemorySource(bytes(8))
    meta = encode_tensor_metadata(TensorInfo("float32", (2, 2)))
    e = ParameterEntry.data("w", src, 4, 16, metadata=meta, origin="irpa", file_index=1)
    assert e.tensor == TensorInfo("float32", (2, 2))  # decoded and kept on the entry
    public = [name for name in _FIELDS if not name.startswith("_")]
    changes: dict[str, object] = {
        "key": "v",
        "kind": EntryKind.EXTERNAL,
        "length": 8,
        "metadata": b"",
        "source": other,
        "offset": 0,
        "pattern": b"\1",
        "declared_tensor": TensorInfo("int8", (8,)),
        "origin": "gguf",
        "file_index": None,
    }
    assert set(changes) == set(public)
    for name, value in changes.items():
        r = e.replace(**{name: value})
        expected = {field: getattr(e, field) for field in public} | {name: value}
        assert type(r) is ParameterEntry and {field: getattr(r, field) for field in public} == expected, name
        kept = name not in ("metadata", "declared_tensor")
        assert (r._tensor_cache is e._tensor_cache) is kept, name
        assert r.tensor == (TensorInfo("float32", (2, 2)) if kept else r.declared_tensor), name
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.key = "x"  # type: ignore[misc]
    assert e.replace() is not e and e.replace().key == "w"
    with pytest.raises(TypeError, match=r"no field\(s\) \['_tensor_cache'\]"):
        e.replace(_tensor_cache=None)

    class Tagged(ParameterEntry):
        __slots__ = ()

    t = Tagged(key="t", kind=EntryKind.DATA, length=16, source=src).replace(key="u")
    assert type(t) is Tagged and (t.key, t.length, t.source) == ("u", 16, src)


def test_entry_data_and_splat_make_what_the_keyword_constructor_makes() -> None:
    """`ParameterEntry.data` and `splat` store the slots directly (one call per entry read):
    the same fields as the keyword constructor, an immutable entry, and a subclass still
    constructed its own way."""
    from paramio.core.entry import _FIELDS, EntryKind, ParameterEntry
    from paramio.core.tensor import encode_tensor_metadata
    from paramio.sources.memory import MemorySource

    src = MemorySource(bytes(range(32)))
    info = TensorInfo("int8", (16,))
    meta = encode_tensor_metadata(TensorInfo("int16", (8,)))
    made = [
        (
            ParameterEntry.data("w", src, 8, 16, metadata=meta, tensor=info, origin="gguf", file_index=4),
            ParameterEntry(
                key="w",
                kind=EntryKind.DATA,
                length=16,
                metadata=meta,
                source=src,
                offset=8,
                declared_tensor=info,
                origin="gguf",
                file_index=4,
            ),
        ),
        (
            ParameterEntry.data("x", src, 0, 4, kind=EntryKind.EXTERNAL),
            ParameterEntry(key="x", kind=EntryKind.EXTERNAL, length=4, source=src),
        ),
        (
            ParameterEntry.splat("s", bytearray(b"\1\2"), 6, metadata=meta, origin="irpa"),
            ParameterEntry(key="s", kind=EntryKind.SPLAT, length=6, metadata=meta, pattern=b"\1\2", origin="irpa"),
        ),
    ]
    for fast, keyword in made:
        assert type(fast) is ParameterEntry
        assert [getattr(fast, f) for f in _FIELDS] == [getattr(keyword, f) for f in _FIELDS], fast.key
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.length = 1  # type: ignore[misc]
    assert type(made[2][0].pattern) is bytes and made[2][0].read() == b"\1\2\1\2\1\2"
    assert made[0][0].tensor == info and made[1][0].tensor is None and made[1][0].read() == bytes(range(4))
    seen: list[str] = []

    class Logged(ParameterEntry):
        __slots__ = ()

        def __init__(self, **fields: object) -> None:
            seen.append(str(fields["key"]))
            super().__init__(**fields)  # type: ignore[arg-type]

    assert type(Logged.data("a", src, 0, 1)) is Logged and type(Logged.splat("b", b"\0", 1)) is Logged
    assert seen == ["a", "b"]


def test_a_subclass_without_fields_of_its_own_keeps_its_bases() -> None:
    class Quantised(TensorInfo):
        __slots__ = ()

    class Custom(Format):
        __slots__ = ()

    q = Quantised("gguf.q4_0", (32,), {"block": 32})
    assert repr(q).endswith(".Quantised(dtype='gguf.q4_0', shape=(32,), extra={'block': 32})")
    assert q != TensorInfo("gguf.q4_0", (32,), {"block": 32}) and q == Quantised("gguf.q4_0", (32,), {"block": 32})
    assert type(q.replace(shape=(64,))) is Quantised and copy.deepcopy(q) == q
    irpa = get_format("irpa")
    custom = Custom(
        name="custom", extensions=(".c",), read_path=irpa.read_path, write_path=irpa.write_path, prepare=irpa.prepare
    )
    assert ".Custom(name='custom', extensions=('.c',), read_path=" in repr(custom)
    assert custom.replace(name="c2").name == "c2" and copy.copy(custom) == custom

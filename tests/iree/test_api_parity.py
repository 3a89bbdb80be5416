"""One script, run against ``iree.runtime`` and against ``paramio``: every result compared.

`scenario(rt, folder)` exercises every name of IREE 3.13's parameter API (FileHandle,
ParameterIndex, ParameterIndexEntry, ParameterProvider, SplatValue, save_archive_file,
create_io_parameters_module and the three NumPy helpers), happy paths and errors, and records
each step's outcome: a value (reprs with memory addresses and descriptor numbers blanked), or
the built-in exception class raised and its message. The two records must agree step for step,
except at the steps in `DIFFERENCES`, where paramio does more (or refuses on purpose); the
test also checks that each of those really differs, so the list cannot go stale.

Messages: IREE's C errors read ``<context>: <file>.c:<line>: <STATUS>; <message>``; paramio's
must contain IREE's ``<message>`` (so ``assertRaisesRegex`` on IREE's words holds), and be an
instance of the same built-in class.
"""

from __future__ import annotations

import array
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import paramio

DATA = Path(__file__).parent / "data" / "iree_io" / "testdata"

#: Steps where paramio's outcome differs from IREE's on purpose, and why.
DIFFERENCES = {
    "index.add_splat 3-byte": "refused at once (IREE accepts it and fails when archiving)",
    "index.add_splat 10 of 4-byte": "refused at once (the pattern must divide the length)",
    "index.add_buffer ndarray metadata": "paramio records the array's TENSORv0 dtype and shape",
    "index.add_buffer bytes metadata": "paramio accepts metadata as bytes too (IREE: str only)",
    "index.add_buffer duplicate": "a second entry under one key is an error unless duplicates= says otherwise",
    "index.add_from_file_handle past the end": "refused at once (IREE accepts it and fails when read)",
    "index[-1]": "negative positions count from the end (IREE: TypeError)",
    "index['key']": "lookup by key (IREE: positions only)",
    "index.create_archive_file file_offset": "refused: IREE writes a file it cannot read back",
    "load missing file": "paramio's SourceError is an OSError, naming the file",
    "load format=bogus": "paramio's InvalidArgumentError (a ValueError) naming the known formats",
    "ParameterIndexEntry()": "paramio's entry class has a constructor",
    "as_numpy bfloat16": "paramio views every dtype it names (IREE: Unsupported dtype)",
    "add_numpy bfloat16": "paramio writes TENSORv0 for every dtype it names (IREE: KeyError)",
    "as_numpy splat": "paramio expands the splat (IREE views the pattern alone and fails to reshape)",
    "as_numpy safetensors entry": "paramio uses the type the file declares (IREE: no metadata, refused)",
}

_ADDR = re.compile(r"0x[0-9a-f]+")
_FD = re.compile(r"fd\(\d+\)")
_IREE_STATUS = re.compile(r"^.*?: [\w/.\-]+\.c:\d+: [A-Z_]+; ")
_BUILTINS = (
    IndexError,
    KeyError,
    NotImplementedError,
    TypeError,
    ValueError,
    OSError,
    RuntimeError,
)


def _norm(value: object) -> object:
    if isinstance(value, str):
        return _FD.sub("fd(N)", _ADDR.sub("0x?", value))
    if isinstance(value, (list, tuple)):
        return type(value)(_norm(v) for v in value)
    return value


class Raised:
    """An exception as compared: its built-in class and its message (IREE's status prefix off)."""

    def __init__(self, exc: BaseException) -> None:
        self.kind = next((c.__name__ for c in _BUILTINS if isinstance(exc, c)), type(exc).__name__)
        self.kinds = {c.__name__ for c in _BUILTINS if isinstance(exc, c)}
        text = str(exc).splitlines()[0] if str(exc) else ""
        self.message = _IREE_STATUS.sub("", text).replace("iree._runtime_libs._runtime.", "paramio.")

    def matches(self, iree: Raised) -> bool:
        if iree.kind not in self.kinds:
            return False
        if iree.message in self.message:
            return True
        # nanobind's argument errors: the same function refused the same call
        call = re.match(r"^\w+\(\): incompatible function arguments", iree.message)
        return call is not None and self.message.startswith(call.group(0))

    def __repr__(self) -> str:
        return f"raises {self.kind}: {self.message}"


def scenario(rt: ModuleType | Any, folder: Path) -> dict[str, object]:
    """Every step's outcome under `rt` (``iree.runtime`` or ``paramio``)."""
    out: dict[str, object] = {}
    folder.mkdir()

    def step(label: str, fn: Callable[[], object]) -> None:
        try:
            out[label] = _norm(fn())
        except Exception as exc:  # noqa: BLE001 -- the outcome under test
            out[label] = Raised(exc)

    # -- FileHandle -----------------------------------------------------------------------
    mem = rt.FileHandle.wrap_memory(b"foobar")
    step("FileHandle.wrap_memory repr", lambda: repr(mem))
    step("FileHandle memory flags", lambda: (mem.is_host_allocation, mem.is_fd, mem.is_async))
    step("FileHandle.host_allocation", lambda: (bytes(mem.host_allocation), mem.host_allocation.readonly))
    writable = rt.FileHandle.wrap_memory(bytearray(b"abc"), writable=True)
    step("FileHandle writable host_allocation", lambda: writable.host_allocation.readonly)
    step("FileHandle.wrap_memory(int)", lambda: rt.FileHandle.wrap_memory(1))
    step("FileHandle()", lambda: rt.FileHandle())
    step("FileHandle.wrap_fd(-1)", lambda: rt.FileHandle.wrap_fd(-1))
    view = rt.FileHandle.wrap_memory(b"kept").host_allocation
    step("host_allocation outlives its handle", lambda: bytes(view))

    # -- ParameterIndex built in memory ------------------------------------------------------
    index = rt.ParameterIndex()
    step("empty index repr", lambda: repr(index))
    step("empty index len", lambda: len(index))
    step("index[0] of empty", lambda: index[0])
    step("index.add_from_file_handle", lambda: index.add_from_file_handle("data", mem, length=3, offset=3))
    step("entry repr (handle)", lambda: repr(index[0]))
    step("entry.file_view", lambda: bytes(index[0].file_view))
    step("entry.file_storage", lambda: (repr(index[0].file_storage[0]), index[0].file_storage[1]))
    step("entry.metadata empty", lambda: index[0].metadata)
    step("entry flags", lambda: (index[0].is_file, index[0].is_splat, index[0].key, index[0].length))
    step("entry.splat_pattern of data", lambda: index[0].splat_pattern)
    step("index.add_splat 20-byte", lambda: index.add_splat("big", array.array("f", [1, 2, 3, 4, 5]), 100))
    step("index.add_splat", lambda: index.add_splat("s", np.float32(1.0), 8))
    step("splat repr", lambda: repr(index[1]))
    step("splat fields", lambda: (index[1].splat_pattern, index[1].is_splat, index[1].is_file, index[1].length))
    step("splat file_view", lambda: index[1].file_view)
    step("splat file_storage", lambda: index[1].file_storage)
    step("index.add_splat str pattern", lambda: index.add_splat("str", "ab", 8))
    step("index.add_buffer metadata", lambda: index.add_buffer("m", b"xy", metadata="meta"))
    step("buffer entry metadata", lambda: index[2].metadata)
    step("index.add_buffer int", lambda: index.add_buffer("bad", 5))
    step("index.add_buffer 0-d", lambda: index.add_buffer("zero_d", np.float32(3.0)))
    step("index.reserve", lambda: index.reserve(16))
    step("index[5] out of range", lambda: index[5])
    step("index['key']", lambda: index["data"])
    step("index len", lambda: len(index))
    step("index.items", lambda: [(k, repr(e)) for k, e in index.items()])
    step("index repr", lambda: repr(index))
    step("isinstance ParameterIndexEntry", lambda: isinstance(index[0], rt.ParameterIndexEntry))
    step("ParameterIndexEntry()", lambda: rt.ParameterIndexEntry())

    odd = rt.ParameterIndex()
    step("index.add_splat 3-byte", lambda: odd.add_splat("s3", b"abc", 9))
    step("index.add_splat 10 of 4-byte", lambda: odd.add_splat("s10", b"abcd", 10))
    step(
        "index.add_buffer ndarray metadata",
        lambda: (odd.add_buffer("nd", np.arange(3, dtype=np.float32)), odd[len(odd) - 1].metadata),
    )
    step("index.add_buffer bytes metadata", lambda: odd.add_buffer("mb", b"x", metadata=b"m"))
    step("index.add_buffer duplicate", lambda: (odd.add_buffer("twice", b"1"), odd.add_buffer("twice", b"2"), len(odd)))
    step("index.add_from_file_handle past the end", lambda: odd.add_from_file_handle("far", mem, length=30, offset=3))
    step("index[-1]", lambda: repr(odd[-1]))

    # -- archives: create, save, load ----------------------------------------------------------
    a = folder / "a.irpa"
    step("index.create_archive_file", lambda: repr(index.create_archive_file(str(a))))
    step("archive bytes", lambda: a.read_bytes())
    step(
        "index.create_archive_file file_offset",
        lambda: index.create_archive_file(str(folder / "o.irpa"), 4096) and None,
    )

    orig = np.asarray([[1], [2], [3]], dtype=np.int64)
    s = folder / "s.irpa"
    entries = {
        "weight": rt.SplatValue(np.int8(2), [30, 20]),
        "bias": rt.SplatValue(array.array("b", [32]), 30),
        "array": orig,
    }
    step("SplatValue repr", lambda: [repr(v) for v in entries.values() if isinstance(v, rt.SplatValue)])
    step("SplatValue fields", lambda: (entries["weight"].total_length, int(entries["weight"].pattern)))  # type: ignore[union-attr]
    step("SplatValue shaped", lambda: rt.SplatValue(np.array([[1.5]], dtype=np.float32), (2, 3)).total_length)
    step("SplatValue of 2", lambda: rt.SplatValue(np.array([1, 2], dtype=np.int8), 30))
    step("save_archive_file", lambda: rt.save_archive_file(entries, s))
    step("save_archive_file bytes", lambda: s.read_bytes())

    for label, kwargs in (
        ("load", {}),
        ("load mmap=False", {"mmap": False}),
        ("load file_async", {"mode": "file_async"}),
    ):
        loaded = rt.ParameterIndex()
        step(label, lambda loaded=loaded, kwargs=kwargs: loaded.load(str(s), **kwargs))
        step(f"{label} items", lambda loaded=loaded: [(k, repr(e)) for k, e in loaded.items()])
        step(f"{label} repr", lambda loaded=loaded: repr(loaded))
    loaded = rt.ParameterIndex()
    loaded.load(str(s))
    step("loaded array data", lambda: np.asarray(dict(loaded.items())["array"].file_view).view(np.int64).tolist())
    step("load mode=bogus", lambda: rt.ParameterIndex().load(str(s), mode="bogus"))
    step("load mode and mmap", lambda: rt.ParameterIndex().load(str(s), mode="file_async", mmap=True))
    step("load missing file", lambda: rt.ParameterIndex().load(str(folder / "missing.irpa")))
    step("load format=bogus", lambda: rt.ParameterIndex().load(str(s), format="bogus"))

    raw = s.read_bytes()
    for fmt in ("irpa", ".irpa", "IRPA"):
        byfh = rt.ParameterIndex()
        step(
            f"load_from_file_handle memory {fmt}",
            lambda byfh=byfh, fmt=fmt: byfh.load_from_file_handle(rt.FileHandle.wrap_memory(raw), fmt),
        )
        step(f"load_from_file_handle memory {fmt} items", lambda byfh=byfh: [(k, repr(e)) for k, e in byfh.items()])
    with open(s, "rb") as f:
        fdh = rt.FileHandle.wrap_fd(f.fileno(), True, False)
        step("FileHandle.wrap_fd repr", lambda: repr(fdh))
        step("FileHandle fd flags", lambda: (fdh.is_fd, fdh.is_host_allocation, fdh.is_async, fdh.fd != f.fileno()))
        step("FileHandle fd host_allocation", lambda: fdh.host_allocation)
        byfd = rt.ParameterIndex()
        step("load_from_file_handle fd", lambda: byfd.load_from_file_handle(fdh, "irpa"))
        step("load_from_file_handle fd items", lambda: [(k, repr(e)) for k, e in byfd.items()])
    step(
        "load_from_file_handle bogus",
        lambda: rt.ParameterIndex().load_from_file_handle(rt.FileHandle.wrap_memory(raw), "bogus"),
    )

    for name in ("parameter_weight_bias_1.gguf", "parameter_weight_bias_1.safetensors"):
        peer = rt.ParameterIndex()
        step(f"load {name}", lambda peer=peer, name=name: peer.load(str(DATA / name)))
        step(f"{name} entries", lambda peer=peer: [(k, e.length, bytes(e.file_view)) for k, e in peer.items()])
        step(
            f"{name} via handle",
            lambda name=name: [(k, bytes(e.file_view)) for k, e in _by_handle(rt, DATA / name).items()],
        )
    st = rt.ParameterIndex()
    st.load(str(DATA / "parameter_weight_bias_1.safetensors"))
    step("as_numpy safetensors entry", lambda: rt.parameter_index_entry_as_numpy_ndarray(st.items()[0][1]).tolist())

    # -- the NumPy helpers -------------------------------------------------------------------
    nd = rt.ParameterIndex()
    for key, arr in (
        ("i32", np.array([[1, 2], [3, 4]], np.int32)),
        ("zero_d", np.array(1234, np.int32)),
        ("f16", np.ones((2, 3), np.float16)),
        ("bool", np.array([True, False])),
    ):
        step(f"add_numpy {key}", lambda key=key, arr=arr: rt.parameter_index_add_numpy_ndarray(nd, key, arr))
    for i, (key, _) in enumerate(nd.items()):
        step(f"add_numpy {key} metadata", lambda i=i: nd[i].metadata)
        step(f"as_numpy {key}", lambda i=i: _array(rt.parameter_index_entry_as_numpy_ndarray(nd[i])))
        step(f"as_flat {key}", lambda i=i: _array(rt.parameter_index_entry_as_numpy_flat_ndarray(nd[i])))
    import ml_dtypes

    step("add_numpy bfloat16", lambda: rt.parameter_index_add_numpy_ndarray(nd, "bf16", np.ones(2, ml_dtypes.bfloat16)))
    bad = rt.ParameterIndex()
    for key, md in (
        ("nometa", "no prefix"),
        ("version", "FOO:{}"),
        ("nottensor", 'TENSORv0:{"type": "Blob"}'),
        ("nodtype", 'TENSORv0:{"type": "Tensor", "shape": [1]}'),
        ("dtype", 'TENSORv0:{"type": "Tensor", "dtype": "float128", "shape": [1]}'),
        ("shape", 'TENSORv0:{"type": "Tensor", "dtype": "uint8", "shape": ["x"]}'),
        ("turbine", 'PYTORCH:{"type": "Tensor", "dtype": "uint8", "shape": [4]}'),
        ("bfloat16", 'TENSORv0:{"type": "Tensor", "dtype": "bfloat16", "shape": [2]}'),
    ):
        bad.add_buffer(key, b"\x01\x02\x03\x04", metadata=md)
        last = len(bad) - 1
        step(f"as_numpy {key}", lambda i=last: _array(rt.parameter_index_entry_as_numpy_ndarray(bad[i])))
    bad.add_splat("splat", np.float32(2.0), 8, metadata='TENSORv0:{"type": "Tensor", "dtype": "float32", "shape": [2]}')
    step("as_flat splat", lambda: _array(rt.parameter_index_entry_as_numpy_flat_ndarray(bad[len(bad) - 1])))
    step("as_numpy splat", lambda: _array(rt.parameter_index_entry_as_numpy_ndarray(bad[len(bad) - 1])))
    turbine = rt.ParameterIndex()
    turbine.load(str(DATA / "tensor_saved_with_iree_turbine.irpa"))
    step("as_numpy iree-turbine file", lambda: _array(rt.parameter_index_entry_as_numpy_ndarray(turbine.items()[0][1])))

    # -- providers and the io_parameters module ------------------------------------------------
    import iree.runtime as iree_rt

    prov = rt.ParameterIndex()
    prov.add_buffer("a0", np.arange(4, dtype=np.int64))
    step("create_provider", lambda: type(prov.create_provider(scope="a")).__name__)
    step("isinstance ParameterProvider", lambda: isinstance(prov.create_provider(), rt.ParameterProvider))
    step(
        "create_provider max_concurrent_operations",
        lambda: type(prov.create_provider(scope="a", max_concurrent_operations=4)).__name__,
    )
    step("create_provider negative", lambda: prov.create_provider(scope="a", max_concurrent_operations=-1))
    step("ParameterProvider()", lambda: rt.ParameterProvider())
    instance = iree_rt.VmInstance()
    step(
        "create_io_parameters_module",
        lambda: repr(rt.create_io_parameters_module(instance, prov.create_provider(scope="a"))),
    )
    step("create_io_parameters_module none", lambda: repr(rt.create_io_parameters_module(instance)))
    step("create_io_parameters_module bad", lambda: rt.create_io_parameters_module(instance, 5))
    return out


def _by_handle(rt: Any, path: Path) -> Any:
    index = rt.ParameterIndex()
    index.load_from_file_handle(rt.FileHandle.wrap_memory(path.read_bytes()), path.suffix.lstrip("."))
    return index


def _array(a: np.ndarray) -> tuple[str, tuple[int, ...], bytes]:
    return (str(a.dtype), a.shape, a.tobytes())


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], dict[str, object]]:
    rt = pytest.importorskip("iree.runtime")
    import warnings

    base = tmp_path_factory.mktemp("parity")
    theirs = scenario(rt, base / "iree")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paramio.FormatWarning)  # IREE's GGUF test file repeats a key
        ours = scenario(paramio, base / "paramio")
    return theirs, ours


def _agree(theirs: object, ours: object) -> bool:
    if isinstance(theirs, Raised):
        return isinstance(ours, Raised) and ours.matches(theirs)
    return not isinstance(ours, Raised) and theirs == ours


@pytest.mark.interop
def test_every_step_agrees_with_iree(outcomes: tuple[dict[str, object], dict[str, object]]) -> None:
    theirs, ours = outcomes
    assert list(theirs) == list(ours)
    assert len(theirs) > 100
    disagree = {k: (theirs[k], ours[k]) for k in theirs if k not in DIFFERENCES and not _agree(theirs[k], ours[k])}
    assert disagree == {}


@pytest.mark.interop
def test_documented_differences_are_real(outcomes: tuple[dict[str, object], dict[str, object]]) -> None:
    theirs, ours = outcomes
    assert set(DIFFERENCES) <= set(theirs)
    same = [k for k in DIFFERENCES if _agree(theirs[k], ours[k])]
    assert same == []


@pytest.mark.interop
def test_archives_are_byte_identical(outcomes: tuple[dict[str, object], dict[str, object]]) -> None:
    theirs, ours = outcomes
    for key in ("archive bytes", "save_archive_file bytes"):
        assert isinstance(ours[key], bytes) and ours[key] == theirs[key], key


def test_names_resolve_without_iree_imports() -> None:
    """`ParameterProvider` is IREE's class where IREE is installed, paramio's stand-in else."""
    cls = paramio.ParameterProvider
    try:
        import iree.runtime as rt
    except ImportError:
        with pytest.raises(TypeError, match="no constructor defined"):
            cls()
    else:
        assert cls is rt.ParameterProvider
    assert os.path.isdir(DATA)


def _iree_parameters(doc_line: str) -> list[tuple[str, str | None, bool]]:
    """(name, default text, keyword-only) for each parameter of a nanobind signature line."""
    inner = doc_line[doc_line.index("(") + 1 : doc_line.rindex(") ->")]
    out: list[tuple[str, str | None, bool]] = []
    kw_only = False
    for part in (p.strip() for p in inner.split(", ")):
        if part in ("self", "/"):
            continue
        if part == "*":
            kw_only = True
            continue
        name, _, rest = part.partition(":")
        default = rest.split(" = ", 1)[1] if " = " in rest else None
        out.append((name.strip(), default, kw_only))
    return out


def _our_parameters(fn: Callable[..., object]) -> list[tuple[str, str | None, bool]]:
    import inspect

    out: list[tuple[str, str | None, bool]] = []
    for p in inspect.signature(fn).parameters.values():
        if p.name == "self":
            continue
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        out.append((p.name, default, p.kind is inspect.Parameter.KEYWORD_ONLY))
    return out


@pytest.mark.interop
@pytest.mark.parametrize(
    ("cls", "method"),
    [
        ("ParameterIndex", m)
        for m in (
            "add_buffer",
            "add_from_file_handle",
            "add_splat",
            "create_archive_file",
            "create_provider",
            "items",
            "load",
            "load_from_file_handle",
            "reserve",
        )
    ]
    + [("FileHandle", "wrap_fd"), ("FileHandle", "wrap_memory")],
)
def test_signatures_and_defaults_are_iree_s(cls: str, method: str) -> None:
    """Every parameter IREE's method has, ours has: same name, same place, same default (ours
    may add keyword-only ones after them)."""
    rt = pytest.importorskip("iree.runtime")
    theirs = _iree_parameters((getattr(getattr(rt, cls), method).__doc__ or "").splitlines()[0])
    ours = _our_parameters(getattr(getattr(paramio, cls), method))
    assert ours[: len(theirs)] == theirs
    assert all(kw for _, _, kw in ours[len(theirs) :])


@pytest.mark.interop
@pytest.mark.parametrize(
    "name",
    [
        "SplatValue",
        "save_archive_file",
        "parameter_index_add_numpy_ndarray",
        "parameter_index_entry_as_numpy_ndarray",
        "parameter_index_entry_as_numpy_flat_ndarray",
    ],
)
def test_python_helpers_have_iree_s_signatures(name: str) -> None:
    rt = pytest.importorskip("iree.runtime")
    assert _our_parameters(getattr(paramio, name)) == _our_parameters(getattr(rt, name))

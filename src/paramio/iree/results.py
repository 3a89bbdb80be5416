"""What ``paramio run`` does with a function's results, as iree-run-module 3.13 does it.

* ``--output=SPEC`` (one per result, in order): empty ignores the result; ``-`` prints
  ``hal.buffer_view`` and its text; ``@file.npy`` / ``+file.npy`` writes / appends a NumPy
  array; any other ``@file`` / ``+file`` writes / appends the raw element bytes. Unlike IREE,
  each file is written atomically (an append rewrites the file under a temporary name).
* ``--expected_output=VALUE`` (``--input`` syntax, or ``(ignored)``): compares each result and
  prints IREE's ``[SUCCESS]`` / ``[FAILED] ...`` text. Floats compare approximately,
  ``abs(actual - expected) <= atol + rtol * abs(expected)`` with NaN equal to NaN and IREE's
  per-type ``atol`` (``--expected_f32_threshold`` ...); ``--equality_mode=exact`` compares
  bytes.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Sequence

import numpy as np

from paramio.core.dtypes import numpy_dtype
from paramio.core.errors import InvalidArgumentError
from paramio.formats.elements import name_of_mlir
from paramio.iree.values import PRINT_MAX_ELEMENTS, format_element, format_result, type_name

__all__ = ["Equality", "ScalarResult", "compare_results", "result_types", "typed_results", "write_outputs"]

IGNORED = "(ignored)"

#: IREE VM value types (a function's scalar results) -> NumPy dtypes, named by the one table.
_SCALARS: dict[str, np.dtype[np.generic]] = {
    t: numpy_dtype(name.dtype)
    for t in ("i8", "i16", "i32", "i64", "f32", "f64")
    if (name := name_of_mlir(t)) is not None
}
_DECLARED_RESULT = re.compile(r"%output\d+: ([^,()<>]+(?:<[^>]*>)?)")


@dataclasses.dataclass(frozen=True, slots=True)
class ScalarResult:
    """A VM value result (``i32``, ``f32`` ...): IREE's Python binding hands back a bare int or
    float; the declared type says how iree-run-module prints and saves it."""

    etype: str
    value: np.ndarray  # 0-d, of the declared type

    def text(self) -> str:
        return f"{self.etype}={format_element(self.value.item(), self.value.dtype)}"


def result_types(declaration: str) -> list[str]:
    """The result types of an ``iree.abi.declaration`` (``sync func @f(...) -> (%output0: i32,
    %output1: tensor<4xf32>)``), in order; empty when it declares none or is absent."""
    _, arrow, results = declaration.partition("->")
    return [t.strip() for t in _DECLARED_RESULT.findall(results)] if arrow else []


def typed_results(values: Sequence[object], types: Sequence[str]) -> list[object]:
    """Host results with each bare scalar typed from the declaration (`ScalarResult`)."""
    out: list[object] = []
    for i, v in enumerate(values):
        if isinstance(v, (bool, int, float)):
            etype = types[i] if i < len(types) else ""
            if etype not in _SCALARS:
                etype = "f64" if isinstance(v, float) else "i64"
            out.append(ScalarResult(etype, np.array(v, dtype=_SCALARS[etype])))
        else:
            out.append(v)
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Equality:
    """IREE's comparison flags, with IREE 3.13's defaults."""

    mode: str = "approximate"
    f16: float = 0.001
    f32: float = 0.0001
    f64: float = 0.0001
    bf16: float = 0.01
    rtol: float = 1e-05

    def atol(self, etype: str) -> float | None:
        """The absolute tolerance of element type `etype`, None where the compare is exact."""
        return {"f16": self.f16, "f32": self.f32, "f64": self.f64, "bf16": self.bf16}.get(etype)


def _shape_type(arr: np.ndarray) -> str:
    return "x".join([*(str(d) for d in arr.shape), type_name(arr)])


def _first_mismatch(expected: np.ndarray, actual: np.ndarray, eq: Equality) -> int | None:
    if expected.size == 0:
        return None
    atol = eq.atol(type_name(actual))
    if eq.mode == "exact" or atol is None:
        e = np.ascontiguousarray(expected).reshape(-1).view(np.uint8).reshape(expected.size, -1)
        a = np.ascontiguousarray(actual).reshape(-1).view(np.uint8).reshape(actual.size, -1)
        bad = np.flatnonzero((e != a).any(axis=1))
    else:
        e64 = expected.astype(np.float64).reshape(-1)
        a64 = actual.astype(np.float64).reshape(-1)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.abs(a64 - e64) <= atol + eq.rtol * np.abs(e64)
        ok |= np.isnan(e64) & np.isnan(a64)
        ok |= e64 == a64  # equal infinities
        bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else None


def _variant_name(value: object) -> str:
    if isinstance(value, ScalarResult):
        return value.etype
    return "hal.buffer_view" if isinstance(value, np.ndarray) else type(value).__name__


def _compare_scalar(i: int, expected: object, actual: ScalarResult) -> str | None:
    """Scalars compare by value. (IREE 3.13 reports every scalar result as a "variant types
    mismatch; expected i32 but got i32", equal or not: its test of the types is inverted.)"""
    if isinstance(expected, np.ndarray) or not isinstance(expected, (int, float)):
        return (
            f"[FAILED] result[{i}]: variant types mismatch; expected {_variant_name(expected)} but got {actual.etype}\n"
        )
    want = np.array(expected).astype(actual.value.dtype)
    if want == actual.value:
        return None
    e = format_element(want.item(), want.dtype)
    a = format_element(actual.value.item(), actual.value.dtype)
    return f"[FAILED] result[{i}]: {actual.etype} values differ\n  expected: {e}\n  actual: {a}\n"


def _compare_one(i: int, expected: object, actual: object, eq: Equality) -> str | None:
    """IREE's ``[FAILED] result[i]: ...`` block, or None when the result matches."""
    if isinstance(actual, ScalarResult):
        return _compare_scalar(i, expected, actual)
    if not isinstance(actual, np.ndarray) or not isinstance(expected, np.ndarray):
        return (
            f"[FAILED] result[{i}]: variant types mismatch; expected {_variant_name(expected)} "
            f"but got {_variant_name(actual)}\n"
        )
    want = _shape_type(expected)
    if actual.shape != expected.shape or type_name(actual) != type_name(expected):
        why = f"metadata is {_shape_type(actual)}; expected that the view matches {want}"
    else:
        at = _first_mismatch(expected, actual, eq)
        if at is None:
            return None
        a, e = actual.reshape(-1)[at], expected.reshape(-1)[at]
        why = (
            f"element at index {at} ({format_element(a, actual.dtype)}) does not match the expected "
            f"({format_element(e, expected.dtype)})"
        )
    return (
        f"[FAILED] result[{i}]: {why}; expected that the view is equal to contents of a view of {want}\n"
        f"  expected:\n{format_result(expected, PRINT_MAX_ELEMENTS)}\n"
        f"  actual:\n{format_result(actual, PRINT_MAX_ELEMENTS)}\n"
    )


def compare_results(expected: Sequence[object], results: Sequence[object], eq: Equality) -> tuple[bool, str]:
    """(all matched, the text iree-run-module prints). `expected` holds None for ``(ignored)``."""
    if len(expected) != len(results):
        return False, f"[FAILED] expected {len(expected)} list elements but {len(results)} provided\n"
    blocks = [
        _compare_one(i, e, r, eq) for i, (e, r) in enumerate(zip(expected, results, strict=True)) if e is not None
    ]
    failed = [b for b in blocks if b is not None]
    if failed:
        return False, "".join(failed)
    return True, "[SUCCESS] all function outputs matched their expected values.\n"


def _array(value: object) -> np.ndarray:
    return value.value if isinstance(value, ScalarResult) else np.asarray(value)


def _npy_bytes(value: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, _array(value), allow_pickle=False)
    return buf.getvalue()


def _raw_bytes(value: object) -> bytes:
    return np.ascontiguousarray(_array(value)).tobytes()


def write_outputs(function: str, specs: Sequence[str], results: Sequence[object], max_elements: int) -> str:
    """Apply each ``--output`` spec to its result; returns the text for stdout.

    Files are collected first and each written once, atomically: an ``@`` replaces the file,
    a ``+`` appends to what the file held (or to what an earlier spec of this run wrote).
    Raises `InvalidArgumentError` (nothing written) unless there is one spec per result, as
    IREE requires, or for a spec of unknown form.
    """
    if len(specs) != len(results):
        raise InvalidArgumentError(
            f"{len(specs)} --output flags given but @{function} returns {len(results)} result(s); "
            "give one per result (--output= ignores one)"
        )
    text: list[str] = []
    files: dict[str, list[bytes]] = {}
    appends: dict[str, bool] = {}
    for spec, value in zip(specs, results, strict=True):
        if spec == "":
            continue
        if spec == "-":
            if isinstance(value, np.ndarray):
                text.append(f"hal.buffer_view\n{format_result(value, max_elements)}\n")
            elif isinstance(value, ScalarResult):
                text.append(f"{value.text()}\n")
            else:
                text.append(f"{value}\n")
            continue
        mode, path = spec[0], spec[1:]
        if mode not in "@+" or not path:
            raise InvalidArgumentError(f"--output={spec}: expected '', '-', @file or +file (.npy or raw bytes)")
        data = _npy_bytes(value) if path.lower().endswith(".npy") else _raw_bytes(value)
        if path not in files:
            files[path] = []
            appends[path] = mode == "+"
        elif mode == "@":
            files[path], appends[path] = [], False
        files[path].append(data)
    for path, chunks in files.items():
        _write_file(path, chunks, append=appends[path])
    return "".join(text)


def _write_file(path: str, chunks: list[bytes], *, append: bool) -> None:
    from paramio.formats.output import AtomicOutput
    from paramio.formats.targets import resolve_output

    head = b""
    if append and not resolve_output(path).streamed:  # appending to a stream is writing to it
        try:
            with open(path, "rb") as f:
                head = f.read()
        except FileNotFoundError:
            head = b""
    with AtomicOutput(path) as out:
        pos = 0
        for data in (head, *chunks):
            if data:
                out.pwrite(data, pos)
                pos += len(data)
        out.commit()

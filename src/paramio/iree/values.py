"""``--input`` values and printed results in iree-run-module's text format.

Inputs: ``[SHAPEx]TYPE=V1,V2 ...`` (values split by commas or spaces, brackets ignored, one value
broadcast to the whole shape), ``SHAPExTYPE=@file.bin`` (raw element bytes), ``@file.npy``
(every array the file holds, in order: `parse_inputs`) or a bare scalar (``3``, ``2.5``).
Results print as iree-run-module prints them: ``4xf32=11 22 33 44``, rows in brackets
(``2x2xf32=[1 2][3 4]``), floats as C's ``%G``.
"""

from __future__ import annotations

import re

import numpy as np

from paramio.core.dtypes import numpy_dtype
from paramio.core.errors import InvalidArgumentError

__all__ = ["ELEMENT_TYPES", "format_element", "format_result", "parse_input", "parse_inputs", "type_name"]

#: IREE element type -> paramio / NumPy dtype name
ELEMENT_TYPES: dict[str, str] = {
    "i1": "bool",
    "i8": "int8",
    "si8": "int8",
    "ui8": "uint8",
    "i16": "int16",
    "si16": "int16",
    "ui16": "uint16",
    "i32": "int32",
    "si32": "int32",
    "ui32": "uint32",
    "i64": "int64",
    "si64": "int64",
    "ui64": "uint64",
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
}
_PRINT_NAMES = {
    "bool": "i1",
    "int8": "i8",
    "uint8": "ui8",
    "int16": "i16",
    "uint16": "ui16",
    "int32": "i32",
    "uint32": "ui32",
    "int64": "i64",
    "uint64": "ui64",
    "float16": "f16",
    "bfloat16": "bf16",
    "float32": "f32",
    "float64": "f64",
}
_SPLIT = re.compile(r"[\s,\[\]]+")


def _load_npy_all(text: str, flag: str) -> list[np.ndarray]:
    """Every array of a .npy file (``--output=+file.npy`` appends several), in order."""
    path = text[1:]
    arrays: list[np.ndarray] = []
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            while f.tell() < size:
                arrays.append(np.load(f, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidArgumentError(f"--{flag}={text}: cannot read the .npy file: {exc}") from exc
    if not arrays:
        raise InvalidArgumentError(f"--{flag}={text}: the .npy file holds no array")
    return arrays


def parse_inputs(text: str, flag: str = "input") -> list[np.ndarray | int | float]:
    """One ``--input`` flag as the values it gives: several for a .npy file of several arrays."""
    if text.startswith("@"):
        return list(_load_npy_all(text, flag))
    return [parse_input(text, flag)]


def _scalar(text: str) -> int | float | None:
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def parse_input(text: str, flag: str = "input") -> np.ndarray | int | float:
    """One ``--input`` value as a NumPy array (or a Python scalar for a bare number).
    Raises `InvalidArgumentError` on bad syntax."""
    if text.startswith("@"):
        return _load_npy_all(text, flag)[0]
    head, sep, body = text.partition("=")
    if not sep:
        value = _scalar(text.strip())
        if value is None:
            raise InvalidArgumentError(f"--{flag}={text}: expected [SHAPEx]TYPE=VALUES, e.g. 4xf32=1,2,3,4")
        return value
    *dims, etype = head.split("x")
    name = ELEMENT_TYPES.get(etype)
    if name is None:
        raise InvalidArgumentError(
            f"--{flag}={text}: unknown element type {etype!r}; known: {', '.join(ELEMENT_TYPES)}"
        )
    try:
        shape = tuple(int(d) for d in dims)
    except ValueError:
        raise InvalidArgumentError(f"--{flag}={text}: shape {'x'.join(dims)!r} is not a list of integers") from None
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    dtype = numpy_dtype(name)
    if body.startswith("@"):  # raw element bytes from a file
        try:
            raw = np.fromfile(body[1:], dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(f"--{flag}={text}: cannot read {body[1:]}: {exc}") from exc
        if raw.size != count * dtype.itemsize:
            raise InvalidArgumentError(f"--{flag}={text}: {raw.size} bytes for {count * dtype.itemsize} expected")
        return raw.view(dtype).reshape(shape)
    values = [v for v in _SPLIT.split(body) if v]
    try:
        parsed = np.array(
            [float(v) if dtype.kind in "fV" else int(v, 0) for v in values],
            dtype=np.float64 if dtype.kind in "fV" else None,
        )
    except ValueError as exc:
        raise InvalidArgumentError(f"--{flag}={text}: {exc}") from exc
    if len(parsed) == 1:
        parsed = np.repeat(parsed, count)
    if len(parsed) != count:
        raise InvalidArgumentError(f"--{flag}={text}: {len(parsed)} values for a shape of {count} elements")
    return parsed.astype(dtype).reshape(shape)


def _element(v: object, kind: str) -> str:
    if kind == "f":
        return f"{float(v):G}"  # type: ignore[arg-type]
    if kind == "b":
        return "1" if v else "0"
    return str(int(v))  # type: ignore[call-overload]


#: iree-run-module prints at most this many elements of a result (``--output_max_element_count``).
PRINT_MAX_ELEMENTS = 1024


def type_name(array: np.ndarray) -> str:
    """IREE's element type name of `array` (``f32``, ``i32``, ``ui8``)."""
    from paramio.core.dtypes import dtype_of_numpy

    return _PRINT_NAMES.get(dtype_of_numpy(array.dtype).name, str(array.dtype))


def _kind(etype: str) -> str:
    return "f" if etype.startswith(("f", "bf")) else ("b" if etype == "i1" else "i")


def format_element(value: object, dtype: np.dtype) -> str:
    """One element as iree-run-module prints it."""
    kind = _kind(type_name(np.empty(0, dtype)))
    return _element(np.float64(value) if kind == "f" else value, kind)  # type: ignore[arg-type]


def format_result(array: np.ndarray, max_elements: int = PRINT_MAX_ELEMENTS) -> str:
    """``SHAPExTYPE=values`` as iree-run-module prints a buffer view: the first `max_elements`
    elements in row-major order; the innermost row where they run out ends in ``...`` and every
    later row prints as ``[...]``, keeping the nesting."""
    arr = np.asarray(array)
    etype = type_name(arr)
    kind = _kind(etype)
    head = "x".join([*(str(d) for d in arr.shape), etype])
    return f"{head}={_nested(arr, kind, [max_elements])}"


def _nested(arr: np.ndarray, kind: str, budget: list[int]) -> str:
    """`arr` as nested rows, spending `budget[0]` elements."""
    if arr.ndim == 0:
        budget[0] -= 1
        return _element(arr.item() if kind != "f" else arr.astype(np.float64).item(), kind)
    if arr.ndim == 1:
        n = max(0, min(len(arr), budget[0]))
        budget[0] -= n
        flat = arr[:n].astype(np.float64) if kind == "f" else arr[:n]
        text = " ".join(_element(v, kind) for v in flat.tolist())
        return text + "..." if n < len(arr) else text
    return "".join(f"[{_nested(sub, kind, budget)}]" for sub in arr)

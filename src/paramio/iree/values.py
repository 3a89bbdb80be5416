"""``--input`` values and printed results in iree-run-module's text format.

Inputs: ``[SHAPEx]TYPE=V1,V2 ...`` parsed by `paramio.formats.elements` exactly as
iree-run-module parses them (values split by commas, spaces or brackets, one value broadcast to
the whole shape, C ``strtol``/``strtod`` rules per value), ``SHAPExTYPE=@file.bin`` or
``=+file.bin`` (raw element bytes), ``@file.npy``
(every array the file holds, in order: `parse_inputs`) or a bare scalar (``3``, ``2.5``).
Results print as iree-run-module prints them: ``4xf32=11 22 33 44``, rows in brackets
(``2x2xf32=[1 2][3 4]``), floats as C's ``%G``.
"""

from __future__ import annotations

import math

import numpy as np

from paramio.core.dtypes import numpy_dtype
from paramio.core.errors import InvalidArgumentError
from paramio.formats.elements import ElementError, name_of_dtype, parse_buffer_elements, parse_shape_and_type

__all__ = ["format_element", "format_result", "parse_input", "parse_inputs", "type_name"]


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
    try:
        shaped = parse_shape_and_type(head)
    except ElementError as exc:
        raise InvalidArgumentError(f"--{flag}={text}: {exc}") from None
    if shaped.element.dtype is None:
        raise InvalidArgumentError(f"--{flag}={text}: element type {shaped.element.text!r} has no NumPy type")
    dtype = numpy_dtype(shaped.element.dtype)
    if body.startswith(("@", "+")):  # raw element bytes from a file (iree-run-module reads both)
        try:
            raw = np.fromfile(body[1:], dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(f"--{flag}={text}: cannot read {body[1:]}: {exc}") from exc
        if raw.size != shaped.nbytes:
            raise InvalidArgumentError(f"--{flag}={text}: {raw.size} bytes for {shaped.nbytes} expected")
        return raw.view(dtype).reshape(shaped.shape)
    try:
        data = parse_buffer_elements(shaped.element, body, shaped.count)
    except ElementError as exc:
        raise InvalidArgumentError(f"--{flag}={text}: {exc}") from None
    return np.frombuffer(data, dtype=dtype).reshape(shaped.shape).copy()


def _element(v: object, kind: str) -> str:
    if kind == "f":
        x = float(v)  # type: ignore[arg-type]
        if x != x:  # C's %G keeps a NaN's sign; Python's drops it
            return "-NAN" if math.copysign(1.0, x) < 0 else "NAN"
        return f"{x:G}"
    if kind == "b":  # IREE has no printer for i1: it prints the byte in hex
        return "01" if v else "00"
    return str(int(v))  # type: ignore[call-overload]


#: iree-run-module prints at most this many elements of a result (``--output_max_element_count``).
PRINT_MAX_ELEMENTS = 1024


def type_name(array: np.ndarray) -> str:
    """IREE's element type name of `array` (``f32``, ``i32``, ``ui8``)."""
    from paramio.core.dtypes import dtype_of_numpy

    name = name_of_dtype(dtype_of_numpy(array.dtype).name)
    return name.iree if name is not None else str(array.dtype)


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

"""What changed between two models: keys, types, and values, in bounded memory.

`diff(a, b)` takes anything `paramio.load` takes, formats may differ, local or remote. Entries
are the same when their bytes are: decided by the stored digests when both sides keep them with
one algorithm (no tensor data is read), else by comparing bytes piece by piece. A numeric tensor
whose bytes differ gets summaries computed in pieces (largest absolute and relative difference,
how many elements differ, NaN and Inf changes, cosine similarity); a quantised GGUF tensor is
compared by its dequantised values. With a tolerance, an entry whose every element satisfies
``|a - b| <= atol + rtol * |b|`` (NaN and Inf unchanged) counts as equal.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator

import numpy as np

from paramio.core.dtypes import numpy_dtype
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.formats.contract import format_for_dtype
from paramio.formats.digests import DigestRecord, record_of
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.loading.api import Loadable, resolve

__all__ = ["DiffReport", "EntryDiff", "compare_entries", "diff"]

#: Bytes compared per step of one entry: bounds memory for tensors of any size.
_PIECE = 8 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class EntryDiff:
    """One key that differs between the two sides (or is equal only within the tolerance)."""

    key: str
    #: ``only_a``, ``only_b``, ``type`` (dtype or shape changed) or ``values``.
    change: str
    a_type: str | None = None
    b_type: str | None = None
    #: How the bytes were found to differ: ``digest`` or ``bytes``.
    by: str | None = None
    #: Value summaries (numeric tensors of one type and shape).
    differing: int | None = None
    elements: int | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    nan_changed: int | None = None
    inf_changed: int | None = None
    cosine: float | None = None
    within_tolerance: bool = False

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def describe(self) -> str:
        if self.change == "only_a":
            return f"only in A: {self.key} ({self.a_type})"
        if self.change == "only_b":
            return f"only in B: {self.key} ({self.b_type})"
        if self.change == "type":
            return f"type changed: {self.key}: {self.a_type} -> {self.b_type}"
        if self.differing is None:
            return f"bytes differ: {self.key} ({self.a_type})"
        tol = " (within tolerance)" if self.within_tolerance else ""
        return (
            f"values differ{tol}: {self.key} ({self.a_type}): {self.differing} of {self.elements} elements, "
            f"max |a-b| {_g(self.max_abs)}, max rel {_g(self.max_rel)}, cosine {_g(self.cosine, 9)}"
            + (f", NaN changed at {self.nan_changed}" if self.nan_changed else "")
            + (f", Inf changed at {self.inf_changed}" if self.inf_changed else "")
        )


def _g(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


@dataclasses.dataclass(frozen=True, slots=True)
class DiffReport:
    """Every difference, in A's key order then B's; `identical` counts the keys found equal."""

    a: str
    b: str
    differences: list[EntryDiff]
    identical: int
    #: Keys decided equal from the stored digests alone.
    by_digest: int
    atol: float
    rtol: float

    @property
    def equal(self) -> bool:
        """No difference, or only values within the tolerance."""
        return all(d.within_tolerance for d in self.differences)

    def to_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "equal": self.equal,
            "identical": self.identical,
            "identical_by_digest": self.by_digest,
            "atol": self.atol,
            "rtol": self.rtol,
            "differences": [d.to_dict() for d in self.differences],
        }


def _label(what: Loadable) -> str:
    return os.fspath(what) if isinstance(what, (str, os.PathLike)) else type(what).__name__


def _open(what: Loadable) -> tuple[list[tuple[str, ParameterEntry]], DigestRecord | None]:
    if isinstance(what, (str, os.PathLike)):
        what = ParameterIndex.open(os.fspath(what), duplicates=DuplicatePolicy.KEEP)
    record = record_of(what.attributes) if isinstance(what, ParameterIndex) else None
    return resolve(what), record


def _type(e: ParameterEntry) -> str:
    info = e.tensor
    return f"{info.dtype}{list(info.shape)}" if info is not None else f"bytes[{e.length}]"


def diff(
    a: Loadable,
    b: Loadable,
    *,
    atol: float = 0.0,
    rtol: float = 0.0,
    use_digests: bool = True,
    engine: str = "local",
    address: str | None = None,
) -> DiffReport:
    """Compare two models (see the module docstring). With `use_digests` false, entries are
    compared by their bytes even where both sides store digests (stored digests are trusted as
    the files give them: `verify_digests` checks them). Raises what opening them raises, and
    `InvalidArgumentError` for a negative tolerance.

    ``engine="ray"`` (and `address`) compares the entries whose bytes must be read on a Ray
    cluster, each task reading both sides' bytes from the sources (`paramio.scaleout`); the
    same report."""
    if atol < 0 or rtol < 0 or math.isnan(atol) or math.isnan(rtol):
        raise InvalidArgumentError(f"tolerances must be >= 0 (atol={atol}, rtol={rtol})")
    a_items, a_record = _open(a)
    b_items, b_record = _open(b)
    a_map, b_map = dict(reversed(a_items)), dict(reversed(b_items))  # the first of a repeated key
    digests = (
        (a_record.entries, b_record.entries)
        if use_digests and a_record is not None and b_record is not None and a_record.algorithm == b_record.algorithm
        else None
    )
    out: list[EntryDiff | None] = []
    slots: list[int] = []
    compares: list[tuple[str, ParameterEntry, ParameterEntry, str, str]] = []
    identical = by_digest = 0
    for key in dict.fromkeys(k for k, _ in a_items):
        ea = a_map[key]
        eb = b_map.get(key)
        if eb is None:
            out.append(EntryDiff(key, "only_a", a_type=_type(ea)))
            continue
        ta, tb = _type(ea), _type(eb)
        if ta != tb:
            out.append(EntryDiff(key, "type", a_type=ta, b_type=tb))
            continue
        if digests is not None and key in digests[0] and key in digests[1]:
            if digests[0][key] == digests[1][key]:
                identical += 1
                by_digest += 1
                continue
            how = "digest"
        else:
            how = "bytes"
        out.append(None)
        slots.append(len(out) - 1)
        compares.append((key, ea, eb, ta, how))
    if engine == "local" and address is None:
        found = [compare_entries(key, ea, eb, ta, how, atol, rtol) for key, ea, eb, ta, how in compares]
    else:
        from paramio.core.exports import above

        run = above("integrity.diff_on_engine")
        found = run(compares, atol, rtol, engine=engine, address=address)  # type: ignore[operator]
    for slot, result in zip(slots, found, strict=True):
        out[slot] = result
        identical += result is None
    for key in dict.fromkeys(k for k, _ in b_items):
        if key not in a_map:
            out.append(EntryDiff(key, "only_b", b_type=_type(b_map[key])))
    return DiffReport(_label(a), _label(b), [d for d in out if d is not None], identical, by_digest, atol, rtol)


def compare_entries(
    key: str, a: ParameterEntry, b: ParameterEntry, typ: str, how: str, atol: float, rtol: float
) -> EntryDiff | None:
    """One key present on both sides with one type: None when its bytes are the same (`how`
    ``"bytes"``; ``"digest"``: the stored digests already differ), else its value summaries."""
    if how == "bytes" and _same_bytes(a, b):
        return None
    return _values(key, a, b, typ, how, atol, rtol)


def _same_bytes(a: ParameterEntry, b: ParameterEntry) -> bool:
    if a.length != b.length:
        return False
    for x, y in zip(a.iter_chunks(_PIECE), b.iter_chunks(_PIECE), strict=True):
        if x != y:
            return False
    return True


def _pieces(
    a: ParameterEntry, b: ParameterEntry, dtype: np.dtype[np.generic]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Both entries as float64 arrays, a piece of whole elements at a time."""
    step = max(dtype.itemsize, _PIECE // dtype.itemsize * dtype.itemsize)
    for x, y in zip(a.iter_chunks(step), b.iter_chunks(step), strict=True):
        yield (
            np.frombuffer(x, dtype=dtype).astype(np.float64),
            np.frombuffer(y, dtype=dtype).astype(np.float64),
        )


def _decoded(a: ParameterEntry, b: ParameterEntry) -> Iterator[tuple[np.ndarray, np.ndarray]] | None:
    """The pieces to compare, or None for bytes without numeric meaning."""
    info = a.tensor
    if info is None:
        return None
    fmt = format_for_dtype(info.dtype)
    if fmt is not None and fmt.dequantize is not None:  # quantised: by dequantised value
        try:
            va = np.asarray(fmt.dequantize(a), np.float64).ravel()
            vb = np.asarray(fmt.dequantize(b), np.float64).ravel()
        except Exception:  # noqa: BLE001 -- no kernel for the type (or gguf missing): bytes only
            return None
        return iter([(va, vb)])
    try:
        dtype = numpy_dtype(info.dtype)
    except InvalidArgumentError:
        return None
    if dtype.kind not in "biuf" and not _float_extension(info.dtype, dtype):
        return None
    return _pieces(a, b, dtype)


def _float_extension(name: str, dtype: np.dtype[np.generic]) -> bool:
    """Whether `dtype` is one of ml_dtypes' floats a file stores one element per whole bytes
    (bfloat16, the float8 kinds: NumPy calls them ``V``), so compared by value like float16.
    Packed sub-byte kinds (float4, int4 two to a byte) are compared by bytes."""
    from paramio.core.dtypes import dtype_by_name

    if dtype.kind != "V" or dtype.names is not None or dtype_by_name(name).bits != 8 * dtype.itemsize:
        return False
    try:
        np.zeros(1, dtype).astype(np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _values(key: str, a: ParameterEntry, b: ParameterEntry, typ: str, how: str, atol: float, rtol: float) -> EntryDiff:
    pieces = _decoded(a, b)
    if pieces is None:
        return EntryDiff(key, "values", a_type=typ, b_type=typ, by=how)
    differing = elements = nan_changed = inf_changed = 0
    max_abs = max_rel = 0.0
    dot = na = nb = 0.0
    within = True
    for x, y in pieces:
        elements += x.size
        xnan, ynan = np.isnan(x), np.isnan(y)
        xinf, yinf = np.isinf(x), np.isinf(y)
        nan_changed += int(np.count_nonzero(xnan != ynan))
        inf_changed += int(np.count_nonzero((xinf != yinf) | (xinf & yinf & (np.sign(x) != np.sign(y)))))
        same_special = (xnan & ynan) | (xinf & yinf & (x == y))
        finite = np.isfinite(x) & np.isfinite(y)
        differing += int(np.count_nonzero(~same_special & ((x != y) | (xnan != ynan))))
        fx, fy = x[finite], y[finite]
        if fx.size:
            d = np.abs(fx - fy)
            max_abs = max(max_abs, float(d.max()))
            scale = np.maximum(np.abs(fx), np.abs(fy))
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(scale > 0, d / scale, 0.0)
            max_rel = max(max_rel, float(rel.max()))
            within = within and bool(np.all(d <= atol + rtol * np.abs(fy)))
            dot += float(fx @ fy)
            na += float(fx @ fx)
            nb += float(fy @ fy)
    within = within and nan_changed == 0 and inf_changed == 0 and (atol > 0 or rtol > 0)
    cosine = dot / math.sqrt(na * nb) if na > 0 and nb > 0 else None
    return EntryDiff(
        key,
        "values",
        a_type=typ,
        b_type=typ,
        by=how,
        differing=differing,
        elements=elements,
        max_abs=max_abs,
        max_rel=max_rel,
        nan_changed=nan_changed,
        inf_changed=inf_changed,
        cosine=cosine,
        within_tolerance=within,
    )

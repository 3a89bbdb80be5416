"""``load(..., verify=True)``: each tensor checked against the digest its file stores, as it lands.

The digest is computed in the worker that reads the tensor, on each step of bytes right after
the read put them in memory (still in the CPU's cache: no second pass over the tensor, no
second read of the file; `paramio.loading.engine`), and checked before the tensor is handed
over: a consumer of `stream` never sees a damaged tensor. A stored digest is the plain hash of
the whole entry, a sequential hash, so one worker reads each tensor front to back
(`paramio.loading.plan`, ``whole=True``) while other workers read other tensors. Tensors no
worker read (an empty one) are checked as they are delivered (`Verifier.check`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, IntegrityError, InvalidArgumentError
from paramio.formats.digests import DigestRecord, Hasher, digest_bytes, new_hasher, record_of, sidecar_record
from paramio.index.index import DuplicatePolicy, ParameterIndex

__all__ = ["Verifier", "open_for_verify"]

#: Threads one tensor's hasher may use: one, since the load's workers already hash different
#: tensors side by side (blake3 with every core per tensor measured 1.5-1.8x a plain load on 2
#: cores, against 1.2x with one).
HASH_THREADS: int | None = 1


def open_for_verify(what: object) -> tuple[ParameterIndex, DigestRecord]:
    """The index to load from and the record to check against. Raises `InvalidArgumentError`
    for a source that is not a file or an index, `FormatError` when it stores no digests."""
    label = os.fspath(what) if isinstance(what, (str, os.PathLike)) else None
    if label is not None:
        index = ParameterIndex.open(label, duplicates=DuplicatePolicy.KEEP)
    elif isinstance(what, ParameterIndex):
        index = what
    else:
        raise InvalidArgumentError(
            f"verify=True checks a file's stored digests: load a path or a ParameterIndex, not a {type(what).__name__}"
        )
    record = record_of(index.attributes, where=label or "")
    if record is None and label is not None:
        record = sidecar_record(label)
    if record is None:
        raise FormatError(
            "stores no digests to verify against (paramio digest --write adds them)", path=label or "<index>"
        )
    return index, record


def _flat(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)


def host_bytes(array: object) -> memoryview:
    """The bytes of a landed array, without a copy where the array is in host memory."""
    if isinstance(array, np.ndarray):
        return _flat(array)
    module = type(array).__module__.split(".")[0]
    if module == "torch":
        t = array.detach()  # type: ignore[attr-defined]
        if t.device.type != "cpu":
            t = t.cpu()
        flat = t.contiguous().reshape(-1)
        return _flat(flat.view(__import__("torch").uint8).numpy())
    if module == "cupy":
        return _flat(array.get())  # type: ignore[attr-defined]
    if hasattr(array, "to_host"):  # IREE's device arrays
        return _flat(array.to_host())
    return _flat(np.asarray(array))


class Verifier:
    """Checks landed tensors by key against a record."""

    def __init__(self, record: DigestRecord, items: Sequence[tuple[str, ParameterEntry]]) -> None:
        self.record = record
        self._entries = dict(items)
        missing = [k for k in self._entries if k not in record.entries]
        if missing:
            raise IntegrityError(
                f"no stored {record.algorithm} digest for {len(missing)} entr{'y' if len(missing) == 1 else 'ies'}, "
                f"first {missing[0]!r}: the record does not cover what is loaded",
                algorithm=record.algorithm,
                key=missing[0],
            )

    def hasher(self) -> Hasher:
        """A fresh hasher of the record's algorithm, for one worker to feed one tensor's bytes in
        order (one thread: the workers already hash tensors side by side)."""
        return new_hasher(self.record.algorithm, threads=HASH_THREADS)

    def check(self, key: str, array: object) -> None:
        """Raise `IntegrityError` naming the entry, file and byte range if `array`'s bytes do not
        give the stored digest."""
        self.compare(key, digest_bytes(host_bytes(array), self.record.algorithm))

    def compare(self, key: str, got: str) -> None:
        """Raise `IntegrityError` naming the entry, file and byte range if `got` (the hex digest
        of the entry's bytes as loaded) is not the stored digest."""
        expected = self.record.entries[key]
        if got != expected:
            entry = self._entries[key]
            where = entry.source.name if entry.source is not None else None
            span = f" (bytes {entry.offset}..{entry.offset + entry.length})" if entry.source is not None else ""
            raise IntegrityError(
                f"{self.record.algorithm} digest {got} is not the stored {expected}{span}: the data is damaged",
                algorithm=self.record.algorithm,
                expected=expected,
                got=got,
                path=where,
                key=key,
            )

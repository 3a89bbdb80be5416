"""Digests of a model's entries: computed, stored, and checked against what is stored.

`digest` hashes every entry of anything `paramio.load` takes (a path, a URL, a sharded set, an
index, a provider) in one streaming pass, entries side by side. `stored_digests` finds the
record a file keeps (its attributes, else a sidecar `model.<ext>.digests.json`), `write_digests`
adds one (the file rewritten atomically, or the sidecar), and `verify_digests` re-reads every
entry and names each that does not match.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.formats.digests import (
    DEFAULT_ALGORITHM,
    DIGESTS_KEY,
    DigestRecord,
    digest_items,
    record_of,
    sidecar_path,
    sidecar_record,
    type_text,
)
from paramio.formats.output import AtomicOutput
from paramio.index.index import DuplicatePolicy, ParameterIndex
from paramio.loading.api import Loadable, resolve

__all__ = [
    "DigestReport",
    "Mismatch",
    "digest",
    "stored_digests",
    "verify_digests",
    "write_digests",
]


@dataclasses.dataclass(frozen=True, slots=True)
class DigestReport:
    """Digests by key (in the source's order) and the algorithm that made them."""

    source: str
    algorithm: str
    entries: dict[str, str]
    lengths: dict[str, int]
    types: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "algorithm": self.algorithm,
            "entries": [{"key": k, "digest": d, "length": self.lengths[k]} for k, d in self.entries.items()],
        }

    def record(self) -> DigestRecord:
        return DigestRecord(self.algorithm, dict(self.entries), dict(self.types))


@dataclasses.dataclass(frozen=True, slots=True)
class Mismatch:
    """One entry whose bytes do not give the stored digest, or that the record does not cover."""

    key: str
    algorithm: str
    expected: str | None
    got: str | None
    #: Where the entry's bytes are: the file (or URL) and the byte range in it; None for a splat.
    file: str | None
    start: int | None
    end: int | None

    @property
    def reason(self) -> str:
        if self.algorithm == "type":
            return "type differs"
        if self.expected is None:
            return "no stored digest"
        if self.got is None:
            return "stored digest of an entry the file does not have"
        return "digest differs"

    def describe(self) -> str:
        if self.algorithm == "type":
            return f"entry {self.key!r}: the record says {self.expected}, the file says {self.got}"
        where = f" (bytes {self.start}..{self.end} of {self.file})" if self.file is not None else ""
        if self.expected is None:
            return f"entry {self.key!r}: no stored {self.algorithm} digest{where}"
        if self.got is None:
            return f"entry {self.key!r}: the record has a {self.algorithm} digest but the file has no such entry"
        return f"entry {self.key!r}: {self.algorithm} expected {self.expected}, got {self.got}{where}"

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "reason": self.reason,
            "algorithm": self.algorithm,
            "expected": self.expected,
            "got": self.got,
            "file": self.file,
            "start": self.start,
            "end": self.end,
        }


def _label(what: Loadable) -> str:
    return os.fspath(what) if isinstance(what, (str, os.PathLike)) else type(what).__name__


def digest(
    what: Loadable,
    algorithm: str = DEFAULT_ALGORITHM,
    *,
    keys: Iterable[str] | None = None,
    concurrency: int | None = None,
    progress: Callable[[int], None] | None = None,
    engine: str = "local",
    address: str | None = None,
) -> DigestReport:
    """Hash every entry (or `keys`) of `what` with `algorithm` (``blake3``, ``xxh3``, ``sha256``).

    One pass over the bytes, in bounded memory (8 MiB per entry in flight), entries hashed side
    by side; from a URL each entry is read with ranged requests. Raises what opening raises
    (`FormatError`, `SourceError`), `ParameterNotFoundError` for a key not there and
    `InvalidArgumentError` for an unknown algorithm.

    ``engine="ray"`` (and `address`) hashes on a Ray cluster, entries read by the workers
    straight from the source (`paramio.scaleout`); the same digests.
    """
    pairs = resolve(what, keys)
    got = _digests(pairs, algorithm, concurrency=concurrency, progress=progress, engine=engine, address=address)
    return DigestReport(
        _label(what), algorithm, got, {k: e.length for k, e in pairs}, {k: type_text(e) for k, e in pairs}
    )


def _open(what: Loadable) -> ParameterIndex:
    if isinstance(what, ParameterIndex):
        return what
    if isinstance(what, (str, os.PathLike)):
        return ParameterIndex.open(os.fspath(what), duplicates=DuplicatePolicy.KEEP)
    raise InvalidArgumentError(f"stored digests are read from a file or a ParameterIndex, not a {type(what).__name__}")


def stored_digests(what: str | os.PathLike[str] | ParameterIndex) -> DigestRecord | None:
    """The digests a file keeps: in its attributes (`write_path(..., digests=True)`,
    ``paramio digest --write``), else in its sidecar; None when it has none."""
    index = _open(what)
    record = record_of(index.attributes, where=_label(what))
    if record is None and isinstance(what, (str, os.PathLike)):
        record = sidecar_record(os.fspath(what))
    return record


def write_digests(
    path: str | os.PathLike[str],
    algorithm: str = DEFAULT_ALGORITHM,
    *,
    sidecar: bool = False,
    record: DigestRecord | None = None,
) -> str:
    """Compute and store the digests of the file at `path`; the path written.

    Into the file itself (rewritten atomically through its own writer, same entries, same
    attributes plus the record: the digests computed as the rewrite copies the bytes, one read),
    or with `sidecar` beside it (`sidecar_path`), for a file that must stay byte-identical.
    `record`: digests already computed over this file's entries (`DigestReport.record` of a
    `digest` just made, as ``paramio digest --write`` prints them first): stored as given,
    nothing hashed again. Raises `InvalidArgumentError` for a URL without `sidecar`.
    """
    from paramio.formats.registry import write_path

    p = os.fspath(path)
    index = ParameterIndex.open(p, duplicates=DuplicatePolicy.KEEP)
    if record is not None and record.algorithm != algorithm:
        raise InvalidArgumentError(f"record={record.algorithm} digests, algorithm={algorithm!r}: they must agree")
    if record is not None and len(set(index.keys())) != len(index):
        record = None  # a key held twice: which entry a report hashed is not the record's rule
    if sidecar:
        if record is None:
            record = digest(index, algorithm).record()
        side = sidecar_path(p)
        data = json.dumps({DIGESTS_KEY: record.to_json()}, indent=1).encode() + b"\n"
        with AtomicOutput(side) as out:
            out.pwrite(data, 0)
            out.commit()
        return side
    if "://" in p:
        raise InvalidArgumentError(f"{p}: a URL's digests go beside it: sidecar=True (--write=sidecar)")
    # The new file is written beside the old one and renamed over it; the old one's entries
    # stay readable (its mapping) until then.
    write_path(
        p,
        list(index.values()),
        attributes=dict(index.attributes),
        digests=record if record is not None else algorithm,
        on_loss="ignore",
    )
    return p


def _digests(
    pairs: list[tuple[str, ParameterEntry]],
    algorithm: str,
    *,
    concurrency: int | None,
    progress: Callable[[int], None] | None,
    engine: str,
    address: str | None,
) -> dict[str, str]:
    if engine == "local" and address is None:
        return digest_items(pairs, algorithm, concurrency=concurrency, progress=progress)
    from paramio.core.exports import above

    run = above("integrity.digest_on_engine")
    return run(pairs, algorithm, engine=engine, address=address, progress=progress)  # type: ignore[operator,no-any-return]


def verify_digests(
    what: str | os.PathLike[str] | ParameterIndex,
    *,
    concurrency: int | None = None,
    engine: str = "local",
    address: str | None = None,
) -> tuple[DigestRecord, list[Mismatch]]:
    """Re-read every entry and compare with the stored digests: (the record, the mismatches).
    ``engine="ray"`` re-reads on a Ray cluster (`digest`).

    Raises `FormatError` when the file stores no digests (nothing to check against).
    """
    index = _open(what)
    record = stored_digests(what)
    if record is None:
        raise FormatError(
            "stores no digests (add them with paramio digest --write, or write_path(..., digests=True))",
            path=_label(what),
        )
    pairs = resolve(index)
    got = _digests(pairs, record.algorithm, concurrency=concurrency, progress=None, engine=engine, address=address)
    problems: list[Mismatch] = []
    for key, entry in pairs:
        expected = record.entries.get(key)
        actual = got[key]
        stored_type = record.types.get(key)
        if stored_type is not None and expected == actual and stored_type != type_text(entry):
            problems.append(
                Mismatch(
                    key, "type", stored_type, type_text(entry), entry.source.name if entry.source else None, None, None
                )
            )
            continue
        if expected != actual:
            start = entry.offset if entry.source is not None else None
            problems.append(
                Mismatch(
                    key,
                    record.algorithm,
                    expected,
                    actual,
                    entry.source.name if entry.source is not None else None,
                    start,
                    None if start is None else start + entry.length,
                )
            )
    present = {k for k, _ in pairs}
    for key, expected in record.entries.items():
        if key not in present:
            problems.append(Mismatch(key, record.algorithm, expected, None, None, None, None))
    return record, problems

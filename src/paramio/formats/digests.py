"""Per-entry digests: the algorithms, the record a file keeps them in, and computing them.

A digest is over an entry's bytes exactly as a reader gets them (a splat's expanded pattern),
so it does not depend on the format: the same tensor has the same digest in IRPA, safetensors
and GGUF, and ``b3sum``/``sha256sum``/``xxhsum`` of the extracted bytes give it too.

The record lives in the file's attributes under `DIGESTS_KEY`, a JSON object
``{"algorithm": "blake3", "entries": {key: hex, ...}}``. Every format stores attributes where
its own readers do not look (IRPA: the metadata of a skipped entry, so IREE's runtime and
``iree-dump-parameters`` see only the user's entries; safetensors ``__metadata__`` and GGUF
key/values: the ``paramio.carried`` record), so a file keeps its layout and its readers. Files
that must stay byte-identical get a sidecar instead (`sidecar_path`).

Algorithms, chosen on measured speed (docs/integrity.md): ``blake3`` (the default: a
cryptographic hash that runs on every core), ``xxh3`` (xxHash's 128-bit XXH3: not
cryptographic, the fastest, for catching accidents) and ``sha256`` (what Hugging Face and
``sha256sum`` record).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError

__all__ = [
    "ALGORITHMS",
    "CHUNK",
    "DEFAULT_ALGORITHM",
    "DIGESTS_KEY",
    "DigestRecord",
    "Hasher",
    "digest_bytes",
    "digest_entries",
    "digest_entry",
    "digest_items",
    "new_hasher",
    "record_of",
    "sidecar_path",
    "sidecar_record",
    "type_text",
    "with_record",
    "written_record",
]

#: The attributes key (and the JSON sidecar's schema name) of the digest record.
DIGESTS_KEY = "paramio.digests"
DEFAULT_ALGORITHM = "blake3"
#: Bytes hashed per step: large enough that per-call overhead is noise, small enough to stay in
#: cache and bound memory for entries of any size.
CHUNK = 8 << 20
_SIDECAR_SUFFIX = ".digests.json"
_MAX_HEX = 128  # the longest digest any algorithm here gives, in hex digits (sha512 would be 128)


class Hasher(Protocol):
    def update(self, data: memoryview | bytes, /) -> object: ...
    def hexdigest(self) -> str: ...


def _blake3(threads: int | None = None) -> Hasher:
    import blake3

    # One hasher may use more than one core for a large update (BLAKE3's tree); entries are
    # also hashed side by side, so the pool and this share the machine.
    h: Hasher = blake3.blake3(max_threads=blake3.blake3.AUTO if threads is None else threads)
    return h


def _xxh3(threads: int | None = None) -> Hasher:
    import xxhash

    h: Hasher = xxhash.xxh3_128()
    return h


def _sha256(threads: int | None = None) -> Hasher:
    return hashlib.sha256()


#: name -> a new hasher (given the most threads it may use; None: the algorithm's default).
ALGORITHMS: dict[str, Callable[[int | None], Hasher]] = {"blake3": _blake3, "xxh3": _xxh3, "sha256": _sha256}


def new_hasher(algorithm: str, *, threads: int | None = None) -> Hasher:
    """A fresh hasher; `threads`: the most threads one update may use (blake3 alone uses more
    than one; None: every core, for large updates). Raises `InvalidArgumentError` for an
    unknown algorithm name."""
    make = ALGORITHMS.get(algorithm)
    if make is None:
        raise InvalidArgumentError(f"unknown digest algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    return make(threads)


def digest_bytes(data: bytes | memoryview, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The hex digest of `data`."""
    h = new_hasher(algorithm)
    view = memoryview(data).cast("B")
    for start in range(0, len(view), CHUNK):
        h.update(view[start : start + CHUNK])
    return h.hexdigest()


def digest_entry(entry: ParameterEntry, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The hex digest of `entry`'s bytes (a splat's expanded), read in `CHUNK` pieces: memory
    stays bounded for an entry of any size, local or remote."""
    h = new_hasher(algorithm)
    for chunk in entry.iter_chunks(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def digest_entries(
    entries: Iterable[ParameterEntry],
    algorithm: str = DEFAULT_ALGORITHM,
    *,
    concurrency: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Digests by key; the first entry of a key held twice counts (IREE's lookup rule)."""
    first: dict[str, ParameterEntry] = {}
    for e in entries:
        first.setdefault(e.key, e)
    return digest_items(list(first.items()), algorithm, concurrency=concurrency, progress=progress)


def digest_items(
    items: Sequence[tuple[str, ParameterEntry]],
    algorithm: str = DEFAULT_ALGORITHM,
    *,
    concurrency: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Digests by name for (name, entry) pairs, entries hashed side by side on paramio's worker
    pool (hashing and reading release the GIL). `progress` gets the bytes of each entry done."""
    from paramio.sources.workers import pool

    new_hasher(algorithm)  # an unknown name fails before any thread starts
    workers = concurrency or min(len(items), os.cpu_count() or 1) or 1
    out: dict[str, str] = {}
    stop = threading.Event()  # set on the first failure or an interrupt: queued entries are skipped

    def one(e: ParameterEntry) -> str | None:
        return None if stop.is_set() else digest_entry(e, algorithm)

    workers_pool = pool()
    with workers_pool.lease(workers):
        futures = [(name, e, workers_pool.call(functools.partial(one, e))) for name, e in items]
        try:
            for name, e, f in futures:
                result = f.result()
                assert result is not None
                out[name] = result
                if progress is not None:
                    progress(e.length)
        except BaseException:
            stop.set()
            for *_, f in futures:  # wait for what is in flight: no thread reads after we return
                f.exception()
            raise
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class DigestRecord:
    """Digests of a file's entries, by key, all with one algorithm."""

    algorithm: str
    entries: Mapping[str, str]
    #: Each entry's type as readers see it (``float32[4, 4]``, ``bytes[16]``): the bytes' digest
    #: cannot tell a damaged dtype or shape, this can. Empty for a record written without them.
    types: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"algorithm": self.algorithm, "entries": dict(self.entries)}
        if self.types:
            out["types"] = dict(self.types)
        return out

    @classmethod
    def from_json(cls, value: object, *, where: str = "") -> DigestRecord:
        """Parse a stored record. Raises `FormatError` naming `where` for a malformed one."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise FormatError(f"{DIGESTS_KEY} is not JSON: {exc}", path=where or None) from exc
        if not isinstance(value, Mapping):
            raise FormatError(f"{DIGESTS_KEY} is not a JSON object", path=where or None)
        algorithm, entries = value.get("algorithm"), value.get("entries")
        if algorithm not in ALGORITHMS:
            raise FormatError(f"{DIGESTS_KEY}: unknown algorithm {algorithm!r}", path=where or None)
        if not isinstance(entries, Mapping):
            raise FormatError(f"{DIGESTS_KEY}: 'entries' is not an object", path=where or None)
        for k, v in entries.items():
            if not isinstance(k, str) or not isinstance(v, str) or not 0 < len(v) <= _MAX_HEX:
                raise FormatError(f"{DIGESTS_KEY}: entry {str(k)[:80]!r} has no hex digest", path=where or None)
            try:
                int(v, 16)
            except ValueError:
                raise FormatError(
                    f"{DIGESTS_KEY}: entry {k[:80]!r}: {v[:80]!r} is not hex", path=where or None
                ) from None
        types = value.get("types", {})
        if not isinstance(types, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in types.items()
        ):
            raise FormatError(f"{DIGESTS_KEY}: 'types' is not an object of strings", path=where or None)
        return cls(str(algorithm), {str(k): str(v).lower() for k, v in entries.items()}, dict(types))


def record_of(attributes: Mapping[str, object], *, where: str = "") -> DigestRecord | None:
    """The digest record a file's attributes hold, or None. Raises `FormatError` for a malformed one."""
    value = attributes.get(DIGESTS_KEY)
    return None if value is None else DigestRecord.from_json(value, where=where)


def sidecar_path(path: str | os.PathLike[str]) -> str:
    """``model.safetensors`` -> ``model.safetensors.digests.json``: the record beside a file that
    must stay byte-identical (a URL's sidecar is the URL with the suffix)."""
    return os.fspath(path) + _SIDECAR_SUFFIX


def sidecar_record(path: str | os.PathLike[str]) -> DigestRecord | None:
    """The record in `path`'s sidecar (`sidecar_path`), or None when there is none. Raises
    `FormatError` for a sidecar that is not one, `SourceError` for one that cannot be read."""
    p = os.fspath(path)
    side = sidecar_path(p)
    if "://" in p:
        from paramio.core.errors import SourceError
        from paramio.sources import open_source

        try:
            src = open_source(side)
            data = src.read(0, min(src.size, 64 << 20))
        except SourceError:
            return None
    else:
        try:
            with open(side, "rb") as f:
                data = f.read(64 << 20)
        except FileNotFoundError:
            return None
        except OSError as exc:
            from paramio.core.errors import SourceError

            raise SourceError(f"cannot read: {exc.strerror or exc}", path=side) from exc
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"not JSON: {exc}", path=side) from exc
    if not isinstance(doc, Mapping) or DIGESTS_KEY not in doc:
        raise FormatError(f"not a digest sidecar (no {DIGESTS_KEY!r} object)", path=side)
    return DigestRecord.from_json(doc[DIGESTS_KEY], where=side)


def with_record(attributes: Mapping[str, object] | None, record: DigestRecord | None) -> dict[str, object]:
    """`attributes` with the digest record set (or removed, for None)."""
    out = {k: v for k, v in (attributes or {}).items() if k != DIGESTS_KEY}
    if record is not None:
        out[DIGESTS_KEY] = record.to_json()
    return out


def written_record(
    entries: Sequence[ParameterEntry], attributes: Mapping[str, object], digests: object
) -> DigestRecord | None:
    """The record a writer stores for `entries` (`paramio.write_path`'s ``digests=``):

    * ``True`` or an algorithm name: computed now over the entries being written;
    * ``None`` (the default): computed again, with the same algorithm, when the attributes carry
      one, so that a conversion that renamed, dropped or replaced entries never keeps a digest
      of bytes it did not write; no record otherwise;
    * ``False``: no record.
    """
    carried = record_of(attributes)
    if digests is False or (digests is None and carried is None):
        return None
    if digests is True:
        algorithm = carried.algorithm if carried is not None else DEFAULT_ALGORITHM
    elif isinstance(digests, str):
        algorithm = digests
    elif digests is None:
        assert carried is not None
        algorithm = carried.algorithm
    else:
        raise InvalidArgumentError(f"digests={digests!r}: expected True, False, None or an algorithm name")
    first: dict[str, ParameterEntry] = {}
    for e in entries:
        first.setdefault(e.key, e)
    return DigestRecord(
        algorithm, digest_items(list(first.items()), algorithm), {k: type_text(e) for k, e in first.items()}
    )


def type_text(entry: ParameterEntry) -> str:
    """How a record names an entry's type: ``float32[4, 4]``, or ``bytes[N]`` when untyped."""
    info = entry.tensor
    return f"{info.dtype}{list(info.shape)}" if info is not None else f"bytes[{entry.length}]"

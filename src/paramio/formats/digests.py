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

Algorithms, chosen on measured speed (docs/integrity.md): ``xxh3`` (the default: xxHash's
128-bit XXH3, not cryptographic, the fastest: it catches accidents, which is what a record kept
inside the file it describes can vouch for), ``blake3`` (cryptographic, for a record kept apart
from the file and trusted on its own) and ``sha256`` (what Hugging Face and ``sha256sum``
record).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from paramio.core.entry import ParameterEntry
from paramio.core.errors import FormatError, InvalidArgumentError

if TYPE_CHECKING:
    from paramio.formats.output import AtomicOutput

__all__ = [
    "ALGORITHMS",
    "CHUNK",
    "DEFAULT_ALGORITHM",
    "DIGESTS_KEY",
    "DigestRecord",
    "DigestSink",
    "Hasher",
    "activated",
    "digest_bytes",
    "digest_entries",
    "digest_entry",
    "digest_items",
    "new_hasher",
    "plan_sink",
    "record_of",
    "sidecar_path",
    "sidecar_record",
    "type_text",
    "with_record",
    "written_record",
]

#: The attributes key (and the JSON sidecar's schema name) of the digest record.
DIGESTS_KEY = "paramio.digests"
#: xxh3, measured (docs/integrity.md): on 2 cores a verified load with a blake3 record took
#: 1.3-1.5x a plain one (the load keeps both cores busy; blake3 on one core hashes ~5 GB/s),
#: with an xxh3 record (~14 GB/s) within the 1.15x goal; digests of a warm file faster than
#: ``cat`` reads it.
DEFAULT_ALGORITHM = "xxh3"
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
#: name -> hex digits of a digest: fixed per algorithm, so a header can be laid out before the
#: digests it holds are known (`DigestSink`).
HEX_LENGTHS = {"blake3": 64, "xxh3": 32, "sha256": 64}


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


def _record_plan(attributes: Mapping[str, object], digests: object) -> tuple[str, Mapping[str, str]] | None:
    """(algorithm, digests known for output keys) of the record a write stores, or None."""
    carried = record_of(attributes)
    if isinstance(digests, DigestRecord):
        if digests.algorithm not in ALGORITHMS:
            raise InvalidArgumentError(f"digests: unknown algorithm {digests.algorithm!r}")
        return digests.algorithm, digests.entries
    if digests is False or (digests is None and carried is None):
        return None
    if digests is True:
        return (carried.algorithm if carried is not None else DEFAULT_ALGORITHM), {}
    if isinstance(digests, str):
        new_hasher(digests)  # an unknown name fails before anything is written
        return digests, {}
    if digests is None:
        assert carried is not None
        return carried.algorithm, {}
    raise InvalidArgumentError(f"digests={digests!r}: expected True, False, None, an algorithm name or a DigestRecord")


def written_record(
    entries: Sequence[ParameterEntry], attributes: Mapping[str, object], digests: object
) -> DigestRecord | None:
    """The record a writer stores for `entries` (`paramio.write_path`'s ``digests=``), computed
    here in a pass of its own (writers compute it while they copy instead: `plan_sink`):

    * ``True`` or an algorithm name: computed over the entries being written;
    * ``None`` (the default): computed again, with the same algorithm, when the attributes carry
      one, so that a conversion that renamed, dropped or replaced entries never keeps a digest
      of bytes it did not write; no record otherwise;
    * a `DigestRecord`: its digests are the written entries' (by key, the caller vouches for
      them: a conversion carrying what its input stored for bytes it did not change); the rest
      computed with its algorithm;
    * ``False``: no record.
    """
    sink = plan_sink(entries, attributes, digests)
    if sink is None:
        return None
    sink.settle()
    return sink.record()


def plan_sink(
    entries: Sequence[ParameterEntry], attributes: Mapping[str, object], digests: object
) -> DigestSink | None:
    """The `DigestSink` a write of `entries` fills while it copies, or None when the output stores
    no record (``digests=`` as `written_record` reads it). Raises `InvalidArgumentError` for an
    unknown algorithm or a bad `digests` value."""
    plan = _record_plan(attributes, digests)
    if plan is None:
        return None
    algorithm, known = plan
    return DigestSink(algorithm, entries, known)


_active = threading.local()  # the sink of the write running in this thread (`DigestSink.active`)


def current_sink() -> DigestSink | None:
    """The sink outputs created now in this thread report to (`paramio.formats.output`)."""
    sink: DigestSink | None = getattr(_active, "sink", None)
    return sink


@contextmanager
def activated(sink: DigestSink | None) -> Iterator[None]:
    """Within the block, outputs created in this thread report to `sink`, or to none: a write
    nested in another (a tensor-parallel set's device files) never reports to the outer one's."""
    previous = current_sink()
    _active.sink = sink
    try:
        yield
    finally:
        _active.sink = previous


class DigestSink:
    """The digest record of one write, computed from the bytes as the writer copies them.

    A format's header holds the record and is written before the data, so the writer lays it
    out with a placeholder for each digest still to come: a random token shared by the write
    and the entry's number, as many hex digits as the algorithm's digest (`HEX_LENGTHS`), so the
    layout does not change when the digests replace them. The copy (`paramio.formats.output`)
    feeds each entry's bytes to its hasher on their way from the input to the output (`claim`,
    `done`); when an output file is finished its header is rewritten in place with the digests
    (`finishing`; a set's member whose header also names other members' entries is patched
    once the whole set is written, `settle`). Digests the caller knows (`known`: carried from
    an input that stores them, for bytes the conversion did not change) are used as given and
    cost nothing; splats and empty entries are hashed from their pattern (no read).

    `reread` counts the bytes hashed by reading an entry again because no copy hashed it
    (none in paramio's writers; the safety net for a writer that skips `copy_entry`).

    Files written elsewhere (another process or host: the scale-out engine's tasks) take
    `task_state` (plain data) and make their own sink with `for_task`: it hashes the task's
    entries as they are copied, leaves other tasks' placeholders in place and lists the files
    whose headers keep some (`heads`); the writer of the whole record `merge`s each task's
    `computed` digests and then `patch_file`s those headers, before the files are published.
    """

    def __init__(
        self, algorithm: str, entries: Sequence[ParameterEntry], known: Mapping[str, str] | None = None
    ) -> None:
        self.algorithm = algorithm
        self._hex = HEX_LENGTHS[algorithm]
        first: dict[str, ParameterEntry] = {}
        for e in entries:
            first.setdefault(e.key, e)
        self._first = first
        self._keys = list(first)
        self.types = {k: type_text(e) for k, e in first.items()}
        self._token = os.urandom(8).hex().encode()
        self._digests: dict[str, str] = {}
        self._claimed: set[str] = set()
        self._lock = threading.Lock()
        self._waiting: list[AtomicOutput] = []
        self.reread = 0
        self.carried = 0
        self._task = False
        self._hashed: dict[str, str] = {}
        #: (a task's sink) each file whose header keeps placeholders of other tasks' entries,
        #: and the header's length: for the writer of the whole record (`patch_file`).
        self.heads: list[tuple[str, int]] = []
        splats: dict[tuple[bytes, int], str] = {}
        for k, e in first.items():
            given = (known or {}).get(k)
            if isinstance(given, str) and len(given) == self._hex and _is_hex(given):
                self._digests[k] = given.lower()
                self.carried += 1
            elif e.source is None or e.length == 0:  # a splat (or empty): hashed from its pattern
                memo = (bytes(e.pattern), e.length)
                if memo not in splats:
                    splats[memo] = digest_entry(e, algorithm)
                self._digests[k] = splats[memo]

    @property
    def complete(self) -> bool:
        """Whether every digest is known before any byte is copied (all carried from the input,
        or splats): the record then holds no placeholder and the write needs no hashing."""
        return len(self._digests) == len(self._keys)

    def record(self) -> DigestRecord:
        """The record as known now: a placeholder for each digest still to come."""
        width = self._hex - len(self._token)
        return DigestRecord(
            self.algorithm,
            {
                k: self._digests.get(k) or (self._token.decode() + format(i, f"0{width}x"))
                for i, k in enumerate(self._keys)
            },
            dict(self.types),
        )

    def task_state(self) -> dict[str, object]:
        """What a task writing some of this write's files elsewhere needs (`for_task`): plain
        data, picklable and JSON-able."""
        return {
            "algorithm": self.algorithm,
            "token": self._token.decode(),
            "keys": list(self._keys),
            "known": dict(self._digests),
            "types": dict(self.types),
        }

    @classmethod
    def for_task(cls, state: Mapping[str, object], entries: Sequence[ParameterEntry]) -> DigestSink:
        """The sink of a task that writes `entries` (opened where it runs) into files laid out
        with the record `state` describes (`task_state` of the whole write's sink): it hashes
        them as they are copied, never reads anything else, and leaves the placeholders of
        other tasks' entries for the writer of the whole record (`heads`, `computed`)."""
        algorithm = str(state["algorithm"])
        keys = [str(k) for k in state["keys"]]  # type: ignore[attr-defined]
        sink = cls(algorithm, [], None)
        sink._token = str(state["token"]).encode()
        sink._keys = keys
        wanted = set(keys)
        for e in entries:
            if e.key in wanted:
                sink._first.setdefault(e.key, e)
        sink.types = {str(k): str(v) for k, v in state["types"].items()}  # type: ignore[attr-defined]
        sink._digests = {str(k): str(v) for k, v in state["known"].items()}  # type: ignore[attr-defined]
        sink._task = True
        return sink

    def computed(self) -> dict[str, str]:
        """The digests this sink hashed from copied bytes (a task returns them)."""
        with self._lock:
            return dict(self._hashed)

    def missing(self) -> list[tuple[str, ParameterEntry]]:
        """(key, entry) of each digest still to come (neither carried, hashed nor merged): what
        the writer of the whole record has hashed elsewhere before `patch_file` (the scale-out
        engine: the parts of an entry cut between tasks, which no copy hashes whole)."""
        with self._lock:
            return [(k, e) for k, e in self._first.items() if k not in self._digests]

    def merge(self, digests: Mapping[str, str]) -> None:
        """Take digests a task computed (`computed`). Raises `InvalidArgumentError` for a key
        the record does not have or a value that is not this algorithm's hex digest."""
        known = set(self._keys)
        for k, v in digests.items():
            if k not in known or not isinstance(v, str) or len(v) != self._hex or not _is_hex(v):
                raise InvalidArgumentError(f"not a {self.algorithm} digest of this record's entry {k!r}: {v!r}")
        with self._lock:
            self._digests.update(digests)

    def patch_file(self, path: str | os.PathLike[str], length: int) -> None:
        """Put the digests into the header (the first `length` bytes) of a file a task wrote
        (`heads`), in place, fsynced: after every task's digests are merged (any still missing
        are hashed by reading, counted in `reread`). Raises `WriteError`."""
        from paramio.core.errors import WriteError

        self._compute_missing()
        p = os.fspath(path)
        try:
            with open(p, "r+b") as f:
                head = f.read(length)
                patched = self._patched(head)
                if patched is None:
                    raise WriteError("the header names entries whose digests are not known", path=p)
                if patched != head:
                    f.seek(0)
                    f.write(patched)
                    f.flush()
                    os.fsync(f.fileno())
        except WriteError:
            raise
        except OSError as exc:
            raise WriteError(f"cannot store digests: {exc.strerror or exc}", path=p) from exc

    @contextmanager
    def active(self) -> Iterator[DigestSink]:
        """Within the block, outputs created in this thread report to this sink."""
        with activated(self):
            yield self

    def claim(self, entry: ParameterEntry) -> Hasher | None:
        """A hasher for `entry`'s bytes if the record wants them (the first entry of its key, not
        yet hashed or known), else None. The caller feeds every byte in order, then `done`."""
        with self._lock:
            key = entry.key
            if key in self._digests or key in self._claimed:
                return None
            f = self._first.get(key)
            if f is None or f.source is not entry.source or f.offset != entry.offset or f.length != entry.length:
                return None
            self._claimed.add(key)
        return new_hasher(self.algorithm, threads=1)

    def done(self, key: str, hexdigest: str) -> None:
        with self._lock:
            self._digests[key] = hexdigest
            self._hashed[key] = hexdigest

    def finishing(self, out: AtomicOutput, *, alone: bool) -> None:
        """`out`'s bytes are all written: put the digests into its header (`alone`: the write's
        only file, so nothing more will be copied), or wait for `settle` when some of the
        digests its header holds belong to entries other files of the set have yet to copy."""
        if alone and not self._task:
            self._compute_missing()
        if not self._patch(out):
            if alone and self._task:
                self._leave(out)
            else:
                self._waiting.append(out)

    def settle(self) -> None:
        """Every file of the write is written: hash what no copy hashed (by reading it again,
        counted in `reread`), and patch the headers still waiting (a task's sink leaves those
        naming other tasks' entries to the writer of the whole record: `heads`)."""
        if not self._task:
            self._compute_missing()
        waiting, self._waiting = self._waiting, []
        for out in waiting:
            if not self._patch(out):
                assert self._task
                self._leave(out)

    def _leave(self, out: AtomicOutput) -> None:
        assert out.head is not None
        self.heads.append((out.target.final or out.path, len(out.head)))
        out.head = None

    def _compute_missing(self) -> None:
        missing = [(k, e) for k, e in self._first.items() if k not in self._digests]
        if missing:
            self._digests.update(digest_items(missing, self.algorithm))
            self.reread += sum(e.length for _, e in missing)

    def _patch(self, out: AtomicOutput) -> bool:
        head = out.head
        if head is None:
            return True
        patched = self._patched(head)
        if patched is None:
            return False
        if patched != head:
            out.patch_head(patched)
        out.head = None
        return True

    def _patched(self, head: bytes) -> bytes | None:
        """`head` with every placeholder replaced, or None while some digest is still to come."""
        pieces: list[bytes] = []
        last = 0
        at = head.find(self._token)
        tail = self._hex - len(self._token)
        while at >= 0:
            number = head[at + len(self._token) : at + self._hex]
            try:
                i = int(number, 16)
            except ValueError:
                i = -1
            if len(number) == tail and 0 <= i < len(self._keys):
                digest = self._digests.get(self._keys[i])
                if digest is None:
                    return None
                pieces += [head[last:at], digest.encode()]
                last = at + self._hex
            at = head.find(self._token, at + 1)
        if not pieces:
            return head
        pieces.append(head[last:])
        return b"".join(pieces)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def type_text(entry: ParameterEntry) -> str:
    """How a record names an entry's type: ``float32[4, 4]``, or ``bytes[N]`` when untyped."""
    info = entry.tensor
    return f"{info.dtype}{list(info.shape)}" if info is not None else f"bytes[{entry.length}]"

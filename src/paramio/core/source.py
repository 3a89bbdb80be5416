"""The byte source abstraction: where a parameter's bytes live.

A format reader builds entries that point into a source (a span: offset and length). The
contract's primitive is `readinto` (fill a caller's buffer); `readv` reads many spans at once
through the shared planner (`paramio.core.planner`), so a remote source turns them into few
coalesced, parallel range requests. `view` stays for the callers that want a buffer without
owning one: zero-copy where the source maps memory, a fetched copy where it cannot.
Optional abilities are small Protocols in `paramio.sources.protocols`; the async twin and its
bridge live in `paramio.sources.aio`; URL schemes map to sources in `paramio.sources.registry`.
"""

from __future__ import annotations

import abc

from paramio.core.errors import InvalidArgumentError, SourceError, TruncatedError
from paramio.core.planner import DEFAULT_MAX_REQUEST, Span, plan_reads, run_plan

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Protocol

    class Progress(Protocol):
        """A byte-count callback, the ``progress=`` of readers, writers and loads: called with the
        bytes each finished step added (a bar's ``advance``, a counter, a log line)."""

        def __call__(self, n: int, /) -> None: ...


def __getattr__(name: str) -> object:
    """`Progress`, defined on first use: a `typing.Protocol` needs `typing`, which a listing
    (``paramio dump``, whose every module imports this one) never imports otherwise."""
    if name != "Progress":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Protocol

    class Progress(Protocol):
        """A byte-count callback, the ``progress=`` of readers, writers and loads: called with the
        bytes each finished step added (a bar's ``advance``, a counter, a log line)."""

        def __call__(self, n: int, /) -> None: ...

    Progress.__qualname__ = "Progress"
    globals()["Progress"] = Progress
    return Progress


def check_span(name: str, size: int, offset: int, length: int, key: str | None = None) -> None:
    """Refuse a span that is negative or ends past `size` (the rule every source shares).

    Raises `InvalidArgumentError` for a negative offset or length, `TruncatedError` past the end."""
    if offset < 0 or length < 0:
        raise InvalidArgumentError(f"negative span (offset {offset}, length {length})", path=name, key=key)
    if offset + length > size:
        raise TruncatedError(
            f"span {offset:#x}..{offset + length:#x} ends past the end of the source ({size:#x})",
            path=name,
            key=key,
            offset=offset,
        )


def checked_spans(name: str, size: int, spans: Sequence[Span] | Iterable[tuple[int, int]]) -> list[Span]:
    """`spans` (records or ``(offset, length)`` pairs) as `Span` records, each checked."""
    wanted = [s if isinstance(s, Span) else Span(int(s[0]), int(s[1])) for s in spans]
    for s in wanted:
        check_span(name, size, s.offset, s.length)
    return wanted


class ByteSource(abc.ABC):
    """A readable run of bytes with a size and a name used in error messages."""

    #: Shown in errors and dumps: a file path, a URL (credentials removed), or ``<memory>``.
    name: str

    #: `readv`'s planner limits: spans closer than `max_gap` share a request, and no request
    #: is longer than `max_request`. Local sources never gain from merging, so the gap is 0.
    max_gap: int = 0
    max_request: int = DEFAULT_MAX_REQUEST
    #: `whole_view`'s answer, kept by `ParameterEntry.to_numpy` on first use (False: none), so
    #: that viewing 10,000 entries of one file asks once. None: not asked yet.
    whole_view_cache: memoryview | bool | None = None

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Total bytes available."""

    @abc.abstractmethod
    def view(self, offset: int, length: int) -> memoryview:
        """Bytes ``[offset, offset + length)`` without copying where the source allows it."""

    @property
    def writable(self) -> bool:
        return False

    @property
    def path(self) -> str | None:
        """The local file behind the source, if there is one."""
        return None

    def whole_view(self) -> memoryview | None:
        """The whole source as one buffer that every `view` is a window of (a mapped file, a
        caller's buffer), or None. `ParameterEntry.to_numpy` slices it instead of calling
        `view` per entry; a source whose `view` may copy or count bytes keeps the default."""
        return None

    def read(self, offset: int, length: int) -> bytes:
        """A copy of ``[offset, offset + length)``."""
        return bytes(self.view(offset, length))

    def readinto(self, offset: int, out: memoryview | bytearray) -> int:
        """Fill `out` from `offset`; returns the byte count."""
        dst = memoryview(out).cast("B")
        dst[:] = self.view(offset, len(dst))
        return len(dst)

    def readv(self, spans: Sequence[Span] | Iterable[tuple[int, int]]) -> list[memoryview]:
        """One buffer per span ``(offset, length)``, in the order given.

        The spans are checked first (a bad one raises before any byte is read), then read as the
        planner's coalesced requests through `readinto`. Sources that map memory return views.
        Raises `InvalidArgumentError`/`TruncatedError` for a bad span, `SourceError` on a read."""
        wanted = self.checked_spans(spans)
        plan = plan_reads(wanted, max_gap=self.max_gap, max_request=self.max_request)
        return run_plan(wanted, plan, self.readinto)

    def checked_spans(self, spans: Sequence[Span] | Iterable[tuple[int, int]]) -> list[Span]:
        """`spans` as `Span` records, each checked with `check_span`."""
        return checked_spans(self.name, self.size, spans)

    def sibling(self, name: str) -> ByteSource:
        """The source named `name` relative to this one's folder or URL (a shard, an external
        file), opened read-only. Names escaping the folder are refused.

        Raises `SourceError` when this source has no folder (memory) or the name is refused."""
        raise SourceError(f"has no siblings: cannot open {name!r} beside it", path=self.name)

    def write(self, offset: int, data: memoryview | bytes) -> None:
        raise SourceError("source is read-only", path=self.name, offset=offset)

    def flush(self) -> None:  # noqa: B027 -- a real default: nothing to make durable
        """Make written bytes durable. Read-only sources have nothing to do."""

    def close(self) -> None:  # noqa: B027 -- a real default: nothing to release
        """Release OS resources. Views already handed out stay valid where the source allows."""

    def check_span(self, offset: int, length: int, key: str | None = None) -> None:
        check_span(self.name, self.size, offset, length, key)

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: How `handle_for` makes IREE's ``FileHandle`` for a source. The floor cannot name handles (they
#: are sources, one layer up): `paramio.sources` installs the factory when it is imported.
_handle_factory: Callable[[ByteSource], ByteSource] | None = None


def set_handle_factory(factory: Callable[[ByteSource], ByteSource]) -> None:
    """Install the function `handle_for` calls (done once, by `paramio.sources`)."""
    global _handle_factory
    _handle_factory = factory


def handle_for(source: ByteSource) -> ByteSource:
    """IREE's ``FileHandle`` for `source` (``ParameterEntry.file_storage``); one per source."""
    if _handle_factory is None:
        raise SourceError("file handles need paramio.sources: import it first", path=source.name)
    return _handle_factory(source)

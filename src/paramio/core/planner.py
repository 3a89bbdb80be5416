"""The read planner: which ranged requests serve a list of wanted spans.

Pure functions over integers, shared by every source (sync or async, local or remote), so the rule
is written once and property-tested once. The idea is fsspec's ``merge_offset_ranges`` and zarr's
coalescer: spans closer than ``max_gap`` share one request (a small gap costs less than a round
trip), no request grows past ``max_request`` bytes (bounded memory per request, and parallelism
for big objects), and a span larger than ``max_request`` is split into parts that are each at most
``max_request`` long.
"""

from __future__ import annotations

from paramio.core.errors import InvalidArgumentError
from paramio.core.records import Record

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = ["Piece", "Request", "Span", "plan_reads", "run_plan"]

#: Default gap below which two spans share a request: about what one round trip could carry.
DEFAULT_MAX_GAP = 64 * 1024
#: Default largest single request: big enough to amortise latency, small enough to parallelise.
DEFAULT_MAX_REQUEST = 16 * 1024 * 1024


class Span(Record):
    """Bytes ``[offset, offset + length)`` a caller wants."""

    __slots__ = ("offset", "length")
    __match_args__ = __slots__
    offset: int
    length: int

    def __init__(self, offset: int, length: int) -> None:
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "length", length)

    @property
    def end(self) -> int:
        return self.offset + self.length


class Piece(Record):
    """Part of wanted span number `span` (``[span_offset, span_offset + length)`` of it) that a
    request carries at ``request_offset`` into its body."""

    __slots__ = ("span", "span_offset", "request_offset", "length")
    __match_args__ = __slots__
    span: int
    span_offset: int
    request_offset: int
    length: int

    def __init__(self, span: int, span_offset: int, request_offset: int, length: int) -> None:
        object.__setattr__(self, "span", span)
        object.__setattr__(self, "span_offset", span_offset)
        object.__setattr__(self, "request_offset", request_offset)
        object.__setattr__(self, "length", length)


class Request(Record):
    """One ranged read ``[start, end)`` of the source, and the pieces of wanted spans it serves."""

    __slots__ = ("start", "end", "pieces")
    __match_args__ = __slots__
    start: int
    end: int
    pieces: tuple[Piece, ...]

    def __init__(self, start: int, end: int, pieces: tuple[Piece, ...]) -> None:
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "pieces", pieces)

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_reads(
    spans: Sequence[Span] | Iterable[tuple[int, int]],
    *,
    max_gap: int = DEFAULT_MAX_GAP,
    max_request: int = DEFAULT_MAX_REQUEST,
) -> list[Request]:
    """Requests, in offset order, that together carry every byte of every span.

    Two neighbouring spans (after sorting) share a request only when the gap between them is at
    most `max_gap` and the merged request stays within `max_request`; overlapping spans always
    share bytes. A span longer than `max_request` becomes several requests of at most
    `max_request` each. Zero-length spans need no bytes and get no piece.

    Raises `InvalidArgumentError` for a negative offset, length, gap or a request size below 1.
    """
    if max_gap < 0 or max_request < 1:
        raise InvalidArgumentError(f"bad read plan limits (max_gap {max_gap}, max_request {max_request})")
    wanted = [s if isinstance(s, Span) else Span(int(s[0]), int(s[1])) for s in spans]
    for s in wanted:
        if s.offset < 0 or s.length < 0:
            raise InvalidArgumentError(f"negative span (offset {s.offset}, length {s.length})")
    order = sorted((i for i, s in enumerate(wanted) if s.length > 0), key=lambda i: wanted[i].offset)

    # First the covered intervals: merge by the gap rule, then cut each at max_request.
    groups: list[tuple[int, int]] = []
    for i in order:
        s = wanted[i]
        if groups:
            start, end = groups[-1]
            merged_end = max(end, s.end)
            if s.offset <= end or (s.offset - end <= max_gap and merged_end - start <= max_request):
                groups[-1] = (start, merged_end)
                continue
        groups.append((s.offset, s.end))
    bounds: list[tuple[int, int]] = []
    for start, end in groups:
        for cut in range(start, end, max_request):
            bounds.append((cut, min(end, cut + max_request)))

    # Then hand each span's bytes to the requests that hold them (a sweep: both lists are sorted).
    pieces: list[list[Piece]] = [[] for _ in bounds]
    first = 0
    for i in order:
        s = wanted[i]
        while bounds[first][1] <= s.offset:
            first += 1
        j = first
        pos = s.offset
        while pos < s.end:
            start, end = bounds[j]
            take = min(end, s.end) - pos
            pieces[j].append(Piece(i, pos - s.offset, pos - start, take))
            pos += take
            j += 1
    return [Request(start, end, tuple(p)) for (start, end), p in zip(bounds, pieces, strict=True)]


# The executors' shared steps: a sync loop (`run_plan`) and the async one in `aio` both use these.


def outputs_for(wanted: Sequence[Span]) -> list[bytearray]:
    """One zeroed buffer per wanted span: the only allocation a plan's result needs."""
    return [bytearray(s.length) for s in wanted]


def direct_target(request: Request, outputs: Sequence[bytearray]) -> memoryview | None:
    """The slice of an output the request can be read straight into (it carries one piece and
    nothing else), or None when its body must be read into a scratch buffer and scattered."""
    if len(request.pieces) == 1 and request.pieces[0].length == request.length:
        p = request.pieces[0]
        return memoryview(outputs[p.span])[p.span_offset : p.span_offset + p.length]
    return None


def scatter(request: Request, body: memoryview, outputs: Sequence[bytearray]) -> None:
    """Copy each piece of a request's body into its span's output."""
    for p in request.pieces:
        outputs[p.span][p.span_offset : p.span_offset + p.length] = body[p.request_offset : p.request_offset + p.length]


def run_plan(
    wanted: Sequence[Span], plan: Sequence[Request], readinto: Callable[[int, memoryview], int]
) -> list[memoryview]:
    """Execute `plan` one request at a time with a source's ``readinto(offset, buffer)``."""
    outputs = outputs_for(wanted)
    for req in plan:
        dst = direct_target(req, outputs)
        if dst is not None:
            readinto(req.start, dst)
            continue
        body = memoryview(bytearray(req.length))
        readinto(req.start, body)
        scatter(req, body, outputs)
    return [memoryview(o).toreadonly() for o in outputs]

"""`verify`: structure checks of a parameter file, and which entries map zero-copy.

Problems found (each a `Problem` naming the file, the entry and the offset where known):

* `Check.PARSE`: the file does not parse, or a file it names may not be opened (an external
  file outside the archive's folder unless allowed, or not a regular file);
* `Check.TENSOR_METADATA`: dtype/shape metadata disagree with the entry's length;
* `Check.SPLATS`: a splat breaks the splat rule (`paramio.core.splats`);
* `Check.BOUNDS`: a data entry runs past the end of its file;
* `Check.OVERLAPS`: two data entries of one file share bytes;
* `Check.ALIGNMENT` (only with ``strict_alignment``): a data entry's offset is not a multiple
  of the alignment;
* `Check.STRUCTURE`, for formats whose `Format` has a ``check_structure(contents)`` hook
  (IRPA: `paramio.formats.irpa.structure`): a data entry shares bytes with the file's own
  structure (IREE reads such archives, but an in-place write into the entry destroys them).

Every data entry is also reported (`EntryCheck`): the largest power of two dividing its offset
(capped at 4096) and whether it can be viewed zero-copy at the alignment and at its element
size. ``paramio verify`` prints the report; this module only builds it. Fields (`Problem.key`,
`Problem.file`) hold names as read; a message quoting another entry's name or a file escapes it
(`paramio.formats.text.escape`), so a name cannot forge a line of the printed report.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Sequence

from paramio.core.dtypes import dtype_by_name
from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import InvalidArgumentError, ParamioError
from paramio.core.splats import SPLAT_PATTERN_LENGTHS_TEXT, SplatFault, splat_fault, splat_fault_message
from paramio.formats.contract import get_format
from paramio.formats.registry import FormatContents, detect_format, read_path
from paramio.formats.text import escape
from paramio.sources.paths import AllowExternal

__all__ = [
    "DEFAULT_ALIGNMENT",
    "MAX_REPORTED_ALIGNMENT",
    "Check",
    "EntryCheck",
    "Problem",
    "VerifyReport",
    "check_entries",
    "offset_alignment",
    "verify",
]

#: The alignment zero-copy use is reported against unless another is asked for.
DEFAULT_ALIGNMENT = 64
#: Offsets aligned to more than this are reported as aligned to this.
MAX_REPORTED_ALIGNMENT = 4096


class Check(enum.StrEnum):
    """One kind of check `verify` runs (see the module docstring)."""

    PARSE = "parse"
    TENSOR_METADATA = "tensor-metadata"
    SPLATS = "splats"
    BOUNDS = "bounds"
    OVERLAPS = "overlaps"
    ALIGNMENT = "alignment"
    STRUCTURE = "structure"


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong, found by `check`, in `file` (the file holding the bytes in question),
    at entry `key` and file `offset` where they are known."""

    check: Check
    message: str
    file: str
    key: str | None = None
    offset: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class EntryCheck:
    """One entry as `verify` saw it. `offset`, `alignment` and `zero_copy` are None for a
    splat (it has no storage); `alignment` is the largest power of two dividing the offset
    (`offset_alignment`); `zero_copy` says whether the offset is a multiple of the report's
    alignment and of the entry's element size."""

    key: str
    kind: EntryKind
    length: int
    offset: int | None
    alignment: int | None
    zero_copy: bool | None


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `verify` found in one file: its `format` (None when it did not parse), every
    problem, every entry, the checks that ran and the alignment reported against."""

    path: str
    format: str | None
    problems: tuple[Problem, ...]
    entries: tuple[EntryCheck, ...]
    checks: tuple[Check, ...]
    alignment: int

    @property
    def ok(self) -> bool:
        return not self.problems


def offset_alignment(offset: int) -> int:
    """The largest power of two dividing `offset`, capped at `MAX_REPORTED_ALIGNMENT`."""
    if offset == 0:
        return MAX_REPORTED_ALIGNMENT
    return min(offset & -offset, MAX_REPORTED_ALIGNMENT)


def _itemsize(e: ParameterEntry) -> int:
    info = e.tensor
    if info is None:
        return 1
    try:
        return max(1, dtype_by_name(info.dtype).itemsize)
    except InvalidArgumentError:
        return 1


def _splat_problem(fault: SplatFault, e: ParameterEntry, file: str) -> Problem:
    plen = len(e.pattern)
    if fault is SplatFault.PATTERN_LENGTH:  # the report's own words, kept from before the rule moved
        message = f"splat pattern length {plen} is not {SPLAT_PATTERN_LENGTHS_TEXT}"
    else:
        message = splat_fault_message(fault, plen, e.length)
    return Problem(Check.SPLATS, message, file, e.key)


def check_entries(
    entries: Sequence[ParameterEntry],
    *,
    file: str,
    alignment: int = DEFAULT_ALIGNMENT,
    strict_alignment: bool = False,
) -> tuple[list[Problem], list[EntryCheck]]:
    """Check the entries read from `file` (every check but `Check.PARSE` and
    `Check.STRUCTURE`); returns the problems and one `EntryCheck` per entry, in order."""
    problems: list[Problem] = []
    report: list[EntryCheck] = []
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for e in entries:
        info = e.tensor
        if info is not None:
            want = info.nbytes()
            if want is not None and want != e.length:
                problems.append(
                    Problem(
                        Check.TENSOR_METADATA,
                        f"dtype {info.dtype} shape {list(info.shape)} is {want} bytes but the entry has {e.length}",
                        file,
                        e.key,
                    )
                )
        if e.is_splat:
            fault = splat_fault(len(e.pattern), e.length)
            if fault is not None:
                problems.append(_splat_problem(fault, e, file))
            report.append(EntryCheck(e.key, e.kind, e.length, None, None, None))
            continue
        src = e.source
        size = src.size if src is not None else 0
        where = src.name if src is not None else file
        if src is None or e.offset < 0 or e.offset + e.length > size:
            problems.append(
                Problem(
                    Check.BOUNDS,
                    f"data {e.offset:#x}..{e.offset + e.length:#x} ends past the end of the file ({size:#x})",
                    where,
                    e.key,
                    e.offset,
                )
            )
        if e.length:
            spans.setdefault(src.name if src is not None else "?", []).append((e.offset, e.offset + e.length, e.key))
        align = offset_alignment(e.offset)
        zero_copy = e.offset % alignment == 0 and e.offset % _itemsize(e) == 0
        if strict_alignment and e.offset % alignment:
            problems.append(
                Problem(
                    Check.ALIGNMENT,
                    f"data is aligned to {align} bytes, less than --alignment={alignment}",
                    where,
                    e.key,
                    e.offset,
                )
            )
        report.append(EntryCheck(e.key, e.kind, e.length, e.offset, align, zero_copy))
    for name, items in spans.items():
        items.sort()
        for (s0, e0, k0), (s1, _e1, k1) in zip(items, items[1:], strict=False):
            if s1 < e0:
                problems.append(
                    Problem(
                        Check.OVERLAPS,
                        f"data overlaps entry '{escape(k0)}' ({s0:#x}..{e0:#x}) in {escape(name)}",
                        name,
                        k1,
                        s1,
                    )
                )
    return problems, report


#: What a format's ``check_structure`` hook is: problems in the files `contents` was read from.
StructureCheck = Callable[[FormatContents], list[Problem]]


def _structure_check(fmt: str) -> StructureCheck | None:
    """The format's ``check_structure`` hook (`paramio.formats.contract.Format`), if it has one."""
    return get_format(fmt).check_structure


def verify(
    path: str | os.PathLike[str],
    *,
    alignment: int = DEFAULT_ALIGNMENT,
    strict_alignment: bool = False,
    allow_external: AllowExternal = None,
) -> VerifyReport:
    """Read and check the parameter file (or sharded set) at `path` (a URL too: only its
    header and tables are read); see the module docstring for the checks. Zero-copy use is
    reported against `alignment`; with `strict_alignment` an entry below it is a problem.
    Files the file names must resolve beside it or in `allow_external` (as in `read_path`).

    A file that does not parse is not an exception: the report's one problem says why
    (`Check.PARSE`). Raises `InvalidArgumentError` for an alignment that is not a power of two.
    """
    if alignment < 1 or alignment & (alignment - 1):
        raise InvalidArgumentError(f"alignment {alignment} is not a power of two")
    from paramio.sources.retry import redact_path

    p = os.fspath(path)
    shown = redact_path(p)  # a presigned URL's query is its credential: never in a report
    checks = [Check.PARSE, Check.TENSOR_METADATA, Check.SPLATS, Check.BOUNDS, Check.OVERLAPS]
    if strict_alignment:
        checks.append(Check.ALIGNMENT)
    try:
        fmt = detect_format(p)
        contents = read_path(p, format=fmt, allow_external=allow_external)
        problems, report = check_entries(
            contents.entries, file=shown, alignment=alignment, strict_alignment=strict_alignment
        )
        hook = _structure_check(fmt)
        if hook is not None:
            checks.append(Check.STRUCTURE)
            problems += hook(contents)
    except ParamioError as exc:
        problem = Problem(Check.PARSE, exc.reason, redact_path(exc.path or p), exc.key, exc.offset)
        return VerifyReport(shown, None, (problem,), (), (Check.PARSE,), alignment)
    return VerifyReport(shown, fmt, tuple(problems), tuple(report), tuple(checks), alignment)

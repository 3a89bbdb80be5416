"""``paramio verify FILE...``: structure checks, and which entries map zero-copy.

Problems (exit 1): the file does not parse; a data entry runs past the end of its file; two
data entries of one file overlap; a data entry overlaps the file's own structure (an IRPA
header, entry table or metadata segment: IREE reads such archives, but an in-place write into
the entry destroys them); an external file lies outside the archive's folder (unless
``--allow-external``), or is not a regular file; a splat pattern is not 1, 2, 4, 8 or 16 bytes or does not
divide the entry's length; dtype/shape metadata disagree with the entry's length; with
``--alignment=N``, a data entry whose file offset is not a multiple of N.

Report: for every data entry, the largest power of two dividing its offset (capped at 4096)
and whether it can be viewed zero-copy at ``--alignment`` (default 64) and at its element size.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence

from paramio.cli.dump import offset_alignment
from paramio.cli.errors import UsageError, cli_wording, escape
from paramio.cli.flags import ParsedFlags, allowed_external
from paramio.cli.verify_flags import DESCRIPTION, FLAGS, main
from paramio.core.dtypes import dtype_by_name
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, ParamioError
from paramio.formats.registry import detect_format, read_path
from paramio.index.scopes import parse_parameters_flag

__all__ = ["DESCRIPTION", "FLAGS", "FileReport", "Problem", "main", "run", "verify_entries", "verify_file"]


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    key: str | None
    offset: int | None
    message: str

    def __str__(self) -> str:
        where = f"entry '{escape(self.key)}'" if self.key is not None else ""
        if self.offset is not None:
            where += f" at offset {self.offset:#x}"
        return f"{where.strip()}: {self.message}" if where else self.message


@dataclasses.dataclass(slots=True)
class FileReport:
    path: str
    format: str | None
    problems: list[Problem]
    entries: list[dict[str, object]]

    @property
    def ok(self) -> bool:
        return not self.problems


def _itemsize(e: ParameterEntry) -> int:
    info = e.tensor
    if info is None:
        return 1
    try:
        return max(1, dtype_by_name(info.dtype).itemsize)
    except InvalidArgumentError:
        return 1


def verify_entries(
    entries: Sequence[ParameterEntry], *, alignment: int, strict_alignment: bool
) -> tuple[list[Problem], list[dict[str, object]]]:
    """Check one file's entries; returns its problems and the per-entry report."""
    problems: list[Problem] = []
    report: list[dict[str, object]] = []
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for e in entries:
        info = e.tensor
        if info is not None:
            want = info.nbytes()
            if want is not None and want != e.length:
                problems.append(
                    Problem(
                        e.key,
                        None,
                        f"dtype {info.dtype} shape {list(info.shape)} is {want} bytes but the entry has {e.length}",
                    )
                )
        if e.is_splat:
            plen = len(e.pattern)
            if plen not in (1, 2, 4, 8, 16):
                problems.append(Problem(e.key, None, f"splat pattern length {plen} is not 1, 2, 4, 8 or 16"))
            elif e.length % plen:
                problems.append(
                    Problem(e.key, None, f"splat length {e.length} is not a multiple of its {plen}-byte pattern")
                )
            report.append(
                {
                    "key": e.key,
                    "kind": e.kind.value,
                    "length": e.length,
                    "offset": None,
                    "alignment": None,
                    "zero_copy": None,
                }
            )
            continue
        src = e.source
        size = src.size if src is not None else 0
        if src is None or e.offset < 0 or e.offset + e.length > size:
            problems.append(
                Problem(
                    e.key,
                    e.offset,
                    f"data {e.offset:#x}..{e.offset + e.length:#x} ends past the end of the file ({size:#x})",
                )
            )
        if e.length:
            spans.setdefault(src.name if src is not None else "?", []).append((e.offset, e.offset + e.length, e.key))
        align = offset_alignment(e.offset)
        zero_copy = e.offset % alignment == 0 and e.offset % _itemsize(e) == 0
        if strict_alignment and e.offset % alignment:
            problems.append(
                Problem(e.key, e.offset, f"data is aligned to {align} bytes, less than --alignment={alignment}")
            )
        report.append(
            {
                "key": e.key,
                "kind": e.kind.value,
                "length": e.length,
                "offset": e.offset,
                "alignment": align,
                "zero_copy": zero_copy,
            }
        )
    for name, items in spans.items():
        items.sort()
        for (s0, e0, k0), (s1, _e1, k1) in zip(items, items[1:], strict=False):
            if s1 < e0:
                problems.append(
                    Problem(k1, s1, f"data overlaps entry '{escape(k0)}' ({s0:#x}..{e0:#x}) in {escape(name)}")
                )
    return problems, report


def verify_file(
    path: str, *, alignment: int = 64, strict_alignment: bool = False, allow_external: Sequence[str] = ()
) -> FileReport:
    """Read and check one file. Parse errors (and refused external files) become the report's
    one problem."""
    try:
        fmt = detect_format(path)
        contents = read_path(path, format=fmt, allow_external=list(allow_external))
        problems, report = verify_entries(contents.entries, alignment=alignment, strict_alignment=strict_alignment)
        if fmt == "irpa":
            problems += _structure_problems(path, contents.entries)
    except ParamioError as exc:
        return FileReport(path, None, [Problem(exc.key, exc.offset, cli_wording(exc.reason))], [])
    return FileReport(path, fmt, problems, report)


def _structure_problems(path: str, entries: Sequence[ParameterEntry]) -> list[Problem]:
    """Data entries sharing bytes with the archive's header, entry table or metadata."""
    from paramio.formats.inputs import open_parsed
    from paramio.formats.irpa.reader import fetch_tables, structure_regions
    from paramio.formats.overlaps import find_overlaps
    from paramio.formats.window import WindowSource

    source = open_parsed(path)  # a URL: its headers and tables, which is all this reads
    try:
        if isinstance(source, WindowSource):
            fetch_tables(source)
        found = find_overlaps(source, entries, structure_regions(source), with_entries=False)
    finally:
        source.close()
    return [
        Problem(o.key, o.offset, o.message + "; an in-place write into it would corrupt the archive") for o in found
    ]


def run(flags: ParsedFlags) -> int:
    paths = [parse_parameters_flag(v).path for v in flags.many("parameters")] + flags.positional
    if not paths:
        raise UsageError("no files: paramio verify FILE... (or --parameters=FILE) [--alignment=N] [--json]")
    given = flags.values["alignment"]
    alignment = given if isinstance(given, int) else 64
    if alignment < 1 or alignment & (alignment - 1):
        raise UsageError(f"--alignment={alignment}: expected a power of two such as 64")
    strict = given is not None
    allow = allowed_external(flags)
    reports = [verify_file(p, alignment=alignment, strict_alignment=strict, allow_external=allow) for p in paths]
    if flags.on("json"):
        doc = {
            "version": 1,
            "alignment": alignment,
            "files": [
                {
                    "path": r.path,
                    "format": r.format,
                    "ok": r.ok,
                    "problems": [{"key": p.key, "offset": p.offset, "message": p.message} for p in r.problems],
                    "entries": r.entries,
                }
                for r in reports
            ],
        }
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        for r in reports:
            _print_report(r, alignment, quiet=flags.on("quiet"))
    return 0 if all(r.ok for r in reports) else 1


def _print_report(r: FileReport, alignment: int, *, quiet: bool) -> None:
    out = sys.stdout
    status = "OK" if r.ok else f"{len(r.problems)} problem(s)"
    out.write(f"{escape(r.path)}: {r.format or '?'}, {len(r.entries)} entries: {status}\n")
    for p in r.problems:
        out.write(f"  problem: {escape(str(p), quote=False)}\n")
    if quiet:
        return
    data = [e for e in r.entries if e["offset"] is not None]
    slow = [e for e in data if not e["zero_copy"]]
    out.write(f"  zero-copy at {alignment}: {len(data) - len(slow)} of {len(data)} data entries\n")
    for e in slow:
        out.write(
            f"    not zero-copy: '{escape(str(e['key']))}' at offset {e['offset']} (aligned to {e['alignment']})\n"
        )

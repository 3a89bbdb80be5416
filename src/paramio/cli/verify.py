"""``paramio verify FILE...``: `paramio.verify`'s report for each file, printed.

The checks (`paramio.formats.verify`): the file parses; every data entry inside its file; no
two data entries of one file overlapping; no data entry overlapping the file's own structure
(an IRPA header, entry table or metadata segment: IREE reads such archives, but an in-place
write into the entry destroys them); external files inside the archive's folder (unless
``--allow_external``) and regular files; splat patterns of 1, 2, 4, 8 or 16 bytes dividing the
entry's length; dtype/shape metadata agreeing with the entry's length; with ``--alignment=N``,
every data entry's file offset a multiple of N. Exit 1 when any file has a problem.

Report: for every data entry, the largest power of two dividing its offset (capped at 4096)
and whether it can be viewed zero-copy at ``--alignment`` (default 64) and at its element size.
"""

from __future__ import annotations

import sys

from paramio.cli.engine_flags import engine_of
from paramio.cli.errors import UsageError, cli_wording, escape
from paramio.cli.flags import ParsedFlags, allowed_external
from paramio.cli.jsonout import print_json
from paramio.cli.verify_flags import DESCRIPTION, FLAGS, main
from paramio.formats.verify import DEFAULT_ALIGNMENT, EntryCheck, Problem, VerifyReport, verify
from paramio.index.scopes import parse_parameters_flag

__all__ = ["DESCRIPTION", "FLAGS", "describe_problem", "main", "run"]


def describe_problem(p: Problem) -> str:
    """``entry 'KEY' at offset 0xN: message`` (the parts known), the message in the CLI's words."""
    where = f"entry '{escape(p.key)}'" if p.key is not None else ""
    if p.offset is not None:
        where += f" at offset {p.offset:#x}"
    message = cli_wording(p.message)
    return f"{where.strip()}: {message}" if where else message


def _entry_dict(e: EntryCheck) -> dict[str, object]:
    return {
        "key": e.key,
        "kind": e.kind.value,
        "length": e.length,
        "offset": e.offset,
        "alignment": e.alignment,
        "zero_copy": e.zero_copy,
    }


def _file_dict(r: VerifyReport) -> dict[str, object]:
    return {
        "path": r.path,
        "format": r.format,
        "ok": r.ok,
        "problems": [{"key": p.key, "offset": p.offset, "message": cli_wording(p.message)} for p in r.problems],
        "entries": [_entry_dict(e) for e in r.entries],
    }


def run(flags: ParsedFlags) -> int:
    paths = [parse_parameters_flag(v).path for v in flags.many("parameters")] + flags.positional
    lists = flags.many("files")
    if lists:
        return _check_files(lists, paths, flags)
    if not paths:
        raise UsageError("no files: paramio verify FILE... (or --parameters=FILE) [--alignment=N] [--json]")
    given = flags.values["alignment"]
    alignment = given if isinstance(given, int) else DEFAULT_ALIGNMENT
    if alignment < 1 or alignment & (alignment - 1):
        raise UsageError(f"--alignment={alignment}: expected a power of two such as 64")
    strict = given is not None
    allow = allowed_external(flags)
    reports = [verify(p, alignment=alignment, strict_alignment=strict, allow_external=allow) for p in paths]
    engine, address = engine_of(flags)
    if engine != "local" and not flags.on("digests"):
        raise UsageError(f"--engine={engine} re-reads entries for --digests; give --digests too")
    digests = [_digest_check(r, engine, address) for r in reports] if flags.on("digests") else [None] * len(reports)
    if flags.on("json"):
        docs = [
            _file_dict(r) | ({"digests": d} if d is not None else {}) for r, d in zip(reports, digests, strict=True)
        ]
        print_json({"alignment": alignment, "files": docs}, indent=1)
    else:
        for r, d in zip(reports, digests, strict=True):
            _print_report(r, quiet=flags.on("quiet"))
            if d is not None:
                _print_digests(d)
    ok_digests = all(d is None or d["ok"] for d in digests)
    return 0 if all(r.ok for r in reports) and ok_digests else 1


def _digest_check(r: VerifyReport, engine: str = "local", address: str | None = None) -> dict[str, object]:
    """The digest check of one file (only one that parsed: a broken file has no entries to hash)."""
    from paramio.core.errors import MissingExtraError, ParamioError
    from paramio.integrity import verify_digests

    if r.format is None:
        return {"ok": False, "error": "the file does not parse", "algorithm": None, "checked": 0, "mismatches": []}
    try:
        record, mismatches = verify_digests(r.path, engine=engine, address=address)
    except MissingExtraError:
        raise  # the command's one line naming the extra, not a failed check
    except ParamioError as exc:
        return {"ok": False, "error": cli_wording(exc.reason), "algorithm": None, "checked": 0, "mismatches": []}
    return {
        "ok": not mismatches,
        "error": None,
        "algorithm": record.algorithm,
        "checked": len(record.entries),
        "mismatches": [m.to_dict() for m in mismatches],
    }


def _print_digests(d: dict[str, object]) -> None:
    out = sys.stdout
    if d["error"] is not None:
        out.write(f"  digests: not checked: {escape(str(d['error']), quote=False)}\n")
        return
    mismatches = d["mismatches"]
    assert isinstance(mismatches, list)
    status = "OK" if not mismatches else f"{len(mismatches)} mismatch(es)"
    out.write(f"  digests ({d['algorithm']}): {d['checked']} entries: {status}\n")
    for m in mismatches:
        where = (
            f" (bytes {m['start']}..{m['end']} of {escape(str(m['file']), quote=False)})"
            if m["start"] is not None
            else ""
        )
        if m["algorithm"] == "type":
            out.write(
                f"    mismatch: entry '{escape(m['key'])}': the record says {m['expected']}, the file says {m['got']}\n"
            )
        elif m["expected"] is None:
            out.write(f"    mismatch: entry '{escape(m['key'])}': no stored digest{where}\n")
        elif m["got"] is None:
            out.write(f"    mismatch: entry '{escape(m['key'])}': stored digest of an entry the file does not have\n")
        else:
            out.write(f"    mismatch: entry '{escape(m['key'])}': expected {m['expected']}, got {m['got']}{where}\n")


def _check_files(lists: list[str], files: list[str], flags: ParsedFlags) -> int:
    """``--files``: whole files against sha256sum lists or LFS pointers."""
    from paramio.integrity import check_files

    checks = check_files(lists, files)
    if flags.on("json"):
        print_json({"files": [c.to_dict() for c in checks]}, indent=1)
    else:
        for c in checks:
            if not (c.ok and flags.on("quiet")):
                sys.stdout.write(escape(c.describe(), quote=False) + "\n")
    return 0 if all(c.ok for c in checks) else 1


def _print_report(r: VerifyReport, *, quiet: bool) -> None:
    out = sys.stdout
    if r.format is None:  # not opened or not recognised: nothing was checked, so no "format ?" listing
        for p in r.problems:
            out.write(f"{escape(r.path)}: problem: {escape(describe_problem(p), quote=False)}\n")
        return
    status = "OK" if r.ok else f"{len(r.problems)} problem(s)"
    out.write(f"{escape(r.path)}: {r.format or '?'}, {len(r.entries)} entries: {status}\n")
    for p in r.problems:
        out.write(f"  problem: {escape(describe_problem(p), quote=False)}\n")
    if quiet:
        return
    data = [e for e in r.entries if e.offset is not None]
    slow = [e for e in data if not e.zero_copy]
    out.write(f"  zero-copy at {r.alignment}: {len(data) - len(slow)} of {len(data)} data entries\n")
    for e in slow:
        out.write(f"    not zero-copy: '{escape(e.key)}' at offset {e.offset} (aligned to {e.alignment})\n")

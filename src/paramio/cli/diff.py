"""``paramio diff A B [--json] [--tolerance=ATOL] [--rtol=RTOL]``: what changed between two models.

Exit 0 when they are equal (or differ only within the tolerance), 1 when they differ, 2 on an
error, as ``diff`` does (`paramio.diff`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from paramio.cli.engine_flags import ENGINE_FLAGS, engine_of
from paramio.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, escape
from paramio.cli.flags import ALLOW_EXTERNAL, Flag, FlagKind, ParsedFlags, files_from, run_command
from paramio.cli.jsonout import print_json

__all__ = ["DESCRIPTION", "FLAGS", "main"]

FLAGS = (
    Flag("parameters", FlagKind.LIST, "A (then B): files, sets or URLs; also as bare arguments.", None, "file"),
    ALLOW_EXTERNAL,
    Flag("tolerance", FlagKind.STRING, "Absolute tolerance: values within it count as equal.", "0"),
    Flag("rtol", FlagKind.STRING, "Relative tolerance, added to --tolerance times |B|.", "0"),
    Flag(
        "digests",
        FlagKind.BOOL,
        "Takes entries with equal stored digests as equal without reading them (false: compare bytes).",
        True,
    ),
    Flag("json", FlagKind.BOOL, 'Prints one JSON object {"version": 1, "equal": ..., "differences": [...]}.', False),
    Flag("quiet", FlagKind.BOOL, "Prints nothing: the exit status says.", False),
    *ENGINE_FLAGS,
)

DESCRIPTION = """\
Compares two models, formats may differ, local or remote: keys only in A or only in B, dtype
or shape changes, and for tensors whose bytes differ, summaries computed in pieces (largest
absolute and relative difference, elements that differ, NaN/Inf changes, cosine similarity).
Entries both sides keep digests of are compared by digest, reading no data. Exit 0 when equal
(or within --tolerance), 1 when different, 2 on an error.

Examples:
  paramio diff model.safetensors model.irpa
  paramio diff step-1000.safetensors step-2000.safetensors --json
  paramio diff model.gguf https://host/model.gguf --tolerance=1e-6
"""

_DIFFERENT = 3  # the body's "different" status, told apart from an error's (1) below


def main(argv: Sequence[str]) -> int:
    code = run_command("diff", argv, FLAGS, DESCRIPTION, _diff)
    return {EXIT_OK: EXIT_OK, _DIFFERENT: 1, EXIT_FAILURE: EXIT_USAGE}.get(code, EXIT_USAGE)


def _tolerance(parsed: ParsedFlags, name: str) -> float:
    text = parsed.text(name)
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--{name}={text}: expected a number such as 1e-6") from None
    if value < 0 or math.isnan(value):
        raise UsageError(f"--{name}={text}: expected a number >= 0")
    return value


def _diff(parsed: ParsedFlags) -> int:
    from paramio.index.scopes import parse_parameters_flag
    from paramio.integrity import diff

    paths = [parse_parameters_flag(v).path for v in files_from(parsed)]
    if len(paths) != 2:
        raise UsageError(f"give two models to compare, not {len(paths)}: paramio diff A B")
    engine, address = engine_of(parsed)
    report = diff(
        paths[0],
        paths[1],
        atol=_tolerance(parsed, "tolerance"),
        rtol=_tolerance(parsed, "rtol"),
        use_digests=parsed.on("digests"),
        engine=engine,
        address=address,
    )
    if parsed.on("json"):
        print_json(report.to_dict())
    elif not parsed.on("quiet"):
        for d in report.differences:
            print(escape(d.describe(), quote=False))
        n = sum(not d.within_tolerance for d in report.differences)
        verdict = "equal" if report.equal else f"{n} difference{'' if n == 1 else 's'}"
        same = f"{report.identical} entr{'y' if report.identical == 1 else 'ies'} identical"
        print(f"{verdict}: {same}" + (f" ({report.by_digest} by stored digest)" if report.by_digest else ""))
    return EXIT_OK if report.equal else _DIFFERENT

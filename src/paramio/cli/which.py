"""``paramio which --parameters=[scope=]file ... scope::key [--json]``: who serves a key.

Prints the file (layer) serving each ``scope::key`` under the chosen precedence, the entry there
(kind, offset, length, type) and every layer it shadows. Exit 1 if a key is served by nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from paramio.cli.errors import EXIT_OK, UsageError, escape
from paramio.cli.flags import (
    ALLOW_EXTERNAL,
    OVERLAY,
    PARAMETERS,
    PRECEDENCE,
    Flag,
    FlagKind,
    ParsedFlags,
    allowed_external,
    precedence_of,
    run_command,
)
from paramio.cli.jsonout import print_json

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from paramio.index.provider import EntryRecord, Which


FLAGS = (
    PARAMETERS,
    ALLOW_EXTERNAL,
    OVERLAY,
    PRECEDENCE,
    Flag("json", FlagKind.BOOL, 'Print one JSON object {"version": 1, "keys": [...]} (schema in docs/cli.md).', False),
)

DESCRIPTION = """\
Says which file serves scope::key, where, and which layers it shadows.

  paramio which --parameters=model=base.irpa --parameters=model=patch.irpa model::w
  paramio which --parameters=model=base.irpa --precedence=last model::w --json
"""


def main(argv: Sequence[str]) -> int:
    return run_command("which", argv, FLAGS, DESCRIPTION, _which)


def _which(parsed: ParsedFlags) -> int:
    from paramio.core.errors import ParameterNotFoundError
    from paramio.index.provider import Provider

    if not parsed.positional:
        raise UsageError("name at least one scope::key")
    if not parsed.many("parameters"):
        raise UsageError("give at least one --parameters=[scope=]file")
    provider = Provider.from_flags(
        parsed.many("parameters"),
        precedence=precedence_of(parsed),
        overlays=parsed.many("overlay"),
        allow_external=allowed_external(parsed),
    )
    answers: list[Which] = []
    missing: list[ParameterNotFoundError] = []
    for k in parsed.positional:
        try:
            answers.append(provider.which(k))
        except ParameterNotFoundError as exc:  # say what was found first, then what was not
            missing.append(exc)
    if parsed.on("json"):
        # One shape whatever the number of keys asked (it used to be an object for one key
        # and a list for several, which every script had to test for).
        doc: dict[str, object] = {"keys": [a.to_dict() for a in answers]}
        if missing:
            doc["missing"] = [{"key": exc.key, "error": str(exc)} for exc in missing]
        print_json(doc)
    elif answers:
        print("\n".join(escape(line, quote=False) for a in answers for line in which_lines(a)))
    if missing:
        sys.stdout.flush()
        if len(missing) == 1:
            raise missing[0]
        raise ParameterNotFoundError(
            f"{len(missing)} keys are served by nothing: " + ", ".join(repr(e.key) for e in missing)
        )
    return EXIT_OK


def which_lines(answer: Which) -> list[str]:
    """The text answer for one key, unescaped: the key, the layer serving it, those it shadows."""
    lines = [f"{answer.scope}::{answer.key}", f"  served by: {describe_record(answer.served)}"]
    lines += [f"  shadows:   {describe_record(s)}" for s in answer.shadows] or ["  shadows:   nothing"]
    return lines


def describe_record(r: EntryRecord) -> str:
    """One layer's entry on one line: ``[overlay ]FILE (FORMAT): KIND, offset N, length N, ...``.
    Names are escaped line by line by the caller (they may hold control characters)."""
    parts = [f"{'overlay ' if r.overlay else ''}{r.layer} ({r.format or '?'}): {r.kind}"]
    if r.offset is not None:
        parts.append(f"offset {r.offset}")
    parts.append(f"length {r.length}")
    if r.pattern is not None:
        parts.append(f"pattern {r.pattern}")
    if r.dtype is not None:
        parts.append(f"{r.dtype}{list(r.shape) if r.shape is not None else ''}")
    if r.data_file is not None:
        parts.append(f"bytes in {r.data_file}")
    return ", ".join(parts)

"""``paramio which --parameters=[scope=]file ... scope::key [--json]``: who serves a key.

Prints the file (layer) serving each ``scope::key`` under the chosen precedence, the entry there
(kind, offset, length, type) and every layer it shadows. Exit 1 if a key is served by nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from paramio.cli.errors import EXIT_OK, UsageError, escape, guarded
from paramio.cli.flags import Flag, FlagKind, env_debug, format_help, parse_flags

FLAGS = (
    Flag("parameters", FlagKind.LIST, "A parameter file serving a scope, as iree-run-module takes it.", None, "[scope=]file"),
    Flag("overlay", FlagKind.LIST, "A writable overlay archive on top of a scope's layers.", None, "[scope=]file.irpa"),
    Flag("precedence", FlagKind.STRING, "Which layer wins for a key held twice: first, last or error.", "first"),
    Flag("json", FlagKind.BOOL, "Print a JSON object per key (a list when several keys are asked).", False),
)

DESCRIPTION = """\
Says which file serves scope::key, where, and which layers it shadows.

  paramio which --parameters=model=base.irpa --parameters=model=patch.irpa model::w
  paramio which --parameters=model=base.irpa --precedence=last model::w --json
"""


def main(argv: Sequence[str]) -> int:
    debug = [env_debug()]

    def body() -> int:
        from paramio.index.provider import Provider

        parsed = parse_flags(argv, FLAGS)
        debug[0] = debug[0] or parsed.on("debug")
        if parsed.on("help"):
            sys.stdout.write(format_help("which", DESCRIPTION, FLAGS) + "\n")
            return EXIT_OK
        if not parsed.positional:
            raise UsageError("name at least one scope::key")
        if not parsed.many("parameters"):
            raise UsageError("give at least one --parameters=[scope=]file")
        if parsed.text("precedence") not in ("first", "last", "error"):
            raise UsageError(f"--precedence={parsed.text('precedence')}: expected first, last or error")
        provider = Provider.from_flags(
            parsed.many("parameters"), precedence=parsed.text("precedence"), overlays=parsed.many("overlay")
        )
        answers = [provider.which(k) for k in parsed.positional]
        if parsed.on("json"):
            data = [a.to_dict() for a in answers]
            print(json.dumps(data[0] if len(data) == 1 else data, indent=2))
        else:
            print("\n".join(escape(line, quote=False) for a in answers for line in a.format_text().splitlines()))
        return EXIT_OK

    return guarded("which", body, debug=lambda: debug[0])

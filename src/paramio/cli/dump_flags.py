"""``paramio dump``'s flags and help, apart from its body (`paramio.cli.dump`, which imports
the readers and NumPy), so that ``paramio dump --help`` and usage errors
import no NumPy; the body is imported once the flags parsed (`paramio.cli.main.BODIES`)."""

from __future__ import annotations

from paramio.cli.flags import ALLOW_EXTERNAL, PARAMETER_MODE, PARAMETERS, STRICT, Flag, FlagKind, run_command
from paramio.cli.main import deferred

__all__ = ["DEFAULT_ITEMS", "DESCRIPTION", "FLAGS", "main"]

#: Array elements shown before the rest are summarised (``--metadata_items``; used by
#: `paramio.cli.metadata`, which a listing without ``--metadata`` or ``--json`` does not import).
DEFAULT_ITEMS = 16

DESCRIPTION = """\
Dumps information about parsed parameter files: IREE's exact listing (one block per scope),
or a JSON document (--json) or a readable table (--table). --extract writes one parameter's
bytes to a file; unlike iree-dump-parameters it works without --parameter_mode=preload and on
splat parameters.

Example listing two files under two scopes:
  paramio dump --parameters=a=a.safetensors --parameters=b=b.irpa

Example listing a file and its GGUF key/values (token lists cut to 16 items):
  paramio dump model.gguf --metadata

Example extracting a parameter:
  paramio dump --parameters=model=model.irpa --extract=model::w=w.bin

Example for scripts:
  paramio dump --parameters=model.gguf --json | jq '.entries[].key'
"""

FLAGS = (
    PARAMETERS,
    ALLOW_EXTERNAL,
    PARAMETER_MODE,
    STRICT,
    Flag(
        "extract",
        FlagKind.LIST,
        "Extracts a parameter's bytes: `--extract=[scope::]key=file.bin`; `-` (or a FIFO or\n"
        "device) streams them; with `-` or /dev/stdout the listing goes to stderr.",
        metavar="[scope::]key=file",
    ),
    Flag("json", FlagKind.BOOL, "Prints a JSON document instead of the listing (schema in docs/cli.md).", False),
    Flag("table", FlagKind.BOOL, "Prints a readable table with dtype, shape and alignment.", False),
    Flag(
        "metadata",
        FlagKind.BOOL,
        "Prints each scope's file-level metadata (GGUF key/values, safetensors __metadata__)\n"
        "after the listing (off by default: the listing stays iree-dump-parameters' text).",
        False,
    ),
    Flag(
        "metadata_items",
        FlagKind.INT,
        "Array values (token lists) show this many elements, in text and --json; 0 shows all.",
        DEFAULT_ITEMS,
    ),
    Flag("quiet", FlagKind.BOOL, "No progress bar while extracting.", False),
)

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    return run_command("dump", argv, FLAGS, DESCRIPTION, deferred("dump"))

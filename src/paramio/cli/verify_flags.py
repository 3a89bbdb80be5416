"""``paramio verify``'s flags and help, apart from its body (`paramio.cli.verify`, which imports
the readers and NumPy), so that ``paramio verify --help`` and usage errors
import no NumPy; the body is imported once the flags parsed (`paramio.cli.main.BODIES`)."""

from __future__ import annotations

from collections.abc import Sequence

from paramio.cli.engine_flags import ENGINE_FLAGS
from paramio.cli.flags import ALLOW_EXTERNAL, Flag, FlagKind, run_command
from paramio.cli.main import deferred

__all__ = ["DESCRIPTION", "FLAGS", "main"]

DESCRIPTION = """\
Checks parameter files (.irpa, .safetensors, .gguf): every data entry inside its file, no two
data entries overlapping, splat patterns IREE can load, dtype/shape metadata matching lengths,
and reports which entries can be mapped zero-copy at an alignment. Exit 0 when all is well,
1 when any file has a problem.

Example:
  paramio verify model.irpa shard-*.safetensors --alignment=64
  paramio verify model.safetensors --digests
  paramio verify --files=SHA256SUMS
  paramio verify --files=model.safetensors.pointer model.safetensors
  paramio verify model.gguf --json
"""

FLAGS = (
    ALLOW_EXTERNAL,
    Flag(
        "alignment",
        FlagKind.INT,
        "Alignment (bytes, a power of two) data entries should have for zero-copy use;\n"
        "given explicitly, an entry below it is a problem (default: report against 64).",
        None,
        "N",
    ),
    Flag(
        "digests",
        FlagKind.BOOL,
        "Also re-reads every entry and checks it against the digests the file stores (paramio\n"
        "digest --write): each mismatch names the key, algorithm, both digests and the bytes.",
        False,
    ),
    Flag(
        "files",
        FlagKind.LIST,
        "Checks whole files against a sha256sum list (the files it names, beside it) or a Hugging\n"
        "Face / Git LFS pointer file (against the FILE arguments). Repeatable.",
        None,
        "SUMS_OR_POINTER",
    ),
    *ENGINE_FLAGS,
    Flag("json", FlagKind.BOOL, "Prints a JSON report.", False),
    Flag("quiet", FlagKind.BOOL, "Prints only problems.", False),
    Flag(
        "parameters",
        FlagKind.LIST,
        "A file to check, as the other commands take it (`[scope=]file`; the scope is ignored).",
        metavar="[scope=]file",
    ),
)


def main(argv: Sequence[str]) -> int:
    return run_command("verify", argv, FLAGS, DESCRIPTION, deferred("verify"))

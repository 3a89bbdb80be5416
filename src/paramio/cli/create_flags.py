"""``paramio create``'s flags and help, apart from its body (`paramio.cli.create`, which imports
the readers and NumPy), so that ``paramio create --help`` and usage errors
import no NumPy; the body is imported once the flags parsed (`paramio.cli.main.BODIES`)."""

from __future__ import annotations

from collections.abc import Sequence

from paramio.cli.flags import Flag, FlagKind, run_command
from paramio.cli.main import deferred

__all__ = ["DESCRIPTION", "FLAGS", "main"]

DESCRIPTION = """\
Creates IREE Parameter Archive (.irpa) files. Provide zero or more parameter value
declarations and an output file with `--output=file.irpa` to produce a new file with zeroed
or patterned contents. Same flags and bytes as iree-create-parameters.

Parameter declarations take a shape and type (`SHAPExTYPE`, e.g. 4096xf32, 2x4096xi16) to
calculate the storage size; the value is parsed by type: integers (0x10, 010 accepted), floats
(2.1, inf, 0x1p3), and hex bytes in text order for x/*, bool and complex types (*32=CAFEF00D).

Example creating a file with two zeroed data parameters and one with a repeating pattern
(paramio fills the pattern for every element size; IREE 3.13 fails on this one):
  paramio create \\
    --data=my.zeroed_param_1=4096xf32 \\
    --data=my.zeroed_param_2=2x4096xi16 \\
    --data=my.pattern_param_2=8x2xf32=2.1 \\
    --output=output_with_storage.irpa

Example creating a file with splatted values (no storage on disk), recording dtype and shape:
  paramio create --typed \\
    --splat=my.splat_param_1=4096xf32=4.1 \\
    --splat=my.splat_param_2=2x4096xi16=123 \\
    --output=output_without_storage.irpa
"""

FLAGS = (
    Flag(
        "splat",
        FlagKind.LIST,
        "Declares a splat parameter in the form `name=shapextype=pattern`.\nSplat parameters have no storage on disk.",
        metavar="name=SHAPExTYPE[=value]",
    ),
    Flag(
        "data",
        FlagKind.LIST,
        "Declares a data parameter in the form `name=shapextype=pattern`.\n"
        "Omitting the value leaves the parameter with zeroed contents on disk.",
        metavar="name=SHAPExTYPE[=value]",
    ),
    Flag("alignment", FlagKind.INT, "Storage data alignment relative to the header (a power of two).", 64),
    Flag("typed", FlagKind.BOOL, "Record dtype and shape as TENSORv0 metadata (not byte-identical to IREE).", False),
    Flag("quiet", FlagKind.BOOL, "Silences additional stdout output when not needed.", False),
    Flag("output", FlagKind.STRING, "Output .irpa file path (`-` for stdout, or a FIFO or device).", ""),
)


def main(argv: Sequence[str]) -> int:
    return run_command("create", argv, FLAGS, DESCRIPTION, deferred("create"))

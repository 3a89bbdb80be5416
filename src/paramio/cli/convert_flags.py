"""``paramio convert``'s flags and help, apart from its body (`paramio.cli.convert`, which imports
the readers and NumPy), so that ``paramio convert --help`` and usage errors
import no NumPy; the body is imported once the flags parsed (`paramio.cli.main.BODIES`)."""

from __future__ import annotations

from collections.abc import Sequence

from paramio.cli.engine_flags import ENGINE_FLAGS
from paramio.cli.flags import ALLOW_EXTERNAL, PARAMETER_MODE, PARAMETERS, STRICT, Flag, FlagKind, run_command
from paramio.cli.main import deferred

__all__ = ["DESCRIPTION", "FLAGS", "main"]

DESCRIPTION = """\
Converts parameter files (.irpa, .safetensors, .gguf) into one IREE Parameter Archive, or into
safetensors or GGUF (by the output's extension or --format). Inputs take the same form as
iree-run-module (`--parameters=foo.gguf`, `--parameters=scope=foo.gguf`); scopes are
flattened. Same flags as iree-convert-parameters; dtype/shape are kept as TENSORv0 metadata.

Example converting from safetensors to IRPA:
  paramio convert \\
    --parameters=input.safetensors \\
    --output=output.irpa

Example mutating parameters:
  paramio convert \\
    --parameters=a.gguf \\
    --parameters=b.safetensors \\
    --exclude=unneeded_param \\
    --rename=old_name=new_name \\
    --splat=some_name=f32=4.2 \\
    --output=ab.irpa

Example stripping all parameters and replacing them with zeros except for one that needs
special handling:
  paramio convert \\
    --parameters=input.irpa \\
    --strip \\
    --splat=special_param=f32=1.0 \\
    --output=output.irpa

Example converting an IRPA archive to safetensors:
  paramio convert --parameters=model.irpa --output=model.safetensors

Example converting a sharded set on S3 on a Ray cluster, one task per output member, each
reading its bytes from S3 and uploading its member; the index is written last:
  paramio convert \\
    --parameters=s3://bucket/model.safetensors.index.json \\
    --output=s3://bucket/irpa/model.irpa.index.json \\
    --max_shard_size=5GB --engine=ray --address=auto --json
"""

FLAGS = (
    PARAMETERS,
    ALLOW_EXTERNAL,
    PARAMETER_MODE,
    STRICT,
    Flag(
        "exclude",
        FlagKind.LIST,
        "Excludes a named parameter (its original name) from the resulting file.",
        metavar="name",
    ),
    Flag("rename", FlagKind.LIST, "Renames a parameter in the form of `--rename=old=new`.", metavar="old=new"),
    Flag("strip", FlagKind.BOOL, "Strips all parameters by replacing them with zeros.", False),
    Flag(
        "splat",
        FlagKind.LIST,
        "Turns a parameter into a splat of 0 (`--splat=name`) or a specific value\n"
        "(`--splat=name=i8=123`, `--splat=name=f32=4.5`, `--splat=name=x32=CAFEF00D`).",
        metavar="name[=type=value]",
    ),
    Flag(
        "typed",
        FlagKind.BOOL,
        "Keep dtype/shape as TENSORv0 metadata for entries typed by their format\n"
        "(--typed=false writes IREE's exact bytes, which drop them).",
        True,
    ),
    Flag(
        "duplicates",
        FlagKind.STRING,
        "What to do with a key held twice: first (the entry IREE serves), last, error.",
        "first",
    ),
    Flag(
        "on_loss",
        FlagKind.STRING,
        "What to do when the output format cannot hold something as the input did (a splat\n"
        "written as data, a type it has no code for): warn (one line each), error (write\n"
        "nothing, exit 1), ignore.",
        "warn",
    ),
    Flag(
        "expand_splats",
        FlagKind.BOOL,
        "Write splats as data into safetensors or GGUF even past 1 GiB (or the data's size):\n"
        "without it, such an output is refused before anything is written.",
        False,
    ),
    Flag("format", FlagKind.STRING, "Output format: irpa, safetensors or gguf (default: from the extension).", ""),
    Flag(
        "max_shard_size",
        FlagKind.STRING,
        "Write a sharded set of files of at most this size (5GB, 2GiB, 500M): an IRPA or\n"
        "safetensors set with its index.json, or a GGUF split set.",
        "",
    ),
    Flag(
        "digests",
        FlagKind.BOOL,
        "Store a per-entry digest record (the inputs' algorithm, else xxh3), computed while\n"
        "copying (without it: only when an input stores one). Check it: paramio verify --digests.",
        False,
    ),
    Flag("quiet", FlagKind.BOOL, "Silences additional stdout output when not needed.", False),
    *ENGINE_FLAGS,
    Flag(
        "memory_bound",
        FlagKind.STRING,
        "With --engine=ray: the buffers one task may hold (256MiB default, at least 24MiB): its\n"
        "reads are an eighth of it, its upload parts a quarter.",
        "",
        "SIZE",
    ),
    Flag(
        "json",
        FlagKind.BOOL,
        'Prints one JSON object {"version": 1, "output": ..., "entries": N, "engine": ..., "job": ...}:\n'
        "with --engine=ray, job is the job's summary (tasks, retries, bytes, per-worker throughput).",
        False,
    ),
    Flag(
        "output",
        FlagKind.STRING,
        "Output file path (.irpa, .safetensors or .gguf); `-` (stdout), a FIFO or a device streams (IRPA unless --format).",
        "",
    ),
)


def main(argv: Sequence[str]) -> int:
    return run_command("convert", argv, FLAGS, DESCRIPTION, deferred("convert"))

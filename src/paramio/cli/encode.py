"""``paramio encode``: run an IREE parameter encoder module (IREE's iree-encode-parameters).

IREE's flags and output: ``--module`` (the encoder last), ``--parameters=[scope=]file`` (any
file, set or URL paramio opens), ``--output=[scope=]path.irpa`` (one per output scope),
``--target``, ``--list_targets``, ``--list_parameters``, ``--quiet``; plus ``--device``. The
engine is `paramio.iree.encode`; its docstring says where paramio differs from IREE's tool.
"""

from __future__ import annotations

from collections.abc import Sequence

from paramio.cli.errors import EXIT_OK, CommandFailed, UsageError, escape
from paramio.cli.flags import ALLOW_EXTERNAL, PARAMETERS, Flag, FlagKind, ParsedFlags, allowed_external, run_command

FLAGS = (
    Flag("module", FlagKind.LIST, "A compiled module (.vmfb); the encoder module comes last.", None, "path.vmfb"),
    PARAMETERS,
    ALLOW_EXTERNAL,
    Flag(
        "output",
        FlagKind.LIST,
        "Specifies an output parameter file per scope.\n"
        "Format: `scope=path.irpa` or `path.irpa` for default scope.\n"
        "Example: `--output=encoded=output.irpa`",
        None,
        "[scope=]path.irpa",
    ),
    Flag("target", FlagKind.STRING, "Target to use for encoding. If not specified, uses the first target.", ""),
    Flag(
        "list_targets",
        FlagKind.BOOL,
        "Lists the targets an encoding module can produce parameters for and exit.",
        False,
    ),
    Flag("list_parameters", FlagKind.BOOL, "Lists the parameters that will be encoded and exit.", False),
    Flag("quiet", FlagKind.BOOL, "Suppress output except for errors. Exit code indicates success.", False),
    Flag("device", FlagKind.STRING, "IREE HAL device the encoder runs on.", "local-task"),
)

DESCRIPTION = """\
Encodes parameter files using an encoder module (iree-encode-parameters, which IREE's pip
wheels lack). iree-compile --iree-parameter-encoder-output-file=encoder.mlir writes the module
that precomputes what a program does to its parameters at load time; this runs it.

  iree-compile model.mlir --iree-parameter-encoder-output-file=encoder.mlir -o main.vmfb
  iree-compile encoder.mlir -o encoder.vmfb
  paramio encode --module=encoder.vmfb --parameters=model=input.irpa --output=encoded=output.irpa
  iree-run-module --module=main.vmfb --parameters=model=input.irpa --parameters=encoded=output.irpa
"""

#: IREE's rule line above each output in the summary.
_RULE = "//===" + "-" * 110 + "===//"


def main(argv: Sequence[str]) -> int:
    return run_command("encode", argv, FLAGS, DESCRIPTION, _main)


def _outputs(values: list[str]) -> dict[str, str]:
    """``--output`` values by scope (IREE's split: at the first ``=``, none is the default scope)."""
    out: dict[str, str] = {}
    for v in values:
        scope, sep, path = v.partition("=")
        if not sep:
            scope, path = "", v
        if not path:
            raise UsageError(f"--output={escape(v)}: no file named")
        if scope in out:
            raise UsageError(f"--output: scope '{escape(scope)}' given twice")
        out[scope] = path
    return out


def _main(parsed: ParsedFlags) -> int:
    if parsed.positional:
        raise UsageError(
            "no positional arguments expected; use one or more --parameters=file.ext flags to specify parameter files"
        )
    if not parsed.many("module"):
        raise UsageError("no modules specified; use --module=path.vmfb")
    listing = parsed.on("list_targets") or parsed.on("list_parameters")
    outputs = _outputs(parsed.many("output"))
    if not listing and not outputs:
        raise UsageError(
            "no output specified; use --output=[scope=]path.irpa "
            "(e.g., --output=encoded=output.irpa or --output=output.irpa)"
        )
    from paramio.core.errors import ParamioError
    from paramio.index.provider import Provider
    from paramio.iree.bridge import iree_runtime
    from paramio.iree.status import IREE_ERRORS, hint, iree_message

    iree_runtime()
    provider = Provider.from_flags(parsed.many("parameters"), allow_external=allowed_external(parsed))
    try:
        return _encode(parsed, provider, outputs)
    except ParamioError:
        raise
    except IREE_ERRORS as exc:
        raise CommandFailed(hint(iree_message(exc), lambda key: None)) from exc


def _encode(parsed: ParsedFlags, provider: object, outputs: dict[str, str]) -> int:
    from paramio.formats.progress import ByteProgress
    from paramio.index.dump import format_dump
    from paramio.index.provider import Provider
    from paramio.iree.encode import Encoder

    assert isinstance(provider, Provider)
    device = parsed.text("device")
    try:
        encoder = Encoder(parsed.many("module"), provider, device=device)
    except ValueError as exc:
        if "No device found" in str(exc):
            raise CommandFailed(f"--device={device}: no such device") from exc
        raise
    target = encoder.target(parsed.text("target") or None)
    if parsed.on("list_targets"):
        print(f"Encoder module: {escape(encoder.module_name, quote=False)}")
        print("Available targets:")
        for t in encoder.targets:
            print(f"  {escape(t.name, quote=False)}")
            if t.scopes:
                print(f"    scopes: {escape(','.join(t.scopes), quote=False)}")
        return EXIT_OK
    layout = encoder.parameters(target)
    if parsed.on("list_parameters"):
        for scope, entries in layout.items():
            print(f'Scope: "{escape(scope, quote=False)}"')
            for e in entries:
                print(f"  {escape(e.describe(), quote=False)}")
        return EXIT_OK
    total = sum(e.length for entries in layout.values() for e in entries if e.kind == "data")
    quiet = parsed.on("quiet")
    with ByteProgress(total, "encoding", quiet=quiet) as bar:
        written = encoder.encode(outputs, target=target, progress=bar.callback)
    if not quiet:
        from paramio.formats.text import escape_keys

        for archive in written:
            print(_RULE)
            print(f"// Output: {escape(archive.path, quote=False)} ({archive.size} bytes)")
            print(format_dump(list(archive.entries), scope=archive.scope, escape=escape_keys), end="")
    return EXIT_OK

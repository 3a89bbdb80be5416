"""``paramio mlir export|import|declare``: parameters on the compiler side, in MLIR files.

* ``export in.mlir --archive=[scope=]weights.irpa --output=out.mlir``: inline constants -> a typed
  archive (any format paramio writes) and a module that references it;
* ``import in.mlir --parameters=[scope=]file ... --output=out.mlir``: the way back;
* ``declare --parameters=[scope=]file``: ``util.global`` declarations for an archive's entries.

Text (``.mlir``) and bytecode (``.mlirbc``) are read alike; the output is bytecode when its name
ends in ``.mlirbc`` or ``--emit_bytecode`` is given. Needs iree-base-compiler (``paramio[iree]``).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from paramio.cli.errors import EXIT_OK, EXIT_USAGE, UsageError, escape, warn
from paramio.cli.flags import (
    ALLOW_EXTERNAL,
    PARAMETERS,
    PRECEDENCE,
    Flag,
    FlagKind,
    ParsedFlags,
    allowed_external,
    precedence_of,
    run_command,
)
from paramio.cli.jsonout import json_text, print_json

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from paramio.index.provider import Provider

__all__ = ["main"]

_FORMAT = Flag(
    "format", FlagKind.STRING, "Archive format: irpa, safetensors or gguf (default: from the extension).", ""
)
_OUTPUT = Flag("output", FlagKind.STRING, "The MLIR file written (.mlirbc: bytecode).", "", "out.mlir")
_KEYS = Flag("keys", FlagKind.LIST, "Only these keys (globs, e.g. 'layer*.w'); repeat for more.", None, "glob")
_BYTECODE = Flag("emit_bytecode", FlagKind.BOOL, "Write MLIR bytecode whatever the output's name.", False)
_JSON = Flag("json", FlagKind.BOOL, "Print what was done as JSON.", False)

EXPORT_FLAGS = (
    Flag("archive", FlagKind.STRING, "The archive written, and the scope the module names it by.", "", "[scope=]file"),
    _OUTPUT,
    Flag("minimum_size", FlagKind.INT, "Values smaller than this many bytes stay inline.", 0),
    _KEYS,
    Flag("constants", FlagKind.BOOL, "Also move arith.constant tensors (of at least --minimum_size) out.", False),
    _FORMAT,
    Flag(
        "on_loss",
        FlagKind.STRING,
        "What the format cannot hold as given (splats in safetensors): warn, error, ignore.",
        "warn",
    ),
    _BYTECODE,
    _JSON,
)
IMPORT_FLAGS = (
    PARAMETERS,
    ALLOW_EXTERNAL,
    PRECEDENCE,
    _OUTPUT,
    _KEYS,
    Flag("maximum_size", FlagKind.INT, "Values larger than this many bytes stay references (default: no limit).", -1),
    _BYTECODE,
    _JSON,
)
DECLARE_FLAGS = (
    PARAMETERS,
    ALLOW_EXTERNAL,
    PRECEDENCE,
    Flag("output", FlagKind.STRING, "Write the declarations to this file instead of stdout.", "", "file.mlir"),
    Flag("visibility", FlagKind.STRING, "private, public or nested.", "private"),
    Flag("mutable", FlagKind.BOOL, "Declare the globals mutable (for programs that write them).", False),
    _JSON,
)

EXPORT_DESCRIPTION = """\
Moves inline weights (util.global dense<...>/dense_resource<...> values, public or private)
into a typed archive and rewrites each global to #flow.parameter.named<"scope"::"name">.

  paramio mlir export model.mlir --archive=model=weights.irpa --output=model.params.mlir
  paramio mlir export model.mlirbc --archive=weights.safetensors --output=out.mlirbc --minimum_size=1024
"""
IMPORT_DESCRIPTION = """\
Replaces #flow.parameter.named references with the values, from any file paramio opens, as
dense_resource blobs; each value's size must match its global's type.

  paramio mlir import model.params.mlir --parameters=model=weights.irpa --output=model.mlir
"""
DECLARE_DESCRIPTION = """\
Prints a util.global declaration for every typed entry, so a program can be written against
an existing archive.

  paramio mlir declare --parameters=model=model.safetensors
"""

USAGE = """\
usage: paramio mlir <export|import|declare> [flags]

  export   inline weights of an .mlir/.mlirbc -> an archive + a module that references it
  import   an archive's values -> back into the module's globals
  declare  util.global declarations for an archive's typed entries

Run 'paramio mlir <command> --help' for its flags.
"""


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return EXIT_OK if args else EXIT_USAGE
    sub, rest = args[0], args[1:]
    if sub == "export":
        return run_command("mlir export", rest, EXPORT_FLAGS, EXPORT_DESCRIPTION, _export)
    if sub == "import":
        return run_command("mlir import", rest, IMPORT_FLAGS, IMPORT_DESCRIPTION, _import)
    if sub == "declare":
        return run_command("mlir declare", rest, DECLARE_FLAGS, DECLARE_DESCRIPTION, _declare)
    sys.stderr.write(f"paramio mlir: unknown command '{escape(sub)}'\n\n" + USAGE)
    return EXIT_USAGE


def _one_input(parsed: ParsedFlags) -> str:
    if len(parsed.positional) != 1:
        raise UsageError("give exactly one input module (.mlir or .mlirbc)")
    return parsed.positional[0]


def _output(parsed: ParsedFlags) -> str:
    out = parsed.text("output")
    if not out:
        raise UsageError("--output=file is required (.mlir text or .mlirbc bytecode)")
    return out


def _save(module: object, path: str, parsed: ParsedFlags) -> None:
    from paramio.mlir.module import MlirModule

    assert isinstance(module, MlirModule)
    module.save(path, bytecode=True if parsed.on("emit_bytecode") else None)


def _export(parsed: ParsedFlags) -> int:
    from paramio.core.errors import ConversionWarning
    from paramio.formats.conversion import LOSS_POLICIES
    from paramio.formats.registry import FORMATS
    from paramio.mlir import MlirModule, export_parameters

    source = _one_input(parsed)
    output = _output(parsed)
    archive_flag = parsed.text("archive")
    if not archive_flag:
        raise UsageError("--archive=[scope=]file is required")
    from paramio.index.scopes import split_scope

    scope, archive = split_scope(archive_flag)
    if not archive:
        raise UsageError(f"--archive={archive_flag}: names a scope but no file")
    fmt = parsed.text("format").lower() or None
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format={fmt}: expected one of {', '.join(FORMATS)}")
    on_loss = parsed.text("on_loss").lower()
    if on_loss not in LOSS_POLICIES:
        raise UsageError(f"--on_loss={on_loss}: expected warn, error or ignore")
    if parsed.number("minimum_size") < 0:
        raise UsageError("--minimum_size must be 0 or more")
    module = MlirModule.load(source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        try:
            report = export_parameters(
                module,
                archive,
                scope=scope,
                minimum_size=parsed.number("minimum_size"),
                keys=parsed.many("keys"),
                constants=parsed.on("constants"),
                format=fmt,
                on_loss=on_loss,
            )
        finally:
            for w in caught:
                if issubclass(w.category, ConversionWarning):
                    warn("mlir export", escape(str(w.message), quote=False))
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    _save(module, output, parsed)
    for s in report.skipped:
        warn("mlir export", f"@{escape(s.symbol)} stays inline: {s.reason}")
    if parsed.on("json"):
        print_json(
            {
                "archive": report.archive,
                "scope": report.scope,
                "output": output,
                "exported": [
                    {
                        "symbol": e.symbol,
                        "key": e.key,
                        "dtype": e.dtype,
                        "shape": list(e.shape),
                        "bytes": e.nbytes,
                        "kind": e.kind,
                    }
                    for e in report.exported
                ],
                "skipped": [{"symbol": s.symbol, "reason": s.reason} for s in report.skipped],
                "hoisted": list(report.hoisted),
            },
        )
    else:
        total = sum(e.nbytes for e in report.exported)
        where = f"{archive} (scope {scope!r})" if scope else archive
        if report.exported:
            print(
                f"exported {len(report.exported)} parameters ({total} bytes) to {escape(where)}; wrote {escape(output)}"
            )
        else:
            print(f"nothing to export (no archive written); wrote {escape(output)}")
    return EXIT_OK


def _import(parsed: ParsedFlags) -> int:
    from paramio.mlir import MlirModule, import_parameters

    source = _one_input(parsed)
    output = _output(parsed)
    if not parsed.many("parameters"):
        raise UsageError("give at least one --parameters=[scope=]file")
    maximum = parsed.number("maximum_size")
    provider = _provider(parsed.many("parameters"), parsed)
    module = MlirModule.load(source)
    report = import_parameters(
        module, provider, keys=parsed.many("keys"), maximum_size=None if maximum < 0 else maximum
    )
    _save(module, output, parsed)
    if parsed.on("json"):
        print_json(
            {
                "output": output,
                "imported": [
                    {"symbol": i.symbol, "scope": i.scope, "key": i.key, "bytes": i.nbytes, "kind": i.kind}
                    for i in report.imported
                ],
                "left": [{"symbol": x.symbol, "scope": x.scope, "key": x.key, "reason": x.reason} for x in report.left],
            },
        )
    else:
        total = sum(i.nbytes for i in report.imported)
        print(
            f"imported {len(report.imported)} parameters ({total} bytes); "
            f"{len(report.left)} references left; wrote {escape(output)}"
        )
        for x in report.left:
            print(f"  left @{escape(x.symbol)} ({escape(x.scope)}::{escape(x.key)}): {escape(x.reason)}")
    return EXIT_OK


def _provider(values: list[str], parsed: ParsedFlags) -> Provider:
    from paramio.core.errors import InvalidArgumentError
    from paramio.index.provider import Provider
    from paramio.index.scopes import parse_parameters_flag

    for v in values:
        try:
            parse_parameters_flag(v)
        except InvalidArgumentError as exc:
            raise UsageError(str(exc)) from None
    return Provider.from_flags(values, precedence=precedence_of(parsed), allow_external=allowed_external(parsed))


def _declare(parsed: ParsedFlags) -> int:
    from paramio.mlir import declare_parameters

    if parsed.positional:
        raise UsageError(f"unexpected argument '{escape(parsed.positional[0])}' (give files with --parameters=)")
    if not parsed.many("parameters"):
        raise UsageError("give at least one --parameters=[scope=]file")
    visibility = parsed.text("visibility")
    if visibility not in ("private", "public", "nested"):
        raise UsageError(f"--visibility={visibility}: expected private, public or nested")
    provider = _provider(parsed.many("parameters"), parsed)
    result = declare_parameters(provider, visibility=visibility, mutable=parsed.on("mutable"))
    for scope, key, reason in result.skipped:
        warn("mlir declare", f"{escape(scope)}::{escape(key)} not declared: {escape(reason)}")
    if parsed.on("json"):
        text = json_text(
            {
                "declared": [
                    {"symbol": d.symbol, "scope": d.scope, "key": d.key, "type": d.type, "text": d.text}
                    for d in result.declared
                ]
            }
        )
    else:
        text = result.text()
    out = parsed.text("output")
    if out:
        from paramio.formats.output import AtomicOutput

        with AtomicOutput(out) as f:
            f.pwrite(text.encode(), 0)
            f.commit()
    else:
        sys.stdout.write(text)
    return EXIT_OK

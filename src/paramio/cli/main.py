"""``paramio <command> [flags]``: one module per command, each with ``main(argv) -> int``.

Commands whose flags mirror IREE's tools (create, convert, dump) take IREE's ``--flag=value``
syntax; the rest follow the same style. Exit status: 0 success, 1 a bad input file or failed
operation, 2 a usage error, 128 + N when signal N (SIGINT, SIGTERM, SIGHUP, ...) stopped the
command after its temporary files were removed (`paramio.cli.signals`).
"""

from __future__ import annotations

import sys

from paramio.core.exports import import_module

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (see `paramio`)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from paramio.cli.flags import ParsedFlags

#: command -> (module, one-line summary). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("paramio.cli.create_flags", "create an IRPA archive from --data/--splat specs (iree-create-parameters)"),
    "convert": ("paramio.cli.convert_flags", "convert, merge, rename, strip parameter files (iree-convert-parameters)"),
    "dump": ("paramio.cli.dump_flags", "list parameters and extract them (iree-dump-parameters)"),
    "verify": ("paramio.cli.verify_flags", "check files' structure and zero-copy alignment"),
    "which": ("paramio.cli.which", "say which file and layer serve scope::key"),
    "load": ("paramio.cli.load", "load a model into numpy, torch or IREE devices; print bytes, seconds, GB/s"),
    "prefetch": ("paramio.cli.prefetch", "bring files into the page cache ahead of a loader that maps them"),
    "run": ("paramio.cli.run", "run a compiled IREE module with paramio parameters (iree-run-module)"),
    "encode": ("paramio.cli.encode", "run an IREE parameter encoder module (iree-encode-parameters)"),
    "mlir": ("paramio.cli.mlir", "export inline weights of an .mlir to an archive, import them back, declare globals"),
    "shard": ("paramio.cli.shard", "split a model for tensor parallelism: per-device archives and a manifest"),
    "merge": ("paramio.cli.merge", "join a tensor-parallel (or any sharded) set into one file, or reshard it"),
    "digest": ("paramio.cli.digest", "a digest of every entry (xxh3, blake3, sha256); --write stores them"),
    "diff": ("paramio.cli.diff", "what changed between two models: keys, types, values (exit 0 equal, 1 different)"),
    "example": ("paramio.cli.example", "the built-in end-to-end example"),
}

#: command -> the module whose ``run(parsed) -> int`` does its work, for commands whose body
#: imports the readers (and so NumPy): their flags and help live in a light ``<command>_flags``
#: module (the one `COMMANDS` names), and the body is imported once the flags parsed, so that
#: ``paramio <command> --help`` and usage errors import no NumPy (tests/core/test_startup.py).
BODIES: dict[str, str] = {
    "create": "paramio.cli.create",
    "convert": "paramio.cli.convert",
    "dump": "paramio.cli.dump",
    "verify": "paramio.cli.verify",
}

USAGE = """\
usage: paramio <command> [flags]

paramio reads, writes and converts parameter files (IRPA, safetensors, GGUF) and takes the
flags of IREE's iree-*-parameters tools and iree-run-module unchanged. Every command: flags are
--name=value (- and _ in a name are the same), files are --parameters=[scope=]file (dump,
verify and convert also take bare FILE arguments), --json prints one versioned object.

commands:
{commands}

examples:
  paramio create --splat=my.splat_param=4096xf32=4.1 --data=my.pattern_param=8x2xf32=2.1 --output=a.irpa
  paramio convert --parameters=model.safetensors --exclude=unneeded --output=model.irpa
  paramio convert --parameters=model.gguf --output=model.safetensors
  paramio dump --parameters=model=model.irpa --extract=model::my.splat_param=splat.bin
  paramio dump model.gguf --metadata
  paramio verify model.irpa --alignment=64
  paramio which --parameters=model=base.irpa --parameters=model=patch.irpa model::w
  paramio mlir export model.mlir --archive=model=weights.irpa --output=model.params.mlir
  paramio load --parameters=model=model.safetensors --into=iree --device=local-task --json
  paramio run --module=prog.vmfb --parameters=model=model.irpa --function=main --input=4xf32=1,2,3,4
  paramio encode --module=encoder.vmfb --parameters=model=model.irpa --output=encoded=encoded.irpa
  paramio shard --parameters=model.safetensors --tp=4 --split='*.attn_q.weight=0' --replicate='*' --output=tp4/
  paramio merge --parameters=tp4/model.tp.json --output=model.safetensors
  paramio prefetch model-00001-of-00004.safetensors --budget=8GiB
  paramio digest model.safetensors --write && paramio verify model.safetensors --digests
  paramio diff step-1000.safetensors step-2000.safetensors --tolerance=1e-6
  paramio convert --parameters=s3://b/m.safetensors.index.json --output=s3://b/m.irpa.index.json --engine=ray --address=auto

Run 'paramio <command> --help' for a command's flags and examples.
"""


def deferred(command: str) -> Callable[[ParsedFlags], int]:
    """The body of `command` (`BODIES`) as `run_command` calls it, imported on that call."""

    def run(parsed: ParsedFlags) -> int:
        code: int = import_module(BODIES[command]).run(parsed)
        return code

    return run


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    if args[0] in ("--version", "-V"):
        from paramio import __version__

        print(f"paramio {__version__}")
        return 0
    name, rest = args[0], args[1:]
    spec = COMMANDS.get(name)
    if spec is None:
        from paramio.cli.flags import suggest
        from paramio.formats.text import escape

        near = suggest(name, COMMANDS)
        hint = f" (did you mean '{near}'?)" if near is not None else ""
        sys.stderr.write(
            f"paramio: unknown command '{escape(name)}'{hint}\n"
            f"commands: {', '.join(COMMANDS)}; run 'paramio --help' for more\n"
        )
        return 2
    try:
        module = import_module(spec[0])
    except ModuleNotFoundError as exc:
        if exc.name == spec[0]:
            sys.stderr.write(f"paramio: command '{name}' is not available in this build\n")
            return 2
        raise
    from paramio.cli.signals import Terminated, unwinding_on_signals

    try:
        with unwinding_on_signals():
            code: int = module.main(rest)
    except Terminated as exc:  # outputs have removed their temporary files on the way here
        sys.stderr.write(f"paramio {name}: {exc}\n")
        return exc.exit_status
    return code


if __name__ == "__main__":
    raise SystemExit(main())

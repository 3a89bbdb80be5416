"""``paramio convert``: ``iree-convert-parameters`` with the same flags, and its bugs fixed.

Same as IREE: inputs by ``--parameters=[scope=]file`` (scopes flattened into one output),
entries in input order, ``--exclude``/``--rename`` match the *original* name (first rename rule
wins), ``--splat`` matches the *renamed* name, ``--strip`` turns every other entry into a
one-zero-byte splat, data 64-byte aligned, metadata kept. The bytes match IREE's archive when
no fix below applies.

Better than IREE:

* dtype and shape survive: an entry typed by its format (safetensors, GGUF) but without
  metadata gets ``TENSORv0`` metadata; file-level attributes (GGUF key/values, safetensors
  ``__metadata__``) are passed to the writer;
* a key held twice is written once (``--duplicates=first``, default: the entry IREE's lookup
  serves; ``last``; ``error``) with a warning; IREE writes both and corrupts the data;
* a ``--rename`` onto an existing key is refused before anything is written (exit 1); IREE
  fails half-way and leaves a partial file;
* ``--exclude``/``--rename``/``--splat`` naming no parameter warn; a splat pattern that does not
  divide the parameter's length is refused;
* output by extension (.irpa, .safetensors, .gguf) or ``--format``; written atomically (even
  over one of the inputs), streamed (memory stays flat), with a progress bar on a terminal;
* what the output format cannot hold (a splat written as data, a type stored under a stand-in)
  is said in one warning line each before writing; ``--on_loss=error`` (or ``--on_loss``) refuses instead (exit 1,
  no file), ``--on_loss=ignore`` is quiet (see docs/conversions.md).
"""

from __future__ import annotations

import dataclasses
import sys
import warnings

from paramio.cli.convert_flags import DESCRIPTION, FLAGS, main
from paramio.cli.engine_flags import engine_of
from paramio.cli.errors import CommandFailed, UsageError, escape, warn
from paramio.cli.flags import (
    ParsedFlags,
    allowed_external,
    files_from,
    load_scopes,
)
from paramio.cli.sizes import parse_size
from paramio.core.errors import ConversionWarning, DuplicateKeyError, InvalidArgumentError, LossError
from paramio.formats.contract import Format, get_format
from paramio.formats.conversion import LOSS_POLICIES
from paramio.formats.progress import ByteProgress
from paramio.formats.registry import FORMATS, read_path
from paramio.formats.targets import resolve_output
from paramio.formats.text import escape_keys
from paramio.index.convert import DUPLICATE_POLICIES, convert, output_format, parse_splat, plan_conversion
from paramio.index.dump import format_dump

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from paramio.scaleout.engine import JobReport

__all__ = ["DESCRIPTION", "FLAGS", "main", "run"]

#: Rules the library names as ``exclude=...``, ``rename=...``, ``splat=...``: flags here.
_FLAG_WORDS = ("exclude=", "rename=", "splat=", "splat:")


def _as_flags(message: str) -> str:
    """A library message about a rule, worded with the flag that gave it (``--rename=a=b``)."""
    return "--" + message if message.startswith(_FLAG_WORDS) else message


def _split_splat(text: str) -> tuple[str, str | None]:
    name, sep, rest = text.partition("=")
    if not name:
        raise UsageError(f"--splat={text}: expected name or name=TYPE=VALUE")
    if not sep:
        return name, None
    if "=" not in rest:
        raise UsageError(f"--splat={text}: expected name=TYPE=VALUE (e.g. f32=4.5, i8=123, x32=CAFEF00D)")
    try:
        parse_splat(rest, name=name)
    except InvalidArgumentError as exc:
        raise UsageError(_as_flags(str(exc))) from None
    return name, rest


def _split_rename(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise UsageError(f"--rename={text}: expected old=new")
    return old, new


def run(flags: ParsedFlags) -> int:
    output = flags.text("output")
    if not output:
        raise UsageError("--output=file is required (.irpa, .safetensors or .gguf)")
    duplicates = flags.text("duplicates").lower()
    if duplicates not in DUPLICATE_POLICIES:
        raise UsageError(f"--duplicates={duplicates}: expected first, last or error")
    fmt = flags.text("format").lower() or None
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format={fmt}: expected one of {', '.join(FORMATS)}")
    on_loss = flags.text("on_loss").lower()
    if on_loss not in LOSS_POLICIES:
        raise UsageError(f"--on_loss={on_loss}: expected warn, error or ignore")
    mode = flags.text("parameter_mode")
    if mode not in ("file", "preload", "mmap"):
        raise UsageError(f"--parameter_mode={mode}: expected file or preload")
    engine, address = engine_of(flags)
    bound_text = flags.text("memory_bound")
    if bound_text and engine == "local":
        raise UsageError(f"--memory_bound={bound_text} bounds the tasks of --engine=ray")
    memory_bound = parse_size("memory_bound", bound_text) if bound_text else None
    streamed = resolve_output(output).streamed  # refuses a directory, socket or block device up front
    try:
        fmt = output_format(output, fmt)
    except Exception:
        raise UsageError(
            f"--output={output}: unknown output format; use an extension .irpa, .safetensors or .gguf, or --format="
        ) from None
    size = flags.text("max_shard_size")
    max_shard_size = parse_size("max_shard_size", size) if size else None
    if max_shard_size is not None and streamed:
        raise UsageError(f"--max_shard_size writes a set of files; --output={output} is a stream")
    renames = [_split_rename(t) for t in flags.many("rename")]
    splats = [_split_splat(t) for t in flags.many("splat")]
    inputs = files_from(flags)
    if not inputs:
        raise UsageError("no inputs: give one or more --parameters=[scope=]file")
    scopes = load_scopes(inputs, allowed_external(flags), strict=flags.on("strict"), copy=mode == "preload")
    typed = flags.on("typed")
    try:
        plan = plan_conversion(
            scopes,
            exclude=flags.many("exclude"),
            rename=renames,
            splat=splats,
            strip=flags.on("strip"),
            duplicates=duplicates,
            typed=typed,
        )
    except (DuplicateKeyError, InvalidArgumentError) as exc:
        raise CommandFailed(_as_flags(str(exc))) from None
    quiet = flags.on("quiet")
    for note in plan.warnings:  # before the bar: what the rules matched or not
        warn("convert", escape(_as_flags(note), quote=False))
    plan = dataclasses.replace(plan, warnings=[])
    target = get_format(fmt)
    total = sum(e.length for e in plan.entries if not e.is_splat or not target.splats)
    as_json = flags.on("json")
    job: JobReport | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        try:
            if engine != "local":
                if streamed:
                    raise UsageError(f"--engine={engine} writes files or objects; --output={output} is a stream")
                job = _convert_on_engine(
                    flags,
                    scopes,
                    output,
                    plan,
                    fmt,
                    on_loss,
                    max_shard_size,
                    engine,
                    address,
                    total,
                    quiet or as_json,
                    memory_bound,
                )
            else:
                with ByteProgress(total, f"writing {output}", quiet=quiet or as_json) as bar:
                    convert(
                        scopes,
                        output,
                        plan=plan,
                        typed=typed,
                        format=fmt,
                        on_loss=on_loss,
                        expand_splats=flags.on("expand_splats"),
                        max_shard_size=max_shard_size,
                        progress=bar.callback,
                        digests=True if flags.on("digests") else None,
                    )
        except LossError as exc:
            raise CommandFailed(f"{exc}; nothing was written") from None
        finally:
            for caught_w in caught:
                if issubclass(caught_w.category, ConversionWarning):
                    warn("convert", escape(_as_flags(str(caught_w.message)), quote=False))
                else:
                    warnings.warn_explicit(caught_w.message, caught_w.category, caught_w.filename, caught_w.lineno)
    if as_json:
        from paramio.cli.jsonout import print_json

        print_json(
            {
                "output": output,
                "format": fmt,
                "entries": len(plan.entries),
                "bytes": total,
                "engine": engine,
                "job": job.to_dict() if job is not None else None,
            }
        )
        return 0
    if not quiet and not streamed:  # a stream cannot be read back for the listing
        written = output if max_shard_size is None else _set_opened_by(output, target)
        if written is not None:
            sys.stdout.write(format_dump(read_path(written, format=fmt).entries, escape=escape_keys))
    return 0


def _convert_on_engine(
    flags: ParsedFlags,
    scopes: object,
    output: str,
    plan: object,
    fmt: str,
    on_loss: str,
    max_shard_size: int | None,
    engine: str,
    address: str | None,
    total: int,
    quiet: bool,
    memory_bound: int | None,
) -> JobReport:
    """The conversion as a job on `engine` (`paramio.scaleout.convert`), its progress drawn from
    the workers' reports."""
    from paramio.scaleout.convert import convert_job
    from paramio.scaleout.engine import DEFAULT_MEMORY_BOUND
    from paramio.scaleout.progress import show_progress

    with show_progress(total, f"writing {output} on {engine}", quiet=quiet) as update:
        _, report = convert_job(
            scopes,
            output,
            plan=plan,
            typed=flags.on("typed"),
            format=fmt,
            on_loss=on_loss,
            expand_splats=flags.on("expand_splats"),
            max_shard_size=max_shard_size,
            engine=engine,
            address=address,
            progress=update,
            memory_bound=memory_bound if memory_bound is not None else DEFAULT_MEMORY_BOUND,
            digests=True if flags.on("digests") else None,
        )
    return report


def _set_opened_by(output: str, target: Format) -> str | None:
    """The file that opens what was just written for `output` (`paramio.formats.sets.opened_by`)."""
    from paramio.formats.sets import opened_by

    return opened_by(output, target)

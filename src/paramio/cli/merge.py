"""``paramio merge``: put a sharded model back together, or reshard it.

The input is any set paramio opens as one model: a tensor-parallel set (its ``*.tp.json``
manifest, or the folder holding it), an IRPA set, a safetensors set, a GGUF split, a vLLM
``sharded_state`` folder (its axes named with ``--split``, as vLLM records none), a sharktank
dataset (its root ``.irpa`` or any rank file; its properties become attributes). The output is
one file (format from the extension or ``--format``), or a size-sharded set with
``--max_shard_size``. Split tensors are joined along their axis on the fly, so the output's
tensors are byte for byte those that were split.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from paramio.cli.engine_flags import ENGINE_FLAGS, engine_of
from paramio.cli.errors import EXIT_OK, UsageError, escape, warn
from paramio.cli.flags import Flag, FlagKind, ParsedFlags, run_command
from paramio.cli.sizes import parse_size
from paramio.core.errors import ConversionWarning, InvalidArgumentError
from paramio.formats.progress import ByteProgress

FLAGS = (
    Flag(
        "parameters",
        FlagKind.LIST,
        "The set to merge: a .tp.json manifest or its folder, or any sharded set.",
        None,
        "file",
    ),
    Flag("output", FlagKind.STRING, "Output file (.irpa, .safetensors, .gguf).", ""),
    Flag(
        "split",
        FlagKind.LIST,
        "For a vLLM sharded_state set (which records no axes): join tensors matching PATTERN along AXIS.",
        None,
        "PATTERN=AXIS",
    ),
    Flag(
        "replicate",
        FlagKind.LIST,
        "For a vLLM set: tensors matching PATTERN are replicated (default: any tensor no --split names).",
        None,
        "PATTERN",
    ),
    Flag("format", FlagKind.STRING, "Output format: irpa, safetensors or gguf (default: from the extension).", ""),
    Flag("max_shard_size", FlagKind.STRING, "Write a size-sharded set instead of one file: 5GB, 2GiB.", ""),
    Flag("on_loss", FlagKind.STRING, "When the output format cannot hold something: warn, error or ignore.", "warn"),
    Flag("json", FlagKind.BOOL, "Print what was written (and, with --engine=ray, the job) as JSON.", False),
    Flag("quiet", FlagKind.BOOL, "Print nothing on success.", False),
    *ENGINE_FLAGS,
)

DESCRIPTION = """\
Joins a tensor-parallel set (or any sharded set) into one file, or reshards it.

  paramio merge --parameters=tp4/ --output=model.safetensors
  paramio merge --parameters=model.irpa.index.json --output=model.irpa
  paramio merge --parameters=vllm2/ --split='*.weight=0' --output=model.safetensors
  paramio merge --parameters=model-00001-of-00003.safetensors --max_shard_size=2GB --output=model.irpa
  paramio merge --parameters=tp4/ --max_shard_size=5GB --output=model.irpa --engine=ray --address=auto
"""


def main(argv: Sequence[str]) -> int:
    return run_command("merge", argv, FLAGS, DESCRIPTION, _main)


def _main(parsed: ParsedFlags) -> int:
    from paramio.formats.contract import file_formats
    from paramio.formats.registry import detect_format, write_path
    from paramio.sharding.api import open_source
    from paramio.sharding.plan import parse_split_rule

    source = parsed.single_input()
    output = parsed.text("output")
    if not output:
        raise UsageError("--output=file is required")
    fmt = parsed.text("format").lower() or detect_format(output, for_writing=True)
    names = [f.name for f in file_formats()]
    if fmt not in names:
        raise UsageError(
            f"--format={fmt}: expected one of {', '.join(names)} (use paramio shard for tensor parallelism)"
        )
    on_loss = parsed.text("on_loss")
    if on_loss not in ("warn", "error", "ignore"):
        raise UsageError(f"--on_loss={on_loss}: expected warn, error or ignore")
    size = parsed.text("max_shard_size")
    options: dict[str, object] = {}
    if size:
        options["max_shard_size"] = parse_size("max_shard_size", size)
    try:
        rules = [parse_split_rule(r) for r in parsed.many("split")]
    except InvalidArgumentError as exc:
        raise UsageError(f"--split: {exc}") from None
    engine, address = engine_of(parsed)
    replicate = parsed.many("replicate") or None
    contents, _ = open_source(source, split=rules, replicate=replicate)
    total = sum(e.length for e in contents.entries)
    quiet, as_json = parsed.on("quiet"), parsed.on("json")
    job = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        if engine != "local":
            from paramio.scaleout.merge import merge_on_engine
            from paramio.scaleout.progress import show_progress

            with show_progress(total, f"merge on {engine}", quiet=quiet or as_json) as update:
                job = merge_on_engine(
                    source,
                    output,
                    split=rules,
                    replicate=replicate,
                    format=fmt,
                    on_loss=on_loss,
                    engine=engine,
                    address=address,
                    progress=update,
                    **options,  # type: ignore[arg-type]
                )
        else:
            with ByteProgress(total, "merge", quiet=quiet or as_json) as bar:
                write_path(
                    output,
                    contents.entries,
                    format=fmt,
                    attributes=contents.attributes,
                    on_loss=on_loss,
                    progress=bar.callback,
                    **options,
                )
    for w in caught:
        warn("merge", escape(str(w.message)))
    if as_json:
        from paramio.cli.jsonout import print_json

        print_json(
            {
                "output": output,
                "entries": len(contents.entries),
                "bytes": total,
                "engine": engine,
                "job": job.to_dict() if job is not None else None,
            }
        )
    elif not quiet:
        print(f"wrote {escape(output)} ({len(contents.entries)} tensors, {total} bytes)")
    return EXIT_OK

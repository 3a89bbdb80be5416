"""``paramio shard``: split a model for tensor parallelism (per-device archives or ``.shard.<i>`` keys).

Each ``--split=PATTERN=AXIS`` splits matching tensors along AXIS into ``--tp`` equal pieces;
``--replicate=PATTERN`` copies matching tensors whole; a tensor no rule matches is an error.
``--plan`` prints where everything goes (``--json`` for scripts) and writes nothing. The output
folder gets the files and a ``<stem>.tp.json`` manifest (written last) that ``paramio merge``
reads to put the model back together bit for bit.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from paramio.cli.engine_flags import ENGINE_FLAGS, engine_of
from paramio.cli.errors import EXIT_OK, UsageError, escape, warn
from paramio.cli.flags import Flag, FlagKind, ParsedFlags, run_command
from paramio.cli.jsonout import print_json
from paramio.cli.sizes import parse_size
from paramio.core.errors import ConversionWarning, InvalidArgumentError
from paramio.formats.contract import ARCHIVE, archive_format
from paramio.formats.progress import ByteProgress

FLAGS = (
    Flag("parameters", FlagKind.LIST, "The model to split: any file or sharded set paramio reads.", None, "file"),
    Flag("tp", FlagKind.INT, "Number of devices (tensor-parallel degree).", 0),
    Flag("split", FlagKind.LIST, "Split tensors matching PATTERN along AXIS into --tp pieces.", None, "PATTERN=AXIS"),
    Flag("replicate", FlagKind.LIST, "Copy tensors matching PATTERN whole (to every device).", None, "PATTERN"),
    Flag(
        "layout",
        FlagKind.STRING,
        "devices: one file per device; keys: one file with <key>.shard.<i> pieces; vllm: vLLM's"
        " model-rank-<i>-part-<p>.safetensors (no manifest); sharktank: a sharktank dataset"
        " (<stem>.irpa and <stem>.rank<i>.irpa).",
        "devices",
    ),
    Flag(
        "format",
        FlagKind.STRING,
        "Format of the files written: irpa (default), safetensors or gguf; vllm: safetensors.",
        "",
    ),
    Flag("output", FlagKind.STRING, "Output folder (or a path ending .tp.json for the manifest).", ""),
    Flag("max_shard_size", FlagKind.STRING, "Also size-shard each device file (irpa, safetensors): 5GB, 2GiB.", ""),
    Flag("on_loss", FlagKind.STRING, "When the files' format cannot hold something: warn, error or ignore.", "warn"),
    Flag("plan", FlagKind.BOOL, "Print the plan (what goes where) and write nothing.", False),
    Flag("json", FlagKind.BOOL, "Print the plan (with --plan) or the paths written (and the job) as JSON.", False),
    Flag("quiet", FlagKind.BOOL, "Print nothing on success.", False),
    *ENGINE_FLAGS,
)

DESCRIPTION = """\
Splits a model for tensor parallelism, streaming (memory stays flat whatever the model's size).

  paramio shard --parameters=model.safetensors --tp=4 \\
    --split='*.attn_q.weight=0' --split='*.ffn_down.weight=1' --replicate='*' --output=tp4/
  paramio shard --parameters=model.gguf --tp=2 --split='*.weight=0' --replicate='*' --plan
  paramio merge --parameters=tp4/model.tp.json --output=model.safetensors
  paramio shard --parameters=model.safetensors --tp=2 --split='*.weight=0' --replicate='*' --layout=vllm --output=vllm2/
  paramio shard --parameters=tp4/model.tp.json --tp=2 --split='*.weight=0' --replicate='*' --output=tp2/ \\
    --engine=ray --address=auto    # one Ray task per device file (a shared path; devices or keys layout)
"""


def main(argv: Sequence[str]) -> int:
    return run_command("shard", argv, FLAGS, DESCRIPTION, _main)


def _main(parsed: ParsedFlags) -> int:
    from paramio.formats.contract import file_formats
    from paramio.sharding.api import open_source
    from paramio.sharding.plan import make_plan, parse_split_rule
    from paramio.sharding.tpset import MANIFEST_SUFFIX, is_manifest_path, write_set

    source = parsed.single_input()
    tp = parsed.number("tp")
    if tp < 1:
        raise UsageError("--tp=N (N >= 1) is required")
    try:
        rules = [parse_split_rule(r) for r in parsed.many("split")]
    except InvalidArgumentError as exc:  # a malformed rule is a usage error
        raise UsageError(f"--split: {exc}") from None
    layout = parsed.text("layout")
    if layout not in ("devices", "keys", "vllm", "sharktank"):
        raise UsageError(f"--layout={layout}: expected devices, keys, vllm or sharktank")
    from paramio.sharding import vllm

    fmt = parsed.text("format").lower() or (vllm.FORMAT if layout == "vllm" else ARCHIVE)
    if layout == "vllm" and fmt != vllm.FORMAT:
        raise UsageError(f"--format={fmt}: the vllm layout writes {vllm.FORMAT} files")
    if layout == "sharktank" and (fmt != ARCHIVE or parsed.text("max_shard_size")):
        raise UsageError("--layout=sharktank writes one IRPA file per rank (no --format, no --max_shard_size)")
    names = [f.name for f in file_formats()]
    if fmt not in names:
        raise UsageError(f"--format={fmt}: expected one of {', '.join(names)}")
    size = parsed.text("max_shard_size")
    max_shard_size = parse_size("max_shard_size", size) if size else None
    on_loss = parsed.text("on_loss")
    if on_loss not in ("warn", "error", "ignore"):
        raise UsageError(f"--on_loss={on_loss}: expected warn, error or ignore")
    engine, address = engine_of(parsed)
    if engine != "local" and layout not in ("devices", "keys"):
        raise UsageError(f"--engine={engine} writes the devices and keys layouts, not --layout={layout}")
    if engine != "local" and max_shard_size is not None:
        raise UsageError(f"--engine={engine} writes each device file whole: no --max_shard_size")
    output = parsed.text("output")
    if not parsed.on("plan") and not output:
        raise UsageError("--output=folder is required (or --plan to only print the plan)")
    if layout == "vllm" and output.lower().endswith(".json"):
        raise UsageError(f"--output={escape(output)}: the vllm layout writes a folder of files and no manifest")
    root_file = layout == "sharktank" and output.lower().endswith(archive_format().extension)  # the dataset's root
    if (
        output
        and not is_manifest_path(output)
        and not root_file
        and os.path.exists(output)
        and not os.path.isdir(output)
    ):
        raise UsageError(
            f"--output={escape(output)}: a file of that name exists; shard writes a folder of per-device "
            f"files and a manifest: give a folder (--output=tp2/) or the manifest's path (--output=tp2/model{MANIFEST_SUFFIX})"
        )

    # A vLLM set as input records no axes: the same --split rules name them.
    contents, stem = open_source(source, split=rules, replicate=parsed.many("replicate") or None)
    entries = list(contents.entries)
    plan = make_plan(entries, tp, split=rules, replicate=parsed.many("replicate"), layout=layout)
    if parsed.on("plan"):
        if parsed.on("json"):
            print_json({"plan": plan.to_dict()})
        else:
            print(format_plan(plan))
        return EXIT_OK
    total = sum(plan.device_bytes())
    if engine != "local":
        return _shard_on_engine(parsed, source, plan, rules, fmt, on_loss, total, engine, address)
    with warnings.catch_warnings(record=True) as caught, ByteProgress(total, "shard", quiet=parsed.on("quiet")) as bar:
        warnings.simplefilter("always", ConversionWarning)
        paths = write_set(
            parsed.text("output"),
            entries,
            plan,
            stem=stem,
            attributes=contents.attributes,
            fmt=fmt,
            max_shard_size=max_shard_size,
            on_loss=on_loss,
            progress=bar.callback,
        )
    for w in caught:
        warn("shard", escape(str(w.message)))
    if not parsed.on("quiet"):
        if parsed.on("json"):
            print_json({"paths": paths, "plan": plan.to_dict()})
        else:
            for p in paths:
                print(f"wrote {escape(p)}")
    return EXIT_OK


def _shard_on_engine(
    parsed: ParsedFlags,
    source: str,
    plan: object,
    rules: list[tuple[str, int]],
    fmt: str,
    on_loss: str,
    total: int,
    engine: str,
    address: str | None,
) -> int:
    """The set written as a job on `engine` (`paramio.scaleout.shard`), its progress drawn from
    the workers' reports; the paths and (with --json) the job's summary printed."""
    from paramio.scaleout.progress import show_progress
    from paramio.scaleout.shard import shard_on_engine
    from paramio.sharding.plan import Plan

    assert isinstance(plan, Plan)
    quiet, as_json = parsed.on("quiet"), parsed.on("json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        with show_progress(total, f"shard on {engine}", quiet=quiet or as_json) as update:
            _, report = shard_on_engine(
                source,
                parsed.text("output"),
                tp=plan.tp,
                split=rules,
                replicate=parsed.many("replicate"),
                layout=plan.layout,
                format=fmt,
                on_loss=on_loss,
                engine=engine,
                address=address,
                progress=update,
            )
    for w in caught:
        warn("shard", escape(str(w.message)))
    if quiet:
        return EXIT_OK
    if as_json:
        print_json({"paths": report.outputs, "plan": plan.to_dict(), "engine": engine, "job": report.to_dict()})
    else:
        for p in report.outputs:
            print(f"wrote {escape(p)}")
    return EXIT_OK


def format_plan(plan: object) -> str:
    """One line per tensor, then the bytes per device."""
    from paramio.sharding.plan import Layout, Plan

    assert isinstance(plan, Plan)
    lines = [f"tp={plan.tp} layout={plan.layout.value}"]
    width = max((len(escape(p.key)) for p in plan.placements), default=0)
    for p in plan.placements:
        if p.geometry is not None:
            g = p.geometry
            what = f"split axis {g.axis}: {g.info.dtype}{list(g.info.shape)} -> {plan.tp} x {list(g.piece_info.shape)}"
        else:
            where = "once" if plan.layout in (Layout.KEYS, Layout.SHARKTANK) else "to every device"
            what = f"replicate {where}: {p.length} bytes"
        lines.append(f"  {escape(p.key).ljust(width)}  {what}  [{escape(p.rule)}]")
    lines.extend(f"device {i}: {n} bytes" for i, n in enumerate(plan.device_bytes()))
    return "\n".join(lines)

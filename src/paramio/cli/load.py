"""``paramio load --parameters=[scope=]SOURCE ... [--into=numpy|torch|iree] [--device=...]
[--budget=...] [--io=auto|pread|direct|mmap] [--drop_cache] [--json]``: load a model into a target and say how fast, for measuring and warming.

Loads every parameter of every ``--parameters`` source (first file wins per scope, overlays
first, as ``paramio run`` sees them) through `paramio.loading`, then prints one summary line
(tensors, bytes, seconds, GB/s), or with ``--json`` one object for scripts. A progress bar shows
on a terminal for big loads, never in a pipe or with ``--quiet``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from paramio.cli.errors import EXIT_OK, UsageError
from paramio.cli.flags import OVERLAY, PARAMETERS, PRECEDENCE, Flag, FlagKind, ParsedFlags, precedence_of, run_command
from paramio.cli.jsonout import print_json

FLAGS = (
    PARAMETERS,
    OVERLAY,
    PRECEDENCE,
    Flag("into", FlagKind.STRING, "Where tensors go: numpy, torch, jax, cupy or iree.", "numpy"),
    Flag("device", FlagKind.STRING, "The target's device: cpu, cuda:0, local-task, local-sync ...", ""),
    Flag("budget", FlagKind.STRING, "Most bytes in flight at once (reads and staging), e.g. 256MiB.", "256MiB"),
    Flag("concurrency", FlagKind.INT, "Reader threads (0: one per CPU, 2 to 16).", 0),
    Flag(
        "io",
        FlagKind.STRING,
        "How local files are read: auto, pread, direct (O_DIRECT, pread where refused) or mmap "
        "(numpy/torch tensors mapped from the file, no copy).",
        "auto",
    ),
    Flag(
        "drop_cache",
        FlagKind.BOOL,
        "Drop each file's pages from the page cache once loaded (not with --io=mmap).",
        False,
    ),
    Flag(
        "verify",
        FlagKind.BOOL,
        "Check each tensor against the digests the file stores (paramio digest --write) as it lands.",
        False,
    ),
    Flag("json", FlagKind.BOOL, "Print the summary as one JSON object.", False),
    Flag("quiet", FlagKind.BOOL, "No progress bar.", False),
    # A rank's slices (`paramio.loading.slices`), with paramio shard's --split rules.
    Flag("rank", FlagKind.INT, "Load this rank's slices of the tensors --split names.", 0),
    Flag("world-size", FlagKind.INT, "Ranks the --split tensors are cut for (0: load them whole).", 0),
    Flag("split", FlagKind.LIST, "Cut tensors matching PATTERN along AXIS (with --world_size).", None, "PATTERN=AXIS"),
)

DESCRIPTION = """\
Loads every parameter of the sources into a target and prints bytes, tensors, seconds and GB/s.

  paramio load --parameters=model=model.safetensors
  paramio load --parameters=model.irpa --into=iree --device=local-task --json
  paramio load --parameters=model.gguf --into=torch --budget=1GiB
  paramio load --parameters=model.safetensors --rank=1 --world_size=4 --split='*.q_proj.weight=0'
  paramio load --parameters=model.safetensors --io=direct --json
"""


def main(argv: Sequence[str]) -> int:
    return run_command("load", argv, FLAGS, DESCRIPTION, _load)


def _load(parsed: ParsedFlags) -> int:
    from paramio.core.errors import InvalidArgumentError
    from paramio.formats.progress import ByteProgress
    from paramio.index.provider import Provider
    from paramio.index.scopes import parse_parameters_flag
    from paramio.loading import stream
    from paramio.loading.budget import parse_size
    from paramio.loading.io import IO_MODES
    from paramio.loading.targets import TARGETS, make_target

    sources = parsed.many("parameters")
    if not sources:
        raise UsageError("give at least one --parameters=[scope=]SOURCE")
    for v in sources:
        try:
            parse_parameters_flag(v)
        except InvalidArgumentError as exc:
            raise UsageError(str(exc)) from None
    into = parsed.text("into")
    if into not in TARGETS:
        raise UsageError(f"--into={into}: expected one of {', '.join(TARGETS)}")
    try:
        budget = parse_size(parsed.text("budget"))
    except InvalidArgumentError as exc:
        raise UsageError(f"--budget: {exc}") from None
    io = parsed.text("io")
    if io not in IO_MODES:
        raise UsageError(f"--io={io}: expected one of {', '.join(IO_MODES)}")
    if io == "mmap" and parsed.on("drop_cache"):
        raise UsageError("--drop_cache with --io=mmap: the mapped tensors are the page cache's pages")
    concurrency = parsed.number("concurrency")
    if concurrency < 0:
        raise UsageError(f"--concurrency={concurrency}: expected 0 (automatic) or more")
    slicing = _slicing(parsed)
    source: object = Provider.from_flags(sources, precedence=precedence_of(parsed), overlays=parsed.many("overlay"))
    if parsed.on("verify"):  # a file's own digests: one file, its keys as they are
        one = parse_parameters_flag(sources[0])
        if len(sources) != 1 or one.scope or parsed.many("overlay"):
            raise UsageError("--verify checks one file's stored digests: give one --parameters=FILE, no scope")
        source = one.path
    # The framework is imported (torch: a second or more) before the clock of the load starts,
    # and reported apart: "first tensor after" is the load's own latency.
    started = time.perf_counter()
    target = make_target(into, parsed.text("device") or None)
    import ml_dtypes  # noqa: F401  - the dtype table's (bfloat16, float8): imported at the first tensor otherwise

    import_seconds = time.perf_counter() - started
    sink: list[Callable[[int], None]] = []  # the bar's callback, once the bar exists

    def progress(n: int) -> None:
        for callback in sink:
            callback(n)

    s = stream(  # nothing is read before the first `next`: the bar gets the job's total (slices included)
        source,  # type: ignore[arg-type]
        into=target,
        device=parsed.text("device") or None,
        budget=budget,
        concurrency=concurrency or None,
        progress=progress,
        **slicing,  # type: ignore[arg-type]
        io=io,
        drop_cache=parsed.on("drop_cache"),
        verify=parsed.on("verify"),
    )
    with ByteProgress(s.job.total_bytes, "loading", quiet=parsed.on("quiet") or parsed.on("json")) as bar:
        if bar.callback is not None:
            sink.append(bar.callback)
        with s:
            for _key, _array in s:
                pass  # warming and measuring: each array is dropped as soon as it lands
    summary = s.summary
    if parsed.on("json"):
        ranked = {"rank": slicing["rank"], "world_size": slicing["world_size"]} if slicing else {}
        print_json({**summary.to_dict(), "import_seconds": round(import_seconds, 6), "sources": sources, **ranked})
    else:
        print(summary.format_text())
        if into != "numpy":  # numpy is imported before any load; torch, jax, iree take seconds
            print(f"(importing {into} and the dtype table took {import_seconds * 1e3:.0f} ms before the load started)")
    return EXIT_OK


def _slicing(parsed: ParsedFlags) -> dict[str, object]:
    """``rank=, world_size=, split=`` for `stream` from --rank, --world_size and --split."""
    from paramio.core.errors import InvalidArgumentError
    from paramio.sharding.plan import split_rules

    world, rank, split = parsed.number("world-size"), parsed.number("rank"), parsed.many("split")
    if not world:
        if split or rank:
            raise UsageError("--split and --rank need --world_size=N")
        return {}
    if not split:
        raise UsageError("--world_size needs at least one --split=PATTERN=AXIS")
    if not 0 <= rank < world:
        raise UsageError(f"--rank={rank}: expected 0 to {world - 1} for --world_size={world}")
    try:
        rules = split_rules(split)
    except InvalidArgumentError as exc:
        raise UsageError(f"--split: {exc}") from None
    return {"rank": rank, "world_size": world, "split": rules}

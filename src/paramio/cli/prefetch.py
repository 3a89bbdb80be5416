"""``paramio prefetch PATH ... [--budget=SIZE] [--json]``: bring files into the page cache ahead of
a loader that maps them (``paramio load --io=mmap``, ``safetensors``' ``load_file``, llama.cpp),
at most `--budget` bytes of each (default: the whole file, but never more than half the memory
available), and say how much of each is cached now."""

from __future__ import annotations

from collections.abc import Sequence

from paramio.cli.errors import EXIT_OK, UsageError
from paramio.cli.flags import Flag, FlagKind, ParsedFlags, run_command
from paramio.cli.jsonout import print_json

FLAGS = (
    Flag("budget", FlagKind.STRING, "Most bytes of each file to bring in, e.g. 8GiB (default: the file).", ""),
    Flag("json", FlagKind.BOOL, 'Print one JSON object {"version": 1, "files": [...]}.', False),
)

DESCRIPTION = """\
Reads files into the page cache in large sequential reads, so that a loader that maps them
(paramio load --io=mmap, safetensors' load_file) finds every page in memory. Prints how much of
each file is cached before and after.

  paramio prefetch model.safetensors
  paramio prefetch shard-00001.safetensors shard-00002.safetensors --budget=8GiB --json
"""


def main(argv: Sequence[str]) -> int:
    return run_command("prefetch", argv, FLAGS, DESCRIPTION, _prefetch)


def _prefetch(parsed: ParsedFlags) -> int:
    from paramio.core.errors import InvalidArgumentError
    from paramio.loading.budget import parse_size
    from paramio.loading.pagecache import prefetch

    paths = parsed.positional
    if not paths:
        raise UsageError("give at least one file: paramio prefetch PATH [--budget=SIZE]")
    for p in paths:
        if "://" in p:
            raise UsageError(f"{p}: prefetch reads local files into the page cache; a URL has none")
    budget: int | None = None
    if parsed.text("budget"):
        try:
            budget = parse_size(parsed.text("budget"))
        except InvalidArgumentError as exc:
            raise UsageError(f"--budget: {exc}") from None
        if budget <= 0:
            raise UsageError("--budget must be positive")
    results = []
    for p in paths:
        result = prefetch(p, budget)
        results.append(result.to_dict())
        if not parsed.on("json"):
            print(result.format_text())
    if parsed.on("json"):
        print_json({"files": results})
    return EXIT_OK

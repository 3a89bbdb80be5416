"""``paramio load --parameters=[scope=]SOURCE ... [--into=numpy|torch|iree] [--device=...]
[--budget=...] [--json]``: load a model into a target and say how fast, for measuring and warming.

Loads every parameter of every ``--parameters`` source (first file wins per scope, overlays
first, as ``paramio run`` sees them) through `paramio.loading`, then prints one summary line
(tensors, bytes, seconds, GB/s), or with ``--json`` one object for scripts. A progress bar shows
on a terminal for big loads, never in a pipe or with ``--quiet``.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    Flag("json", FlagKind.BOOL, "Print the summary as one JSON object.", False),
    Flag("quiet", FlagKind.BOOL, "No progress bar.", False),
)

DESCRIPTION = """\
Loads every parameter of the sources into a target and prints bytes, tensors, seconds and GB/s.

  paramio load --parameters=model=model.safetensors
  paramio load --parameters=model.irpa --into=iree --device=local-task --json
  paramio load --parameters=model.gguf --into=torch --budget=1GiB
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
    from paramio.loading.targets import TARGETS

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
    concurrency = parsed.number("concurrency")
    if concurrency < 0:
        raise UsageError(f"--concurrency={concurrency}: expected 0 (automatic) or more")
    provider = Provider.from_flags(sources, precedence=precedence_of(parsed), overlays=parsed.many("overlay"))
    total = sum(e.length for scope in provider.scopes for e in provider.entries(scope))
    with ByteProgress(total, "loading", quiet=parsed.on("quiet") or parsed.on("json")) as bar:
        s = stream(
            provider,
            into=into,
            device=parsed.text("device") or None,
            budget=budget,
            concurrency=concurrency or None,
            progress=bar.callback,
        )
        with s:
            for _key, _array in s:
                pass  # warming and measuring: each array is dropped as soon as it lands
    summary = s.summary
    if parsed.on("json"):
        print_json({**summary.to_dict(), "sources": sources})
    else:
        print(summary.format_text())
    return EXIT_OK

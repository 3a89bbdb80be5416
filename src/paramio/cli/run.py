"""``paramio run``: run a compiled IREE module with parameters paramio serves (iree-run-module).

iree-run-module's flags, with its output text and files: ``--module``, ``--function``,
``--input`` (values, ``SHAPExTYPE=@file.bin``, ``@file.npy``), ``--device``, ``--parameters``,
``--output=-|@file|+file`` (.npy or raw bytes), ``--output_max_element_count``,
``--expected_output`` with ``--expected_{f16,f32,f64,bf16}_threshold``, ``--expected_rtol`` and
``--equality_mode``, ``--print_statistics``, ``--module_mode``, ``--parameter_mode``. Any other
flag IREE's runtime knows (``--task_topology_group_count``, ``--cuda_*``,
``--device_allocator`` ...) is passed to it unchanged. paramio adds layering:
``--overlay=[scope=]file.irpa`` on top of a scope, ``--precedence``, and ``--stripped`` (every
parameter a zero splat).

A failure is one line naming what failed: IREE's status with its call stack joined onto the
line and the cause behind "Exception for last tried follows." shown, plus what paramio knows
(the file serving a parameter that is too short, the ``--parameters`` flag a scope needs).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from paramio.cli.errors import EXIT_FAILURE, EXIT_OK, CommandFailed, UsageError, escape
from paramio.cli.flags import (
    ALLOW_EXTERNAL,
    OVERLAY,
    PARAMETERS,
    PRECEDENCE,
    Flag,
    FlagKind,
    ParsedFlags,
    allowed_external,
    precedence_of,
    run_command,
    unknown_flag_message,
)

if TYPE_CHECKING:
    from paramio.iree.results import Equality

FLAGS = (
    Flag("module", FlagKind.LIST, "A compiled module (.vmfb); several are loaded in order.", None, "path.vmfb"),
    Flag("function", FlagKind.STRING, "Name of the function to run.", ""),
    Flag(
        "input",
        FlagKind.LIST,
        "An input: [SHAPEx]TYPE=VALUES, SHAPExTYPE=@file.bin, @file.npy (all its arrays) or a scalar.",
        None,
        "4xf32=1,2,3,4",
    ),
    Flag("device", FlagKind.STRING, "IREE HAL device.", "local-task"),
    PARAMETERS,
    ALLOW_EXTERNAL,
    OVERLAY,
    PRECEDENCE,
    Flag("stripped", FlagKind.BOOL, "Replace every parameter with a zero splat of its length.", False),
    Flag("parameter_mode", FlagKind.STRING, "Accepted for iree-run-module compatibility (paramio maps files).", "file"),
    Flag("module_mode", FlagKind.STRING, "preload (read the module into memory) or mmap.", "preload"),
    Flag(
        "output",
        FlagKind.LIST,
        "What to do with each result, in order: '' ignore, - print, @file.npy / +file.npy\n"
        "write / append a NumPy array, @file / +file write / append the raw bytes.",
        None,
        "-|@file.npy|+file.bin",
    ),
    Flag("output_max_element_count", FlagKind.INT, "Prints up to this many elements of each result.", 1024),
    Flag(
        "expected_output",
        FlagKind.LIST,
        "An expected result in --input syntax, or (ignored); exit 1 if any result differs.",
        None,
        "4xf32=11,22,33,44",
    ),
    Flag("expected_f16_threshold", FlagKind.STRING, "Absolute tolerance for f16 in approximate mode.", "0.001"),
    Flag("expected_f32_threshold", FlagKind.STRING, "Absolute tolerance for f32 in approximate mode.", "0.0001"),
    Flag("expected_f64_threshold", FlagKind.STRING, "Absolute tolerance for f64 in approximate mode.", "0.0001"),
    Flag("expected_bf16_threshold", FlagKind.STRING, "Absolute tolerance for bf16 in approximate mode.", "0.01"),
    Flag("expected_rtol", FlagKind.STRING, "Relative tolerance shared by float types in approximate mode.", "1e-05"),
    Flag("equality_mode", FlagKind.STRING, "approximate or exact (byte equality).", "approximate"),
    Flag("print_statistics", FlagKind.BOOL, "Prints the device allocator's statistics to stderr on exit.", False),
    Flag(
        "print_iree_flags",
        FlagKind.BOOL,
        "Print the iree-run-module command that runs the same (sharded sets named file by file) and exit.",
        False,
    ),
)

DESCRIPTION = """\
Runs a compiled IREE module, its parameters served by paramio; iree-run-module's flags and text.
Flags paramio does not list here and IREE's runtime knows (--task_topology_group_count=2,
--device_allocator=caching, --cuda_use_streams ...) are passed to IREE.

  paramio run --module=prog.vmfb --parameters=model=w.irpa --function=main --input=4xf32=1,2,3,4
  paramio run --module=prog.vmfb --parameters=model=w.safetensors --overlay=model=ft.irpa ...
  paramio run ... --output=@out.npy --expected_output=4xf32=11,22,33,44
"""

#: iree-run-module's own flags that IREE's Python runtime lacks, or that print and exit (and
#: abort the process when parsed from Python): left to iree-run-module, with a message saying so.
_NOT_PASSED = frozenset(
    {
        "list_drivers",
        "list_devices",
        "dump_devices",
        "dump_task_topologies",
        "agents_md",
        "trace_execution",
        "instrument_file",
        "device_replay_output",
        "device_replay_file_policy",
        "device_replay_file_validation",
    }
)


def main(argv: Sequence[str]) -> int:
    return run_command("run", argv, FLAGS, DESCRIPTION, _main, foreign=True)


def _float_flag(parsed: ParsedFlags, name: str) -> float:
    text = parsed.text(name)
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--{name}={text}: expected a number") from None


def _equality(parsed: ParsedFlags) -> Equality:
    from paramio.iree.results import Equality

    mode = parsed.text("equality_mode")
    if mode not in ("approximate", "exact"):
        raise UsageError(f"--equality_mode={mode}: expected approximate or exact")
    return Equality(
        mode,
        _float_flag(parsed, "expected_f16_threshold"),
        _float_flag(parsed, "expected_f32_threshold"),
        _float_flag(parsed, "expected_f64_threshold"),
        _float_flag(parsed, "expected_bf16_threshold"),
        _float_flag(parsed, "expected_rtol"),
    )


def _main(parsed: ParsedFlags) -> int:
    if parsed.positional:
        raise UsageError(f"unexpected argument {escape(parsed.positional[0])!r}")
    if not parsed.many("module"):
        raise UsageError("--module=path.vmfb is required")
    if not parsed.text("function"):
        raise UsageError("--function=name is required")
    for name, allowed in (("parameter_mode", ("file", "preload", "mmap")), ("module_mode", ("preload", "mmap"))):
        if parsed.text(name) not in allowed:
            raise UsageError(f"--{name}={parsed.text(name)}: expected {' or '.join(allowed)}")
    if parsed.number("output_max_element_count") < 0:
        raise UsageError("--output_max_element_count: expected a count of elements")
    equality = _equality(parsed)
    if parsed.on("print_iree_flags"):
        from paramio.sharding.iree import expand_parameters

        print(_iree_command(parsed, expand_parameters(parsed.many("parameters"))))
        return EXIT_OK
    from paramio.iree.bridge import iree_runtime

    rt = iree_runtime()
    _pass_to_iree(rt, parsed.foreign)
    return _run(parsed, equality)


def _iree_command(parsed: ParsedFlags, parameters: list[str]) -> str:
    """The iree-run-module command line for this run (sharded sets expanded to their files)."""
    import shlex

    args = ["iree-run-module", *(f"--module={m}" for m in parsed.many("module")), f"--device={parsed.text('device')}"]
    args += [f"--parameters={p}" for p in parameters]
    args += [f"--function={parsed.text('function')}", *(f"--input={i}" for i in parsed.many("input"))]
    return " ".join(shlex.quote(a) for a in args)


def _pass_to_iree(rt: Any, flags: list[str]) -> None:
    """Hand flags paramio does not know to IREE's runtime flag registry (driver and task
    system flags); a flag IREE does not know either is a usage error, as ours are."""
    from paramio.cli.flags import all_flags

    for arg in flags:
        name = arg[2:].partition("=")[0]
        if name.replace("-", "_") in _NOT_PASSED:
            raise UsageError(f"--{name} is not supported by paramio run; use iree-run-module --{name}")
        try:
            rt.flags.parse_flags(arg)
        except ValueError as exc:
            if "not recognized" in str(exc):
                raise UsageError(unknown_flag_message(name, all_flags(FLAGS))) from None
            raise UsageError(f"{arg}: {str(exc).strip()}") from None


def _expected(values: list[str]) -> list[object]:
    from paramio.iree.results import IGNORED
    from paramio.iree.values import parse_inputs

    out: list[object] = []
    for v in values:
        if v == IGNORED:
            out.append(None)
        else:
            out.extend(parse_inputs(v, "expected_output"))
    return out


def _run(parsed: ParsedFlags, equality: Equality) -> int:
    from paramio.index.provider import Provider
    from paramio.iree.run import RunError, run_function
    from paramio.iree.values import parse_inputs
    from paramio.sharding.iree import expand_parameters

    function, device = parsed.text("function"), parsed.text("device")
    args: list[object] = []
    for v in parsed.many("input"):
        args.extend(parse_inputs(v))
    expected = _expected(parsed.many("expected_output"))
    # A tensor-parallel manifest serves its files as IREE would take them (one scope per device).
    parameters = expand_parameters(parsed.many("parameters"), sets=False)
    provider = Provider.from_flags(
        parameters,
        precedence=precedence_of(parsed),
        overlays=parsed.many("overlay"),
        allow_external=allowed_external(parsed),
    )
    if parsed.on("stripped"):
        provider = provider.stripped()
    try:
        done = run_function(
            parsed.many("module"),
            function,
            args,
            parameters=provider,
            device=device,
            module_mode=parsed.text("module_mode"),
            before_call=lambda: print(f"EXEC @{function}", flush=True),
        )
    except RunError as exc:
        message = str(exc)
        raise CommandFailed("--" + message if message.startswith(("device=", "module=")) else message) from exc
    code = _report(parsed, function, done.results, expected, equality)
    if parsed.on("print_statistics"):
        sys.stderr.write(f"Device: {device}\n[[ iree_hal_allocator_t memory statistics ]]\n{done.statistics()}\n")
    return code


def _report(
    parsed: ParsedFlags, function: str, results: list[object], expected: list[object], equality: Equality
) -> int:
    """Print (or write, or compare) the results as iree-run-module does; the exit status."""
    import numpy as np

    from paramio.core.errors import InvalidArgumentError
    from paramio.iree.results import ScalarResult, compare_results, write_outputs
    from paramio.iree.values import format_result

    max_elements = parsed.number("output_max_element_count")
    try:
        if parsed.many("expected_output"):
            ok, text = compare_results(expected, results, equality)
            print(text, end="")
            return EXIT_OK if ok else EXIT_FAILURE
        if parsed.many("output"):
            print(write_outputs(function, parsed.many("output"), results, max_elements), end="")
            return EXIT_OK
    except InvalidArgumentError as exc:
        raise CommandFailed(str(exc)) from exc
    for i, r in enumerate(results):
        if isinstance(r, np.ndarray):
            print(f"result[{i}]: hal.buffer_view")
            print(format_result(r, max_elements))
        elif isinstance(r, ScalarResult):
            print(f"result[{i}]: {r.text()}")
        else:
            print(f"result[{i}]: {r}")
    return EXIT_OK

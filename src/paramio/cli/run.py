"""``paramio run``: run a compiled IREE module with parameters paramio serves (iree-run-module).

Same flags as iree-run-module for the common case (``--module``, ``--function``, ``--input``,
``--device``, ``--parameters``), plus paramio's layering: ``--overlay=[scope=]file.irpa`` on top
of a scope, ``--precedence``, and ``--stripped`` (every parameter a zero splat). Results print in
iree-run-module's format, so the two outputs can be compared line for line.
"""

from __future__ import annotations

from collections.abc import Sequence

from paramio.cli.errors import EXIT_OK, CommandFailed, UsageError
from paramio.cli.flags import OVERLAY, PARAMETERS, PRECEDENCE, Flag, FlagKind, ParsedFlags, precedence_of, run_command

FLAGS = (
    Flag("module", FlagKind.LIST, "A compiled module (.vmfb); several are loaded in order.", None, "path.vmfb"),
    Flag("function", FlagKind.STRING, "Name of the function to run.", ""),
    Flag("input", FlagKind.LIST, "An input: [SHAPEx]TYPE=VALUES or @file.npy.", None, "4xf32=1,2,3,4"),
    Flag("device", FlagKind.STRING, "IREE HAL device.", "local-task"),
    PARAMETERS,
    OVERLAY,
    PRECEDENCE,
    Flag("stripped", FlagKind.BOOL, "Replace every parameter with a zero splat of its length.", False),
    Flag("parameter_mode", FlagKind.STRING, "Accepted for iree-run-module compatibility (paramio maps files).", "mmap"),
)

DESCRIPTION = """\
Runs a compiled IREE module, its parameters served by paramio.

  paramio run --module=prog.vmfb --parameters=model=w.irpa --function=main --input=4xf32=1,2,3,4
  paramio run --module=prog.vmfb --parameters=model=w.safetensors --overlay=model=ft.irpa ...
"""


def main(argv: Sequence[str]) -> int:
    return run_command("run", argv, FLAGS, DESCRIPTION, _main)


def _main(parsed: ParsedFlags) -> int:
    if parsed.positional:
        raise UsageError(f"unexpected argument {parsed.positional[0]!r}")
    if not parsed.many("module"):
        raise UsageError("--module=path.vmfb is required")
    if not parsed.text("function"):
        raise UsageError("--function=name is required")
    return _run(parsed.many("module"), parsed.text("function"), parsed.many("input"), parsed.text("device"),
                parsed.many("parameters"), parsed.many("overlay"), precedence_of(parsed), parsed.on("stripped"))


def _run(modules: list[str], function: str, inputs: list[str], device: str, parameters: list[str],
         overlays: list[str], precedence: str, stripped: bool) -> int:
    from paramio.index.provider import Provider
    from paramio.iree.bridge import create_parameters_module, iree_runtime
    from paramio.iree.values import format_result, parse_input

    rt = iree_runtime()
    args = [parse_input(v) for v in inputs]
    provider = Provider.from_flags(parameters, precedence=precedence, overlays=overlays)
    if stripped:
        provider = provider.stripped()
    try:
        config = rt.Config(device)
        vm_modules = [create_parameters_module(config.vm_instance, provider)] if provider.scopes else []
        vm_modules.append(rt.create_hal_module(config.vm_instance, config.device))
        vm_modules.extend(rt.VmModule.mmap(config.vm_instance, m) for m in modules)
        bound = rt.load_vm_modules(*vm_modules, config=config)[-1]
        try:
            fn = bound[function]
        except (KeyError, AttributeError) as exc:
            raise CommandFailed(f"function @{function} not found in {modules[-1]}") from exc
        print(f"EXEC @{function}")
        out = fn(*args)
    except (ValueError, RuntimeError) as exc:  # IREE reports failures as these, with its status text
        raise CommandFailed(str(exc).strip()) from exc
    results = out if isinstance(out, (tuple, list)) else ([] if out is None else [out])
    for i, r in enumerate(results):
        if hasattr(r, "to_host"):
            print(f"result[{i}]: hal.buffer_view")
            print(format_result(r.to_host()))
        else:
            print(f"result[{i}]: {r}")
    return EXIT_OK

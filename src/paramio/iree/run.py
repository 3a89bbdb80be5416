"""Running a function of a compiled IREE module over parameters paramio serves.

`run_function` is what ``paramio run`` does once its flags are read: it builds IREE's runtime
configuration for a device, registers an ``io_parameters`` module serving a `Provider` (files
reach IREE through their descriptors, memory in place: no copy), loads the modules, calls the
function and brings the results to the host (NumPy arrays for buffer views, typed scalars).

    results = paramio.iree.run_function(
        "prog.vmfb", "forward", ["4xf32=1,2,3,4"], parameters=paramio.ParameterIndex.open("model.irpa")
    ).results

A failure in IREE is a `RunError` with IREE's status text on one line, and the file serving a
parameter that IREE found too short named in it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from paramio.core.errors import ParamioError
from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider

__all__ = ["RunError", "RunResult", "run_function"]

#: A module: a path (``"-"`` reads standard input, as iree-run-module does), or its bytes.
Module = str | os.PathLike[str] | bytes


class RunError(ParamioError):
    """IREE failed to load or run the function; the message is IREE's status on one line."""


@dataclasses.dataclass(slots=True)
class RunResult:
    """The results of one call, on the host, and the runtime configuration that ran it."""

    results: list[object]
    config: Any  # iree.runtime.Config: its device stays usable (statistics, more calls)

    def statistics(self) -> str:
        """The device allocator's statistics, as ``--print_statistics`` prints them."""
        return str(self.config.device.allocator.formatted_statistics)


def _provider(parameters: Provider | ParameterIndex | None) -> Provider:
    if parameters is None:
        return Provider()
    if isinstance(parameters, ParameterIndex):
        provider = Provider()
        provider.add_index(parameters)
        return provider
    return parameters


def _inputs(values: Sequence[object]) -> list[object]:
    from paramio.iree.values import parse_inputs

    out: list[object] = []
    for v in values:
        if isinstance(v, str):
            out.extend(parse_inputs(v))
        else:
            out.append(v)
    return out


def _describe(provider: Provider) -> Callable[[str], str | None]:
    """key -> where paramio serves it from, for IREE's error about a short parameter."""

    def describe(key: str) -> str | None:
        for scope in provider.scopes:
            try:
                entry = provider.lookup(scope, key)
            except KeyError:
                continue
            where = entry.source.name if entry.source is not None else entry.origin
            label = f"{scope}::{key}" if scope else key
            return f"parameter '{label}' (from {where})"
        return None

    return describe


def run_function(
    modules: Module | Sequence[Module],
    function: str,
    inputs: Sequence[object] = (),  # NumPy arrays, Python scalars, or ``--input`` text
    *,
    parameters: Provider | ParameterIndex | None = None,
    device: str = "local-task",
    module_mode: str = "preload",
    before_call: Callable[[], None] | None = None,
) -> RunResult:
    """Call `function` of the last of `modules` (loaded in order) on `inputs`, with `parameters`
    served to IREE as its ``io_parameters`` module (a `Provider` with its scopes, or one index
    as the unnamed scope); `before_call` runs once the function is found, just before it runs.

    Raises `RunError` (the function is missing, IREE failed), `InvalidArgumentError` (an input's
    syntax, an unknown device) and `MissingExtraError` (no ``iree-base-runtime``)."""
    from paramio.iree.bridge import create_parameters_module, iree_runtime
    from paramio.iree.results import result_types, typed_results
    from paramio.iree.status import IREE_ERRORS, hint, iree_message

    rt = iree_runtime()
    if isinstance(modules, (str, os.PathLike, bytes)):
        modules = [modules]
    if not modules:
        raise RunError("no module to run")
    if module_mode not in ("preload", "mmap"):
        raise RunError(f"module_mode={module_mode!r}: expected preload or mmap")
    args = _inputs(inputs)
    provider = _provider(parameters)
    describe = _describe(provider)
    try:
        config = _config(rt, device)
        # Always an io_parameters module, as iree-run-module registers one: a program that
        # reads parameters then fails naming the scope it needs, not a missing module.
        vm_modules = [create_parameters_module(config.vm_instance, provider)]
        vm_modules.append(rt.create_hal_module(config.vm_instance, config.device))
        vm_modules.extend(_load_module(rt, config, m, module_mode) for m in modules)
        bound = rt.load_vm_modules(*vm_modules, config=config)[-1]
        try:
            fn = bound[function]
        except (KeyError, AttributeError) as exc:
            last = modules[-1]
            name = "<bytes>" if isinstance(last, bytes) else os.fspath(last)
            raise RunError(f"function @{function} not found in {name}") from exc
        if before_call is not None:
            before_call()
        out = fn(*args)
        results = out if isinstance(out, (tuple, list)) else ([] if out is None else [out])
        try:
            declaration = str(fn.vm_function.reflection.get("iree.abi.declaration", ""))
        except AttributeError:
            declaration = ""
        host = [r.to_host() if hasattr(r, "to_host") else r for r in results]
    except ParamioError:
        raise
    except IREE_ERRORS as exc:  # IREE reports failures as these, with its status text
        raise RunError(hint(iree_message(exc), describe)) from exc
    return RunResult(typed_results(host, result_types(declaration)), config)


def _config(rt: Any, device: str) -> Any:
    """``rt.Config(device)``; an unknown device name lists the drivers this IREE has."""
    try:
        return rt.Config(device)
    except ValueError as exc:
        if "No device found" in str(exc):
            drivers = ", ".join(rt.query_available_drivers())
            raise RunError(f"device={device}: no such device; drivers in this IREE: {drivers}") from exc
        raise


def _load_module(rt: Any, config: Any, module: Module, mode: str) -> Any:
    """The module at a path, or from its bytes; ``"-"`` reads it from standard input, as
    iree-run-module does (``iree-compile prog.mlir -o - | paramio run --module=- ...``)."""
    instance = config.vm_instance
    if isinstance(module, bytes):
        return rt.VmModule.copy_buffer(instance, module)
    path = os.fspath(module)
    if path == "-":
        data = sys.stdin.buffer.read()
        if not data:
            raise RunError("module=-: standard input is empty (pipe a compiled module into it)")
        return rt.VmModule.copy_buffer(instance, data)
    if mode == "mmap":
        return rt.VmModule.mmap(instance, path)
    with open(path, "rb") as f:
        data = f.read()
    return rt.VmModule.copy_buffer(instance, data)

"""PyTorch modules to and from parameter files: ``load_module`` and ``save_module``.

``load_module`` is ``load_state_dict`` over any paramio source (an IRPA, safetensors or GGUF
file, an index, a layered `Provider` scope): each module tensor is copied from its parameter
(zero-copy view of the mapped file, then one ``copy_`` into the tensor, converting device as
needed). ``save_module`` writes an IRPA whose entries carry ``TENSORv0`` metadata, so IREE,
turbine and paramio read the dtypes and shapes back (bf16 and fp8 included).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from paramio.arrays.frameworks import paramio_dtype_of_torch, require, to_torch, torch_dtype
from paramio.core.dtypes import numpy_dtype
from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.tensor import TensorInfo, encode_tensor_metadata
from paramio.formats.contract import ARCHIVE
from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider
from paramio.sources.memory import MemorySource

__all__ = ["LoadResult", "load_module", "save_module"]


@dataclasses.dataclass(frozen=True, slots=True)
class LoadResult:
    """What ``load_module`` did not match, as torch's ``load_state_dict`` reports it."""

    missing_keys: list[str]
    unexpected_keys: list[str]


Source = Provider | ParameterIndex | str | os.PathLike[str]


def _entries(source: Source, scope: str) -> dict[str, ParameterEntry]:
    if isinstance(source, Provider):
        return {k: source.lookup(scope, k) for k in source.keys(scope)}
    if isinstance(source, ParameterIndex):
        index = source
    else:
        index = ParameterIndex.open(source, duplicates="first")
    return {k: index[k] for k in index}


def load_module(
    module: object,
    source: Source,
    *,
    scope: str = "",
    prefix: str = "",
    name_map: Callable[[str], str] | None = None,
    strict: bool = True,
    device: str | None = "cpu",
) -> LoadResult:
    """Copy parameters into `module`'s state (parameters and buffers).

    The parameter for state name ``n`` is ``name_map(n)`` if given, else ``prefix + n``.
    `device` moves the module first (None: leave it where it is). With `strict`, missing or
    unexpected keys raise `InvalidArgumentError` before anything is copied; a shape or byte
    length mismatch always raises. Returns the missing and unexpected keys.
    """
    torch = require("torch")
    if device is not None:
        module = module.to(device)  # type: ignore[attr-defined]
    state = module.state_dict(keep_vars=True)  # type: ignore[attr-defined]
    entries = _entries(source, scope)
    wanted = {name: (name_map(name) if name_map is not None else prefix + name) for name in state}
    missing = [n for n, k in wanted.items() if k not in entries]
    used = set(wanted.values())
    unexpected = [k for k in entries if k not in used and k.startswith(prefix if name_map is None else "")]
    if strict and (missing or unexpected):
        raise InvalidArgumentError(
            f"Error(s) in loading state_dict: missing keys: {missing}; unexpected keys: {unexpected}",
            path=getattr(source, "__fspath__", lambda: None)(),
        )
    plan = []
    for name, target in state.items():
        key = wanted[name]
        entry = entries.get(key)
        if entry is None:
            continue
        shape = tuple(target.shape)
        if entry.shape is not None and tuple(entry.shape) != shape:
            raise InvalidArgumentError(
                f"size mismatch for {name}: the parameter has shape {list(entry.shape)}, the module {list(shape)}",
                key=key,
            )
        nbytes = target.numel() * target.element_size()
        if entry.length != nbytes:
            raise InvalidArgumentError(
                f"size mismatch for {name}: the parameter has {entry.length} bytes, the module tensor {nbytes}",
                key=key,
            )
        plan.append((target, entry))
    with torch.no_grad():
        for target, entry in plan:
            src: Any = to_torch(entry)
            if entry.tensor is None:  # raw bytes: read them as the module tensor's type
                src = src.view(target.dtype)
            target.copy_(src.reshape(target.shape))
    return LoadResult(missing, unexpected)


def save_module(module: object, path: str | os.PathLike[str], *, prefix: str = "") -> ParameterIndex:
    """Write `module`'s state to an IRPA archive (IREE's, `paramio.formats.contract.ARCHIVE`) at
    `path` (atomically), typed with ``TENSORv0`` metadata. Returns an index over the written file."""
    from paramio.formats.registry import write_path

    state = module.state_dict()  # type: ignore[attr-defined]
    entries: list[ParameterEntry] = []
    for name, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        dtype = paramio_dtype_of_torch(t.dtype)
        torch_dtype(dtype)  # raises early for a type torch lacks
        raw = t.reshape(-1).view(require("torch").uint8).numpy() if t.numel() else np.empty(0, np.uint8)
        numpy_dtype(dtype)  # every saved dtype must have a NumPy view for readers
        meta = encode_tensor_metadata(TensorInfo(dtype, tuple(t.shape)))
        src = MemorySource(raw, name=f"<torch:{name}>")
        entries.append(ParameterEntry.data(prefix + name, src, 0, src.size, metadata=meta))
    write_path(path, entries, format=ARCHIVE, on_loss="error")  # nothing to lose: data, TENSORv0
    return ParameterIndex.open(path, ARCHIVE)

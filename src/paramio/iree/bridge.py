"""paramio entries -> ``iree.runtime`` ParameterIndex / ParameterProvider, without copies.

Per entry: a span of a local file becomes ``add_from_file_handle`` over ``FileHandle.wrap_fd``
of the file paramio already has open, at the entry's offset and length, so IREE reads the file
itself; a splat becomes ``add_splat``; bytes in memory become ``add_buffer`` (IREE keeps a
reference). Any format paramio reads (IRPA, safetensors, GGUF, overlays, stand-ins) therefore
runs in IREE with paramio's lengths and precedence. ``wrap_fd`` does not take ownership of the
descriptor, so `IreeParameters` keeps every source alive as long as IREE may read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import numpy as np

from paramio.core.entry import ParameterEntry
from paramio.core.errors import SourceError, import_extra
from paramio.index.provider import Provider
from paramio.sources.handles import FileHandle
from paramio.sources.protocols import SupportsFileDescriptor, SupportsZeroCopy

__all__ = ["IreeParameters", "create_parameters_module", "to_iree_index", "to_iree_provider", "to_iree_providers"]


def iree_runtime() -> ModuleType:
    """``iree.runtime``. Raises `MissingExtraError` (naming the ``iree`` extra) when absent."""
    return import_extra("iree.runtime", "iree")


def _metadata(entry: ParameterEntry) -> str | None:
    if not entry.metadata:
        return None
    try:
        return entry.metadata.decode("utf-8")
    except UnicodeDecodeError:
        return None  # IREE takes str metadata; running never needs it


class IreeParameters:
    """IREE indices and providers for each scope of a paramio `Provider`, plus what keeps
    their memory and file descriptors alive. Hold it as long as the program may run."""

    def __init__(self, provider: Provider, scopes: Sequence[str] | None = None) -> None:
        rt = iree_runtime()
        self._handles: dict[int, object] = {}
        self._keep: list[object] = []
        self.indices: dict[str, object] = {}
        self.providers: dict[str, object] = {}
        for scope in scopes if scopes is not None else provider.scopes:
            index = to_iree_index(provider.entries(scope), _bridge=self)
            self.indices[scope] = index
            self.providers[scope] = index.create_provider(scope=scope)  # type: ignore[attr-defined]
        _ = rt

    def file_handle(self, source: SupportsFileDescriptor) -> object:
        """One IREE handle per open source, over paramio's own descriptor."""
        handle = self._handles.get(id(source))
        if handle is None:
            rt = iree_runtime()
            handle = rt.FileHandle.wrap_fd(source.descriptor(), readable=True, writable=False)
            self._handles[id(source)] = handle
            self._keep.append(source)
        return handle

    def keep(self, obj: object) -> None:
        self._keep.append(obj)

    def create_module(self, instance: object) -> object:
        """IREE's ``io_parameters`` VM module serving every scope."""
        return iree_runtime().create_io_parameters_module(instance, *self.providers.values())


def to_iree_index(entries: Sequence[ParameterEntry], *, _bridge: IreeParameters | None = None) -> object:
    """An ``iree.runtime.ParameterIndex`` with one IREE entry per paramio entry (no copies).

    Without `_bridge` the caller must keep the entries' sources open while IREE uses the index.
    """
    rt = iree_runtime()
    bridge = _bridge if _bridge is not None else _Keeper()
    index = rt.ParameterIndex()
    for e in entries:
        md = _metadata(e)
        if e.is_splat:
            index.add_splat(e.key, e.pattern or b"\x00", e.length, metadata=md)
            continue
        src = e.source
        assert src is not None
        if isinstance(src, FileHandle):  # IREE's handle type: what it stands for
            src = src.source
        if isinstance(src, SupportsFileDescriptor) and _is_open(src):
            index.add_from_file_handle(e.key, bridge.file_handle(src), e.length, e.offset, metadata=md)
        elif isinstance(src, SupportsZeroCopy):  # memory: IREE reads the caller's buffer
            buf = np.frombuffer(src.view(e.offset, e.length), dtype=np.uint8)
            bridge.keep(buf)
            index.add_buffer(e.key, buf, metadata=md)
        else:  # no descriptor, no mapping (a remote object): read the bytes once, for IREE to own
            raw = bytearray(e.length)
            src.readinto(e.offset, raw)
            buf = np.frombuffer(raw, dtype=np.uint8)
            bridge.keep(buf)
            index.add_buffer(e.key, buf, metadata=md)
    return index


def _is_open(src: SupportsFileDescriptor) -> bool:
    try:
        src.descriptor()
    except SourceError:
        return False
    return True


class _Keeper(IreeParameters):
    def __init__(self) -> None:  # an empty bridge: handles and buffers only
        self._handles = {}
        self._keep = []
        self.indices = {}
        self.providers = {}


def to_iree_provider(
    entries: Sequence[ParameterEntry], scope: str = "", max_concurrent_operations: int | None = None
) -> tuple[object, object]:
    """An ``iree.runtime.ParameterProvider`` serving `entries` under `scope`, and the object
    holding the sources and buffers it reads (IREE also holds them: it duplicates descriptors
    and references buffers; keeping this as well costs nothing)."""
    keeper = _Keeper()
    index = to_iree_index(entries, _bridge=keeper)
    kwargs: dict[str, object] = {"scope": scope}
    if max_concurrent_operations is not None:
        kwargs["max_concurrent_operations"] = max_concurrent_operations
    return index.create_provider(**kwargs), keeper  # type: ignore[attr-defined]


def to_iree_providers(provider: Provider, scopes: Sequence[str] | None = None) -> IreeParameters:
    """IREE providers for `provider`'s scopes (all by default), in an `IreeParameters`."""
    return IreeParameters(provider, scopes)


def create_parameters_module(instance: object, provider: Provider) -> object:
    """IREE's ``io_parameters`` VM module serving every scope of `provider`.

    The provider keeps the bridge (open files, buffers) alive: keep the provider as long as
    the module runs. Entries added or rewritten later are not seen: build a new module.
    """
    bridge = IreeParameters(provider)
    provider.keep_alive(bridge)
    return bridge.create_module(instance)

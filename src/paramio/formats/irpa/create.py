"""`create_parameters`: an IRPA archive from parameter declarations, as ``iree-create-parameters``.

A declaration (`ParameterSpec`) names a parameter, its size in bytes and a pattern: a splat
stores only the pattern (no bytes on disk); a data parameter gets storage filled with the
pattern (an all-zero pattern leaves the file's sparse zeros, as IREE does). Entries are written
in the order given; with IREE's tool's order (every splat, then every data declaration) and
no tensor types, the archive is byte-identical to ``iree-create-parameters``'s. ``paramio
create`` parses the tool's flags into declarations and calls this.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

from paramio.core.entry import EntryKind, ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.core.splats import check_splat
from paramio.core.tensor import TensorInfo, encode_tensor_metadata
from paramio.formats.irpa.layout import DEFAULT_DATA_ALIGNMENT
from paramio.formats.irpa.writer import plan_archive
from paramio.formats.output import AtomicOutput, copy_entry

__all__ = ["ParameterSpec", "create_parameters"]


@dataclasses.dataclass(frozen=True, slots=True)
class ParameterSpec:
    """One parameter to create: `length` bytes of `pattern` repeated, stored (`DATA`) or not
    (`SPLAT`). A `tensor` is recorded as ``TENSORv0`` dtype/shape metadata (IREE's tool
    records none)."""

    name: str
    kind: EntryKind
    length: int
    pattern: bytes = b"\0"
    tensor: TensorInfo | None = None

    @classmethod
    def splat(cls, name: str, pattern: bytes, length: int, *, tensor: TensorInfo | None = None) -> ParameterSpec:
        """A parameter with no storage: `pattern` (1, 2, 4, 8 or 16 bytes) repeated to `length`."""
        return cls(name, EntryKind.SPLAT, length, bytes(pattern), tensor)

    @classmethod
    def data(cls, name: str, length: int, pattern: bytes = b"\0", *, tensor: TensorInfo | None = None) -> ParameterSpec:
        """A parameter with `length` bytes of storage, filled with `pattern` (zeros by default)."""
        return cls(name, EntryKind.DATA, length, bytes(pattern), tensor)

    def check(self) -> None:
        """Raise `InvalidArgumentError` (naming the parameter) for a declaration no archive can
        hold: a kind other than splat or data, a negative length, a splat breaking the splat
        rule (`paramio.core.splats`), a data pattern that does not fill the length whole, or a
        tensor whose size is not the length."""
        if self.kind is EntryKind.SPLAT:
            check_splat(len(self.pattern), self.length, key=self.name)
        elif self.kind is not EntryKind.DATA:
            raise InvalidArgumentError(
                f"cannot create a {self.kind.value} entry; expected splat or data", key=self.name
            )
        elif self.length < 0:
            raise InvalidArgumentError(f"length {self.length} is negative", key=self.name)
        elif not self.pattern or self.length % len(self.pattern):
            raise InvalidArgumentError(
                f"length {self.length} is not a whole number of {len(self.pattern)}-byte patterns", key=self.name
            )
        if self.tensor is not None:
            want = self.tensor.nbytes()
            if want is not None and want != self.length:
                raise InvalidArgumentError(
                    f"{self.tensor.dtype}{list(self.tensor.shape)} is {want} bytes, not {self.length}", key=self.name
                )

    def entry(self) -> ParameterEntry:
        """The archive entry this declaration becomes (a data entry has no source yet)."""
        metadata = encode_tensor_metadata(self.tensor) if self.tensor is not None else b""
        if self.kind is EntryKind.SPLAT:
            return ParameterEntry.splat(self.name, self.pattern, self.length, metadata=metadata)
        return ParameterEntry(key=self.name, kind=EntryKind.DATA, length=self.length, metadata=metadata)


def create_parameters(
    path: str | os.PathLike[str],
    parameters: Sequence[ParameterSpec],
    *,
    alignment: int = DEFAULT_DATA_ALIGNMENT,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write an IRPA archive at `path` (atomically: temporary file, fsync, rename; ``-``, a FIFO
    or a device is written as a stream) holding `parameters` in order, data placed at
    `alignment`. `progress` is called with each count of data bytes written; all-zero data is
    counted at once (it is left sparse).

    Raises `InvalidArgumentError` for a declaration `ParameterSpec.check` refuses or an
    alignment that is not a power of two, `WriteError` when the file cannot be written.
    """
    for p in parameters:
        p.check()
    plan = plan_archive([p.entry() for p in parameters], alignment=alignment)
    with AtomicOutput(path) as out:
        out.truncate(plan.total_size)
        out.pwrite(plan.header_and_tables, 0)
        for p, offset in zip(parameters, plan.data_offsets, strict=True):
            if offset is not None:  # a data entry: its pattern expanded into its storage
                copy_entry(ParameterEntry.splat(p.name, p.pattern, p.length), out, offset, progress=progress)
        out.commit()

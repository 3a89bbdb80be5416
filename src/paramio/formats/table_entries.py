"""`TableEntries`: a file's data entries kept as its reader's columns, built on first use.

The readers' NumPy-free paths (safetensors, GGUF) check a whole table and keep what each entry
would hold as columns: key, offset, length and declared type, one source. A listing prints the
columns (`LazyEntries.dump_columns`), an index adopts the keys, and `paramio.formats.conversion.restore`
puts carried types back by column (`retyped`), so ``paramio dump`` of a file builds no entry
object at all.
"""

from __future__ import annotations

from paramio.core.entries import LazyEntries
from paramio.core.entry import ParameterEntry, entries_from_columns
from paramio.core.source import ByteSource
from paramio.core.tensor import TensorInfo

TYPE_CHECKING = False  # `typing` is not imported to read a file (mypy reads this as typing's)
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["TableEntries"]


class TableEntries(LazyEntries):
    """Data entries of `source`: entry ``i`` is ``ParameterEntry.data(keys[i], source,
    offsets[i], lengths[i], tensor=tensors()[i], origin=origin, file_index=i)``, made when
    first asked for. `tensors` gives the declared types (made once, on first use)."""

    __slots__ = ("lengths", "offsets", "origin", "source", "_tensors", "_types")

    def __init__(
        self,
        keys: list[str],
        offsets: list[int],
        lengths: list[int],
        tensors: Callable[[], list[TensorInfo | None]],
        source: ByteSource,
        origin: str,
    ) -> None:
        super().__init__(list(keys), self._one, self._every, columns=self._dump)
        self.offsets = offsets
        self.lengths = lengths
        self.source = source
        self.origin = origin
        self._types = tensors
        self._tensors: list[TensorInfo | None] | None = None

    def tensors(self) -> list[TensorInfo | None]:
        """Every row's declared type, in order."""
        if self._tensors is None:
            self._tensors = self._types()
        return self._tensors

    def unchanged(self) -> bool:
        """Whether every row is still the reader's (no entry assigned, appended or removed)."""
        return self.dump_columns() is not None

    def retyped(self, tensors: list[TensorInfo | None]) -> TableEntries:
        """The same rows declaring `tensors` (no entry built)."""
        return TableEntries(self.keys(), self.offsets, self.lengths, lambda: tensors, self.source, self.origin)

    def _one(self, i: int) -> ParameterEntry:
        return ParameterEntry.data(
            self._keys[i],
            self.source,
            self.offsets[i],
            self.lengths[i],
            tensor=self.tensors()[i],
            origin=self.origin,
            file_index=i,
        )

    def _every(self) -> list[ParameterEntry]:
        return entries_from_columns(
            keys=self._keys,
            lengths=self.lengths,
            offsets=self.offsets,
            source=self.source,
            origin=self.origin,
            declared=self.tensors(),
        )

    def _dump(self) -> tuple[list[int], list[int], list[bool]]:
        return self.offsets, self.lengths, [False] * len(self.offsets)

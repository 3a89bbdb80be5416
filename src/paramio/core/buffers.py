"""Type aliases shared across the package (Python 3.11 has no `collections.abc.Buffer`)."""

from __future__ import annotations

import array
import mmap

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)

#: Anything exposing the buffer protocol that paramio accepts as parameter bytes.
if TYPE_CHECKING:  # NumPy is not imported to read or list a file
    import numpy as np

    Buffer = bytes | bytearray | memoryview | mmap.mmap | array.array[int] | np.ndarray
else:  # at run time without NumPy's type: naming it in a string (a `typing.ForwardRef`, compiled) cost every process ~1 ms
    Buffer = bytes | bytearray | memoryview | mmap.mmap | array.array

"""Type aliases shared across the package (Python 3.11 has no `collections.abc.Buffer`)."""

from __future__ import annotations

import array
import mmap
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # NumPy is not imported to read or list a file
    import numpy as np

#: Anything exposing the buffer protocol that paramio accepts as parameter bytes.
Buffer = Union[bytes, bytearray, memoryview, mmap.mmap, "array.array[int]", "np.ndarray"]

"""Type aliases shared across the package (Python 3.11 has no `collections.abc.Buffer`)."""

from __future__ import annotations

import array
import mmap
from typing import Union

import numpy as np

#: Anything exposing the buffer protocol that paramio accepts as parameter bytes.
Buffer = Union[bytes, bytearray, memoryview, mmap.mmap, "array.array[int]", np.ndarray]

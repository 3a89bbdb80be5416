"""``iree.runtime``'s whole parameter API in paramio: same names, signatures, reprs and messages.

``import paramio as rt`` runs code written for IREE's Python parameter API (IREE's own
``io_test.py`` and ``io_runtime_test.py`` run unchanged: tests/iree/test_iree_own_tests.py), and
tests/iree/test_api_parity.py runs one script against both and compares every result.

- `FileHandle` (`paramio.sources.handles`): host memory or a file descriptor;
- `SplatValue`, `save_archive_file` and the ``parameter_index_*`` NumPy helpers
  (`paramio.compat.numpy_io`, after ``iree/runtime/io.py``);
- `ParameterProvider`, `create_io_parameters_module` and `ParameterIndex.create_provider`
  (`paramio.compat.runtime`): real IREE objects built from paramio's entries (extra ``iree``).

`paramio.ParameterIndex` and `paramio.ParameterIndexEntry` (= `ParameterEntry`) are paramio's
own classes, supersets of IREE's; the differences are listed in docs/iree-api.md.
"""

from __future__ import annotations

from paramio.compat.numpy_io import (
    SplatValue,
    parameter_index_add_numpy_ndarray,
    parameter_index_entry_as_numpy_flat_ndarray,
    parameter_index_entry_as_numpy_ndarray,
    save_archive_file,
)
from paramio.compat.runtime import create_io_parameters_module, provider_class
from paramio.sources.handles import FileHandle

__all__ = [
    "FileHandle",
    "SplatValue",
    "create_io_parameters_module",
    "parameter_index_add_numpy_ndarray",
    "parameter_index_entry_as_numpy_flat_ndarray",
    "parameter_index_entry_as_numpy_ndarray",
    "provider_class",
    "save_archive_file",
]

"""The MLIR Python bindings that ship in ``iree-base-compiler``, imported only when asked for.

paramio's core never imports ``iree.compiler``; the `paramio.mlir` functions call `bindings()`
first, so a missing compiler is one clear error naming the extra to install.
"""

from __future__ import annotations

import importlib
import types

from paramio.core.errors import MissingExtraError, import_extra

__all__ = ["MissingCompilerError", "bindings", "passmanager"]


#: The name this error had before paramio had one `MissingExtraError` for every optional package.
MissingCompilerError = MissingExtraError


def bindings() -> types.ModuleType:
    """``iree.compiler.ir``. Raises `MissingExtraError` when iree-base-compiler is absent."""
    return import_extra("iree.compiler.ir", "iree", what="paramio mlir needs the MLIR bindings of iree-base-compiler")


def passmanager() -> types.ModuleType:
    """``iree.compiler.passmanager`` (same condition as `bindings`)."""
    bindings()
    return importlib.import_module("iree.compiler.passmanager")

"""The MLIR Python bindings that ship in ``iree-base-compiler``, imported only when asked for.

paramio's core never imports ``iree.compiler``; the `paramio.mlir` functions call `bindings()`
first, so a missing compiler is one clear error naming the extra to install.
"""

from __future__ import annotations

import importlib
import types

from paramio.core.errors import ParamioError

__all__ = ["MissingCompilerError", "bindings", "passmanager"]


class MissingCompilerError(ParamioError, ImportError):
    """``iree.compiler`` is not installed; the message names the extra that brings it."""


def bindings() -> types.ModuleType:
    """``iree.compiler.ir``. Raises `MissingCompilerError` when iree-base-compiler is absent."""
    try:
        return importlib.import_module("iree.compiler.ir")
    except ImportError as exc:
        raise MissingCompilerError(
            "paramio mlir needs the MLIR bindings of iree-base-compiler: pip install 'paramio[iree]'"
        ) from exc


def passmanager() -> types.ModuleType:
    """``iree.compiler.passmanager`` (same condition as `bindings`)."""
    bindings()
    return importlib.import_module("iree.compiler.passmanager")

"""MLIR and parameters: export inline weights to an archive, import them back, declare globals.

Built on the MLIR Python bindings of ``iree-base-compiler`` (``iree.compiler.ir``), imported only
here: ``import paramio`` never needs the compiler. Every function raises
`MissingCompilerError` (naming ``paramio[iree]``) when the bindings are absent.

* `export_parameters`: inline ``dense``/``dense_resource`` values of ``util.global`` ops (and,
  if asked, large ``arith.constant`` s) -> a typed archive in any format paramio writes; each
  global becomes ``#flow.parameter.named<"scope"::"symbol">``.
* `import_parameters`: the way back, from any file paramio opens, as ``dense_resource`` blobs.
* `declare_parameters`: ``util.global`` declarations for an archive's typed entries.
"""

from __future__ import annotations

from paramio.mlir._bindings import MissingCompilerError
from paramio.mlir.declare import Declaration, Declarations, declare_parameters, symbol_name
from paramio.mlir.export import Exported, ExportReport, Skipped, export_parameters, hoist_constants
from paramio.mlir.importer import Imported, ImportReport, LeftAlone, import_parameters
from paramio.mlir.module import GlobalOp, MlirModule, ParameterRef, parameter_ref, parameter_ref_text

__all__ = [
    "Declaration",
    "Declarations",
    "ExportReport",
    "Exported",
    "GlobalOp",
    "ImportReport",
    "Imported",
    "LeftAlone",
    "MissingCompilerError",
    "MlirModule",
    "ParameterRef",
    "Skipped",
    "declare_parameters",
    "export_parameters",
    "hoist_constants",
    "import_parameters",
    "parameter_ref",
    "parameter_ref_text",
    "symbol_name",
]

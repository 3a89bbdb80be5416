"""The floor: plain data types every other layer stands on, importing nothing above them.

- `errors`: paramio's exceptions and warnings (each names file, entry and offset).
- `dtypes`, `tensor`: element types and `TensorInfo` (dtype and shape, as metadata encodes them).
- `source`, `planner`: the `ByteSource` contract (`readinto`, `readv`) and the pure planner that
  coalesces spans into requests; implementations live one layer up, in `paramio.sources`.
- `entry`, `entries`: `ParameterEntry` (one parameter: key, length, metadata, where its bytes
  are) and `LazyEntries` (a reader's table, building entries on first touch).
- `buffers`, `exports`: the buffer type alias, and the lazy re-export helper that keeps
  ``import paramio`` light (with the declarations through which a lower layer reaches a format
  or a function defined above it). Presentation lives with its users: terminal escaping and
  the progress bar in `paramio.formats.text` and `paramio.formats.progress`.

The layer order (`docs/architecture.md`, enforced by `tests/core/test_layers.py`): core <
arrays < sources < formats < index < adapters (iree, compat, loading, sharding, mlir, torch) <
cli. This package imports nothing eagerly, so ``import paramio`` stays cheap.
"""

"""The floor: plain data types every other layer stands on, importing nothing above them.

- `errors`: paramio's exceptions and warnings (each names file, entry and offset).
- `dtypes`, `tensor`: element types and `TensorInfo` (dtype and shape, as metadata encodes them).
- `source`, `planner`: the `ByteSource` contract (`readinto`, `readv`) and the pure planner that
  coalesces spans into requests; implementations live one layer up, in `paramio.sources`.
- `entry`, `entries`: `ParameterEntry` (one parameter: key, length, metadata, where its bytes
  are) and `LazyEntries` (a reader's table, building entries on first touch).
- `text`, `progress`, `buffers`, `exports`: terminal-safe names, the byte progress bar, the
  buffer type alias and the lazy re-export helper that keeps ``import paramio`` light.

The layer order (`docs/architecture.md`, enforced by `tests/core/test_layers.py`): core <
arrays < sources < formats < index < adapters (iree, compat, loading, sharding, mlir, torch) <
cli. This package imports nothing eagerly, so ``import paramio`` stays cheap.
"""

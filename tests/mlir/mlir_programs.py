"""MLIR sources the tests share: every element type paramio maps, odd sizes, both value forms."""

from __future__ import annotations

import ml_dtypes
import numpy as np

#: (symbol, MLIR element, NumPy dtype, values): dense<...> globals, odd element counts.
DENSE = [
    ("flag", "i1", np.bool_, [True, False, True]),
    ("i8v", "i8", np.int8, [1, -2, 3, -4, 5]),
    ("i16v", "i16", np.int16, [300, -2, 7]),
    ("i32v", "i32", np.int32, [1, 2, 3, 4, 5, 6, -7]),
    ("i64v", "i64", np.int64, [2**40, -1, 3]),
    ("f16v", "f16", np.float16, [0.5, -1.25, 2.0, 3.0, 65504.0]),
    ("bf16v", "bf16", ml_dtypes.bfloat16, [1.0, -2.5, 3.0]),
    ("f32v", "f32", np.float32, [0.1, 2.0, -3.5, 4.0, 5.0, 6.0, 7.0]),
    ("f64v", "f64", np.float64, [0.1, -2.0, 1.0e300]),
    ("f8v", "f8E4M3FN", ml_dtypes.float8_e4m3fn, [1.0, -2.0, 0.5, 448.0, 3.0]),
]

#: (symbol, MLIR element, NumPy dtype, values): dense_resource<...> globals with a blob each.
RESOURCE = [
    ("r_i1", "i1", np.bool_, [True, True, False]),
    ("r_i16", "i16", np.int16, [1, 2, 3]),
    ("r_bf16", "bf16", ml_dtypes.bfloat16, [1.0, 2.0, -3.0]),
    ("r_f32", "f32", np.float32, [1.0, 2.0, 3.0, 4.0, 5.0]),
    ("r_f64", "f64", np.float64, [1.5]),
]


def literal(values: list[object], element: str) -> str:
    if element == "i1":
        return ", ".join("true" if v else "false" for v in values)
    return ", ".join(f"{float(v):.17e}" if element.startswith(("f", "bf")) else str(v) for v in values)


def blob_hex(values: list[object], dtype: type) -> str:
    """A dialect_resources blob: u32 LE alignment (= element size), then the raw bytes."""
    arr = np.array(values, dtype=dtype)
    return "0x" + (arr.itemsize.to_bytes(4, "little") + arr.tobytes()).hex().upper()


def expected_bytes(values: list[object], dtype: type) -> bytes:
    return np.array(values, dtype=dtype).tobytes()


def every_type_module() -> str:
    lines = []
    for name, el, _, vals in DENSE:
        lines.append(f"util.global private @{name} = dense<[{literal(vals, el)}]> : tensor<{len(vals)}x{el}>")
    for name, el, _, vals in RESOURCE:
        lines.append(f"util.global private @{name} = dense_resource<blob_{name}> : tensor<{len(vals)}x{el}>")
    lines.append("util.global public @pub = dense<[1.0, 2.0]> : tensor<2xf32>")
    lines.append("util.global private @splat = dense<2.5> : tensor<6xf32>")
    lines.append("util.global private mutable @msplat = dense<7> : tensor<3xi8>")
    blobs = ",\n".join(f'      blob_{name}: "{blob_hex(vals, dt)}"' for name, _, dt, vals in RESOURCE)
    return "\n".join(lines) + "\n{-#\n  dialect_resources: {\n    builtin: {\n" + blobs + "\n    }\n  }\n#-}\n"


#: A program with embedded weights: y = relu(W x + b) * s, with W private, b public.
EMBEDDED = """\
util.global private @weight = dense<[[1.0, -2.0, 3.0, 0.5], [0.25, 1.0, -1.0, 2.0], [2.0, 0.0, 1.5, -0.5]]> : tensor<3x4xf32>
util.global public @bias = dense_resource<bias_blob> : tensor<3xf32>
util.global private @scale = dense<[2.0, 3.0, 4.0]> : tensor<3xf32>
func.func @predict(%x: tensor<4xf32>) -> tensor<3xf32> {
  %w = util.global.load @weight : tensor<3x4xf32>
  %b = util.global.load @bias : tensor<3xf32>
  %s = util.global.load @scale : tensor<3xf32>
  %init = arith.constant dense<0.0> : tensor<3xf32>
  %mv = linalg.matvec ins(%w, %x : tensor<3x4xf32>, tensor<4xf32>) outs(%init : tensor<3xf32>) -> tensor<3xf32>
  %y = arith.addf %mv, %b : tensor<3xf32>
  %z = arith.mulf %y, %s : tensor<3xf32>
  return %z : tensor<3xf32>
}
{-#
  dialect_resources: {
    builtin: {
      bias_blob: "0x040000000000803F00000040000040C0"
    }
  }
#-}
"""
#: Its result on x = [1, 2, 3, 4]: W x = [8, 7.25, 4.5]; + b = [9, 9.25, 1.5]; * s.
EMBEDDED_INPUT = "4xf32=1,2,3,4"
EMBEDDED_RESULT = "3xf32=18 27.75 6"

"""`export_parameters` / `paramio mlir export`, with IREE's own export pass (iree-opt) as the oracle."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mlir_programs import DENSE, RESOURCE, every_type_module, expected_bytes

from paramio import ParameterIndex
from paramio.core.errors import ConversionWarning, FormatError, InvalidArgumentError
from paramio.mlir import MlirModule, export_parameters

pytestmark = pytest.mark.usefixtures("bindings")

_DTYPES = {
    "i1": "bool",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
    "f8E4M3FN": "float8_e4m3fn",
}


@pytest.fixture
def every(tmp_path: Path) -> Path:
    path = tmp_path / "every.mlir"
    path.write_text(every_type_module())
    return path


def test_every_type_exports_typed_with_the_bytes_numpy_gives(tmp_path: Path, every: Path) -> None:
    module = MlirModule.load(every)
    report = export_parameters(module, tmp_path / "w.irpa", scope="model")
    index = ParameterIndex.open(tmp_path / "w.irpa")
    for name, el, dt, vals in DENSE + RESOURCE:
        e = index[name]
        assert e.read() == expected_bytes(vals, dt), name
        assert (e.dtype, e.shape) == (_DTYPES[el], (len(vals),)), name
    assert index["splat"].is_splat and index["splat"].splat_pattern == np.float32(2.5).tobytes()
    assert index["msplat"].read() == b"\x07\x07\x07"  # a mutable splat is data (IREE: it will be written)
    assert [e.symbol for e in report.exported] == index.keys()  # module order
    assert report.skipped == ()
    text = module.text()
    assert '@pub = #flow.parameter.named<"model"::"pub"> : tensor<2xf32>' in text
    assert "dialect_resources" not in text  # every blob moved out, the section goes with them


def test_same_keys_bytes_and_module_as_ireeopt_pass(
    tmp_path: Path, every: Path, iree_opt: Callable[..., object]
) -> None:
    r = iree_opt(
        f"--pass-pipeline=builtin.module(iree-io-export-parameters{{path=model={tmp_path / 'iree.irpa'} "
        "minimum-size=0})",
        every,
        "-o",
        tmp_path / "iree.mlir",
    )
    assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
    module = MlirModule.load(every)
    export_parameters(module, tmp_path / "paramio.irpa", scope="model")
    module.save(tmp_path / "paramio.mlir")
    ours, theirs = ParameterIndex.open(tmp_path / "paramio.irpa"), ParameterIndex.open(tmp_path / "iree.irpa")
    assert ours.keys() == theirs.keys()
    for a, b in zip(ours.entries, theirs.entries, strict=True):
        assert (a.kind, a.length, a.read()) == (b.kind, b.length, b.read()), a.key
        assert b.dtype is None and a.dtype is not None  # what paramio adds: the type
    # iree-opt ends its file with one more newline; the modules are the same text.
    assert (tmp_path / "paramio.mlir").read_text().rstrip() == (tmp_path / "iree.mlir").read_text().rstrip()


def test_unscoped_export_prints_ireeS_empty_scope(tmp_path: Path) -> None:
    module = MlirModule.parse("util.global private @w = dense<[1.0, 2.0]> : tensor<2xf32>\n")
    export_parameters(module, tmp_path / "w.irpa")
    assert '@w = #flow.parameter.named<""::"w"> : tensor<2xf32>' in module.text()


def test_keys_and_minimum_size_choose_globals_and_the_rest_stays_inline(tmp_path: Path, every: Path) -> None:
    module = MlirModule.load(every)
    report = export_parameters(module, tmp_path / "w.irpa", keys=["r_*", "*f*v"], minimum_size=6)
    assert [e.symbol for e in report.exported] == ["f16v", "bf16v", "f32v", "f64v", "r_i16", "r_bf16", "r_f32", "r_f64"]
    text = module.text()
    assert "@i8v = dense<[1, -2, 3, -4, 5]> : tensor<5xi8>" in text
    assert "@f8v = dense<" in text and "@r_i1 = dense_resource<blob_r_i1>" in text  # 5 and 3 bytes: under 6
    assert "blob_r_i1:" in text and "blob_r_f32" not in text  # only the moved blobs leave the trailer
    assert ParameterIndex.open(tmp_path / "w.irpa").keys() == [e.symbol for e in report.exported]


def test_complex_and_elided_values_stay_inline_with_the_reason(tmp_path: Path) -> None:
    module = MlirModule.parse(
        "util.global private @c = dense<[(1.0,2.0), (3.0,-4.0)]> : tensor<2xcomplex<f32>>\n"
        "util.global private @e = dense_resource<__elided__> : tensor<4xf32>\n"
        "util.global private @w = dense<[1.0, 2.0]> : tensor<2xf32>\n"
        "util.global private @f8 = dense_resource<b> : tensor<2xf8E4M3FN>\n"
        '{-#\n  dialect_resources: {\n    builtin: {\n      b: "0x010000003840"\n    }\n  }\n#-}\n'
    )
    report = export_parameters(module, tmp_path / "w.irpa")
    assert [(s.symbol, s.reason) for s in report.skipped] == [
        ("c", "IREE cannot serialize complex<f32> values"),
        ("e", "its dense_resource value is elided (no data in the file)"),
        ("f8", "IREE cannot serialize dense_resource values of f8E4M3FN"),
    ]
    assert [e.symbol for e in report.exported] == ["w"]
    text = module.text()
    assert "@c = dense<[(1.000000e+00,2.000000e+00), (3.000000e+00,-4.000000e+00)]> : tensor<2xcomplex<f32>>" in text


def test_ireeopt_pass_fails_on_complex_silently(tmp_path: Path, iree_opt: Callable[..., object]) -> None:
    """The difference paramio's refusal above papers over: IREE's pass fails without a word."""
    src = tmp_path / "c.mlir"
    src.write_text("util.global private @c = dense<[(1.0,2.0)]> : tensor<1xcomplex<f32>>\n")
    r = iree_opt(f"--pass-pipeline=builtin.module(iree-io-export-parameters{{path={tmp_path / 'c.irpa'}}})", src)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")  # type: ignore[attr-defined]
    assert not (tmp_path / "c.irpa").exists()


def test_constants_are_hoisted_behind_the_flag(tmp_path: Path) -> None:
    src = """func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %c = arith.constant dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  %small = arith.constant dense<1.0> : tensor<1xf32>
  %0 = arith.addf %x, %c : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @g(%x: tensor<4xf32>) -> tensor<4xf32> {
  %same = arith.constant dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  %other = arith.constant dense<[1, 2]> : tensor<2xi32>
  %0 = arith.mulf %x, %same : tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""
    plain = MlirModule.parse(src)
    assert export_parameters(plain, tmp_path / "none.irpa").exported == ()
    assert not (tmp_path / "none.irpa").exists()  # nothing qualified: no archive, as IREE's pass
    module = MlirModule.parse(src)
    report = export_parameters(module, tmp_path / "c.irpa", scope="m", constants=True, minimum_size=8)
    assert report.hoisted == ("constant", "constant_1")  # the equal constant of @g shares @constant
    text = module.text()
    assert 'util.global private @constant = #flow.parameter.named<"m"::"constant"> : tensor<4xf32>' in text
    assert text.count("util.global.load @constant : tensor<4xf32>") == 2
    assert "dense<1.000000e+00> : tensor<1xf32>" in text  # 4 bytes: under the minimum, stays
    assert '@constant_1 = #flow.parameter.named<"m"::"constant_1"> : tensor<2xi32>' in text
    module.verify()
    assert ParameterIndex.open(tmp_path / "c.irpa")["constant"].to_numpy().tolist() == [5, 6, 7, 8]


@pytest.mark.parametrize("fmt", ["safetensors", "gguf"])
def test_other_formats_hold_the_types_for_their_own_readers(tmp_path: Path, every: Path, fmt: str) -> None:
    module = MlirModule.load(every)
    out = tmp_path / f"w.{fmt}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        export_parameters(module, out, keys=["i16v", "f32v", "bf16v", "splat"])
    assert any("splat" in str(w.message) for w in caught)  # written as data, said so
    if fmt == "safetensors":
        from safetensors.numpy import load_file

        got = load_file(str(out))
    else:
        import gguf

        got = {t.name: np.array(t.data).reshape(-1) for t in gguf.GGUFReader(str(out)).tensors}
    assert got["i16v"].dtype == np.int16 and got["i16v"].tolist() == [300, -2, 7]
    assert got["f32v"].tolist() == np.array([0.1, 2.0, -3.5, 4.0, 5.0, 6.0, 7.0], np.float32).tolist()
    assert got["splat"].tolist() == [2.5] * 6
    if fmt == "safetensors":
        assert str(got["bf16v"].dtype) == "bfloat16"


def test_bytecode_in_and_out(tmp_path: Path, every: Path, paramio_cli: Callable[..., tuple[int, str, str]]) -> None:
    module = MlirModule.load(every)
    module.save(tmp_path / "every.mlirbc")
    assert (tmp_path / "every.mlirbc").read_bytes()[:4] == b"ML\xefR"
    code, out, err = paramio_cli(
        "mlir",
        "export",
        str(tmp_path / "every.mlirbc"),
        f"--archive=model={tmp_path / 'w.irpa'}",
        f"--output={tmp_path / 'out.mlirbc'}",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert len(report["exported"]) == 18 and report["exported"][0] == {
        "symbol": "flag",
        "key": "flag",
        "dtype": "bool",
        "shape": [3],
        "bytes": 3,
        "kind": "data",
    }
    assert (tmp_path / "out.mlirbc").read_bytes()[:4] == b"ML\xefR"
    back = MlirModule.load(tmp_path / "out.mlirbc").text()
    assert '@r_f32 = #flow.parameter.named<"model"::"r_f32"> : tensor<5xf32>' in back


def test_cli_errors_are_one_line(tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]]) -> None:
    bad = tmp_path / "bad.mlir"
    bad.write_text("util.global private @w = dense<[1.0> : tensor<4xf32>\n")
    code, _, err = paramio_cli("mlir", "export", str(bad), "--archive=w.irpa", f"--output={tmp_path / 'o.mlir'}")
    assert code == 1 and err.count("\n") == 1 and "bad.mlir" in err and "expected ']'" in err
    code, _, err = paramio_cli("mlir", "export", str(bad), f"--output={tmp_path / 'o.mlir'}")
    assert (code, err) == (2, "paramio mlir export: --archive=[scope=]file is required\n")
    code, _, err = paramio_cli("mlir", "export", str(tmp_path / "missing.mlir"), "--archive=w.irpa", "--output=o.mlir")
    assert code == 1 and "No such file or directory" in err
    assert not (tmp_path / "o.mlir").exists()


def test_a_refused_loss_writes_nothing_and_leaves_the_module_as_it_was(tmp_path: Path, every: Path) -> None:
    module = MlirModule.load(every)
    before = module.text()
    with pytest.raises(InvalidArgumentError, match="splat"):
        export_parameters(module, tmp_path / "w.safetensors", on_loss="error")
    assert not (tmp_path / "w.safetensors").exists()
    assert module.text() == before
    module.verify()


def _resource_module(tmp_path: Path, name: str, type_text: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_text(
        f"util.global private @w = dense_resource<b> : {type_text}\n"
        "util.global private @ok = dense<[1.0, 2.0]> : tensor<2xf32>\n"
        f'{{-#\n  dialect_resources: {{\n    builtin: {{\n      b: "0x04000000{data.hex().upper()}"\n    }}\n  }}\n#-}}\n'
    )
    return path


@pytest.mark.parametrize(("type_text", "held", "needed"), [("tensor<5xf32>", 8, 20), ("tensor<1xf32>", 8, 4)])
def test_a_blob_of_another_size_than_its_type_is_refused_naming_both_sizes(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], type_text: str, held: int, needed: int
) -> None:
    """IREE's pass pads a short blob with zeros and truncates a long one: refused, as import does."""
    src = _resource_module(tmp_path, "r.mlir", type_text, np.array([1.0, 2.0], dtype=np.float32).tobytes())
    module = MlirModule.load(src)
    before = module.text()
    message = f"{src}: global @w: its dense_resource blob holds {held} bytes but {type_text} needs {needed}"
    with pytest.raises(FormatError) as err:
        export_parameters(module, tmp_path / "w.irpa")
    assert str(err.value) == message
    assert not (tmp_path / "w.irpa").exists() and module.text() == before
    code, _, stderr = paramio_cli(
        "mlir", "export", str(src), f"--archive={tmp_path / 'w.irpa'}", f"--output={tmp_path / 'o.mlir'}"
    )
    assert (code, stderr) == (1, f"paramio mlir export: {message}\n")
    assert not (tmp_path / "o.mlir").exists() and not (tmp_path / "w.irpa").exists()


def test_a_blob_of_its_types_size_still_exports_exactly(tmp_path: Path) -> None:
    data = np.array([1.5, -2.0, 3.25], dtype=np.float32)
    module = MlirModule.load(_resource_module(tmp_path, "r.mlir", "tensor<3xf32>", data.tobytes()))
    export_parameters(module, tmp_path / "w.irpa")
    assert ParameterIndex.open(tmp_path / "w.irpa")["w"].read() == data.tobytes()


@pytest.mark.parametrize("dims", ["9223372036854775807x2", "288230376151711744", "2305843009213693952"])
def test_a_type_too_large_for_ireeS_serializer_names_the_global_and_its_size(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], dims: str
) -> None:
    """The pass wrote no file (then: 'cannot open' a temporary file) or a splat of length 0."""
    src = tmp_path / "big.mlir"
    src.write_text(f"util.global private @big = dense<1.0> : tensor<{dims}xf32>\n")
    count = 1
    for d in dims.split("x"):
        count *= int(d)
    code, _, stderr = paramio_cli(
        "mlir", "export", str(src), f"--archive={tmp_path / 'w.irpa'}", f"--output={tmp_path / 'o.mlir'}"
    )
    assert (code, stderr) == (
        1,
        f"paramio mlir export: global @big: tensor<{dims}xf32> holds {count * 4} bytes, more than IREE's "
        f"export can size ({(1 << 60) - 1} bytes)\n",
    )
    assert not (tmp_path / "o.mlir").exists() and not (tmp_path / "w.irpa").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["big.mlir"]  # no temporary folder left behind

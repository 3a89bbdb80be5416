"""The pieces that need no compiler: element table, names, parameter references, import guard."""

from __future__ import annotations

import subprocess
import sys

import pytest

from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.mlir import ParameterRef, parameter_ref, parameter_ref_text, symbol_name
from paramio.mlir.elements import element_by_dtype, element_by_mlir, tensor_type_text


def test_element_table_sizes_follow_iree_serializer() -> None:
    assert [element_by_mlir(n).size for n in ("i1", "i8", "bf16", "f16", "f32", "f64", "complex<f32>")] == [
        1,
        1,
        2,
        2,
        4,
        8,
        8,
    ]
    assert element_by_mlir("ui8").dtype == "uint8" and element_by_mlir("si32").dtype == "int32"
    assert element_by_mlir("i4") is None  # packed sub-byte: IREE's import refuses it too
    assert element_by_dtype("uint16").mlir == "i16"  # declared signless, as IREE programs use it
    assert element_by_dtype("gguf.q4_k") is None
    assert tensor_type_text(element_by_dtype("bfloat16"), (2, 3)) == "tensor<2x3xbf16>"
    assert tensor_type_text(element_by_dtype("float32"), ()) == "tensor<f32>"


def test_parameter_ref_reads_every_printed_form() -> None:
    assert parameter_ref('#flow.parameter.named<"model"::"w.0"> : tensor<4xf32>') == ParameterRef("model", "w.0")
    assert parameter_ref('#flow.parameter.named<"k"> : tensor<4xf32>') == ParameterRef("", "k")
    assert parameter_ref('#flow.parameter.named<""::"k"> : tensor<4xf32>') == ParameterRef("", "k")
    assert parameter_ref('#flow.parameter.named<"s"::"k", {length = 64 : i64}> : tensor<4xf32>') == ParameterRef(
        "s", "k", "{length = 64 : i64}"
    )
    assert parameter_ref("dense<1.0> : tensor<4xf32>") is None
    with pytest.raises(FormatError, match="a quote inside a key"):
        parameter_ref('#flow.parameter.named<"a"b"::"k"> : tensor<4xf32>')  # how IREE prints a key with a quote


def test_names_iree_cannot_print_are_refused() -> None:
    assert parameter_ref_text("", "w", "tensor<4xf32>") == '#flow.parameter.named<""::"w"> : tensor<4xf32>'
    for bad in ('a"b', "a\\b", "a\nb"):
        with pytest.raises(InvalidArgumentError, match="IREE prints parameter names unescaped"):
            parameter_ref_text("s", bad, "tensor<4xf32>")


def test_symbol_names_are_bare_identifiers() -> None:
    assert symbol_name("blk.0.attn_q.weight") == "blk.0.attn_q.weight"
    assert symbol_name("0.weight") == "_0.weight"
    assert symbol_name("model/layer-1 w") == "model_layer_1_w"
    assert symbol_name("") == "_"


def test_core_and_cli_import_without_the_compiler() -> None:
    code = """
import sys
sys.modules["iree.compiler"] = None  # as if iree-base-compiler were not installed
import paramio, paramio.mlir, paramio.cli.mlir
from paramio.mlir import MlirModule, MissingCompilerError
try:
    MlirModule.parse("module {}")
except MissingCompilerError as exc:
    print("refused:", exc)
from paramio.cli.main import main
print("exit", main(["mlir", "declare", "--parameters=x.irpa"]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (
        "refused: paramio mlir needs the MLIR bindings of iree-base-compiler: pip install 'paramio[iree]'" in r.stdout
    )
    assert "exit 1" in r.stdout


def test_mlir_command_usage_and_help(paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = paramio_cli("--help")
    assert "  mlir " in out and "paramio mlir export model.mlir --archive=model=weights.irpa" in out
    code, out, _ = paramio_cli("mlir")
    assert code == 2 and out.startswith("usage: paramio mlir <export|import|declare> [flags]")
    code, out, _ = paramio_cli("mlir", "export", "--help")
    assert code == 0 and "# paramio mlir export" in out and "--minimum_size=0" in out and "--constants=false" in out
    code, out, _ = paramio_cli("mlir", "import", "--help")
    assert code == 0 and "--maximum_size=-1" in out
    code, _, err = paramio_cli("mlir", "extract")
    assert code == 2 and err.startswith("paramio mlir: unknown command 'extract'")
    code, _, err = paramio_cli("mlir", "import", "a.mlir", "--output=b.mlir")
    assert (code, err) == (2, "paramio mlir import: give at least one --parameters=[scope=]file\n")

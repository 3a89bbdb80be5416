"""`import_parameters` / `paramio mlir import`: values back into globals as dense_resource blobs.

IREE is the oracle for the blobs: iree-opt parses what paramio writes, and IREE's own export
pass, run over the imported module, gives back the original bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mlir_programs import DENSE, RESOURCE, every_type_module, expected_bytes

from paramio import ParameterIndex, Provider
from paramio.core.errors import InvalidArgumentError
from paramio.mlir import MlirModule, export_parameters, import_parameters

pytestmark = pytest.mark.usefixtures("bindings")


def _provider(*flags: str) -> Provider:
    return Provider.from_flags(list(flags))


def test_blob_text_is_exactly_what_mlir_prints(tmp_path: Path, make_archive) -> None:
    make_archive(tmp_path / "w.irpa", w=np.array([1, 2, 3], np.float32))
    module = MlirModule.parse('util.global private @w = #flow.parameter.named<"m"::"w"> : tensor<3xf32>\n')
    report = import_parameters(module, _provider(f"m={tmp_path / 'w.irpa'}"))
    assert [(i.symbol, i.kind, i.nbytes) for i in report.imported] == [("w", "resource", 12)]
    assert module.text() == (
        "module {\n  util.global private @w = dense_resource<w> : tensor<3xf32>\n}\n\n"
        '{-#\n  dialect_resources: {\n    builtin: {\n      w: "0x040000000000803F0000004000004040"\n    }\n  }\n#-}\n'
    )


#: (MLIR element, values, dtype, the blob's alignment header): odd sizes, every width.
BLOBS = [
    ("i1", [True, False, True], np.bool_, "01000000"),
    ("i8", [1, -2, 3, -4, 5], np.int8, "01000000"),
    ("f16", [0.5, 1.5, -2.0], np.float16, "02000000"),
    ("bf16", [1.0, -2.0, 3.0], "bfloat16", "02000000"),
    ("f32", [1.0, 2.0, 3.0, 4.0, 5.0], np.float32, "04000000"),
    ("f64", [0.1, 1e300, -3.0], np.float64, "08000000"),
    ("i64", [1, -1, 2**40], np.int64, "08000000"),
    ("f8E4M3FN", [1.0, -2.0, 448.0], "float8_e4m3fn", "01000000"),
    ("complex<f32>", [1 + 2j, 3 - 4j], np.complex64, "08000000"),
    ("complex<f64>", [1 + 2j], np.complex128, "10000000"),
]


@pytest.mark.parametrize(("element", "values", "dtype", "header"), BLOBS)
def test_blob_alignment_header_is_the_element_size(
    tmp_path: Path, element: str, values: list[object], dtype: object, header: str, make_archive
) -> None:
    from paramio.core.dtypes import numpy_dtype

    arr = np.array(values, dtype=numpy_dtype(dtype) if isinstance(dtype, str) else dtype)
    make_archive(tmp_path / "w.irpa", v=arr)
    module = MlirModule.parse(
        f'util.global private @v = #flow.parameter.named<"v"> : tensor<{len(values)}x{element}>\n'
    )
    import_parameters(module, _provider(str(tmp_path / "w.irpa")))
    assert f'v: "0x{header}{arr.tobytes().hex().upper()}"' in module.text()


def test_iree_reads_every_blob_back_unchanged(tmp_path: Path, iree_opt: Callable[..., object]) -> None:
    from paramio.core.dtypes import numpy_dtype

    index, lines = ParameterIndex(), []
    for i, (element, values, dtype, _) in enumerate(BLOBS):
        index.add_array(f"v{i}", np.array(values, dtype=numpy_dtype(dtype) if isinstance(dtype, str) else dtype))
        lines.append(f'util.global private @v{i} = #flow.parameter.named<"v{i}"> : tensor<{len(values)}x{element}>')
    index.create_archive_file(tmp_path / "w.irpa")
    module = MlirModule.parse("\n".join(lines) + "\n")
    import_parameters(module, _provider(str(tmp_path / "w.irpa")))
    module.save(tmp_path / "m.mlir")
    r = iree_opt(tmp_path / "m.mlir")
    assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
    assert r.stdout.rstrip() == module.text().rstrip()  # type: ignore[attr-defined]


def test_ireeS_export_pass_reads_back_every_imported_blob(tmp_path: Path, iree_opt: Callable[..., object]) -> None:
    every = tmp_path / "every.mlir"
    every.write_text(every_type_module())
    module = MlirModule.load(every)
    export_parameters(module, tmp_path / "w.irpa", scope="model")
    back = MlirModule.parse(module.text())
    # IREE's pass cannot serialize an f8 dense_resource (it can an f8 dense<>): leave that one out.
    keys = [k for k in ParameterIndex.open(tmp_path / "w.irpa").keys() if k != "f8v"]
    report = import_parameters(back, _provider(f"model={tmp_path / 'w.irpa'}"), keys=keys)
    assert len(report.imported) == 17 and [x.symbol for x in report.left] == ["f8v"]
    back.save(tmp_path / "imported.mlir")
    r = iree_opt(
        f"--pass-pipeline=builtin.module(iree-io-export-parameters{{path={tmp_path / 'iree.irpa'} minimum-size=0}})",
        tmp_path / "imported.mlir",
        "-o",
        tmp_path / "again.mlir",
    )
    assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
    theirs = ParameterIndex.open(tmp_path / "iree.irpa")
    for name, _, dt, vals in DENSE + RESOURCE:
        if name == "f8v":
            continue
        assert theirs[name].read() == expected_bytes(vals, dt), name
    assert theirs["splat"].read() == np.full(6, 2.5, np.float32).tobytes()


def test_splats_become_dense_splats_and_odd_ones_blobs(tmp_path: Path) -> None:
    index = ParameterIndex()
    index.add_splat("f", np.float32(2.5), 24)
    index.add_splat("i", np.int8(-1), 5)
    index.add_splat("b", np.bool_(True), 3)
    index.add_splat("h", np.float16(0.5), 6)
    index.add_splat("nan", np.frombuffer(b"\x01\x00\xc0\x7f", np.float32)[0], 8)  # a NaN with a payload
    index.add_splat("two", b"\x01\x02", 8)  # a 2-byte pattern over i8: not one element
    index.create_archive_file(tmp_path / "s.irpa")
    module = MlirModule.parse(
        'util.global private @f = #flow.parameter.named<"f"> : tensor<6xf32>\n'
        'util.global private @i = #flow.parameter.named<"i"> : tensor<5xi8>\n'
        'util.global private @b = #flow.parameter.named<"b"> : tensor<3xi1>\n'
        'util.global private @h = #flow.parameter.named<"h"> : tensor<3xf16>\n'
        'util.global private @nan = #flow.parameter.named<"nan"> : tensor<2xf32>\n'
        'util.global private @two = #flow.parameter.named<"two"> : tensor<8xi8>\n'
    )
    report = import_parameters(module, _provider(str(tmp_path / "s.irpa")))
    assert [i.kind for i in report.imported] == ["splat", "splat", "splat", "splat", "resource", "resource"]
    text = module.text()
    assert "@f = dense<2.500000e+00> : tensor<6xf32>" in text
    assert "@i = dense<-1> : tensor<5xi8>" in text
    assert "@b = dense<true> : tensor<3xi1>" in text
    assert "@h = dense<5.000000e-01> : tensor<3xf16>" in text
    assert 'nan: "0x040000000100C07F0100C07F"' in text
    assert 'two: "0x010000000102010201020102"' in text


def test_size_mismatch_names_the_key_and_both_sizes(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], make_archive
) -> None:
    make_archive(tmp_path / "w.irpa", w=np.arange(5, dtype=np.float32))
    src = tmp_path / "p.mlir"
    src.write_text('util.global private @w = #flow.parameter.named<"m"::"w"> : tensor<4xf32>\n')
    with pytest.raises(InvalidArgumentError) as err:
        import_parameters(MlirModule.load(src), _provider(f"m={tmp_path / 'w.irpa'}"))
    assert str(err.value) == (
        f"{tmp_path / 'w.irpa'}: entry 'w': global @w: parameter m::w holds 20 bytes but tensor<4xf32> needs 16"
    )
    code, _, stderr = paramio_cli(
        "mlir", "import", str(src), f"--parameters=m={tmp_path / 'w.irpa'}", f"--output={tmp_path / 'o.mlir'}"
    )
    assert code == 1 and stderr == f"paramio mlir import: {err.value}\n"
    assert not (tmp_path / "o.mlir").exists()


def test_safetensors_gguf_quantised_and_sharded_sources(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    import ml_dtypes
    from gguf.quants import quantize
    from safetensors.numpy import save_file

    save_file({"e": np.array([1.0, 2.0, 3.0], ml_dtypes.bfloat16)}, str(tmp_path / "a.safetensors"))
    # A two-shard set with its index, as Hugging Face writes them.
    save_file({"s1": np.array([1, 2], np.int32)}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"s2": np.array([3, 4, 5], np.int16)}, str(tmp_path / "model-00002-of-00002.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "metadata": {"total_size": 14},
                "weight_map": {"s1": "model-00001-of-00002.safetensors", "s2": "model-00002-of-00002.safetensors"},
            }
        )
    )
    q = quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), gguf.GGMLQuantizationType.Q8_0)
    w = gguf.GGUFWriter(str(tmp_path / "q.gguf"), "llama")
    w.add_tensor("q", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    module = MlirModule.parse(
        'util.global private @e = #flow.parameter.named<"st"::"e"> : tensor<3xbf16>\n'
        'util.global private @q = #flow.parameter.named<"gg"::"q"> : tensor<68xi8>\n'
        'util.global private @s1 = #flow.parameter.named<"sh"::"s1"> : tensor<2xi32>\n'
        'util.global private @s2 = #flow.parameter.named<"sh"::"s2"> : tensor<3xi16>\n'
    )
    provider = _provider(
        f"st={tmp_path / 'a.safetensors'}",
        f"gg={tmp_path / 'q.gguf'}",
        f"sh={tmp_path / 'model.safetensors.index.json'}",
    )
    report = import_parameters(module, provider)
    assert [i.symbol for i in report.imported] == ["e", "q", "s1", "s2"]
    text = module.text()
    assert '@q {paramio.dtype = "gguf.q8_0"} = dense_resource<q> : tensor<68xi8>' in text
    assert f'q: "0x01000000{q.tobytes().hex().upper()}"' in text
    assert 'e: "0x02000000803F00404040"' in text
    assert 's2: "0x02000000030004000500"' in text


def test_keys_maximum_size_and_unknown_scopes_leave_references(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], make_archive
) -> None:
    make_archive(tmp_path / "w.irpa", a=np.zeros(4, np.float32), b=np.zeros(64, np.float32))
    src = tmp_path / "p.mlir"
    src.write_text(
        'util.global private @a = #flow.parameter.named<"m"::"a"> : tensor<4xf32>\n'
        'util.global private @b = #flow.parameter.named<"m"::"b"> : tensor<64xf32>\n'
        'util.global private @c = #flow.parameter.named<"m"::"c"> : tensor<4xf32>\n'
        'util.global private @d = #flow.parameter.named<"other"::"a"> : tensor<4xf32>\n'
    )
    code, out, err = paramio_cli(
        "mlir",
        "import",
        str(src),
        f"--parameters=m={tmp_path / 'w.irpa'}",
        "--maximum-size=100",
        f"--output={tmp_path / 'o.mlir'}",
    )
    assert code == 0, err
    assert out == (
        f"imported 1 parameters (16 bytes); 3 references left; wrote {tmp_path / 'o.mlir'}\n"
        "  left @b (m::b): 256 bytes is over the maximum size 100\n"
        "  left @c (m::c): scope 'm' has no key 'c'\n"
        "  left @d (other::a): no parameters loaded for scope 'other'\n"
    )
    text = (tmp_path / "o.mlir").read_text()
    assert '@b = #flow.parameter.named<"m"::"b"> : tensor<64xf32>' in text and "@a = dense_resource<a>" in text
    module = MlirModule.load(src)
    report = import_parameters(module, _provider(f"m={tmp_path / 'w.irpa'}"), keys=["b"])
    assert [i.key for i in report.imported] == ["b"]


def test_several_files_serve_one_scope_first_wins_unless_told(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]], make_archive
) -> None:
    make_archive(tmp_path / "base.irpa", w=np.zeros(2, np.float32))
    make_archive(tmp_path / "patch.irpa", w=np.ones(2, np.float32))
    src = tmp_path / "p.mlir"
    src.write_text('util.global private @w = #flow.parameter.named<"m"::"w"> : tensor<2xf32>\n')
    args = [
        "mlir",
        "import",
        str(src),
        f"--parameters=m={tmp_path / 'base.irpa'}",
        f"--parameters=m={tmp_path / 'patch.irpa'}",
        f"--output={tmp_path / 'o.mlir'}",
    ]
    assert paramio_cli(*args)[0] == 0
    assert 'w: "0x040000000000000000000000"' in (tmp_path / "o.mlir").read_text()
    assert paramio_cli(*args, "--precedence=last")[0] == 0
    assert 'w: "0x040000000000803F0000803F"' in (tmp_path / "o.mlir").read_text()

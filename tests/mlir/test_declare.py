"""`declare_parameters` / `paramio mlir declare`: names, types, what is skipped; iree-opt parses it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from paramio import ParameterIndex, Provider
from paramio.mlir import declare_parameters

pytestmark = pytest.mark.usefixtures("bindings")


def test_names_are_sanitised_unique_and_types_exact(tmp_path: Path, iree_opt: Callable[..., object]) -> None:
    import ml_dtypes

    a = ParameterIndex()
    a.add_array("w-1", np.zeros((2, 3), np.float32))
    a.add_array("w_1", np.zeros(4, ml_dtypes.bfloat16))
    a.add_array("1.mask", np.zeros(5, np.bool_))
    a.add_array("u", np.zeros(2, np.uint8))
    a.add_buffer("raw", b"\x00" * 8)  # no dtype/shape: skipped
    a.create_archive_file(tmp_path / "a.irpa")
    b = ParameterIndex()
    b.add_array("w_1", np.zeros((), np.float64))
    b.create_archive_file(tmp_path / "b.irpa")
    provider = Provider.from_flags([f"m={tmp_path / 'a.irpa'}", str(tmp_path / "b.irpa")])
    result = declare_parameters(provider)
    assert result.text() == (
        'util.global private @w_1 = #flow.parameter.named<"m"::"w-1"> : tensor<2x3xf32>\n'
        'util.global private @w_1_1 = #flow.parameter.named<"m"::"w_1"> : tensor<4xbf16>\n'
        'util.global private @_1.mask = #flow.parameter.named<"m"::"1.mask"> : tensor<5xi1>\n'
        'util.global private @u = #flow.parameter.named<"m"::"u"> : tensor<2xi8>\n'
        'util.global private @w_1_2 = #flow.parameter.named<""::"w_1"> : tensor<f64>\n'
    )
    assert result.skipped == (("m", "raw", "no dtype/shape recorded"),)
    (tmp_path / "d.mlir").write_text(result.text())
    r = iree_opt(tmp_path / "d.mlir")
    assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
    assert '@w_1_2 = #flow.parameter.named<""::"w_1"> : tensor<f64>' in r.stdout  # type: ignore[attr-defined]


def test_cli_declare_warns_for_skipped_and_writes_json_or_a_file(
    tmp_path: Path, paramio_cli: Callable[..., tuple[int, str, str]]
) -> None:
    a = ParameterIndex()
    a.add_array("w", np.zeros(3, np.float32))
    a.add_array('q"uote', np.zeros(3, np.float32))
    a.create_archive_file(tmp_path / "a.irpa")
    code, out, err = paramio_cli(
        "mlir", "declare", f"--parameters=s={tmp_path / 'a.irpa'}", "--json", "--visibility=public", "--mutable"
    )
    assert code == 0
    assert json.loads(out) == {
        "version": 1,
        "declared": [
            {
                "symbol": "w",
                "scope": "s",
                "key": "w",
                "type": "tensor<3xf32>",
                "text": 'util.global public mutable @w = #flow.parameter.named<"s"::"w"> : tensor<3xf32>',
            }
        ],
    }
    assert err.startswith("paramio mlir declare: warning: s::q\"uote not declared: key 'q\"uote' has a quote")
    code, out, _ = paramio_cli(
        "mlir", "declare", f"--parameters=s={tmp_path / 'a.irpa'}", f"--output={tmp_path / 'd.mlir'}"
    )
    assert (code, out) == (0, "")
    assert (
        tmp_path / "d.mlir"
    ).read_text() == 'util.global private @w = #flow.parameter.named<"s"::"w"> : tensor<3xf32>\n'
    code, _, err = paramio_cli("mlir", "declare", f"--parameters=s={tmp_path / 'a.irpa'}", "--visibility=hidden")
    assert (code, err) == (2, "paramio mlir declare: --visibility=hidden: expected private, public or nested\n")

"""Our ggml type table against the gguf package's, and the sizing rules that follow from it."""

from __future__ import annotations

import pytest

from paramio.formats.gguf.constants import GGML_BY_NAME, GGML_TYPES, NUMPY_TO_GGML, tensor_nbytes

gguf_constants = pytest.importorskip("gguf.constants")


@pytest.mark.interop
def test_type_table_matches_gguf_package() -> None:
    theirs = {int(t): (t.name, *gguf_constants.GGML_QUANT_SIZES[t]) for t in gguf_constants.GGMLQuantizationType}
    ours = {t.id: (t.name, t.block_size, t.type_size) for t in GGML_TYPES.values()}
    # Every type the installed gguf knows must be ours, sized the same: a new upstream type fails here.
    assert {k: ours.get(k) for k in theirs} == theirs
    # With the gguf release the table was written from (0.19), the two are the same.
    if "Q1_0" in gguf_constants.GGMLQuantizationType.__members__:
        assert ours == theirs


def test_plain_types_map_to_numpy_names() -> None:
    assert {n: t.name for n, t in NUMPY_TO_GGML.items()} == {
        "float32": "F32",
        "float16": "F16",
        "bfloat16": "BF16",
        "float64": "F64",
        "int8": "I8",
        "int16": "I16",
        "int32": "I32",
        "int64": "I64",
    }
    assert GGML_BY_NAME["gguf.iq2_xxs"].id == 16
    assert GGML_BY_NAME["gguf.q4_k"].paramio_dtype == "gguf.q4_k"


def test_tensor_nbytes_uses_blocks() -> None:
    assert tensor_nbytes(GGML_TYPES[16], (2, 256)) == 2 * 66  # IQ2_XXS: 66 bytes per 256 weights
    assert tensor_nbytes(GGML_TYPES[2], (3, 64)) == 3 * 2 * 18  # Q4_0
    assert tensor_nbytes(GGML_TYPES[30], (5, 7)) == 70  # BF16

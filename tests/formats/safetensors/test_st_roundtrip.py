"""Hypothesis: random dtype/shape/key sets survive paramio's writer and both readers."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

safetensors = pytest.importorskip("safetensors")

from paramio.core.entry import ParameterEntry  # noqa: E402
from paramio.core.tensor import TensorInfo  # noqa: E402
from paramio.formats.safetensors import ATTRIBUTE_METADATA, read_path, write_path  # noqa: E402
from paramio.formats.safetensors.layout import DTYPES  # noqa: E402
from paramio.sources.memory import MemorySource  # noqa: E402


@st.composite
def tensors(draw: st.DrawFn) -> tuple[str, str, tuple[int, ...], bytes]:
    d = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=4)))
    count = 1
    for s in shape:
        count *= s
    if (count * d.bits) % 8:  # sub-byte kinds must end on a byte: widen the last axis
        shape = (*shape[:-1], shape[-1] * 4) if shape else (4,)
        count = count * 4 if count else 4
    data = draw(st.binary(min_size=count * d.bits // 8, max_size=count * d.bits // 8))
    return d.code, d.name, shape, data


keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12).filter(
    lambda k: k != "__metadata__"
)


@pytest.mark.interop
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.dictionaries(keys, tensors(), max_size=8),
    metadata=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    alignment=st.sampled_from([None, 1, 16, 256]),
)
def test_round_trip(
    items: dict[str, tuple[str, str, tuple[int, ...], bytes]], metadata: dict[str, str] | None, alignment: int | None
) -> None:
    entries = [
        ParameterEntry.data(k, MemorySource(data), 0, len(data), tensor=TensorInfo(name, shape))
        for k, (_, name, shape, data) in items.items()
    ]
    attrs = {ATTRIBUTE_METADATA: metadata} if metadata is not None else {}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "h.safetensors"
        write_path(str(p), entries, attributes=attrs, alignment=alignment, durable=False)
        raw = p.read_bytes()
        lib = {k: v for k, v in safetensors.deserialize(raw)}
        assert set(lib) == set(items)
        for k, (code, _, shape, data) in items.items():
            assert (lib[k]["dtype"], lib[k]["shape"], bytes(lib[k]["data"])) == (code, list(shape), data)
        with safetensors.safe_open(str(p), framework="np") as f:
            assert f.metadata() == (metadata or None) or (metadata == {} and f.metadata() in ({}, None))
        back = read_path(str(p))
        assert [(e.key, e.dtype, e.shape, e.read()) for e in back.entries] == [
            (k, name, shape, data) for k, (_, name, shape, data) in items.items()
        ]
        assert back.attributes == attrs
        if alignment:
            assert all(e.offset % alignment == 0 for e in back.entries if e.length % alignment == 0)

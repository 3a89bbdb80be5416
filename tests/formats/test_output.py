"""AtomicOutput: durable writes start writeback early and still produce the exact bytes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from paramio.formats import output
from paramio.formats.output import AtomicOutput, copy_entry
from paramio.index.index import ParameterIndex


@pytest.mark.parametrize("durable", [True, False])
def test_writeback_hint_spans_and_bytes(tmp_path, monkeypatch, durable):
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(output, "WRITEBACK_STEP", 1000)
    monkeypatch.setattr(output, "_sync_file_range", lambda fd, off, n, flags: calls.append((off, n)) or 0)
    index = ParameterIndex()
    a = np.arange(700, dtype=np.uint8)
    b = np.arange(900, dtype=np.uint8)[::-1].copy()
    index.add_array("a", a)
    index.add_array("b", b)
    path = tmp_path / "x.bin"
    with AtomicOutput(path, durable=durable) as out:
        out.truncate(2000)
        copy_entry(index["b"], out, 1000)  # written out of order: the span covers both
        copy_entry(index["a"], out, 0)
        out.commit()
    data = path.read_bytes()
    assert data[:700] == a.tobytes() and data[700:1000] == bytes(300) and data[1000:1900] == b.tobytes()
    assert calls == ([(0, 1900)] if durable else [])
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]

"""`paramio.iree.run_function`: what ``paramio run`` does, called from Python (issue 23, item 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider
from paramio.iree import RunError, run_function


@pytest.fixture
def provider(tmp_path: Path) -> Provider:
    a = ParameterIndex()
    a.add_array("w", np.array([10, 20, 30, 40], np.float32))
    a.create_archive_file(tmp_path / "a.irpa")
    b = ParameterIndex()
    b.add_array("v", np.array([1.5, 2, 0.5, -3], np.float32))
    b.create_archive_file(tmp_path / "b.irpa")
    return Provider.from_flags([f"a={tmp_path / 'a.irpa'}", f"b={tmp_path / 'b.irpa'}"])


def test_run_function_returns_host_results(vmfb: Path, provider: Provider) -> None:
    calls: list[str] = []
    done = run_function(
        vmfb, "f", [np.array([1, 2, 3, 4], np.float32)], parameters=provider, before_call=lambda: calls.append("x")
    )
    r, t = done.results
    assert calls == ["x"]
    assert isinstance(r, np.ndarray) and r.tolist() == [11, 22, 33, 44]
    assert isinstance(t, np.ndarray) and t.shape == (2, 2) and t.ravel().tolist() == [16.5, 44, 16.5, -132]
    assert "HOST_LOCAL" in done.statistics() or done.statistics()


def test_inputs_in_iree_text_and_module_bytes(vmfb: Path, provider: Provider) -> None:
    done = run_function([vmfb.read_bytes()], "f", ["4xf32=1,2,3,4"], parameters=provider)
    assert done.results[0].tolist() == [11, 22, 33, 44]  # type: ignore[attr-defined]


def test_a_missing_function_or_scope_is_a_run_error(vmfb: Path, provider: Provider, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"function @nope not found in .*two_scopes.vmfb"):
        run_function(vmfb, "nope", ["4xf32=1,2,3,4"], parameters=provider)
    only_a = ParameterIndex.open(tmp_path / "a.irpa")  # one index: the unnamed scope, not "a" or "b"
    with pytest.raises(RunError) as info:
        run_function(vmfb, "f", ["4xf32=1,2,3,4"], parameters=only_a)
    assert isinstance(info.value, paramio.ParamioError) and "\n" not in str(info.value)
    with pytest.raises(paramio.InvalidArgumentError, match="unknown element type"):
        run_function(vmfb, "f", ["4xq7=1"], parameters=provider)

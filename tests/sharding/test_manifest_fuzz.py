"""Hostile manifests: any JSON value anywhere in a tensor-parallel or IRPA-set manifest gives
paramio's own error (or a valid model), never a foreign exception or a recursion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import paramio
from paramio import ParameterIndex, ParamioError

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=8)
    | st.sampled_from(["model.rank0.irpa", "w", "../x", "model.tp.json", "float32", "gguf.q4_k", "keys"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def _paths(doc: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: object, path: tuple[object, ...], value: object) -> object:
    if not path:
        return value
    doc[path[0]] = _set(doc[path[0]], path[1:], value)  # type: ignore[index]
    return doc


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    index = ParameterIndex()
    index.add_array("w", np.arange(24, dtype=np.float32).reshape(4, 6))
    index.add_array("b", np.arange(4, dtype=np.int16))
    paramio.write_path(folder / "m.irpa", index.values(), max_shard_size=64)
    result = paramio.shard(folder / "m.irpa.index.json", folder, tp=2, split={"w": 1}, replicate=["*"], stem="model")
    return Path(result.manifest), folder / "m.irpa.index.json"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_manifests_raise_only_paramio_errors(
    manifests: tuple[Path, Path], data: st.DataObject, tmp_path_factory
) -> None:  # type: ignore[no-untyped-def]
    target = data.draw(st.sampled_from(manifests))
    doc = json.loads(target.read_text())
    where = data.draw(st.sampled_from(_paths(doc)))
    mutated = _set(doc, where, data.draw(_JSON))
    out = target.with_name("mutated" + (".tp.json" if target.name.endswith(".tp.json") else ".irpa.index.json"))
    out.write_text(json.dumps(mutated))
    try:
        index = ParameterIndex.open(out)
        for k in index.keys():
            index[k].read()
    except ParamioError:
        pass

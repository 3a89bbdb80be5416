"""Sharded sets: Hugging Face's index layout, opened from the index or any shard."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

safetensors = pytest.importorskip("safetensors")
st_numpy = pytest.importorskip("safetensors.numpy")
import numpy as np  # noqa: E402

from paramio import ParameterIndex  # noqa: E402
from paramio.core.errors import FormatError, SourceError  # noqa: E402
from paramio.formats.safetensors import ATTRIBUTE_INDEX_METADATA, ATTRIBUTE_METADATA, read_path, write_path  # noqa: E402
from paramio.formats.sets import split_members  # noqa: E402

ARRAYS = {f"layer.{i}.w": np.full((i + 1, 8), i, dtype=np.float32) for i in range(6)}  # 32*(i+1) bytes


def hf_set(folder: Path, groups: list[list[str]], *, total: int | None = None) -> Path:
    """A set made the way transformers' save_pretrained lays it out, with the library's writer."""
    n = len(groups)
    wmap = {}
    for i, keys in enumerate(groups, start=1):
        name = f"model-{i:05d}-of-{n:05d}.safetensors"
        st_numpy.save_file({k: ARRAYS[k] for k in keys}, str(folder / name), metadata={"format": "pt"})
        wmap.update({k: name for k in keys})
    size = total if total is not None else sum(ARRAYS[k].nbytes for g in groups for k in g)
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": size}, "weight_map": dict(sorted(wmap.items()))}, indent=2))
    return index


GROUPS = [["layer.0.w", "layer.1.w"], ["layer.2.w", "layer.3.w"], ["layer.4.w", "layer.5.w"]]


@pytest.mark.interop
def test_library_made_set_opens_from_index_and_from_any_shard(tmp_path: Path) -> None:
    index = hf_set(tmp_path, GROUPS)
    expected = [k for g in GROUPS for k in g]
    for start in [index, *sorted(tmp_path.glob("model-*.safetensors"))]:
        contents = read_path(str(start))
        assert [e.key for e in contents.entries] == expected
        assert contents.attributes[ATTRIBUTE_METADATA] == {"format": "pt"}
        assert contents.attributes[ATTRIBUTE_INDEX_METADATA] == {"total_size": 672}
        assert contents.paths[0] == str(index) and len(contents.paths) == 4
        for e in contents.entries:
            np.testing.assert_array_equal(e.to_numpy(), ARRAYS[e.key])
    idx = ParameterIndex.open(index)
    assert len(idx) == 6 and idx["layer.5.w"].to_numpy()[0, 0] == 5


def test_shards_without_an_index_are_found_by_name(tmp_path: Path) -> None:
    hf_set(tmp_path, GROUPS).unlink()
    contents = read_path(str(tmp_path / "model-00002-of-00003.safetensors"))
    assert [e.key for e in contents.entries] == [k for g in GROUPS for k in g]
    assert ATTRIBUTE_INDEX_METADATA not in contents.attributes
    (tmp_path / "model-00003-of-00003.safetensors").unlink()
    with pytest.raises(SourceError, match="shard model-00003-of-00003.safetensors of the set is missing"):
        read_path(str(tmp_path / "model-00001-of-00003.safetensors"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda w: w.pop("layer.3.w"), "'layer.3.w': key in shard 'model-00002-of-00003.safetensors' is missing"),
        (lambda w: w.update({"ghost": "model-00001-of-00003.safetensors"}), "'ghost': weight_map puts the key in"),
        (lambda w: w.update({"layer.0.w": "model-00002-of-00003.safetensors"}), "'layer.0.w': weight_map puts"),
        (lambda w: w.update({"x": "../model-00001-of-00003.safetensors"}), "must be a file name next to the manifest"),
    ],
)
def test_weight_map_must_match_the_shards(tmp_path: Path, edit: object, message: str) -> None:
    index = hf_set(tmp_path, GROUPS)
    doc = json.loads(index.read_text())
    edit(doc["weight_map"])  # type: ignore[operator]
    index.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=message.replace("(", r"\(")):
        read_path(str(index))


def test_a_tensor_in_two_shards_is_refused(tmp_path: Path) -> None:
    index = hf_set(tmp_path, [["layer.0.w", "layer.2.w"], ["layer.0.w", "layer.1.w"]])
    with pytest.raises(FormatError, match="'layer.0.w': weight_map puts the key in 'model-00002-of-00002"):
        read_path(str(index))
    index.unlink()
    with pytest.raises(FormatError, match="model-00002-of-00002.safetensors: entry 'layer.0.w': key is also in"):
        read_path(str(tmp_path / "model-00001-of-00002.safetensors"))


def test_bad_index_files(tmp_path: Path) -> None:
    index = tmp_path / "m.safetensors.index.json"
    for text, message in [
        ("[]", "must be a JSON object"),
        ("{", "not valid JSON"),
        ('{"weight_map": 3}', "needs a 'weight_map'"),
    ]:
        index.write_text(text)
        with pytest.raises(FormatError, match=message):
            read_path(str(index))


@pytest.mark.interop
def test_written_set_is_the_hugging_face_layout(tmp_path: Path) -> None:
    idx = ParameterIndex()
    for k, a in ARRAYS.items():
        idx.add_array(k, a)
    out = tmp_path / "model.safetensors"
    write_path(str(out), idx.values(), max_shard_size=100, attributes={ATTRIBUTE_METADATA: {"format": "pt"}})
    # greedy in order: 32+64 | 96 | 128 | 160 | 192 bytes (a tensor over the limit gets its own shard)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"model-{i:05d}-of-00005.safetensors" for i in range(1, 6)] + ["model.safetensors.index.json"]
    doc = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    stamp = doc["metadata"].pop("paramio.set")  # the save's stamp: in each shard's __metadata__ too
    assert re.fullmatch("[0-9a-f]{32}", stamp)
    assert doc["metadata"] == {"total_size": sum(a.nbytes for a in ARRAYS.values())}
    assert doc["weight_map"]["layer.1.w"] == "model-00001-of-00005.safetensors"
    assert doc["weight_map"]["layer.5.w"] == "model-00005-of-00005.safetensors"
    for name, keys in [("model-00001-of-00005.safetensors", ["layer.0.w", "layer.1.w"])]:
        loaded = st_numpy.load_file(str(tmp_path / name))
        assert sorted(loaded) == keys
    back = read_path(str(tmp_path / "model.safetensors.index.json"))
    assert [e.key for e in back.entries] == list(ARRAYS)
    for e in back.entries:
        np.testing.assert_array_equal(e.to_numpy(), ARRAYS[e.key])
    # and round trip the whole set again, to an index path, byte for byte but for the new save's stamp
    again = tmp_path / "again"
    again.mkdir()
    write_path(
        str(again / "model.safetensors.index.json"), back.entries, max_shard_size=100, attributes=back.attributes
    )
    new_stamp = json.loads((again / "model.safetensors.index.json").read_text())["metadata"]["paramio.set"]
    assert new_stamp != stamp
    for name in names:
        theirs = (tmp_path / name).read_bytes()
        assert stamp.encode() in theirs
        assert (again / name).read_bytes() == theirs.replace(stamp.encode(), new_stamp.encode()), name


def test_one_shard_is_a_plain_file(tmp_path: Path) -> None:
    idx = ParameterIndex()
    idx.add_array("a", np.arange(4, dtype=np.int32))
    write_path(str(tmp_path / "model.safetensors"), idx.values(), max_shard_size=10**9)
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_split_shards_is_greedy_in_order() -> None:
    from paramio.core.entry import ParameterEntry

    entries = [ParameterEntry.splat(str(i), b"\0", n) for i, n in enumerate([6, 6, 2, 6, 2, 2])]
    assert [[e.length for e in g] for g in split_members(entries, 8, stores_splats=False)] == [[6], [6, 2], [6, 2], [2]]
    assert [[e.length for e in g] for g in split_members(entries, 10, stores_splats=False)] == [[6], [6, 2], [6, 2, 2]]

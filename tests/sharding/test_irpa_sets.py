"""IRPA sharded sets: shards IREE loads one by one, a manifest shaped like safetensors' index,
written atomically with the manifest last, opened as one scope from the manifest or any shard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import FormatError, ParameterIndex, SourceError
from paramio.formats.irpa import writer as irpa_writer

pytestmark = pytest.mark.filterwarnings("error::paramio.ConversionWarning")


def _index() -> ParameterIndex:
    index = ParameterIndex()
    for i in range(5):
        index.add_array(f"layer.{i}.w", np.arange(64, dtype=np.float32) + i)
    index.add_splat("zeros", b"\x00\x00\x00\x00", 4096)
    return index


def test_set_layout_and_manifest(tmp_path: Path) -> None:
    index = _index()
    paramio.write_path(tmp_path / "model.irpa", index.values(), max_shard_size=600)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"model-0000{i}-of-00003.irpa" for i in (1, 2, 3)] + ["model.irpa.index.json"]
    doc = json.loads((tmp_path / "model.irpa.index.json").read_text())
    stamp = doc["metadata"].pop("paramio.set")  # the save's stamp, in every shard too
    assert re.fullmatch("[0-9a-f]{32}", stamp)
    assert doc["metadata"] == {"total_size": 5 * 256, "format": "irpa"}  # a splat takes no storage
    assert doc["weight_map"] == {
        "layer.0.w": "model-00001-of-00003.irpa",
        "layer.1.w": "model-00001-of-00003.irpa",
        "layer.2.w": "model-00002-of-00003.irpa",
        "layer.3.w": "model-00002-of-00003.irpa",
        "layer.4.w": "model-00003-of-00003.irpa",
        "zeros": "model-00003-of-00003.irpa",
    }
    # Each shard is a plain archive: IREE's own runtime reads it, typed metadata and all.
    rt = pytest.importorskip("iree.runtime")
    one = rt.ParameterIndex()
    one.load(str(tmp_path / "model-00002-of-00003.irpa"))
    assert [one.items()[i][0] for i in range(len(one))] == ["layer.2.w", "layer.3.w"]
    assert bytes(one.items()[0][1].file_view) == (np.arange(64, dtype=np.float32) + 2).tobytes()


@pytest.mark.parametrize("opened", ["model.irpa.index.json", "model-00001-of-00003.irpa", "model-00003-of-00003.irpa"])
def test_set_opens_as_one_index_from_manifest_or_any_shard(tmp_path: Path, opened: str) -> None:
    index = _index()
    paramio.write_path(tmp_path / "model.irpa", index.values(), max_shard_size=600)
    back = ParameterIndex.open(tmp_path / opened)
    assert back.keys() == index.keys()
    for k in index.keys():
        assert back[k].read() == index[k].read()
        assert back[k].is_splat == index[k].is_splat
    assert back["layer.3.w"].to_numpy().tolist() == (np.arange(64) + 3).tolist()
    provider = paramio.Provider.from_flags([f"model={tmp_path / opened}"])
    assert provider["model::layer.4.w"].read() == index["layer.4.w"].read()


def test_attributes_live_in_the_first_shard(tmp_path: Path) -> None:
    attrs = {"safetensors.metadata": {"format": "pt"}}
    paramio.write_path(tmp_path / "m.irpa", _index().values(), attributes=attrs, max_shard_size=600)
    assert ParameterIndex.open(tmp_path / "m-00003-of-00003.irpa").attributes["safetensors.metadata"] == {
        "format": "pt"
    }


def test_everything_in_one_shard_writes_one_archive_unless_a_manifest_is_named(tmp_path: Path) -> None:
    paramio.write_path(tmp_path / "a.irpa", _index().values(), max_shard_size=1 << 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.irpa"]
    paramio.write_path(tmp_path / "b.irpa.index.json", _index().values())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b")) == [
        "b-00001-of-00001.irpa",
        "b.irpa.index.json",
    ]
    assert ParameterIndex.open(tmp_path / "b.irpa.index.json").keys() == _index().keys()


def test_a_failed_shard_leaves_no_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = irpa_writer.write_planned
    calls = []

    def failing(out, plan, entries, **kw):  # type: ignore[no-untyped-def]
        calls.append(out.path)
        if len(calls) == 2:
            raise paramio.WriteError("disk full", path=str(out.path))
        return real(out, plan, entries, **kw)

    monkeypatch.setattr(irpa_writer, "write_planned", failing)
    with pytest.raises(paramio.WriteError, match="disk full"):
        paramio.write_path(tmp_path / "model.irpa", _index().values(), max_shard_size=600)
    # the set is committed as a whole: no shard, no manifest, no temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    e = next(iter(_index().values()))
    with pytest.raises(paramio.InvalidArgumentError, match="duplicate key"):
        paramio.write_path(tmp_path / "d.irpa", [e, e], max_shard_size=10)


def _write_set(tmp_path: Path) -> Path:
    paramio.write_path(tmp_path / "model.irpa", _index().values(), max_shard_size=600)
    return tmp_path / "model.irpa.index.json"


def _edit(manifest: Path, change) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(manifest.read_text())
    change(doc)
    manifest.write_text(json.dumps(doc))


def test_manifest_that_disagrees_with_its_shards(tmp_path: Path) -> None:
    m = _write_set(tmp_path)
    _edit(m, lambda d: d["weight_map"].update({"layer.0.w": "model-00002-of-00003.irpa"}))
    with pytest.raises(FormatError, match=r"model.irpa.index.json: entry 'layer.0.w': weight_map puts the key in "):
        ParameterIndex.open(m)
    _edit(
        m,
        lambda d: d["weight_map"].update(
            {"layer.0.w": "model-00001-of-00003.irpa", "ghost": "model-00001-of-00003.irpa"}
        ),
    )
    with pytest.raises(
        FormatError, match="'ghost': weight_map puts the key in 'model-00001-of-00003.irpa' but that shard lacks it"
    ):
        ParameterIndex.open(m)
    _edit(m, lambda d: (d["weight_map"].pop("ghost"), d["weight_map"].pop("zeros")))
    with pytest.raises(
        FormatError, match="'zeros': key in shard 'model-00003-of-00003.irpa' is missing from the weight_map"
    ):
        ParameterIndex.open(m)


def test_manifest_may_name_only_files_beside_it(tmp_path: Path) -> None:
    m = _write_set(tmp_path)
    _edit(m, lambda d: d["weight_map"].update({"layer.0.w": "../model-00001-of-00003.irpa"}))
    with pytest.raises(
        FormatError, match=r"member '\.\./model-00001-of-00003\.irpa' must be a file name next to the manifest"
    ):
        ParameterIndex.open(m)


def test_missing_shard_is_named(tmp_path: Path) -> None:
    m = _write_set(tmp_path)
    (tmp_path / "model-00002-of-00003.irpa").unlink()
    with pytest.raises(SourceError, match="model-00002-of-00003.irpa"):
        ParameterIndex.open(m)
    m.unlink()  # no manifest: the numbering names the siblings
    with pytest.raises(SourceError, match="shard model-00002-of-00003.irpa of the set is missing"):
        ParameterIndex.open(tmp_path / "model-00001-of-00003.irpa")


def test_bad_manifests_are_format_errors(tmp_path: Path) -> None:
    m = tmp_path / "x.irpa.index.json"
    for text, message in [
        ("[1]", "must be a JSON object"),
        ("{", "not valid JSON"),
        ('{"weight_map": 3}', "weight_map"),
    ]:
        m.write_text(text)
        with pytest.raises(FormatError, match=message):
            ParameterIndex.open(m)


def test_cli_convert_and_dump_read_a_set(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    m = _write_set(tmp_path)
    code, out, err = paramio_cli("convert", f"--parameters={m}", f"--output={tmp_path / 'one.irpa'}")
    assert code == 0, err
    assert ParameterIndex.open(tmp_path / "one.irpa").keys() == _index().keys()
    code, out, err = paramio_cli("dump", f"--parameters=model={tmp_path / 'model-00002-of-00003.irpa'}")
    assert code == 0, err
    assert "layer.0.w" in out and "zeros" in out

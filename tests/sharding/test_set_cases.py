"""One suite for every kind of set: IRPA sets, safetensors sets, GGUF splits, tensor-parallel sets.

Every case runs over every kind (`paramio.formats.sets` is the one implementation behind the
first three, and tensor-parallel sets replace their files through it): saving, re-saving with
fewer members, finding a set from any member, the name rules, the splat rule, bad manifests,
the single-file rule and the save stamps that keep an open from mixing two saves.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import FormatError, ParameterIndex, SourceError
from paramio.core.entry import ParameterEntry
from paramio.core.errors import ParamioError
from paramio.formats import sets
from paramio.formats.contract import get_format
from paramio.formats.registry import read_path

FILE_KINDS = ("irpa", "safetensors", "gguf")
KINDS = (*FILE_KINDS, "tp")
MANIFEST_KINDS = ("irpa", "safetensors")
EXT = {"irpa": ".irpa", "safetensors": ".safetensors", "gguf": ".gguf", "tp": ".tp.json"}


def _entries(n: int, value: int = 0) -> list[ParameterEntry]:
    index = ParameterIndex()
    for i in range(n):
        index.add_array(f"w{i}", np.full(16, value * 100 + i, np.float32))  # 64 bytes each
    return list(index.values())


def _save(kind: str, folder: Path, members: int, value: int = 0) -> Path:
    """A set of `members` members (ranks for tp) in `folder`; returns the path that opens it."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "tp":
        result = paramio.shard(_entries(4, value), folder, tp=members, split={"*": 0}, durable=False)
        return Path(result.manifest)
    paramio.write_path(folder / f"m{EXT[kind]}", _entries(members, value), max_shard_size=64, durable=False)
    if kind in MANIFEST_KINDS:
        return folder / f"m{EXT[kind]}.index.json"
    return folder / f"m-00001-of-{members:05d}.gguf"


def _values(opener: Path) -> dict[str, float]:
    contents = read_path(opener)
    return {e.key: float(e.to_numpy().ravel()[0]) for e in contents.entries}


@pytest.mark.parametrize("kind", KINDS)
def test_resaving_with_fewer_members_leaves_only_the_new_set(tmp_path: Path, kind: str) -> None:
    many, few = (4, 2) if kind == "tp" else (3, 2)
    opener = _save(kind, tmp_path, many, value=1)
    before = sorted(os.listdir(tmp_path))
    assert len(before) == many + (0 if kind == "gguf" else 1)
    opener = _save(kind, tmp_path, few, value=2)
    after = sorted(os.listdir(tmp_path))
    assert len(after) == few + (0 if kind == "gguf" else 1), after  # no member of the larger save is left
    got = _values(opener)
    assert all(v // 100 == 2 for v in got.values()), got
    if kind == "tp":
        assert "model.rank3.irpa" in before and "model.rank2.irpa" not in after and "model.rank3.irpa" not in after
    else:
        assert not any("-of-00003" in name for name in after)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_any_member_opens_the_whole_set(tmp_path: Path, kind: str) -> None:
    opener = _save(kind, tmp_path, 3)
    whole = _values(opener)
    assert len(whole) == 3
    for i in (1, 2, 3):
        member = tmp_path / f"m-{i:05d}-of-00003{EXT[kind]}"
        assert _values(member) == whole
        assert sets.set_files(str(member)) == [str(tmp_path / f"m-{j:05d}-of-00003{EXT[kind]}") for j in (1, 2, 3)]


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_member_names_match_in_any_case(tmp_path: Path, kind: str) -> None:
    # One rule for every format: the whole name is matched ignoring case (IRPA and GGUF always
    # did; safetensors matched only lower case), and siblings are spelled like the name given.
    _save(kind, tmp_path, 2)
    for name in os.listdir(tmp_path):
        if name.endswith(".json"):
            os.unlink(tmp_path / name)  # found by name alone
        else:
            os.rename(tmp_path / name, tmp_path / name.replace("-of-", "-OF-").replace(EXT[kind], EXT[kind].upper()))
    member = tmp_path / f"m-00002-OF-00002{EXT[kind].upper()}"
    assert sorted(_values(member)) == ["w0", "w1"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_splat_counts_the_bytes_its_member_holds(tmp_path: Path, kind: str) -> None:
    # The one splat rule: a splat counts nothing where the format stores splats (IRPA) and its
    # length where the writer expands it (safetensors, GGUF), so members never pass the limit.
    entries = [*_entries(1), ParameterEntry.splat("big", b"\0\0\0\0", 4096), *_entries(2)[1:]]
    fmt = get_format("irpa" if kind == "tp" else kind)
    groups = sets.split_members(entries, 100, stores_splats=fmt.splats)
    expected = [["w0", "big"], ["w1"]] if fmt.splats else [["w0"], ["big"], ["w1"]]
    assert [[e.key for e in g] for g in groups] == expected
    if kind == "tp":
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a splat written as data is reported as a loss
        paramio.write_path(tmp_path / f"m{EXT[kind]}", entries, max_shard_size=100, durable=False)
    members = [n for n in os.listdir(tmp_path) if not n.endswith(".json")]
    assert len(members) == len(expected)


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
@pytest.mark.parametrize("digits", [30, 5000])
def test_a_huge_shard_number_in_a_manifest_is_our_error(tmp_path: Path, kind: str, digits: int) -> None:
    _save(kind, tmp_path, 2)
    manifest = tmp_path / f"m{EXT[kind]}.index.json"
    doc = json.loads(manifest.read_text())
    doc["weight_map"]["w1"] = f"m-{'9' * digits}-of-{'9' * digits}{EXT[kind]}"  # once a bare ValueError
    manifest.write_text(json.dumps(doc))
    with pytest.raises(FormatError if digits > 100 else SourceError) as info:  # too long / missing
        read_path(manifest)
    assert isinstance(info.value, ParamioError)
    assert sets.shard_order(list(doc["weight_map"].values()), EXT[kind])[-1].startswith("m-999")


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_file_written_as_one_file_stays_one_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"m-00001-of-00002{EXT[kind]}"  # named like a member, written as one file
    paramio.write_path(path, _entries(2), durable=False)
    assert os.listdir(tmp_path) == [path.name]
    layout = get_format(kind).set_layout
    assert layout is not None
    assert [e.key for e in sets.read_file(str(path), layout).entries] == ["w0", "w1"]
    if kind == "gguf":  # a GGUF file's own split keys decide: without them it is one file
        assert sorted(_values(path)) == ["w0", "w1"]
    else:  # by name it claims a set whose second member is missing
        with pytest.raises(SourceError, match="of the set is missing"):
            read_path(path)


def test_create_archive_file_named_like_a_shard_is_one_file(tmp_path: Path) -> None:
    index = ParameterIndex()
    index.add_array("a", np.arange(4, dtype=np.float32))
    path = tmp_path / "m-00001-of-00002.irpa"
    out = index.create_archive_file(str(path))  # wrote the file, then failed on a missing shard 2
    assert list(out.keys()) == ["a"] and os.listdir(tmp_path) == [path.name]
    np.testing.assert_array_equal(out["a"].to_numpy(), np.arange(4, dtype=np.float32))


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_every_member_carries_the_save_stamp(tmp_path: Path, kind: str) -> None:
    opener = _save(kind, tmp_path / "a", 3, value=1)
    stamp = json.loads(opener.read_text())["metadata"][sets.STAMP_KEY]
    for name in os.listdir(tmp_path / "a"):
        if not name.endswith(".json"):
            assert stamp.encode() in (tmp_path / "a" / name).read_bytes(), name
    assert sets.STAMP_KEY not in json.dumps(read_path(opener).attributes)  # taken out on reading
    # A member of another save of the same shape, put in place of one: refused, never mixed.
    _save(kind, tmp_path / "b", 3, value=2)
    os.replace(tmp_path / "b" / f"m-00002-of-00003{EXT[kind]}", tmp_path / "a" / f"m-00002-of-00003{EXT[kind]}")
    with pytest.raises(FormatError, match="belongs to another save"):
        read_path(opener)
    # Opening a member by name with the manifest gone: its siblings must share its stamp.
    os.unlink(opener)
    with pytest.raises(FormatError, match="belongs to another save"):
        read_path(tmp_path / "a" / f"m-00001-of-00003{EXT[kind]}")


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_sets_without_stamps_still_open(tmp_path: Path, kind: str) -> None:
    # Sets written before stamps existed (and by other tools: save_pretrained) carry none.
    opener = _save(kind, tmp_path, 2, value=3)
    doc = json.loads(opener.read_text())
    stamp = doc["metadata"].pop(sets.STAMP_KEY)
    opener.write_text(json.dumps(doc))
    for i in (1, 2):
        member = tmp_path / f"m-{i:05d}-of-00002{EXT[kind]}"
        contents = sets.read_file(str(member), get_format(kind).set_layout)  # type: ignore[arg-type]
        entries = contents.entries
        index = ParameterIndex()
        for e in entries:
            index.add_buffer(e.key, e.to_numpy().tobytes())
        paramio.write_path(member, [*index.values()], durable=False, on_loss="ignore")
        assert stamp.encode() not in member.read_bytes()
    assert sorted(_values(opener)) == ["w0", "w1"]


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_a_manifest_rewritten_without_its_stamp_still_opens(tmp_path: Path, kind: str) -> None:
    # A tool that rewrites the index and drops keys it does not know: the members then agree
    # with each other (the first one's stamp is the reference), and one from another save is
    # still refused.
    opener = _save(kind, tmp_path / "a", 3, value=1)
    doc = json.loads(opener.read_text())
    del doc["metadata"][sets.STAMP_KEY]
    opener.write_text(json.dumps(doc))
    assert sorted(_values(opener).values()) == [100.0, 101.0, 102.0]
    _save(kind, tmp_path / "b", 3, value=2)
    os.replace(tmp_path / "b" / f"m-00003-of-00003{EXT[kind]}", tmp_path / "a" / f"m-00003-of-00003{EXT[kind]}")
    with pytest.raises(FormatError, match="belongs to another save"):
        read_path(opener)

"""Provider: precedence, which, splat stand-ins, in-place writes, overlays."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramio.core.errors import DuplicateKeyError, InvalidArgumentError, ParameterNotFoundError, SourceError
from paramio.index.index import ParameterIndex
from paramio.index.provider import Provider, splat_standin
from paramio.index.writable import WritableArchive


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def two_layers(tmp_path: Path, make_archive) -> tuple[Path, Path]:
    base = make_archive(tmp_path / "base.irpa", w=np.arange(4, dtype=np.float32), x=np.ones(3, np.int32))
    patch = make_archive(tmp_path / "patch.irpa", w=np.full(4, 9, np.float32), y=np.zeros(2, np.int8))
    return base, patch


def test_precedence_first_is_default_and_matches_iree(two_layers: tuple[Path, Path]) -> None:
    base, patch = two_layers
    p = Provider.from_flags([f"m={base}", f"m={patch}"])
    assert p["m::w"].to_numpy().tolist() == [0, 1, 2, 3]
    assert p["m::y"].to_numpy().tolist() == [0, 0]
    assert p.keys("m") == ["w", "x", "y"]


def test_precedence_last(two_layers: tuple[Path, Path]) -> None:
    base, patch = two_layers
    p = Provider.from_flags([f"m={base}", f"m={patch}"], precedence="last")
    assert p["m::w"].to_numpy().tolist() == [9, 9, 9, 9]
    assert p["m::x"].to_numpy().tolist() == [1, 1, 1]


def test_precedence_error_names_key_and_files(two_layers: tuple[Path, Path]) -> None:
    base, patch = two_layers
    with pytest.raises(DuplicateKeyError) as info:
        Provider.from_flags([f"m={base}", f"m={patch}"], precedence="error")
    assert info.value.key == "w"
    assert str(info.value) == (
        f"{patch}: entry 'w': key is in two layers of scope 'm' ({base} and {patch}) and precedence is 'error'"
    )
    # Different scopes never clash.
    p = Provider.from_flags([f"a={base}", f"b={patch}"], precedence="error")
    assert p["b::w"].to_numpy().tolist() == [9, 9, 9, 9]


def test_missing_scope_and_key(two_layers: tuple[Path, Path]) -> None:
    base, _ = two_layers
    p = Provider.from_flags([f"m={base}"])
    with pytest.raises(ParameterNotFoundError, match=r"no scope 'z' \(scopes: 'm'\)"):
        p["z::w"]
    with pytest.raises(KeyError, match="entry 'nope': no parameter in scope 'm' with this key"):
        p["m::nope"]
    assert "m::w" in p and "m::nope" not in p and p.get("w") is None


def test_which_records_layer_entry_and_shadows(two_layers: tuple[Path, Path]) -> None:
    base, patch = two_layers
    p = Provider.from_flags([f"m={base}", f"m={patch}"])
    w = p.which("m::w")
    assert (w.served.layer, w.served.format, w.served.kind, w.served.length) == (str(base), "irpa", "data", 16)
    assert w.served.offset == ParameterIndex.open(base)["w"].offset
    assert [s.layer for s in w.shadows] == [str(patch)]
    assert w.served.dtype == "float32" and w.served.shape == (4,)
    assert p.which("m::x").shadows == ()


def test_which_cli_text_and_json(two_layers: tuple[Path, Path], paramio_cli) -> None:  # type: ignore[no-untyped-def]
    base, patch = two_layers
    off_base = ParameterIndex.open(base)["w"].offset
    off_patch = ParameterIndex.open(patch)["w"].offset
    code, out, err = paramio_cli("which", f"--parameters=m={base}", f"--parameters=m={patch}", "m::w")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "m::w",
        f"  served by: {base} (irpa): data, offset {off_base}, length 16, float32[4]",
        f"  shadows:   {patch} (irpa): data, offset {off_patch}, length 16, float32[4]",
    ]
    code, out, _ = paramio_cli(
        "which", f"--parameters=m={base}", f"--parameters=m={patch}", "--precedence=last", "m::w", "--json"
    )
    data = json.loads(out)["keys"][0]  # one shape for one key or many (docs/cli.md)
    assert code == 0 and data["served_by"]["layer"] == str(patch) and data["shadows"][0]["layer"] == str(base)
    code, _, err = paramio_cli("which", f"--parameters=m={base}", "m::q")
    assert code == 1 and err == "paramio which: entry 'q': no parameter in scope 'm' with this key\n"
    code, _, err = paramio_cli("which", f"--parameters=m={base}", "--precedence=best", "m::w")
    assert code == 2 and "expected first, last or error" in err


def test_splat_standin_keeps_keys_lengths_and_types(two_layers: tuple[Path, Path]) -> None:
    base, patch = two_layers
    index = ParameterIndex.open(base)
    stand = splat_standin(index)
    assert [(e.key, e.length, e.is_splat, e.pattern, e.metadata) for e in stand.entries] == [
        (e.key, e.length, True, b"\x00", e.metadata) for e in index.entries
    ]
    p = Provider.from_flags([f"m={base}", f"m={patch}"]).stripped()
    assert p["m::w"].to_numpy().tolist() == [0.0] * 4
    assert p["m::w"].dtype == "float32" and p.keys("m") == ["w", "x", "y"]
    # A stand-in archive is tiny whatever the weights: every entry is a splat.
    out = stand.create_archive_file(base.parent / "stand.irpa")
    assert all(e.is_splat for e in out.entries) and (base.parent / "stand.irpa").stat().st_size == 4096


def test_writable_archive_in_place(tmp_path: Path, make_archive) -> None:
    path = make_archive(tmp_path / "w.irpa", a=np.zeros(4, np.float32), b=np.zeros(2, np.int64))
    with WritableArchive(path) as w:
        w.write("a", np.array([1, 2, 3, 4], np.float32))
        w.scatter({"b": np.array([7, 8], np.int64)})
        got = w.gather(["a", "b"])
        assert got[0].tolist() == [1, 2, 3, 4] and got[1].tolist() == [7, 8]
        out = [np.empty(4, np.float32), np.empty(2, np.int64)]
        assert w.gather(["a", "b"], out)[0] is out[0] and out[1].tolist() == [7, 8]
        with pytest.raises(InvalidArgumentError, match="cannot write 12 bytes into a 16-byte entry"):
            w.write("a", np.zeros(3, np.float32))
        with pytest.raises(InvalidArgumentError, match="entry holds float32, not int32"):
            w.write("a", np.zeros(4, np.int32))
        with pytest.raises(InvalidArgumentError, match="output has 8 bytes, the entry 16"):
            w.gather(["a"], [np.empty(2, np.float32)])
        # scatter checks every entry before writing any
        with pytest.raises(InvalidArgumentError):
            w.scatter({"a": np.full(4, 5, np.float32), "b": np.zeros(1, np.int64)})
        assert w.gather(["a"])[0].tolist() == [1, 2, 3, 4]
    again = ParameterIndex.open(path)
    assert again["a"].to_numpy().tolist() == [1, 2, 3, 4] and again["b"].to_numpy().tolist() == [7, 8]


def test_write_to_read_only_layer_without_overlay_is_refused(two_layers: tuple[Path, Path]) -> None:
    base, _ = two_layers
    p = Provider.from_flags([f"m={base}"])
    with pytest.raises(
        SourceError, match=r"base.irpa: entry 'w': source is read-only \(open it writable or attach an overlay\)"
    ):
        p.write("m::w", np.zeros(4, np.float32))


def test_writable_layer_is_updated_in_place(two_layers: tuple[Path, Path]) -> None:
    base, _ = two_layers
    p = Provider.from_flags([f"m={base}"], writable=True)
    p.write("m::w", np.full(4, 3, np.float32))
    p.flush()
    assert ParameterIndex.open(base)["w"].to_numpy().tolist() == [3, 3, 3, 3]


def test_overlay_copy_on_write_never_touches_base(two_layers: tuple[Path, Path], tmp_path: Path) -> None:
    base, patch = two_layers
    before = (_digest(base), _digest(patch))
    ov_path = tmp_path / "ov.irpa"
    p = Provider.from_flags([f"m={base}", f"m={patch}"], overlays=[f"m={ov_path}"])
    assert not ov_path.exists()  # created on the first write
    p.write("m::w", np.array([5, 6, 7, 8], np.float32))
    assert ov_path.exists() and p["m::w"].to_numpy().tolist() == [5, 6, 7, 8]
    w = p.which("m::w")
    assert (
        w.served.overlay and w.served.layer == str(ov_path) and [s.layer for s in w.shadows] == [str(base), str(patch)]
    )
    size_before = ov_path.stat().st_size
    ino = ov_path.stat().st_ino
    p.write("m::w", np.array([1, 1, 1, 1], np.float32))  # existing key: in place, same inode
    assert ov_path.stat().st_ino == ino and ov_path.stat().st_size == size_before
    p.scatter({"m::x": np.array([4, 5, 6], np.int32), "m::y": np.array([-1, -2], np.int8)})  # one rewrite
    assert ov_path.stat().st_ino != ino
    p.flush()
    assert (_digest(base), _digest(patch)) == before
    ov = ParameterIndex.open(ov_path)
    assert ov.keys() == ["w", "x", "y"]
    assert [ov[k].dtype for k in ov] == ["float32", "int32", "int8"]  # typed like the base
    assert ov["w"].to_numpy().tolist() == [1, 1, 1, 1]
    # Reopening with the overlay resumes where the writer stopped.
    p2 = Provider.from_flags([f"m={base}"], overlays=[f"m={ov_path}"])
    assert p2["m::x"].to_numpy().tolist() == [4, 5, 6]
    assert p2.stripped()["m::x"].is_splat


@pytest.mark.interop
def test_overlay_is_an_archive_iree_reads(two_layers: tuple[Path, Path], tmp_path: Path) -> None:
    rt = pytest.importorskip("iree.runtime")
    base, _ = two_layers
    ov_path = tmp_path / "ov.irpa"
    p = Provider.from_flags([f"m={base}"], overlays=[f"m={ov_path}"])
    p.scatter({"m::w": np.array([5, 6, 7, 8], np.float32), "m::x": np.array([1, 2, 3], np.int32)})
    p.write("m::w", np.array([9, 9, 9, 8], np.float32))
    p.flush()
    idx = rt.ParameterIndex()
    idx.load(str(ov_path))
    got = {k: rt.parameter_index_entry_as_numpy_ndarray(e).tolist() for k, e in idx.items()}
    assert got == {"w": [9, 9, 9, 8], "x": [1, 2, 3]}


def test_overlay_refuses_wrong_length_before_rewriting(two_layers: tuple[Path, Path], tmp_path: Path) -> None:
    base, _ = two_layers
    p = Provider.from_flags([f"m={base}"], overlays=[f"m={tmp_path / 'ov.irpa'}"])
    with pytest.raises(InvalidArgumentError, match="cannot write 8 bytes into a 16-byte entry"):
        p.scatter({"m::x": np.zeros(3, np.int32), "m::w": np.zeros(2, np.float32)})
    assert not (tmp_path / "ov.irpa").exists()


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["w", "x", "y"]), st.integers(-100, 100)), max_size=12))
def test_overlay_matches_a_dict_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]], make_archive
) -> None:
    folder = tmp_path_factory.mktemp("model")
    shapes = {"w": (np.float32, 4), "x": (np.int32, 3), "y": (np.int8, 2)}
    base = make_archive(folder / "base.irpa", **{k: np.zeros(n, t) for k, (t, n) in shapes.items()})
    ov = folder / "ov.irpa"
    p = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])
    model = {k: [0] * n for k, (_, n) in shapes.items()}
    for key, value in ops:
        t, n = shapes[key]
        p.write(f"m::{key}", np.full(n, value, t))
        model[key] = [value] * n
    p.flush()
    reopened = Provider.from_flags([f"m={base}"], overlays=[f"m={ov}"])
    assert {k: reopened[f"m::{k}"].to_numpy().tolist() for k in shapes} == model
    assert ParameterIndex.open(base).keys() == ["w", "x", "y"]
    assert all(not e.to_numpy().any() for e in ParameterIndex.open(base).entries)

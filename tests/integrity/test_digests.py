"""Per-entry digests (issue 26): equal to the hash packages' own functions over the extracted
bytes, stored where each format's readers do not look (IREE's runtime and dump see only the
model's entries), carried through conversions without ever keeping a digest of bytes that were
not written, and every kind of damage caught and named."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import FormatError, IntegrityError
from paramio.formats.digests import DIGESTS_KEY, digest_entry, sidecar_path
from paramio.integrity import digest, stored_digests, verify_digests, write_digests

blake3 = pytest.importorskip("blake3")
xxhash = pytest.importorskip("xxhash")

Cli = Callable[..., tuple[int, str, str]]

REFERENCE = {
    "blake3": lambda b: blake3.blake3(b).hexdigest(),
    "sha256": lambda b: hashlib.sha256(b).hexdigest(),
    "xxh3": lambda b: xxhash.xxh3_128(b).hexdigest(),
}
FORMATS = ["irpa", "safetensors", "gguf"]


def model(tmp_path: Path, fmt: str, name: str = "m", **options: object) -> Path:
    rng = np.random.default_rng(7)
    index = paramio.ParameterIndex()
    index.add_array("w", rng.standard_normal((64, 33)).astype(np.float32))
    index.add_array("b", rng.standard_normal(33).astype(np.float16))
    index.add_array("i", np.arange(12, dtype=np.int32).reshape(3, 4))
    path = tmp_path / f"{name}.{fmt}"
    paramio.write_path(path, index.values(), **options)
    return path


@pytest.mark.interop
@pytest.mark.parametrize("algorithm", sorted(REFERENCE))
@pytest.mark.parametrize("fmt", FORMATS)
def test_digests_are_the_packages_own_over_the_extracted_bytes(tmp_path: Path, fmt: str, algorithm: str) -> None:
    path = model(tmp_path, fmt)
    report = digest(path, algorithm)
    index = paramio.ParameterIndex.open(path)
    assert list(report.entries) == index.keys()
    for key, value in report.entries.items():
        assert value == REFERENCE[algorithm](index[key].read())


def test_a_splat_is_hashed_as_its_expanded_bytes(tmp_path: Path) -> None:
    index = paramio.ParameterIndex()
    index.add_splat("s", np.float32(1.5), 40 << 20)  # larger than one hashing chunk
    index.create_archive_file(tmp_path / "s.irpa")
    (entry,) = paramio.ParameterIndex.open(tmp_path / "s.irpa").values()
    assert digest_entry(entry, "sha256") == hashlib.sha256(np.full(10 << 20, 1.5, np.float32).tobytes()).hexdigest()


@pytest.mark.parametrize("fmt", FORMATS)
def test_stored_in_the_file_and_verified(tmp_path: Path, fmt: str) -> None:
    path = model(tmp_path, fmt, digests=True)
    record = stored_digests(path)
    assert record is not None and record.algorithm == "xxh3"  # the default (docs/integrity.md says why)
    assert record.entries == digest(path).entries
    assert record.types == {"w": "float32[64, 33]", "b": "float16[33]", "i": "int32[3, 4]"}
    assert verify_digests(path)[1] == []
    assert paramio.ParameterIndex.open(path, verify=True).keys() == ["w", "b", "i"]
    assert list(paramio.load(path, verify=True)) == ["w", "b", "i"]


@pytest.mark.interop
def test_iree_sees_only_the_models_entries(tmp_path: Path, run_tool, iree_tool) -> None:  # type: ignore[no-untyped-def]
    rt = pytest.importorskip("iree.runtime")
    path = model(tmp_path, "irpa", digests=True)
    theirs = rt.ParameterIndex()
    theirs.load(str(path))
    assert [k for k, _ in theirs.items()] == ["w", "b", "i"]
    dump = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={path}"]).stdout
    assert "(3 entries" in dump and "paramio" not in dump


@pytest.mark.interop
def test_peers_read_files_with_digests(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    st = model(tmp_path, "safetensors", digests=True)
    assert set(load_file(str(st))) == {"w", "b", "i"}
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(str(model(tmp_path, "gguf", digests=True)))
    assert {t.name for t in reader.tensors} == {"w", "b", "i"}


def test_conversion_keeps_digests_and_never_a_stale_one(tmp_path: Path) -> None:
    src = model(tmp_path, "safetensors", digests="sha256")
    index = paramio.ParameterIndex.open(src)
    # Plain conversion: the record comes along (computed again over what was written).
    paramio.write_path(tmp_path / "c.irpa", index.values(), attributes=index.attributes)
    carried = stored_digests(tmp_path / "c.irpa")
    assert carried is not None and carried.algorithm == "sha256" and carried.entries == stored_digests(src).entries
    # A conversion that replaces an entry's bytes under the same key: the digest follows the bytes.
    changed = [
        e if e.key != "i" else e.replace(pattern=b"\x07\x00\x00\x00", source=None, offset=0) for e in index.values()
    ]
    paramio.write_path(tmp_path / "d.irpa", changed, attributes=index.attributes)
    assert verify_digests(tmp_path / "d.irpa")[1] == []
    # digests=False drops the record.
    paramio.write_path(tmp_path / "e.irpa", index.values(), attributes=index.attributes, digests=False)
    assert stored_digests(tmp_path / "e.irpa") is None


def test_create_archive_file_takes_digests(tmp_path: Path) -> None:
    index = paramio.ParameterIndex()
    index.add_array("w", np.arange(10, dtype=np.float32))
    plain = tmp_path / "plain.irpa"
    index.create_archive_file(plain)
    assert stored_digests(plain) is None
    index.create_archive_file(tmp_path / "d.irpa", digests="xxh3")
    record = stored_digests(tmp_path / "d.irpa")
    assert (
        record is not None
        and record.entries["w"] == xxhash.xxh3_128(np.arange(10, dtype=np.float32).tobytes()).hexdigest()
    )


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_flipped_byte_in_a_tensor_is_named(tmp_path: Path, fmt: str) -> None:
    path = model(tmp_path, fmt, digests=True)
    entry = paramio.ParameterIndex.open(path)["w"]
    _flip(path, entry.offset + 100)
    _, problems = verify_digests(path)
    (m,) = problems
    assert m.key == "w" and m.expected != m.got and (m.start, m.end) == (entry.offset, entry.offset + entry.length)
    assert str(path) in (m.file or "")
    with pytest.raises(IntegrityError, match="entry 'w'") as info:
        paramio.load(path, verify=True)
    assert info.value.key == "w" and info.value.expected == m.expected
    with pytest.raises(IntegrityError, match="entry 'w'"):
        paramio.ParameterIndex.open(path, verify=True)


def test_a_damaged_type_is_named(tmp_path: Path) -> None:
    path = model(tmp_path, "safetensors", digests=True)
    data = path.read_bytes()
    at = data.index(b'"F16"')  # b's dtype in the header: F16 -> I16, same size
    path.write_bytes(data[:at] + b'"I16"' + data[at + 5 :])
    (m,) = verify_digests(path)[1]
    assert (m.key, m.reason, m.expected, m.got) == ("b", "type differs", "float16[33]", "int16[33]")


def test_a_damaged_table_or_record_is_caught(tmp_path: Path) -> None:
    path = model(tmp_path, "irpa", digests=True)
    record = stored_digests(path)
    assert record is not None
    # The stored digest itself: one hex digit changed.
    data = path.read_bytes()
    at = data.index(record.entries["b"].encode())
    path.write_bytes(data[:at] + (b"0" if data[at : at + 1] != b"0" else b"1") + data[at + 1 :])
    (m,) = verify_digests(path)[1]
    assert m.key == "b"
    # The table (safetensors' header): entry i's byte range moved by one element, same text width.
    path2 = model(tmp_path, "safetensors", name="t", digests=True)
    raw = path2.read_bytes()
    i = paramio.ParameterIndex.open(path2)["i"]
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    a, b = header["i"]["data_offsets"]
    old, new = f"[{a},{b}]".encode(), f"[{a - 4},{b - 4}]".encode()
    assert len(old) == len(new) and raw.count(old) == 1 and i.length == b - a
    path2.write_bytes(raw.replace(old, new))
    try:
        problems = verify_digests(path2)[1]
    except FormatError as exc:  # the reader refused the overlap: caught and named too
        assert "'i'" in str(exc) or "overlap" in str(exc)
        return
    assert [p.key for p in problems] == ["i"]


def test_a_file_without_digests_says_so(tmp_path: Path) -> None:
    path = model(tmp_path, "irpa")
    with pytest.raises(FormatError, match="stores no digests"):
        verify_digests(path)
    with pytest.raises(FormatError, match="stores no digests"):
        paramio.load(path, verify=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_into_the_file_or_beside_it(tmp_path: Path, fmt: str) -> None:
    path = model(tmp_path, fmt)
    before = path.read_bytes()
    side = write_digests(path, "sha256", sidecar=True)
    assert side == sidecar_path(path) and path.read_bytes() == before  # byte-identical
    assert json.loads(Path(side).read_text())[DIGESTS_KEY]["algorithm"] == "sha256"
    assert verify_digests(path)[1] == []
    Path(side).unlink()
    write_digests(path)
    assert stored_digests(path) is not None and verify_digests(path)[1] == []
    assert {k: v.read() for k, v in paramio.ParameterIndex.open(path).items()} == {
        k: v.read() for k, v in paramio.ParameterIndex.open(model(tmp_path, fmt, name="again")).items()
    }


def test_sharded_sets_carry_and_check_digests(tmp_path: Path) -> None:
    src = paramio.ParameterIndex.open(model(tmp_path, "safetensors"))
    paramio.write_path(tmp_path / "set.irpa", src.values(), max_shard_size=4096, digests=True)
    manifest = tmp_path / "set.irpa.index.json"
    assert manifest.exists()
    assert verify_digests(manifest)[1] == []
    shard = sorted(tmp_path.glob("set-0000*-of-*.irpa"))[-1]
    index = paramio.ParameterIndex.open(manifest)
    victim = next(e for e in index.values() if e.source is not None and e.source.name.endswith(shard.name))
    _flip(shard, victim.offset + 1)
    assert [m.key for m in verify_digests(manifest)[1]] == [victim.key]


def test_cli_digest_write_verify(tmp_path: Path, paramio_cli: Cli) -> None:
    path = model(tmp_path, "safetensors")
    code, out, err = paramio_cli("digest", str(path), "--algorithm=sha256")
    assert code == 0, err
    index = paramio.ParameterIndex.open(path)
    assert out.splitlines()[0] == f"{hashlib.sha256(index['w'].read()).hexdigest()}  {path}::w"
    code, out, _ = paramio_cli("digest", str(path), "--json")
    doc = json.loads(out)
    assert doc["version"] == 1 and [e["key"] for e in doc["files"][0]["entries"]] == ["w", "b", "i"]
    assert paramio_cli("digest", str(path), "--write")[0] == 0
    code, out, _ = paramio_cli("verify", str(path), "--digests")
    assert code == 0 and "digests (xxh3): 3 entries: OK" in out
    _flip(path, paramio.ParameterIndex.open(path)["i"].offset)
    code, out, _ = paramio_cli("verify", str(path), "--digests")
    assert code == 1 and "mismatch: entry 'i': expected" in out
    code, out, _ = paramio_cli("verify", str(path), "--digests", "--json")
    (m,) = json.loads(out)["files"][0]["digests"]["mismatches"]
    assert m["key"] == "i" and m["algorithm"] == "xxh3"
    code, _, err = paramio_cli("load", f"--parameters={path}", "--verify")
    assert code == 1 and "entry 'i'" in err
    assert paramio_cli("digest", str(path), "--sidecar")[0] == 2


def test_digest_from_a_url_reads_ranges(nginx, nginx_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("obstore", reason="the remote extra is not installed")
    path = model(tmp_path, "irpa", digests=True)
    shutil.copy(path, nginx_dir / "m.irpa")
    url = f"{nginx.url}/{nginx_dir.name}/m.irpa"
    assert digest(url).entries == digest(path).entries
    assert verify_digests(url)[1] == []

"""``paramio convert --digests`` and ``paramio.convert(digests=...)``: a record stored on request,
carried digests kept when the algorithm is theirs, none with ``digests=False``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import paramio
from paramio.integrity.digest import digest, stored_digests, verify_digests, write_digests


def _source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    path = tmp_path / "src.safetensors"
    save_file({"w": rng.standard_normal(5000, dtype=np.float32), "b": np.arange(7, dtype=np.int16)}, str(path))
    return path


def test_the_flag_stores_a_record_an_input_without_one_did_not_have(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    src = _source(tmp_path)
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={tmp_path / 'plain.irpa'}", "--quiet")
    assert code == 0, err
    assert stored_digests(tmp_path / "plain.irpa") is None  # without the flag: as before
    code, _, err = paramio_cli("convert", f"--parameters={src}", f"--output={tmp_path / 'm.irpa'}", "--digests")
    assert code == 0, err
    record, problems = verify_digests(tmp_path / "m.irpa")
    assert problems == [] and record.algorithm == "xxh3"
    assert dict(record.entries) == dict(digest(str(src), "xxh3").entries)


@pytest.mark.parametrize(("asked", "algorithm"), [(True, "sha256"), ("sha256", "sha256"), ("blake3", "blake3")])
def test_carried_digests_are_kept_when_the_algorithm_is_theirs(tmp_path: Path, asked: object, algorithm: str) -> None:
    src = _source(tmp_path)
    write_digests(str(src), algorithm="sha256")
    w = paramio.ParameterIndex.open(src)["w"]
    with open(src, "r+b") as f:  # damaged after the record: a carried digest still names it
        f.seek(w.offset + 3)
        f.write(b"\x7f")
    paramio.convert(str(src), str(tmp_path / "m.irpa"), digests=asked)  # type: ignore[arg-type]
    record, problems = verify_digests(tmp_path / "m.irpa")
    assert record.algorithm == algorithm
    # Carried (sha256): the damage shows; computed anew (blake3): the damaged bytes are blessed.
    assert [m.key for m in problems] == (["w"] if algorithm == "sha256" else [])


def test_digests_false_drops_the_record_and_a_bad_value_is_refused(tmp_path: Path) -> None:
    src = _source(tmp_path)
    write_digests(str(src))
    paramio.convert(str(src), str(tmp_path / "none.irpa"), digests=False)
    assert stored_digests(tmp_path / "none.irpa") is None
    with pytest.raises(paramio.InvalidArgumentError, match="digests=3"):
        paramio.convert(str(src), str(tmp_path / "x.irpa"), digests=3)  # type: ignore[arg-type]
    assert not (tmp_path / "x.irpa").exists()

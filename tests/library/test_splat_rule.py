"""The splat rule (`paramio.core.splats`) is one rule: every place that makes, writes, converts
or checks a splat accepts exactly the patterns it accepts.

Before, five places each wrote ``len(pattern) not in (1, 2, 4, 8, 16)`` (and three the
multiple check) themselves; here each is asked about every pattern length from 0 to 17 bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import paramio
from paramio import InvalidArgumentError, ParameterSpec, create_parameters, verify
from paramio.core.entry import ParameterEntry
from paramio.core.splats import SPLAT_PATTERN_LENGTHS, SplatFault, check_splat, splat_fault
from paramio.formats.irpa.layout import ENTRY_HEADER
from paramio.formats.irpa.writer import plan_archive
from paramio.formats.verify import Check

LENGTHS = range(18)


def _refuses(call: object) -> bool:
    try:
        call()  # type: ignore[operator]
    except InvalidArgumentError:
        return True
    return False


def test_the_rule() -> None:
    assert [n for n in LENGTHS if splat_fault(n) is None] == list(SPLAT_PATTERN_LENGTHS) == [1, 2, 4, 8, 16]
    assert splat_fault(4, 12) is None and splat_fault(4, 0) is None
    assert splat_fault(4, 10) is SplatFault.PARTIAL_PATTERN
    assert splat_fault(4, -4) is SplatFault.NEGATIVE_LENGTH
    assert splat_fault(3, 12) is SplatFault.PATTERN_LENGTH  # the pattern is judged first
    with pytest.raises(InvalidArgumentError, match="^entry 'k': splat length 10 is not a multiple of its 4-byte"):
        check_splat(4, 10, key="k")


@pytest.mark.parametrize("n", LENGTHS)
def test_the_library_agrees(n: int, tmp_path: Path) -> None:
    bad = splat_fault(n) is not None
    pattern = bytes(range(1, n + 1))
    assert _refuses(lambda: paramio.ParameterIndex().add_splat("s", pattern, 4 * n)) is bad
    assert _refuses(lambda: plan_archive([ParameterEntry.splat("s", pattern, 4 * n)])) is bad
    assert _refuses(lambda: create_parameters(tmp_path / "c.irpa", [ParameterSpec.splat("s", pattern, 4 * n)])) is bad


@pytest.mark.parametrize("n", range(1, 17))  # a splat entry's pattern field holds 16 bytes at most
def test_verify_agrees(n: int, tmp_path: Path) -> None:
    path = tmp_path / "v.irpa"
    create_parameters(path, [ParameterSpec.splat("s", b"\x01", 64)])
    data = bytearray(path.read_bytes())
    table = struct.unpack_from("<Q", data, 40)[0]
    struct.pack_into("<Q16sB", data, table + ENTRY_HEADER.size, 4 * n, bytes(range(1, 17)), n)  # the splat's tail
    path.write_bytes(bytes(data))
    problems = verify(path).problems
    assert [p.check for p in problems] == ([Check.SPLATS] if splat_fault(n) is not None else [])


@pytest.mark.parametrize("n", [n for n in LENGTHS if n])
def test_the_cli_agrees(n: int, tmp_path: Path, paramio_cli) -> None:
    bad = splat_fault(n) is not None
    value = "AB" * n  # an opaque n-byte element: *N types are hex bytes
    code, _, err = paramio_cli("create", f"--splat=s=*{8 * n}={value}", f"--output={tmp_path / 'c.irpa'}")
    assert (code == 2) is bad and (code == 0) is not bad, err
    source = tmp_path / "src.irpa"
    create_parameters(source, [ParameterSpec.data("s", 4 * n)])
    code, _, err = paramio_cli(
        "convert", "--quiet", str(source), f"--splat=s=*{8 * n}={value}", f"--output={tmp_path / 'o.irpa'}"
    )
    assert (code == 2) is bad and (code == 0) is not bad, err


def test_lengths_the_pattern_does_not_divide(tmp_path: Path, paramio_cli) -> None:
    pattern = b"abcd"
    assert _refuses(lambda: paramio.ParameterIndex().add_splat("s", pattern, 10))
    assert _refuses(lambda: create_parameters(tmp_path / "c.irpa", [ParameterSpec.splat("s", pattern, 10)]))
    source = tmp_path / "src.irpa"
    create_parameters(source, [ParameterSpec.data("s", 10)])
    code, _, err = paramio_cli(
        "convert", "--quiet", str(source), "--splat=s=*32=61626364", f"--output={tmp_path / 'o.irpa'}"
    )
    assert code == 1 and "is not a whole number of 4-byte patterns" in err

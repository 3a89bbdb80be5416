"""`paramio.create_parameters`: the library function under ``paramio create``.

The oracle is ``iree-create-parameters``: the same declarations, in the tool's order (every
splat, then every data declaration), give the same bytes. Beyond the tool: any order, typed
entries, and declarations no archive can hold refused before a file exists.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import EntryKind, InvalidArgumentError, ParameterSpec, TensorInfo, create_parameters

F32 = np.float32(4.1).tobytes()


def _iree(iree_tool, tmp_path: Path, *flags: str) -> bytes:
    out = tmp_path / "iree.irpa"
    r = subprocess.run([iree_tool("iree-create-parameters"), *flags, f"--output={out}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


@pytest.mark.interop
@pytest.mark.parametrize(
    ("flags", "specs", "alignment"),
    [
        (
            ["--splat=s=4xf32=4.1", "--data=w=16xi8=170", "--data=z=8xf32"],
            [ParameterSpec.splat("s", F32, 16), ParameterSpec.data("w", 16, b"\xaa"), ParameterSpec.data("z", 32)],
            64,
        ),
        (
            ["--splat=yy=4xf32=4.1", "--splat=bb=2x4096xi16=123", "--data=zz=16xi8=170", "--data=aa=8xf32"],
            [
                ParameterSpec.splat("yy", F32, 16),
                ParameterSpec.splat("bb", np.int16(123).tobytes(), 2 * 4096 * 2),
                ParameterSpec.data("zz", 16, b"\xaa"),
                ParameterSpec.data("aa", 32),
            ],
            32,
        ),
        (["--splat=x=*32=CAFEF00D"], [ParameterSpec.splat("x", bytes.fromhex("CAFEF00D"), 4)], 64),
        ([], [], 64),
    ],
)
def test_same_bytes_as_iree_create_parameters(
    flags: list[str], specs: list[ParameterSpec], alignment: int, tmp_path: Path, iree_tool
) -> None:
    ours = tmp_path / "ours.irpa"
    create_parameters(ours, specs, alignment=alignment)
    assert ours.read_bytes() == _iree(iree_tool, tmp_path, *flags, f"--alignment={alignment}")


def test_entries_in_the_order_given_with_their_bytes(tmp_path: Path) -> None:
    path = tmp_path / "p.irpa"
    specs = [
        ParameterSpec.data("d1", 12, bytes.fromhex("AABBCC")),  # a 3-byte pattern fills data whole
        ParameterSpec.splat("s", F32, 4096 * 4),
        ParameterSpec.data("d2", 8),
    ]
    create_parameters(path, specs, alignment=128)
    index = paramio.ParameterIndex.open(path)
    assert [(e.key, e.kind, e.length) for e in index.entries] == [
        ("d1", EntryKind.DATA, 12),
        ("s", EntryKind.SPLAT, 4096 * 4),
        ("d2", EntryKind.DATA, 8),
    ]
    assert index["d1"].read() == bytes.fromhex("AABBCC") * 4
    assert index["s"].pattern == F32
    assert index["d2"].read() == bytes(8)
    assert index["d1"].offset % 128 == 0 and index["d2"].offset % 128 == 0
    assert index.attributes == {}  # nothing beyond what IREE's tool writes


def test_tensor_types_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "t.irpa"
    create_parameters(
        path,
        [
            ParameterSpec.splat("s", np.float32(1.5).tobytes(), 24, tensor=TensorInfo("float32", (2, 3))),
            ParameterSpec.data("d", 8, np.int16(-2).tobytes(), tensor=TensorInfo("int16", (4,))),
        ],
    )
    index = paramio.ParameterIndex.open(path)
    assert index["s"].tensor == TensorInfo("float32", (2, 3))
    assert index["d"].to_numpy().tolist() == [-2, -2, -2, -2]


def test_progress_counts_every_data_byte(tmp_path: Path) -> None:
    ticks: list[int] = []
    specs = [ParameterSpec.data("a", 3 << 20, b"\x01"), ParameterSpec.data("z", 1000), ParameterSpec.splat("s", F32, 8)]
    create_parameters(tmp_path / "p.irpa", specs, progress=ticks.append)
    assert sum(ticks) == (3 << 20) + 1000


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            ParameterSpec.splat("s", b"abc", 9),
            "entry 's': splat pattern length 3 invalid; must be 1, 2, 4, 8, or 16 bytes",
        ),
        (ParameterSpec.splat("s", b"abcd", 10), "entry 's': splat length 10 is not a multiple of its 4-byte pattern"),
        (ParameterSpec.splat("s", b"", 0), "entry 's': splat pattern length 0 invalid"),
        (ParameterSpec.data("d", 10, b"abcd"), "entry 'd': length 10 is not a whole number of 4-byte patterns"),
        (ParameterSpec.data("d", 4, b""), "entry 'd': length 4 is not a whole number of 0-byte patterns"),
        (ParameterSpec.data("d", -4), "entry 'd': length -4 is negative"),
        (
            ParameterSpec.data("d", 8, tensor=TensorInfo("float32", (4,))),
            "entry 'd': float32[4] is 16 bytes, not 8",
        ),
        (ParameterSpec("e", EntryKind.EXTERNAL, 8), "entry 'e': cannot create a external entry"),
    ],
)
def test_refused_before_any_file_exists(spec: ParameterSpec, message: str, tmp_path: Path) -> None:
    path = tmp_path / "p.irpa"
    with pytest.raises(InvalidArgumentError) as info:
        create_parameters(path, [ParameterSpec.data("fine", 4), spec])
    assert str(info.value).startswith(message) and info.value.key == spec.name
    assert list(tmp_path.iterdir()) == []


def test_alignment_must_be_a_power_of_two(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="alignment 48 is not a power of two"):
        create_parameters(tmp_path / "p.irpa", [ParameterSpec.data("d", 4)], alignment=48)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_writes_what_the_function_writes(tmp_path: Path, paramio_cli) -> None:
    flags = ["--splat=s=2x3xbf16=1.5", "--data=d=4xi16=-2", "--data=x=2x*32=CAFEF00D"]
    code, _, err = paramio_cli("create", "--typed", "--quiet", *flags, f"--output={tmp_path / 'cli.irpa'}")
    assert (code, err) == (0, "")
    create_parameters(
        tmp_path / "lib.irpa",
        [
            ParameterSpec.splat("s", bytes.fromhex("c03f"), 12, tensor=TensorInfo("bfloat16", (2, 3))),
            ParameterSpec.data("d", 8, np.int16(-2).tobytes(), tensor=TensorInfo("int16", (4,))),
            ParameterSpec.data("x", 8, bytes.fromhex("CAFEF00D")),  # opaque: no NumPy type, no metadata
        ],
    )
    assert (tmp_path / "cli.irpa").read_bytes() == (tmp_path / "lib.irpa").read_bytes()

"""IREE's ``TYPE=VALUE`` syntax with IREE as the oracle (issue 23, item 3).

One table of cases runs through the real ``iree-run-module --input`` (an identity function per
element type) and ``iree-create-parameters --splat``, and through paramio's one parser
(`paramio.formats.elements`) as ``paramio run --input`` and ``paramio create``/``convert --splat``
use it. Before, ``run --input`` had its own parser: ``i32=010`` was 8 in create and an error in
run, ``i32=12abc`` 12 in one and an error in the other.

Where IREE's two tools disagree with each other (the ``run`` and ``create`` columns differ
below), paramio follows the tool each command stands in for; the module docstring of
`paramio.formats.elements` lists those cases.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from paramio import ParameterIndex
from paramio.cli.create import parse_spec
from paramio.cli.errors import UsageError
from paramio.core.errors import InvalidArgumentError
from paramio.iree.values import format_result, parse_input

_TYPES = ("i1", "i8", "i16", "i32", "i64", "f16", "bf16", "f32", "f64")
_IDENTITY = (
    "\n".join(
        f"func.func @{t}(%a: tensor<2xi{t[1:]}>) -> tensor<2xi{t[1:]}> {{ return %a : tensor<2xi{t[1:]}> }}"
        if t.startswith("i")
        else f"func.func @{t}(%a: tensor<2x{t}>) -> tensor<2x{t}> {{ return %a : tensor<2x{t}> }}"
        for t in _TYPES
    )
    + "\nfunc.func @m(%a: tensor<2x2xi32>) -> tensor<2x2xi32> { return %a : tensor<2x2xi32> }\n"
)

#: (input, function): every value is checked against both tools (a 2-element shape, so that
#: ``iree-create-parameters`` writes a splat of it and ``iree-run-module`` fills a buffer).
CASES: tuple[tuple[str, str], ...] = (
    ("2xi32=010", "i32"),  # C octal: 8 in both tools (paramio run: error before)
    ("2xi32=12abc", "i32"),  # strtol stops at the first non-digit: 12 (paramio run: error before)
    ("2xi32=0x10", "i32"),
    ("2xi32=08", "i32"),  # octal "0", then "8" is garbage: 0
    ("2xi32= 7", "i32"),
    ("2xi32=0x", "i32"),
    ("2xi32=-", "i32"),
    ("2xi32=99999999999", "i32"),  # 32-bit values wrap
    ("2xi32=1,2", "i32"),  # run: two elements; create: one element, 1
    ("2xi32=1 2", "i32"),
    ("2xi32=[5]", "i32"),  # run: 5; create: error
    ("2xi32=1;2", "i32"),  # one token in both: 1
    ("2xi32=1,2,3", "i32"),  # run: too many values
    ("2xi32=", "i32"),  # all zeros in both
    ("2xi32=[ ]", "i32"),  # run: underflow error; create: error
    ("2xi8=255", "i8"),
    ("2xi8=256", "i8"),
    ("2xui8=-1", "i8"),
    ("2xsi32=-1", "i32"),
    ("2xui32=-1", "i32"),
    ("2xi16=-32769", "i16"),
    ("2xi64=1e3", "i64"),
    ("2xi64=99999999999999999999", "i64"),
    ("2xi1=1", "i1"),  # i1 takes hex bytes in both: error
    ("2xi1=01", "i1"),
    ("2xf32=1.5abc", "f32"),
    ("2xf32=0x1p3", "f32"),
    ("2xf32=1e-46", "f32"),  # underflow to zero: error in both
    ("2xf32=inf", "f32"),
    ("2xf32=-nan", "f32"),
    ("2xf32=.5", "f32"),
    ("2xf64=2.1", "f64"),
    ("2xf16=2.1", "f16"),
    ("2xf16=70000", "f16"),
    ("2xbf16=2.1", "bf16"),
    ("2x2xi32=[1 2][3 4]", "m"),
    ("2x2xi32=1,2", "m"),  # two values for four elements: error
)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory, iree_tool: Callable[[str], str]) -> Path:
    iree_tool("iree-run-module")
    compiler = shutil.which("iree-compile") or str(Path(sys.executable).parent / "iree-compile")
    if not Path(compiler).exists():
        pytest.skip("iree-compile not installed (pip install iree-base-compiler)")
    folder = tmp_path_factory.mktemp("oracle")
    (folder / "id.mlir").write_text(_IDENTITY)
    out = folder / "id.vmfb"
    r = subprocess.run(
        [
            compiler,
            str(folder / "id.mlir"),
            "--iree-input-demote-f64-to-f32=false",
            "--iree-hal-target-device=local",
            "--iree-hal-local-target-device-backends=llvm-cpu",
            "--iree-llvmcpu-target-cpu=host",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return out


def _iree_run(tool: str, vmfb: Path, function: str, spec: str, cwd: Path) -> str | None:
    r = subprocess.run(
        [tool, f"--module={vmfb}", f"--function={function}", f"--input={spec}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    if r.returncode != 0:
        return None
    # The identity function hands the input's buffer view back, element type and all: an
    # ``si32`` input prints as ``si32``; paramio's arrays have NumPy types, which print ``i32``.
    return r.stdout.strip().splitlines()[-1].replace("xsi", "xi")


def _ours_run(spec: str) -> str | None:
    try:
        return format_result(parse_input(spec))  # type: ignore[arg-type]
    except InvalidArgumentError:
        return None


def _iree_create(tool: str, spec: str, folder: Path) -> bytes | None:
    out = folder / "o.irpa"
    out.unlink(missing_ok=True)
    r = subprocess.run([tool, f"--splat=k={spec}", f"--output={out}"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None
    return bytes(ParameterIndex.open(out)["k"].pattern)


def _ours_create(spec: str) -> bytes | None:
    try:
        return parse_spec("splat", f"k={spec}").pattern
    except UsageError:
        return None


def test_run_input_and_create_splat_parse_as_iree_does(
    identity: Path, iree_tool: Callable[[str], str], tmp_path: Path
) -> None:
    run_tool, create_tool = iree_tool("iree-run-module"), iree_tool("iree-create-parameters")
    rows = []
    for spec, function in CASES:
        iree_run = _iree_run(run_tool, identity, function, spec, tmp_path)
        iree_create = _iree_create(create_tool, spec, tmp_path)
        rows.append((spec, iree_run, _ours_run(spec), iree_create, _ours_create(spec)))
    mismatches = [r for r in rows if r[1] != r[2] or r[3] != r[4]]
    assert mismatches == [], "\n".join(map(str, mismatches))
    # The table is not vacuous: the tools disagree with each other on some cases, agree on
    # errors for others, and accept the ones paramio rejected before.
    by_spec = {r[0]: r for r in rows}
    assert by_spec["2xi32=010"][1] == "2xi32=8 8" and by_spec["2xi32=12abc"][1] == "2xi32=12 12"
    assert by_spec["2xi32=1,2"][1] == "2xi32=1 2" and by_spec["2xi32=1,2"][3] == bytes([1, 0, 0, 0])
    assert by_spec["2xi32=[5]"][1] == "2xi32=5 5" and by_spec["2xi32=[5]"][3] is None
    assert by_spec["2xi1=1"][1] is None and by_spec["2xf32=1e-46"][3] is None


def test_a_plus_file_reads_raw_bytes_as_iree_run_module_does(tmp_path: Path) -> None:
    (tmp_path / "two.bin").write_bytes(bytes([1, 0, 0, 0, 2, 0, 0, 0]))
    assert format_result(parse_input(f"2xi32=+{tmp_path / 'two.bin'}")) == "2xi32=1 2"  # type: ignore[arg-type]
    assert format_result(parse_input(f"2xi32=@{tmp_path / 'two.bin'}")) == "2xi32=1 2"  # type: ignore[arg-type]

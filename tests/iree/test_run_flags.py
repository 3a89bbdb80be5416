"""`paramio run` with iree-run-module's output flags, and its failures as one line.

The real iree-run-module 3.13 is the oracle: the same flags must give the same stdout, exit
status and files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paramio.iree.status import hint, iree_message


@pytest.fixture
def flags(tmp_path: Path, vmfb: Path, make_archive) -> list[str]:
    a = make_archive(tmp_path / "a.irpa", w=np.array([10, 20, 30, 40], np.float32))
    b = make_archive(tmp_path / "b.irpa", v=np.array([1.5, 2, 1e-10, -3], np.float32))
    return [f"--module={vmfb}", "--function=f", "--input=4xf32=1,2,3,4", f"--parameters=a={a}", f"--parameters=b={b}"]


CASES = [
    ["--output=-", "--output=-"],
    ["--output=-"],
    ["--output=", "--output=-"],
    ["--output=@r0.npy", "--output=@r1.npy"],
    ["--output=@both.npy", "--output=+both.npy"],
    ["--output=@r0.bin", "--output=-"],
    ["--output_max_element_count=2"],
    ["--output=-", "--output=-", "--output_max_element_count=3"],
    ["--expected_output=4xf32=11,22,33,44", "--expected_output=2x2xf32=16.5,44,3.3e-9,-132"],
    ["--expected_output=4xf32=11,22,33,45", "--expected_output=(ignored)"],
    ["--expected_output=(ignored)", "--expected_output=4xf32=16.5,44,3.3e-9,-132"],
    ["--expected_output=4xf32=11,22,33,44.00001", "--expected_output=(ignored)"],
    ["--expected_output=4xf32=11,22,33,44.00001", "--expected_output=(ignored)", "--equality_mode=exact"],
    ["--expected_output=4xf32=11,22,33,44.5", "--expected_output=(ignored)", "--expected_f32_threshold=1"],
    ["--expected_output=4xi32=11,22,33,44", "--expected_output=(ignored)"],
    ["--expected_output=4xf32=11,22,33,44"],
    ["--expected_output=4xf32=11,22,33,44.0004", "--expected_output=(ignored)"],  # within atol + rtol * 44
    ["--expected_output=4xf32=11,22,33,44.001", "--expected_output=(ignored)"],  # beyond it
    ["--expected_output=4xf32=11,22,33,44.001", "--expected_output=(ignored)", "--expected_rtol=1e-4"],
]


@pytest.mark.interop
@pytest.mark.parametrize("extra", CASES, ids=[" ".join(c) for c in CASES])
def test_output_flags_match_iree_run_module(
    extra, flags, tmp_path: Path, paramio_cli, run_tool, iree_tool, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    theirs, mine = tmp_path / "iree", tmp_path / "paramio"
    theirs.mkdir()
    mine.mkdir()
    r = run_tool([iree_tool("iree-run-module"), *flags, *extra], cwd=theirs)
    monkeypatch.chdir(mine)
    code, out, err = paramio_cli("run", *flags, *extra)
    assert (code, out) == (r.returncode, r.stdout), err
    assert sorted(p.name for p in theirs.iterdir()) == sorted(p.name for p in mine.iterdir())
    for p in theirs.iterdir():
        assert (mine / p.name).read_bytes() == p.read_bytes(), p.name


@pytest.mark.interop
def test_print_statistics_like_iree_run_module(flags, paramio_cli, run_tool, iree_tool) -> None:  # type: ignore[no-untyped-def]
    r = run_tool([iree_tool("iree-run-module"), *flags, "--print_statistics"])
    code, out, err = paramio_cli("run", *flags, "--print_statistics")
    assert (code, out) == (0, r.stdout)
    # The same report; the byte counts are what each process's allocator saw.
    shape = [line.split(":")[0] for line in err.splitlines()]
    assert shape == [line.split(":")[0] for line in r.stderr.splitlines()]
    assert err.startswith("Device: local-task\n[[ iree_hal_allocator_t memory statistics ]]\n")


@pytest.mark.interop
def test_iree_runtime_flags_are_passed_through(flags, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = paramio_cli("run", *flags, "--task_topology_group_count=1", "--module_mode=mmap")
    assert (code, err) == (0, "") and "4xf32=11 22 33 44" in out
    code, _, err = paramio_cli("run", *flags, "--outptu=-")
    assert code == 2 and err == "paramio run: unknown flag '--outptu' (did you mean --output?)\n"
    code, _, err = paramio_cli("run", *flags, "--list_devices")
    assert code == 2 and "use iree-run-module --list_devices" in err


@pytest.mark.interop
def test_short_parameter_is_one_line_naming_the_file(flags, tmp_path: Path, paramio_cli, make_archive) -> None:  # type: ignore[no-untyped-def]
    short = make_archive(tmp_path / "short.irpa", w=np.array([10, 20], np.float32))
    argv = [f for f in flags if not f.startswith("--parameters=a=")] + [f"--parameters=a={short}"]
    code, out, err = paramio_cli("run", *argv)
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith(f"paramio run: parameter 'a::w' (from {short}) holds 8 bytes but the program reads 16")
    assert "\\n" not in err and "OUT_OF_RANGE" in err  # IREE's status kept, on the same line


@pytest.mark.interop
def test_missing_scope_names_the_flag_to_give(flags, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    argv = [f for f in flags if not f.startswith("--parameters=")]
    code, _, err = paramio_cli("run", *argv)
    assert code == 1 and len(err.splitlines()) == 1
    assert "reads parameters of scope 'a' and no file serves it: give --parameters=a=FILE" in err
    assert "io_parameters' not registered" not in err


@pytest.mark.interop
def test_unavailable_device_shows_the_cause(flags, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    rt = pytest.importorskip("iree.runtime")
    try:
        rt.Config("hip")
        pytest.skip("a HIP device is available here")
    except (RuntimeError, ValueError):
        pass
    code, _, err = paramio_cli("run", *flags, "--device=hip")
    assert code == 1 and len(err.splitlines()) == 1
    assert "Exception for last tried follows" not in err and "UNAVAILABLE" in err
    code, _, err = paramio_cli("run", *flags, "--device=nonsense")
    assert code == 1 and "no such device; drivers in this IREE: " in err and "local-task" in err


def test_iree_message_joins_lines_and_causes() -> None:
    try:
        try:
            raise RuntimeError("Error creating driver: x.c:1: UNAVAILABLE; no library")
        except RuntimeError as inner:
            raise RuntimeError("Could not create device. Exception for last tried follows.") from inner
    except RuntimeError as exc:
        assert iree_message(exc) == "Could not create device: x.c:1: UNAVAILABLE; no library"
    assert iree_message(IndexError("a; \n[ 0] bytecode module@2:2584 -")) == "a; [ 0] bytecode module@2:2584 -"
    assert hint("p.c:1: NOT_FOUND; no parameter found in index with key 'w'", lambda k: None).startswith(
        "no file given serves parameter 'w'"
    )


SCALARS = """
func.func @s(%a: i32, %b: f32, %x: tensor<4xf32>) -> (i32, f32, tensor<4xf32>) {
  %c = arith.addi %a, %a : i32
  %t = arith.addf %x, %x : tensor<4xf32>
  return %c, %b, %t : i32, f32, tensor<4xf32>
}
"""

SCALAR_CASES = [
    [],
    ["--output=-", "--output=@a.npy", "--output=+a.npy"],
    ["--output=@a.bin", "--output=@b.bin", "--output="],
]


@pytest.fixture(scope="module")
def scalars_vmfb(tmp_path_factory: pytest.TempPathFactory, compile_mlir) -> Path:  # type: ignore[no-untyped-def]
    return compile_mlir(SCALARS, tmp_path_factory.mktemp("scalars"), "scalars")


@pytest.mark.interop
@pytest.mark.parametrize("extra", SCALAR_CASES, ids=[" ".join(c) or "default" for c in SCALAR_CASES])
def test_scalar_inputs_and_results_like_iree_run_module(
    extra, scalars_vmfb: Path, tmp_path: Path, paramio_cli, run_tool, iree_tool, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    flags = [f"--module={scalars_vmfb}", "--function=s", "--input=5", "--input=2.5", "--input=4xf32=1"]
    theirs, mine = tmp_path / "iree", tmp_path / "paramio"
    theirs.mkdir()
    mine.mkdir()
    r = run_tool([iree_tool("iree-run-module"), *flags, *extra], cwd=theirs)
    monkeypatch.chdir(mine)
    code, out, err = paramio_cli("run", *flags, *extra)
    assert (code, out) == (r.returncode, r.stdout), err
    assert sorted(p.name for p in theirs.iterdir()) == sorted(p.name for p in mine.iterdir())
    for p in theirs.iterdir():
        assert (mine / p.name).read_bytes() == p.read_bytes(), p.name


@pytest.mark.interop
def test_scalar_expected_outputs_compare_by_value(scalars_vmfb: Path, paramio_cli, run_tool, iree_tool) -> None:  # type: ignore[no-untyped-def]
    flags = [f"--module={scalars_vmfb}", "--function=s", "--input=5", "--input=2.5", "--input=4xf32=1"]
    good = ["--expected_output=10", "--expected_output=2.5", "--expected_output=(ignored)"]
    r = run_tool([iree_tool("iree-run-module"), *flags, *good])
    assert r.returncode == 1 and "expected i32 but got i32" in r.stdout  # IREE 3.13's inverted type test
    assert paramio_cli("run", *flags, *good) == (
        0,
        "EXEC @s\n[SUCCESS] all function outputs matched their expected values.\n",
        "",
    )
    code, out, _ = paramio_cli(
        "run", *flags, "--expected_output=11", "--expected_output=2.5", "--expected_output=(ignored)"
    )
    assert code == 1 and out == "EXEC @s\n[FAILED] result[0]: i32 values differ\n  expected: 11\n  actual: 10\n"


def test_comparison_rules() -> None:
    from paramio.iree.results import Equality, compare_results

    f32 = np.float32
    ok = "[SUCCESS] all function outputs matched their expected values.\n"
    assert compare_results([np.array([np.nan, np.inf], f32)], [np.array([np.nan, np.inf], f32)], Equality()) == (
        True,
        ok,
    )
    # atol 1e-4 plus rtol 1e-5 of the expected value: 1000 vs 1000.005 passes, 1000.02 does not
    assert compare_results([np.array([1000], f32)], [np.array([1000.005], f32)], Equality())[0]
    assert not compare_results([np.array([1000], f32)], [np.array([1000.02], f32)], Equality())[0]
    assert not compare_results([np.array([1], f32)], [np.array([1.00001], f32)], Equality("exact"))[0]
    assert compare_results([np.zeros((0, 4), f32)], [np.zeros((0, 4), f32)], Equality()) == (True, ok)
    assert compare_results([None, np.array([1], np.int8)], [np.array([9], f32), np.array([1], np.int8)], Equality())[0]
    assert compare_results([np.array([1], f32)], [], Equality()) == (
        False,
        "[FAILED] expected 1 list elements but 0 provided\n",
    )

"""IREE's own Python tests of its parameter API, run unchanged against paramio.

The files in data/iree_io/ are IREE's ``io_test.py`` and ``io_runtime_test.py`` (see its
NOTICE.md). Each is executed as written; only the module its global ``rt`` names is chosen
here: ``iree.runtime`` (the control: the files pass on IREE itself) or ``paramio``.
``io_runtime_test.py`` also uses IREE's VM (``VmInstance``, ``Config``, ``load_vm_modules``...),
which paramio does not replace: there ``rt`` is paramio for every parameter name and IREE for
the rest, the way a program mixes them.
"""

from __future__ import annotations

import types
import unittest
import warnings
from pathlib import Path

import pytest

import paramio

DATA = Path(__file__).parent / "data" / "iree_io"
#: The parameter API's names (iree-behaviour.md section 3), all served by paramio.
PARAMETER_NAMES = (
    "FileHandle",
    "ParameterIndex",
    "ParameterIndexEntry",
    "ParameterProvider",
    "SplatValue",
    "create_io_parameters_module",
    "parameter_index_add_numpy_ndarray",
    "parameter_index_entry_as_numpy_flat_ndarray",
    "parameter_index_entry_as_numpy_ndarray",
    "save_archive_file",
)


def _load(name: str) -> types.ModuleType:
    """IREE's test file as a module, executed from its own text (its ``__file__`` in data/, so
    it finds its testdata/)."""
    path = DATA / name
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


def _mixed(rt: types.ModuleType) -> types.SimpleNamespace:
    """IREE's runtime with every parameter name taken from paramio."""
    ns = types.SimpleNamespace(**{k: getattr(rt, k) for k in dir(rt) if not k.startswith("__")})
    for name in PARAMETER_NAMES:
        setattr(ns, name, getattr(paramio, name))
    return ns


def _run(module: types.ModuleType, case: str) -> unittest.TestResult:
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(getattr(module, case))
    result = unittest.TestResult()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paramio.FormatWarning)  # the GGUF file repeats a key
        suite.run(result)
    return result


def _problems(result: unittest.TestResult) -> list[str]:
    return [f"{t.id()}: {text}" for t, text in [*result.failures, *result.errors]]


@pytest.mark.interop
@pytest.mark.parametrize("target", ["iree", "paramio"])
def test_io_test_runs_unchanged(target: str) -> None:
    rt = pytest.importorskip("iree.runtime")
    module = _load("io_test.py")
    assert module.rt is rt  # the file imported IREE itself
    if target == "paramio":
        module.rt = paramio
    result = _run(module, "ParameterApiTest")
    assert result.testsRun == 11 and not result.skipped  # 12 defined, one name twice
    assert _problems(result) == []


@pytest.mark.interop
@pytest.mark.parametrize("target", ["iree", "paramio"])
def test_io_runtime_test_runs_on_paramio_parameters(target: str) -> None:
    rt = pytest.importorskip("iree.runtime")
    pytest.importorskip("iree.compiler")
    module = _load("io_runtime_test.py")
    if target == "paramio":
        module.rt = _mixed(rt)
        assert module.rt.ParameterIndex is paramio.ParameterIndex
    result = _run(module, "ParameterTest")
    assert result.testsRun == 1
    assert _problems(result) == []


def test_parameter_names_all_exist_in_paramio() -> None:
    missing = [n for n in PARAMETER_NAMES if not hasattr(paramio, n)]
    assert missing == []


@pytest.fixture(scope="module")
def echo_program() -> types.ModuleType:
    """io_runtime_test.py loaded once, so its program compiles once for the tests below."""
    pytest.importorskip("iree.runtime")
    pytest.importorskip("iree.compiler")
    return _load("io_runtime_test.py")


@pytest.mark.interop
@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_providers_from_files_outlive_their_paramio_index(
    tmp_path: Path, fmt: str, echo_program: types.ModuleType
) -> None:
    """io_runtime_test's program, its parameters read from files in each format by paramio;
    the paramio indices are dropped before the program runs (IREE holds what it reads)."""
    import gc

    import iree.runtime as rt
    import numpy as np

    module = echo_program
    values = {
        "a": {"a0": np.full(4, 1, np.int64), "a1": np.full(4, 2, np.int64)},
        "b": {"b0": np.full(8, 3, np.int64), "b1": np.full(8, 4, np.int64)},
    }
    providers = []
    for scope, arrays in values.items():
        src = paramio.ParameterIndex()
        for k, v in arrays.items():
            src.add_array(k, v)
        path = tmp_path / f"{scope}.{fmt}"
        paramio.write_path(path, src.values(), on_loss="ignore")
        index = paramio.ParameterIndex()
        index.load(str(path), **({"mode": "file_async"} if scope == "b" else {}))
        providers.append(index.create_provider(scope=scope))
        del index, src
    gc.collect()
    instance = rt.VmInstance()
    device = rt.get_device(module.iree.compiler.core.DEFAULT_TESTING_DRIVER)
    modules = rt.load_vm_modules(
        paramio.create_io_parameters_module(instance, *providers),
        rt.create_hal_module(instance, device),
        module.create_mm_test_module(instance),
        config=rt.Config(device=device),
    )
    got = [r.to_host() if hasattr(r, "to_host") else np.asarray(r) for r in modules[-1].echo()]
    expected = [values["a"]["a0"], values["a"]["a1"], values["b"]["b0"], values["b"]["b1"]]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)

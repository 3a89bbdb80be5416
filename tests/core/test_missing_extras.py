"""A missing optional package is one error, `MissingExtraError`, and one CLI line (issue 23, item 5).

Before, it was reported five ways: a bare ``ImportError`` (torch, JAX, CuPy, iree.runtime), a
``MissingExtraError`` private to the URL registry, ``MissingCompilerError`` (MLIR),
``UnsupportedFormatError`` (GGUF dequantisation) and a ``TypeError`` (``paramio.ParameterProvider``
without IREE); the CLI printed ``paramio load: unexpected ImportError: torch is not installed ...``,
and the guide's page test failed instead of skipping where torch was absent.

Absence is simulated in a fresh interpreter by a meta-path finder that refuses the package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import MissingExtraError, ParamioError, import_extra

ROOT = Path(__file__).resolve().parents[2]
SRC = str(ROOT / "src")

_BLOCKER = """
import sys
class _Absent:
    def __init__(self, names):
        self.names = names
    def find_spec(self, name, path=None, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Absent({absent!r}))
"""


def _python(
    absent: tuple[str, ...], body: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    code = _BLOCKER.format(absent=absent) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "m.irpa"
    paramio.save_archive_file({"w": np.arange(8, dtype=np.float32)}, str(path))
    return path


def test_the_error_is_an_import_error_naming_the_extra() -> None:
    err = MissingExtraError("torch", package="torch")
    assert isinstance(err, ImportError) and isinstance(err, ParamioError)
    assert err.extra == "torch" and err.name == "torch"
    assert str(err) == "torch is not installed: pip install 'paramio[torch]'"
    assert err.advice == "needs the torch extra: pip install 'paramio[torch]'"
    assert paramio.MissingExtraError is MissingExtraError
    with pytest.raises(MissingExtraError, match=r"paramio\[nope\]"):
        import_extra("paramio_no_such_package", "nope")
    assert import_extra("json", "none").dumps([1]) == "[1]"


def test_an_import_error_inside_an_installed_package_is_not_renamed(tmp_path: Path) -> None:
    (tmp_path / "brokenpkg.py").write_text("import paramio_no_such_dependency\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ModuleNotFoundError) as info:
            import_extra("brokenpkg", "broken")
        assert not isinstance(info.value, MissingExtraError)
        assert info.value.name == "paramio_no_such_dependency"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("brokenpkg", None)


@pytest.mark.parametrize(
    ("absent", "call", "extra"),
    [
        (("torch",), "paramio.load(path, into='torch')", "torch"),
        (("jax",), "paramio.load(path, into='jax')", "jax"),
        (("cupy",), "paramio.load(path, into='cupy')", "cupy"),
        (("iree",), "paramio.load(path, into='iree')", "iree"),
        (("iree",), "paramio.ParameterProvider()", "iree"),
        (("iree",), "paramio.ParameterIndex.open(path).create_provider()", "iree"),
        (("iree",), "paramio.mlir.MlirModule.parse('module {}')", "iree"),
        (("obstore",), "paramio.ParameterIndex.open('s3://bucket/m.irpa')", "remote"),
    ],
)
def test_every_missing_package_raises_the_one_error(
    archive: Path, absent: tuple[str, ...], call: str, extra: str
) -> None:
    r = _python(
        absent,
        f"""
        import paramio
        path = sys.argv[1]
        try:
            {call}
        except paramio.MissingExtraError as e:
            print("MISSING", e.extra, isinstance(e, ImportError))
        """,
        str(archive),
    )
    assert r.stdout.strip().splitlines()[-1:] == [f"MISSING {extra} True"], r.stderr


def test_dequantising_without_gguf_raises_the_one_error() -> None:

    gguf = pytest.importorskip("gguf")
    del gguf
    r = _python(
        ("gguf",),
        """
        import paramio
        from paramio.core.entry import EntryKind, ParameterEntry
        from paramio.core.tensor import TensorInfo
        from paramio.formats.gguf.dequant import dequantize
        e = ParameterEntry(key="q", kind=EntryKind.SPLAT, pattern=b"\\0", length=18, declared_tensor=TensorInfo(dtype="gguf.q4_0", shape=(32,)))
        try:
            dequantize(e)
        except paramio.MissingExtraError as exc:
            print("MISSING", exc.extra, str(exc))
        """,
    )
    last = r.stdout.strip().splitlines()[-1:] or [r.stderr]
    assert last[0] == "MISSING gguf dequantising Q4_0 needs the gguf package: pip install 'paramio[gguf]'", r.stderr


def test_the_cli_prints_one_line_and_exits_1(archive: Path) -> None:
    r = _python(
        ("torch",),
        """
        from paramio.cli.main import main
        sys.exit(main(["load", f"--parameters={sys.argv[1]}", "--into=torch"]))
        """,
        str(archive),
    )
    assert r.returncode == 1
    assert r.stderr == "paramio load: needs the torch extra: pip install 'paramio[torch]'\n"


def test_the_guide_page_test_skips_when_torch_is_absent(tmp_path: Path) -> None:
    """tests/docs/test_guide_pages.py[loading.md] skips, naming the extra, where torch is absent
    (before: it failed with an ImportError)."""
    pytest.importorskip("torch")  # the page's blocks run only where the rest of it can
    r = _python(
        ("torch",),
        """
        import pytest
        sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-rs", sys.argv[1], "-k", "loading.md"]))
        """,
        str(ROOT / "tests" / "docs" / "test_guide_pages.py"),
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout[-3000:]
    assert "1 skipped" in r.stdout and "loading.md needs the torch extra, which is not installed" in r.stdout, r.stdout[
        -3000:
    ]

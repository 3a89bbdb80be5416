"""Ray is the optional ``ray`` extra (issue 28): without ``engine="ray"`` nothing imports it (a
convert, a digest, the scale-out package itself), and with it but Ray absent the error names the
extra. Absence is simulated in a fresh interpreter by a meta-path finder refusing the package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import paramio

SRC = str(Path(__file__).resolve().parents[2] / "src")

_BLOCKER = """
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
if BLOCK:
    sys.meta_path.insert(0, _Absent())
"""


def _python(body: str, *args: str, block: bool) -> subprocess.CompletedProcess[str]:
    code = _BLOCKER.replace("BLOCK", str(block)) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "m.irpa"
    paramio.save_archive_file({"w": np.arange(8, dtype=np.float32)}, str(path))
    return path


def test_nothing_imports_ray_without_engine_ray(archive: Path, tmp_path: Path) -> None:
    done = _python(
        """
        import sys, paramio, paramio.scaleout, paramio.scaleout.convert, paramio.scaleout.digest
        paramio.convert(sys.argv[1], sys.argv[2], max_shard_size=16)
        paramio.digest(sys.argv[1])
        from paramio.cli.main import main
        assert main(["digest", sys.argv[1], "--json"]) == 0
        print("ray" in sys.modules)
        """,
        str(archive),
        str(tmp_path / "out.irpa"),
        block=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_engine_ray_without_ray_names_the_extra(archive: Path, tmp_path: Path) -> None:
    done = _python(
        """
        import sys, paramio
        for call in (
            lambda: paramio.convert(sys.argv[1], sys.argv[2], engine="ray"),
            lambda: paramio.digest(sys.argv[1], engine="ray"),
        ):
            try:
                call()
            except paramio.MissingExtraError as exc:
                print(exc.extra, "|", exc)
        """,
        str(archive),
        str(tmp_path / "out.irpa"),
        block=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("ray | engine='ray' needs Ray: pip install 'paramio[ray]'")
    assert not (tmp_path / "out.irpa").exists()


def test_an_unknown_engine_is_refused_before_anything_runs(archive: Path, tmp_path: Path) -> None:
    with pytest.raises(paramio.InvalidArgumentError, match="engine='spark': expected one of local, ray"):
        paramio.convert(str(archive), str(tmp_path / "o.irpa"), engine="spark")
    with pytest.raises(paramio.InvalidArgumentError, match="engine='spark'"):
        paramio.digest(str(archive), engine="spark")
    assert not (tmp_path / "o.irpa").exists()

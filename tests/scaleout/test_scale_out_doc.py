"""docs/scale-out.md runs, every block in order, in an empty folder after the guide's first step
(`tests/docs/guide_runner.py`'s rules), in an interpreter of its own: its blocks start a local
Ray (``ray.init``) and stop it, and after that a process cannot start actors on another cluster
(Ray 2.60: "the actor died ... before it started running"), which would break the scale-out tests
that run in this one on the two-node cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "scale-out.md"

pytestmark = pytest.mark.slow


def test_the_page_runs_in_a_fresh_interpreter(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the page needs the ray extra")
    code = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT / "tests" / "docs")!r})
        from guide_inputs import make_inputs
        from guide_runner import blocks, run_page
        folder = Path({str(tmp_path)!r})
        make_inputs(folder)
        os.chdir(folder)
        ran = run_page(Path({str(PAGE)!r}), lambda name: name)
        print("ran", ran, "of", len([b for b in blocks(Path({str(PAGE)!r}).read_text()) if b.lang == "python"]))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)  # the page starts its own Ray
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    last = done.stdout.strip().splitlines()[-1].split()
    assert last[0] == "ran" and int(last[1]) == int(last[3]) >= 5, done.stdout

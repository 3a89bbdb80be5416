"""The files every page of the guide starts from, made as a reader makes them: the one command
``paramio example --make_inputs=.`` that getting-started.md gives first, run in an empty folder.
Nothing else is put in a page's folder: a page that needs another file makes it itself."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The command a reader runs first, as getting-started.md shows it.
FIRST_STEP = ["example", "--make_inputs=."]


def make_inputs(folder: Path) -> None:
    """Run the guide's first step in `folder` (the current directory is restored after)."""
    from paramio.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(folder), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(FIRST_STEP)
    assert code == 0, err.getvalue()

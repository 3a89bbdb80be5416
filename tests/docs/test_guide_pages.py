"""Every code block of every page of the guide runs (the rules: `guide_runner`'s docstring).

Pages with a doc test of their own are run by it instead, because their blocks follow that page's
conventions (listed in `OWN_TESTS` with the test that runs them); this test checks those tests
exist. A page that is a notebook (jupytext front matter) runs as one, through nbclient.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from guide_runner import DATA, RUN, blocks, commands, matches, run_page

from paramio.core.errors import MissingExtraError

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

#: Pages whose blocks another test runs, with the reason that test stays its own.
OWN_TESTS = {
    "architecture.md": (
        "tests/docs/test_architecture_doc.py",
        "its conformance class is collected by pytest, and the format it registers is removed after",
    ),
    "cli.md": ("tests/cli/test_docs_examples.py", "it runs the README's blocks too, whose fences follow its rules"),
    "mlir.md": (
        "tests/mlir/test_docs.py",
        "its MLIR blocks list lines a written file must contain, and it runs iree-opt",
    ),
    "sources.md": ("tests/sources/test_sources_doc.py", "its conformance class is collected by pytest"),
    "scale-out.md": (
        "tests/scaleout/test_scale_out_doc.py",
        "it starts a local Ray, which it runs in an interpreter of its own: after a local ray.init, a "
        "process cannot start actors on another cluster (the scale-out tests' cluster)",
    ),
}


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def is_notebook(page: Path) -> bool:
    return page.read_text().startswith("---\njupyter:")


PLAIN = [p for p in pages() if p.name not in OWN_TESTS and not is_notebook(p)]
NOTEBOOKS = [p for p in pages() if is_notebook(p)]


def _id(p: Path) -> str:
    return str(p.relative_to(DOCS))


#: Optional packages a page may import (torch is installed apart from the test extra, by
#: scripts/setup-venv.sh when it can): a page using one skips, naming it, where it is missing.
OPTIONAL = {"torch", "iree", "jax"}


@pytest.mark.interop
@pytest.mark.parametrize("page", PLAIN, ids=_id)
def test_every_block_runs(page: Path, page_folder: Path, iree_tool: Callable[[str], str]) -> None:
    try:
        run_page(page, iree_tool)
    except MissingExtraError as e:  # paramio's one error for an absent optional package
        pytest.skip(f"{page.name} needs the {e.extra} extra, which is not installed")
    except ModuleNotFoundError as e:  # the page's own import of one
        if e.name not in OPTIONAL:
            raise
        pytest.skip(f"{page.name} uses {e.name}, which is not installed")


@pytest.mark.slow
@pytest.mark.interop
@pytest.mark.parametrize("page", NOTEBOOKS, ids=_id)
def test_notebook_runs(page: Path, page_folder: Path) -> None:
    jupytext = pytest.importorskip("jupytext", reason="the notebook is kept as jupytext Markdown")
    nbclient = pytest.importorskip("nbclient", reason="the notebook runs through nbclient")
    pytest.importorskip("ipykernel", reason="the notebook runs in an ipykernel")
    nb = jupytext.reads(page.read_text(), fmt="md")
    assert sum(c.cell_type == "code" for c in nb.cells) >= 5
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(page_folder)}}
    ).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_pages_with_their_own_tests_have_them() -> None:
    for name, (test, _) in OWN_TESTS.items():
        assert (DOCS / name).exists(), name
        assert name in (ROOT / test).read_text(), f"{test} does not run {name}"


def test_every_fence_says_what_it_is() -> None:
    for page in pages():
        for block in blocks(page.read_text()):
            assert block.lang in RUN | DATA | {"mlir"} or page.name in OWN_TESTS, (
                f"{page.name}:{block.line}: {block.lang!r}"
            )


def test_every_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r"([\w./-]+\.md)", nav))
    assert {_id(p) for p in pages()} == listed


def test_the_runner_compares_output() -> None:
    """The rules themselves: ``...`` matches any run of lines, anything else must be equal."""
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["..."], [])
    assert not matches(["a", "b"], ["a", "c"])
    assert not matches(["a"], ["a", "extra"])
    assert matches(["error: x [IREE: ..."], ["error: x [IREE: c/runtime/...: NOT_FOUND]"])
    assert not matches(["error: x [IREE: ..."], ["error: y [IREE: c/runtime/...: NOT_FOUND]"])
    (cmd,) = commands("$ paramio verify \\\n    x.irpa  # exit 1\nerror: x\n", prompt=True)
    assert (cmd.line, cmd.exit, cmd.output) == ("paramio verify x.irpa", 1, ["error: x"])


def test_a_wrong_shown_output_fails(tmp_path: Path, page_folder: Path, iree_tool: Callable[[str], str]) -> None:
    page = tmp_path / "wrong.md"
    page.write_text("```console\n$ paramio verify model.safetensors\nnot what it prints\n```\n")
    with pytest.raises(AssertionError, match="the output differs"):
        run_page(page, iree_tool)


def test_a_block_marked_not_run_is_skipped_and_others_run(tmp_path: Path, iree_tool: Callable[[str], str]) -> None:
    page = tmp_path / "marked.md"
    page.write_text(
        "<!-- not run: it would fail -->\n```python\nraise RuntimeError\n```\n\n```python\nran = True\n```\n"
    )
    assert run_page(page, iree_tool) == 1
    page.write_text("```python\nassert 1 == 2\n```\n")
    with pytest.raises(AssertionError):
        run_page(page, iree_tool)


def test_a_fence_without_a_language_is_refused(tmp_path: Path, iree_tool: Callable[[str], str]) -> None:
    page = tmp_path / "bare.md"
    page.write_text("```\nsomething\n```\n")
    with pytest.raises(AssertionError, match="must name its language"):
        run_page(page, iree_tool)

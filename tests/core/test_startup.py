"""Start-up: ``import paramio``, ``paramio --help`` and each command's ``--help`` import only
what they use (issue 12). Checked in a fresh interpreter per case, by the modules it leaves in
``sys.modules``; no timings (benchmarks/startup.py measures those)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import paramio
from paramio.cli.main import BODIES, COMMANDS

SRC = str(Path(paramio.__file__).resolve().parents[1])

#: Imported by no start-up path: each costs 0.1-1 s or needs an optional extra.
HEAVY = ("numpy", "ml_dtypes", "iree", "torch", "obstore", "jax", "safetensors", "gguf", "asyncio")

#: Command -> the paramio subpackages its module tree imports at ``--help`` (beyond `paramio.cli`).
#: A command that names none of the rest must not import them: ``which`` brings no mlir or sharding.
LIGHT = {"core", "formats"}
TREES = {command: LIGHT for command in COMMANDS}

#: The modules are read right after `body`, before the probe imports `json` to print them
#: (`io` and `sys` are a bare interpreter's already), so a body's own imports are what it shows.
_PROBE = """\
import io, sys
{body}
seen = sorted(sys.modules)
import json
print(json.dumps(seen), file=sys.__stderr__)
"""


def _modules_after(body: str, tmp_path: Path) -> set[str]:
    """The module names a fresh interpreter holds after running `body` (cwd: `tmp_path`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    env["PYTHONPATH"] = SRC
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _cli(args: list[str]) -> str:
    return (
        "from paramio.cli.main import main\n"
        "sys.stdout = io.StringIO()\n"  # as `contextlib.redirect_stdout`, which the probe must not import
        f"code = main({args!r})\n"
        "sys.stdout = sys.__stdout__\n"
        "assert code == 0, code\n"
    )


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith("paramio.mlir._bindings"))


def _subpackages(modules: set[str]) -> set[str]:
    return {m.split(".")[1] for m in modules if m.startswith("paramio.") and not m.startswith("paramio.cli")}


def test_import_paramio_imports_nothing_heavy(tmp_path: Path) -> None:
    modules = _modules_after("import paramio", tmp_path)
    assert _heavy(modules) == []
    assert _subpackages(modules) == {"core"}


def test_paramio_help_imports_only_the_command_table(tmp_path: Path) -> None:
    modules = _modules_after(_cli(["--help"]), tmp_path)
    assert _heavy(modules) == []
    assert {m for m in modules if m.startswith("paramio")} == {
        "paramio",
        "paramio.core",
        "paramio.core.exports",
        "paramio.cli",
        "paramio.cli.main",
    }


def test_every_command_is_pinned() -> None:
    assert set(TREES) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_imports_only_its_own_tree(command: str, tmp_path: Path) -> None:
    modules = _modules_after(_cli([command, "--help"]), tmp_path)
    heavy = {m.split(".")[0] for m in _heavy(modules)}
    assert heavy == set(), heavy
    assert _subpackages(modules) == TREES[command]
    assert COMMANDS[command][0] in modules
    others = {COMMANDS[c][0] for c in COMMANDS if c != command} | set(BODIES.values())
    assert modules & others == set()  # no other command, and a body only once it runs


@pytest.mark.parametrize("command", sorted(BODIES))
def test_a_deferred_body_is_imported_when_its_command_runs(command: str, tmp_path: Path) -> None:
    """`BODIES` is what makes ``--help`` light; a run (here a usage error from the body's checks
    or a run on no input) must still reach the body."""
    body = (
        "import contextlib\n"
        "from paramio.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = main([{command!r}])\n"
    )
    modules = _modules_after(body, tmp_path)
    assert BODIES[command] in modules


def test_public_names_resolve_on_first_use(tmp_path: Path) -> None:
    """Every name in ``__all__`` imports from the lazy package, and is the defining module's object."""
    body = (
        "import importlib, paramio\n"
        "from paramio import ParameterIndex\n"
        "assert 'paramio.index.index' in sys.modules\n"
        "for name in paramio.__all__:\n"
        "    value = getattr(paramio, name)\n"
        "    where = paramio._LAZY.get(name)\n"
        "    if where is not None:\n"
        "        assert getattr(importlib.import_module(where[0]), where[1]) is value, name\n"
        "assert set(paramio.__all__) <= set(dir(paramio))\n"
        "for package in ('paramio.arrays', 'paramio.formats', 'paramio.index'):\n"
        "    pkg = importlib.import_module(package)\n"
        "    for name in pkg.__all__:\n"
        "        value = getattr(pkg, name)\n"
        "        assert getattr(paramio, name, value) is value, (package, name)\n"
    )
    modules = _modules_after(body, tmp_path)
    assert "paramio.sharding" in modules and "paramio.loading" in modules


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'paramio' has no attribute 'nope'"):
        paramio.nope  # noqa: B018
    index = importlib.import_module("paramio.index")
    with pytest.raises(AttributeError, match="module 'paramio.index' has no attribute 'nope'"):
        index.nope  # noqa: B018


#: What only writing, remote sources, progress bars, `verify` or extracting need: a listing
#: (``paramio dump FILE``) imports none of it (issue 22: the dump as a process).
NOT_FOR_A_LISTING = (
    "paramio.formats.output",
    "paramio.formats.output_set",
    "paramio.formats.sets.writing",
    "paramio.formats.irpa.writer",
    "paramio.formats.irpa.structure",
    "paramio.formats.safetensors.writer",
    "paramio.formats.gguf.writer",
    "paramio.formats.gguf.dequant",
    "paramio.formats.progress",
    "paramio.formats.targets",
    "paramio.formats.verify",
    "paramio.formats.overlaps",
    "paramio.sources.workers",
    "paramio.sources.retry",
    "concurrent.futures",
    "logging",
    "ctypes",
    "urllib.parse",
    "base64",
    "uuid",
    "tempfile",
    "subprocess",
    "shutil",
    "traceback",
)

#: The most modules ``paramio dump FILE`` of a plain file may add to a bare interpreter's (was
#: 145-147 with every format's writer side; 90-92 for IRPA, safetensors, GGUF when this bound
#: was set, 135-136 again before issue 22's start-up work; counted from an interpreter that has
#: imported only `io` and `sys`). Raise it only with a reason: each module is start-up time
#: (benchmarks/startup.py).
DUMP_MODULES = {"irpa": 61, "safetensors": 64, "gguf": 64}

#: What a dump of a plain file never imports (issue 22): the standard library's costly modules
#: (`typing`, `contextlib`, `importlib`, `dataclasses` with `inspect`, `ast`, `dis`, `tokenize`; `threading`,
#: which `_thread`'s locks stand in for; `signal`, which `_signal` does; `contextvars`, made when
#: remote options are first given), and paramio's modules for sets, URLs, in-memory buffers,
#: ``--json`` and ``--metadata``, which a plain file's listing does not use.
NOT_ON_A_DUMP = (
    "typing",
    "contextlib",
    "importlib",
    "dataclasses",
    "inspect",
    "ast",
    "dis",
    "tokenize",
    "threading",
    "signal",
    "contextvars",
    "copy",
    "weakref",
    "fcntl",
    "resource",
    "errno",
    "paramio.formats.sets.member_source",
    "paramio.formats.sets.reading",
    "paramio.formats.sets.names",
    "paramio.formats.members",
    "paramio.sources.registry",
    "paramio.sources.memory",
    "paramio.core.buffers",
    "paramio.cli.metadata",
    "paramio.cli.jsonout",
)
#: A format's own: `paramio.core.jsontext` decodes JSON (a safetensors header, a carried record,
#: ``TENSORv0`` metadata) without `json`, and patterns compile (importing `re`) where a text needs
#: one (a safetensors header with a ``\\u`` escape or a ``-0``, a key to escape).
NOT_ON_A_DUMP_OF = {"irpa": ("json", "re", "math"), "safetensors": ("json", "re"), "gguf": ("json", "re", "math")}


@pytest.fixture(scope="module")
def listed_files(tmp_path_factory: pytest.TempPathFactory, make_archive: Callable[..., Path]) -> dict[str, Path]:
    import numpy as np

    folder = tmp_path_factory.mktemp("dump")
    arrays: dict[str, object] = {f"layer.{i}.weight": np.full(4, i, np.float32) for i in range(7)}
    # An untyped entry: safetensors and GGUF carry what they cannot say of it in a JSON record,
    # which their listing decodes (as files converted from IRPA hold, benchmarks/startup.py's too).
    arrays["layer.7.weight"] = b"\x07" * 16
    irpa = make_archive(folder / "m.irpa", **arrays)
    entries = paramio.read_path(irpa).entries
    files = {"irpa": irpa}
    for fmt in ("safetensors", "gguf"):
        files[fmt] = folder / f"m.{fmt}"
        paramio.write_path(files[fmt], entries, on_loss="ignore")
    return files


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_dump_of_a_file_imports_no_writer_and_few_modules(
    fmt: str, listed_files: dict[str, Path], tmp_path: Path
) -> None:
    path = listed_files[fmt]
    modules = _modules_after(_cli(["dump", str(path)]), tmp_path)
    bare = _modules_after("", tmp_path)
    assert "paramio.cli.dump" in modules and f"paramio.formats.{fmt}" in modules
    assert _heavy(modules) == []
    assert sorted(m for m in modules if m.startswith(NOT_FOR_A_LISTING)) == []
    assert sorted(modules & {*NOT_ON_A_DUMP, *NOT_ON_A_DUMP_OF[fmt]}) == []
    added = modules - bare
    assert len(added) <= DUMP_MODULES[fmt], sorted(added)


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
@pytest.mark.parametrize("form", ["bare", "flag", "scoped"])
def test_each_way_of_naming_a_file_lists_it_alike(
    fmt: str, form: str, listed_files: dict[str, Path], tmp_path: Path
) -> None:
    """``dump FILE``, ``--parameters=FILE`` and ``--parameters=scope=FILE`` import the same light
    tree (no set, URL or JSON module) and list the file."""
    path = str(listed_files[fmt])
    arg = {"bare": path, "flag": f"--parameters={path}", "scoped": f"--parameters=m={path}"}[form]
    body = (
        "from paramio.cli.main import main\n"
        "sys.stdout = out = io.StringIO()\n"
        f"code = main(['dump', {arg!r}])\n"
        "sys.stdout = sys.__stdout__\n"
        "assert code == 0, code\n"
        "assert out.getvalue().count('layer.') == 8, out.getvalue()\n"
    )
    modules = _modules_after(body, tmp_path)
    assert sorted(modules & {*NOT_ON_A_DUMP, *NOT_ON_A_DUMP_OF[fmt]}) == []


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_a_dump_of_a_set_member_or_manifest_still_opens_the_set(
    fmt: str, listed_files: dict[str, Path], tmp_path: Path
) -> None:
    """The set modules a plain file's dump leaves out are still imported where a set is opened:
    a member (or the manifest) lists every member's entries."""
    folder = tmp_path / "set"
    folder.mkdir()
    entries = paramio.read_path(listed_files["irpa"]).entries
    manifest = {"irpa": "m.irpa.index.json", "safetensors": "m.safetensors.index.json", "gguf": None}[fmt]
    target = folder / (manifest or f"m.{fmt}")
    paramio.write_path(target, entries, max_shard_size=32)
    members = sorted(p.name for p in folder.iterdir() if "-of-" in p.name)
    assert len(members) >= 2, members
    opened = [folder / members[-1]] + ([target] if manifest else [])
    for path in opened:
        body = (
            "from paramio.cli.main import main\n"
            "sys.stdout = out = io.StringIO()\n"
            f"code = main(['dump', {str(path)!r}])\n"
            "sys.stdout = sys.__stdout__\n"
            "assert code == 0, code\n"
            "assert sorted(set(l.split()[-1].strip('`') for l in out.getvalue().splitlines() if 'layer.' in l)) == "
            + repr(sorted(e.key for e in entries))
            + ", out.getvalue()\n"
        )
        modules = _modules_after(body, tmp_path)
        assert {"paramio.formats.sets.reading", "paramio.formats.sets.member_source"} <= modules, path.name


def test_the_deferred_writer_side_still_writes_and_is_introspected(
    listed_files: dict[str, Path], tmp_path: Path
) -> None:
    """The formats register their writers without importing them (`contract.deferred`): the
    options a writer takes come from its own signature, the names stay importable, and a write
    through the registry (the first use) imports the writer and writes."""
    source = str(listed_files["irpa"])
    body = (
        "import paramio\n"
        "from paramio.formats.registry import writer_options\n"
        "for name in ('irpa', 'safetensors', 'gguf'):\n"
        "    assert {'alignment', 'durable', 'progress', 'max_shard_size'} <= writer_options(name), name\n"
        "entries = paramio.read_path(" + repr(source) + ").entries\n"
        "for ext in ('irpa', 'safetensors', 'gguf'):\n"
        "    paramio.write_path('out.' + ext, entries)\n"
        "    assert [e.key for e in paramio.read_path('out.' + ext).entries] == [e.key for e in entries], ext\n"
        "from paramio.formats.irpa import check_structure, write_path\n"
        "from paramio.formats.safetensors import plan_file\n"
        "from paramio.formats.gguf import dequantize, write_gguf\n"
        "import paramio.formats.irpa.writer as w\n"
        "assert write_path is w.write_path and callable(plan_file) and callable(write_gguf) and callable(dequantize)\n"
        "assert check_structure(paramio.read_path('out.irpa')) == []\n"
    )
    modules = _modules_after(body, tmp_path)
    assert {"paramio.formats.irpa.writer", "paramio.formats.gguf.writer", "paramio.formats.output"} <= modules


#: Commands whose ``--help`` imports the sharding layer (its plans are dataclasses).
_HELP_WITH_DATACLASSES = {"shard", "merge"}


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - _HELP_WITH_DATACLASSES))
def test_command_help_imports_no_dataclasses(command: str, tmp_path: Path) -> None:
    """The flag layer is plain classes: `dataclasses` and the `inspect`, `ast`, `dis` it imports
    were a quarter of a command's ``--help`` (benchmarks/startup.py)."""
    modules = _modules_after(_cli([command, "--help"]), tmp_path)
    assert {"dataclasses", "inspect"} & modules == set()


#: The only ``@dataclass`` classes a listing may build (``paramio dump FILE``; it built 15-18 before
#: `paramio.core.records`): the decorator generates and compiles each class's methods, about 0.5 ms
#: apiece on every run. None: `TensorInfo`, `Format` and `FormatContents` are records too, changed
#: by their own ``replace``.
DUMP_DATACLASSES: set[str] = set()

_COUNT_DATACLASSES = """
import dataclasses
built = sorted(
    f"{module.__name__}.{value.__qualname__}"
    for name, module in list(sys.modules.items()) if name.startswith("paramio")
    for value in vars(module).values()
    if isinstance(value, type) and value.__module__ == name and dataclasses.is_dataclass(value)
)
print(json.dumps(built), file=sys.__stderr__)
"""


@pytest.mark.parametrize("fmt", ["irpa", "safetensors", "gguf"])
def test_dump_of_a_file_builds_few_dataclasses(fmt: str, listed_files: dict[str, Path], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    env["PYTHONPATH"] = SRC
    body = _cli(["dump", str(listed_files[fmt])]) + _COUNT_DATACLASSES
    done = subprocess.run(
        [sys.executable, "-c", "import contextlib, io, json, sys\n" + body],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    built = json.loads(done.stderr.strip().splitlines()[-1])
    records = {"core.planner.Span", "core.planner.Request", "core.dtypes.DType", "sources.paths.Confinement"}
    records |= {"formats.safetensors.header.TensorRecord", "formats.safetensors.layout.StDType"}
    records |= {"formats.contract.FileMetadata", "formats.contract.SetLayout", "formats.conversion.Loss"}
    records |= {"formats.gguf.constants.GGMLType", "formats.gguf.reader.GGUFFile"}
    assert {"paramio." + name for name in records} & set(built) == set()
    assert set(built) <= DUMP_DATACLASSES, built


def test_the_cli_installs_and_names_its_signal_handlers_without_signal_or_threading(tmp_path: Path) -> None:
    """Every command starts inside `unwinding_on_signals`: it installs its handlers through the
    builtin `_signal`, and names the signal that stopped a command without importing `signal`
    (whose enums need `enum`; a handler may run while the main thread is importing `enum`)."""
    body = (
        "import _signal, os\n"
        "from paramio.cli.signals import Terminated, unwinding_on_signals\n"
        "with unwinding_on_signals():\n"
        "    assert _signal.getsignal(_signal.SIGTERM) not in (_signal.SIG_DFL, _signal.SIG_IGN)\n"
        "    try:\n"
        "        os.kill(os.getpid(), _signal.SIGHUP)\n"
        "        for _ in range(10**6):\n"
        "            pass\n"
        "    except Terminated as exc:\n"
        "        assert (str(exc), exc.exit_status) == ('terminated by SIGHUP', 128 + _signal.SIGHUP)\n"
        "    else:\n"
        "        raise AssertionError('no Terminated')\n"
        "assert _signal.getsignal(_signal.SIGTERM) == _signal.SIG_DFL\n"
    )
    modules = _modules_after(body, tmp_path)
    assert {"signal", "threading", "enum", "contextlib"} & modules == set()

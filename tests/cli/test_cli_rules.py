"""One set of rules for every command (issue 25): each rule is checked over every command, so a
new command or flag that breaks it fails here, not in a user's script."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from paramio.cli.flags import Flag, canonical_name, format_help
from paramio.cli.main import COMMANDS
from paramio.index.index import ParameterIndex

Cli = Callable[..., tuple[int, str, str]]

#: mlir's subcommands have flag tables of their own.
MLIR = {"mlir export": "EXPORT_FLAGS", "mlir import": "IMPORT_FLAGS", "mlir declare": "DECLARE_FLAGS"}


def command_flags() -> Iterator[tuple[str, tuple[Flag, ...]]]:
    """(command, its flags) for every command that parses IREE-style flags."""
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        if name == "mlir":
            for sub, table in MLIR.items():
                yield sub, tuple(getattr(module, table))
        elif hasattr(module, "FLAGS"):
            yield name, tuple(module.FLAGS)


def argv_of(command: str) -> list[str]:
    return command.split()


def test_every_command_is_covered() -> None:
    names = {c for c, _ in command_flags()}
    assert names >= {c for c in COMMANDS if c != "mlir"} | set(MLIR)


@pytest.mark.parametrize("command", [c for c, _ in command_flags()])
def test_help_spells_every_flag_one_way(command: str) -> None:
    flags = dict(command_flags())[command]
    text = format_help(command, "", flags)
    for f in flags:
        assert f"--{canonical_name(f.name)}" in text, f.name
        if "-" in f.name:
            assert f"--{f.name}" not in text, f"{command} --help spells --{f.name}; IREE's spelling is _"


@pytest.mark.parametrize("command", [c for c, _ in command_flags()])
def test_dash_h_is_help_and_a_short_option_is_no_file_name(command: str, paramio_cli: Cli) -> None:
    code, out, err = paramio_cli(*argv_of(command), "-h")
    assert code == 0 and "--help" in out, err
    code, out, err = paramio_cli(*argv_of(command), "-q", "x.irpa")
    assert code == 2, (out, err)
    assert "unknown flag '-q'" in err and "cannot open" not in err


def test_a_short_option_names_the_long_flag_it_stands_for(paramio_cli: Cli) -> None:
    code, _, err = paramio_cli("convert", "--parameters=a.irpa", "-o", "x.irpa")
    assert code == 2
    assert "unknown flag '-o' (did you mean --output?" in err
    code, _, err = paramio_cli("verify", "-q", "x.irpa")
    assert "did you mean --quiet?" in err


def test_after_double_dash_a_dash_name_is_positional(paramio_cli: Cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    index = ParameterIndex()
    index.add_array("w", np.zeros(2, np.float32))
    monkeypatch.chdir(tmp_path)
    index.create_archive_file(tmp_path / "-odd.irpa")
    code, out, err = paramio_cli("verify", "--", "-odd.irpa")
    assert code == 0, err
    assert "-odd.irpa" in out


def test_example_takes_the_flag_syntax_of_every_command(paramio_cli: Cli, tmp_path: Path) -> None:
    code, _, err = paramio_cli("example", "--outptu_dir=x")
    assert code == 2 and "did you mean --output_dir?" in err
    code, out, _ = paramio_cli("example", "--help")
    assert code == 0 and "--output_dir" in out and "--make_inputs" in out


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    index = ParameterIndex()
    index.add_array("blk.0.attn_q.weight", np.arange(16, dtype=np.float32).reshape(4, 4))
    index.add_array("norm", np.ones(4, np.float32))
    path = tmp_path / "m.irpa"
    index.create_archive_file(path)
    return path


def json_runs(archive: Path, tmp_path: Path) -> dict[str, list[str]]:
    """A minimal run of every command that has --json."""
    a = str(archive)
    mlir = tmp_path / "p.mlir"
    mlir.write_text(
        "util.global private @w = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>\n"
        "util.func public @main() -> tensor<4xf32> {\n"
        "  %0 = util.global.load @w : tensor<4xf32>\n  util.return %0 : tensor<4xf32>\n}\n"
    )
    return {
        "dump": ["dump", a, "--json"],
        "verify": ["verify", a, "--json"],
        "which": ["which", f"--parameters=m={a}", "m::norm", "--json"],
        "load": ["load", f"--parameters={a}", "--json"],
        "shard": [
            "shard",
            f"--parameters={a}",
            "--tp=2",
            "--split=*.attn_q.weight=0",
            "--replicate=*",
            "--plan",
            "--json",
        ],
        "mlir export": [
            "mlir",
            "export",
            str(mlir),
            f"--archive=model={tmp_path / 'w.irpa'}",
            f"--output={tmp_path / 'o.mlir'}",
            "--json",
        ],
        "mlir import": [
            "mlir",
            "import",
            str(tmp_path / "o.mlir"),
            f"--parameters=model={tmp_path / 'w.irpa'}",
            f"--output={tmp_path / 'back.mlir'}",
            "--json",
        ],
        "mlir declare": ["mlir", "declare", f"--parameters=m={a}", "--json"],
        "prefetch": ["prefetch", a, "--json"],
        "digest": ["digest", a, "--json"],
        "convert": ["convert", f"--parameters={a}", f"--output={tmp_path / 'converted.irpa'}", "--json"],
        "diff": ["diff", a, a, "--json"],
        "merge": ["merge", f"--parameters={a}", f"--output={tmp_path / 'merged.irpa'}", "--json"],
    }


@pytest.mark.interop
def test_every_json_output_is_one_object_with_a_version_first(archive: Path, tmp_path: Path, paramio_cli: Cli) -> None:
    pytest.importorskip("iree.compiler.ir", reason="the mlir commands need iree-base-compiler")
    runs = json_runs(archive, tmp_path)
    with_json = {c for c, flags in command_flags() if any(f.name == "json" for f in flags)}
    assert with_json == set(runs), "a command with --json has no run here"
    for command, argv in runs.items():  # in order: import reads what export wrote
        code, out, err = paramio_cli(*argv)
        assert code == 0, (command, err)
        doc = json.loads(out)
        assert isinstance(doc, dict), command
        assert next(iter(doc)) == "version" and doc["version"] == 1, (command, out[:200])
    code, out, err = paramio_cli(*runs["shard"][:-2], f"--output={tmp_path / 'tp'}", "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == 1


def test_every_command_that_reads_parameters_takes_cache(paramio_cli: Cli) -> None:
    for command, flags in command_flags():
        names = {canonical_name(f.name) for f in flags}
        if names & {"parameters", "allow_external"}:
            code, out, _ = paramio_cli(*argv_of(command), "--help")
            assert code == 0 and "--cache=DIR" in out, command


@pytest.mark.parametrize("command", ["load", "shard", "merge"])
def test_cache_is_used_by_load_shard_and_merge(
    command: str, nginx, nginx_dir: Path, tmp_path: Path, paramio_cli: Cli
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("obstore", reason="the remote extra is not installed")
    index = ParameterIndex()
    index.add_array("blk.0.attn_q.weight", np.arange(64, dtype=np.float32).reshape(8, 8))
    index.create_archive_file(nginx_dir / "m.irpa")
    url = f"{nginx.url}/{nginx_dir.name}/m.irpa"
    cache = tmp_path / "cache"
    argv = {
        "load": ["load", f"--parameters={url}", "--quiet"],
        "shard": ["shard", f"--parameters={url}", "--tp=2", "--split=*=0", f"--output={tmp_path / 'tp'}", "--quiet"],
        "merge": ["merge", f"--parameters={url}", f"--output={tmp_path / 'one.safetensors'}"],
    }[command]
    code, _, err = paramio_cli(*argv, f"--cache={cache}")
    assert code == 0, err
    assert any(p.is_file() for p in cache.rglob("*")), "nothing was kept in the cache folder"


def test_errors_say_what_happened_and_what_to_do(tmp_path: Path, archive: Path, paramio_cli: Cli) -> None:
    code, out, _ = paramio_cli("verify", str(tmp_path / "missing.irpa"))
    assert code == 1
    assert out == f"{tmp_path / 'missing.irpa'}: problem: cannot open: No such file or directory\n"
    code, _, err = paramio_cli("convert", str(archive), f"--output={tmp_path / 'nofolder' / 'x.irpa'}")
    assert code == 1 and f"the folder {tmp_path / 'nofolder'} does not exist" in err
    taken = tmp_path / "model.safetensors"
    taken.write_bytes(b"")
    code, _, err = paramio_cli("shard", f"--parameters={archive}", "--tp=2", "--split=*=0", f"--output={taken}")
    assert code == 2 and "a file of that name exists" in err and "--output=tp2/" in err


def test_which_prints_what_it_found_then_the_error(archive: Path, paramio_cli: Cli) -> None:
    code, out, err = paramio_cli("which", f"--parameters=m={archive}", "m::norm", "m::nope", "m::blk.0.attn_q.weight")
    assert code == 1
    assert out.startswith("m::norm\n") and "m::blk.0.attn_q.weight\n" in out
    assert "nope" in err and "nope" not in out
    code, out, _ = paramio_cli("which", f"--parameters=m={archive}", "m::norm", "m::nope", "--json")
    doc = json.loads(out)
    assert code == 1 and [k["key"] for k in doc["keys"]] == ["norm"] and doc["missing"][0]["key"] == "nope"


def test_create_refuses_a_name_declared_twice(tmp_path: Path, paramio_cli: Cli) -> None:
    out = tmp_path / "dup.irpa"
    code, _, err = paramio_cli("create", "--data=w=4xf32=1", "--data=w=4xf32=2", f"--output={out}", "--quiet")
    assert code == 2 and "'w' is already declared by --data" in err and not out.exists()
    code, _, err = paramio_cli("create", "--splat=w=4xf32=1", "--data=w=4xf32=2", f"--output={out}", "--quiet")
    assert code == 2 and "already declared by --splat" in err


def test_load_reports_the_framework_import_apart(archive: Path, paramio_cli: Cli) -> None:
    code, out, err = paramio_cli("load", f"--parameters={archive}", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["import_seconds"] >= 0 and doc["seconds"] >= 0
    pytest.importorskip("torch", reason="the text names the framework it imported: torch here")
    code, out, _ = paramio_cli("load", f"--parameters={archive}", "--into=torch")
    assert code == 0 and "(importing torch and the dtype table took" in out

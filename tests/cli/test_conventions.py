"""One set of command-line conventions for every command (issue 17 item 5), names escaped in
every listing (issue 18 item 12), and the library's hints worded for the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paramio.formats.text import escape, escape_all
from paramio.index.index import ParameterIndex

EVIL = "a\nb\x1b[31mRED"


def _irpa(path: Path, *keys: str) -> Path:
    index = ParameterIndex()
    for k in keys:
        index.add_array(k, np.ones(2, np.float32))
    index.create_archive_file(path)
    return path


def test_dash_and_underscore_spellings_are_one_flag(tmp_path: Path, paramio_cli, small_safetensors: Path) -> None:  # type: ignore[no-untyped-def]
    for spelling in ("--on_loss=error", "--on-loss=error"):
        out = tmp_path / f"{spelling[2:4]}.irpa"
        code, _, err = paramio_cli(
            "convert", f"--parameters={small_safetensors}", f"--output={out}", spelling, "--quiet"
        )
        assert (code, err) == (0, ""), spelling
    code, _, err = paramio_cli("convert", f"--parameters={small_safetensors}", "--output=x.irpa", "--on-loss=maybe")
    assert code == 2 and "expected warn, error or ignore" in err
    code, out, _ = paramio_cli("dump", f"--parameters={small_safetensors}", "--parameter-mode=preload")
    assert code == 0 and "a.weight" in out


def test_unknown_flags_and_commands_say_did_you_mean(paramio_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = paramio_cli("conver", "--parameters=x")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "paramio: unknown command 'conver' (did you mean 'convert'?)",
        err.splitlines()[1],
    ] and err.splitlines()[1].startswith("commands: create, convert, dump")
    assert paramio_cli("dump", "--jsno")[2] == "paramio dump: unknown flag '--jsno' (did you mean --json?)\n"
    assert (
        paramio_cli("create", "--outptu=x")[2] == "paramio create: unknown flag '--outptu' (did you mean --output?)\n"
    )
    assert paramio_cli("dump", "--zzzzzz")[2] == "paramio dump: unknown flag '--zzzzzz' (see --help)\n"
    assert "unknown command 'xyzzy'\n" in paramio_cli("xyzzy")[2]


def test_files_positional_or_parameters_everywhere(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    a = _irpa(tmp_path / "a.irpa", "w")
    assert paramio_cli("verify", f"--parameters={a}") == paramio_cli("verify", str(a))
    assert paramio_cli("verify", f"--parameters=scope={a}")[0] == 0
    code, _, err = paramio_cli("convert", str(a), f"--output={tmp_path / 'b.safetensors'}", "--quiet")
    assert (code, err) == (0, "") and (tmp_path / "b.safetensors").exists()


def test_which_json_is_one_shape_for_one_key_or_many(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    a = _irpa(tmp_path / "a.irpa", "w", "x")
    one = json.loads(paramio_cli("which", f"--parameters=m={a}", "m::w", "--json")[1])
    two = json.loads(paramio_cli("which", f"--parameters=m={a}", "m::w", "m::x", "--json")[1])
    assert one["version"] == two["version"] == 1
    assert [k["key"] for k in one["keys"]] == ["w"] and [k["key"] for k in two["keys"]] == ["w", "x"]


def test_the_library_hint_is_worded_for_the_cli(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    odd = tmp_path / "weights.bin"
    odd.write_bytes(b"not a parameter file")
    for argv in (("dump", str(odd)), ("verify", str(odd))):
        _, out, err = paramio_cli(*argv)
        assert "format=" not in (out + err).replace("--format=", "") and "unsupported file format" in out + err


def test_escape_one_function() -> None:
    assert escape(EVIL) == "a\\nb\\x1b[31mRED"
    assert escape("C:\\dir", quote=False) == "C:\\dir" and escape("C:\\dir") == "C:\\\\dir"
    assert escape("é\u202ex\udc80") == "é\\u202ex\\x80"
    keys = ["plain", "é"]
    assert escape_all(keys, quote=False) == keys
    assert escape_all(["ok", EVIL], quote=False) == ["ok", "a\\nb\\x1b[31mRED"]


def test_hostile_keys_cannot_forge_rows_in_any_listing(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    path = _irpa(tmp_path / "evil.irpa", EVIL, "fine")
    code, out, _ = paramio_cli("dump", str(path))
    assert code == 0 and "\x1b" not in out and "`a\\nb\\x1b[31mRED`" in out
    assert len(out.splitlines()) == 5 + 2 + 1  # heading, two rows, the blank line
    code, out, _ = paramio_cli("create", f"--splat={EVIL}=4xi8=1", f"--output={tmp_path / 'c.irpa'}")
    assert code == 0 and "\x1b" not in out and "a\\nb\\x1b[31mRED" in out
    code, out, _ = paramio_cli("convert", str(path), f"--output={tmp_path / 'd.irpa'}")
    assert code == 0 and "\x1b" not in out and "a\\nb\\x1b[31mRED" in out
    code, out, _ = paramio_cli("which", f"--parameters=m={path}", f"m::{EVIL}")
    assert code == 0 and "\x1b" not in out and out.splitlines()[0] == "m::a\\nb\\x1b[31mRED"


@pytest.mark.interop
def test_printable_keys_list_exactly_as_iree(tmp_path: Path, paramio_cli, run_tool, iree_tool) -> None:  # type: ignore[no-untyped-def]
    path = _irpa(tmp_path / "keys.irpa", "plain.key", "back\\slash", "é ü", "a:b")
    r = run_tool([iree_tool("iree-dump-parameters"), f"--parameters=s={path}"])
    assert paramio_cli("dump", f"--parameters=s={path}") == (0, r.stdout, "")


def test_help_is_a_flagfile_and_quoted_values_read_as_iree_reads_them(tmp_path: Path, paramio_cli) -> None:  # type: ignore[no-untyped-def]
    a = _irpa(tmp_path / "a.irpa", "w")
    runs = {
        "create": ["--data=w=4xf32=1", f"--output={tmp_path / 'c.irpa'}", "--quiet"],
        "convert": [str(a), f"--output={tmp_path / 'd.irpa'}", "--quiet"],
        "dump": [str(a)],
        "verify": [str(a)],
        "which": [f"--parameters=m={a}", "m::w"],
    }
    for command, argv in runs.items():
        helpfile = tmp_path / f"{command}.flags"
        helpfile.write_text(paramio_cli(command, "--help")[1])
        code, _, err = paramio_cli(command, f"--flagfile={helpfile}", *argv)
        assert (code, err) == (0, ""), command
    # IREE strips one pair of double quotes from a value (its --help writes them that way).
    code, out, _ = paramio_cli("dump", f'--parameters="{a}"', '--extract="w=' + str(tmp_path / "w.bin") + '"')
    assert code == 0 and (tmp_path / "w.bin").read_bytes() == np.ones(2, np.float32).tobytes()


@pytest.mark.interop
def test_safetensors_keys_list_as_keys_not_json(tmp_path: Path, paramio_cli, run_tool, iree_tool) -> None:  # type: ignore[no-untyped-def]
    """The documented difference (docs/cli.md): IREE prints a safetensors key's JSON text, paramio
    the key itself, escaped for the terminal; plain keys list identically."""
    from safetensors.numpy import save_file

    path = tmp_path / "keys.safetensors"
    save_file(
        {"a\x1bb": np.ones(2, np.float32), "c\\d": np.ones(2, np.float32), "plain": np.ones(1, np.float32)}, str(path)
    )
    theirs = run_tool([iree_tool("iree-dump-parameters"), f"--parameters={path}"]).stdout
    code, ours, _ = paramio_cli("dump", str(path))
    assert code == 0
    assert "`a\\u001bb`" in theirs and "`c\\\\d`" in theirs
    assert "`a\\x1bb`" in ours and "`c\\d`" in ours
    row = [line for line in theirs.splitlines() if "`plain`" in line]
    assert row and row[0] in ours.splitlines()

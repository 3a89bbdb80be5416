"""The `paramio` dispatcher: usage, unknown commands, versions."""

from __future__ import annotations

from collections.abc import Callable

import paramio
from paramio.cli.main import COMMANDS


def test_help_lists_every_command_with_examples(paramio_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = paramio_cli("--help")
    assert code == 0
    for name in COMMANDS:
        assert f"  {name}" in out
        if name != "example":
            assert f"paramio {name} --" in out or f"paramio {name} " in out


def test_no_command_is_a_usage_error(paramio_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = paramio_cli()
    assert code == 2 and "usage: paramio <command>" in out


def test_unknown_command(paramio_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = paramio_cli("frobnicate")
    assert code == 2 and err.startswith("paramio: unknown command 'frobnicate'")


def test_version(paramio_cli: Callable[..., tuple[int, str, str]]) -> None:
    assert paramio_cli("--version") == (0, f"paramio {paramio.__version__}\n", "")


def test_every_command_has_help(paramio_cli: Callable[..., tuple[int, str, str]]) -> None:
    for name in COMMANDS:
        code, out, err = paramio_cli(name, "--help")
        assert code == 0, (name, err)
        assert out.strip(), name

"""IREE's flag syntax, and the progress bar's silence off a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from paramio.cli.errors import UsageError, escape
from paramio.cli.flags import Flag, FlagKind, parse_flags
from paramio.formats.progress import ByteProgress

FLAGS = (
    Flag("quiet", FlagKind.BOOL, "q", False),
    Flag("n", FlagKind.INT, "n", 64),
    Flag("out", FlagKind.STRING, "o", ""),
    Flag("p", FlagKind.LIST, "p"),
)


def test_syntax() -> None:
    f = parse_flags(
        ["--quiet", "--n= 0x20 ", "--out= a b ", "--p=1", "pos", "-", "--p= 2", "--out=c", "--", "-x"], FLAGS
    )
    assert f.values["quiet"] is True and f.number("n") == 32 and f.text("out") == "c"
    assert f.many("p") == ["1", "2"] and f.positional == ["pos", "-", "-x"]
    with pytest.raises(UsageError, match="unknown flag '-x'"):
        parse_flags(["pos", "-x"], FLAGS)
    assert parse_flags(["-h"], FLAGS).on("help") is True
    assert parse_flags(["--quiet=false"], FLAGS).on("quiet") is False
    assert parse_flags(["--quiet=1"], FLAGS).on("quiet") is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nope"], "unknown flag '--nope' (see --help)"),
        (["--n=abc"], "--n=abc: expected an integer"),
        (["--out"], "--out needs a value: --out=value"),
        (["--quiet=yes"], "--quiet=yes: expected true or false"),
        (["--flagfile=/nonexistent/x"], "--flagfile=/nonexistent/x: cannot read: No such file or directory"),
    ],
)
def test_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_flags(argv, FLAGS)
    assert str(info.value) == message


def test_flagfile_recursion_is_bounded(tmp_path: Path) -> None:
    ff = tmp_path / "self.txt"
    ff.write_text(f"--flagfile={ff}\n")
    with pytest.raises(UsageError, match="nest more than 16 deep"):
        parse_flags([f"--flagfile={ff}"], FLAGS)


def test_escape() -> None:
    assert escape("a\nb\x1b[0m\udc80\u202e") == "a\\nb\\x1b[0m\\x80\\u202e"


def test_progress_silent_off_tty_and_quiet() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert ByteProgress(1 << 30, "x", quiet=False, stream=io.StringIO()).callback is None
    assert ByteProgress(1 << 30, "x", quiet=True, stream=Tty()).callback is None
    stream = Tty()
    with ByteProgress(1 << 30, "x", quiet=False, stream=stream) as bar:
        assert bar.callback is not None
        bar.advance(1 << 29)
    assert bar.done == 1 << 29

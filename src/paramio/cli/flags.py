"""IREE's command-line flag syntax, so ``iree-*-parameters`` command lines work unchanged.

Rules (``iree/base/tooling/flags.c``, checked against the 3.13 binaries):

* a flag is ``--name=value`` or ``--name``; the value is trimmed of surrounding whitespace and
  of one pair of double quotes (``--function="main"``), so ``--help`` output is a flagfile;
* bools: ``--quiet``, ``--quiet=true|1`` (true), ``--quiet=false|0`` (false). IREE silently
  reads any other word as false; paramio refuses it (a typo should not flip a switch);
* list flags repeat (``--parameters=a --parameters=b``); a scalar flag given twice keeps the last;
* ``--flagfile=path`` reads one flag per line at that point of the command line (blank lines and
  lines starting with ``#`` skipped), so later flags override it, as in IREE;
* anything not starting with ``-`` is positional (each command decides what that means), as is
  ``-`` itself and everything after ``--``; ``-h`` is ``--help``, and any other single-dash
  option is an unknown flag (never a file name);
* ``-`` and ``_`` in a flag's name are the same (``--on_loss`` is ``--on-loss``, and
  ``--parameter-mode`` is ``--parameter_mode``): names are written with ``_`` as IREE writes
  them, and every spelling works;
* an unknown flag is a usage error naming the flag and the nearest known one ("did you mean
  --output?"), exit 2. IREE exits 1 with a red ghost.

``--help`` and ``--debug`` are understood by every command.
"""

from __future__ import annotations

import enum
import os
import sys

from paramio.cli.errors import UsageError

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from paramio.formats.inputs import input_options
    from paramio.index.scopes import ScopeMap

__all__ = [
    "ALLOW_EXTERNAL",
    "CACHE",
    "OVERLAY",
    "PARAMETERS",
    "PARAMETER_MODE",
    "PRECEDENCE",
    "Flag",
    "FlagKind",
    "ParsedFlags",
    "canonical_name",
    "files_from",
    "allowed_external",
    "format_help",
    "load_scopes",
    "parse_flags",
    "precedence_of",
    "run_command",
    "suggest",
    "unknown_flag_message",
    "wants_debug",
]

_MAX_FLAGFILE_DEPTH = 16


class FlagKind(enum.Enum):
    BOOL = "bool"
    STRING = "string"
    INT = "int"
    LIST = "list"


class Flag:
    """One flag a command accepts: its kind, default and the help line IREE-style; immutable,
    equal and hashed by its fields.

    A plain class, not a dataclass, as is `ParsedFlags`: every command's ``--help`` imports this
    module, and `dataclasses` (with the `inspect` it imports) was a quarter of that start-up
    (benchmarks/startup.py)."""

    __slots__ = ("name", "kind", "help", "default", "metavar")

    name: str
    kind: FlagKind
    help: str
    default: object
    #: Shown in help instead of the default, e.g. ``[scope=]file``.
    metavar: str

    def __init__(self, name: str, kind: FlagKind, help: str, default: object = None, metavar: str = "") -> None:
        for field, value in (
            ("name", name),
            ("kind", kind),
            ("help", help),
            ("default", default),
            ("metavar", metavar),
        ):
            object.__setattr__(self, field, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a Flag")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a Flag")

    def _fields(self) -> tuple[object, ...]:
        return (self.name, self.kind, self.help, self.default, self.metavar)

    def __eq__(self, other: object) -> bool:
        return self._fields() == other._fields() if isinstance(other, Flag) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Flag(name={self.name!r}, kind={self.kind!r}, help={self.help!r}, "
            f"default={self.default!r}, metavar={self.metavar!r})"
        )


_COMMON = (
    Flag("help", FlagKind.BOOL, "Displays command line usage information.", False),
    Flag("debug", FlagKind.BOOL, "Prints the full traceback of an error.", False),
    Flag("flagfile", FlagKind.STRING, "Parses a newline-separated list of flags from a file.", "", "path"),
)

#: Flags several commands share, with IREE's help text where IREE has the flag.
PARAMETERS = Flag(
    "parameters",
    FlagKind.LIST,
    "Specifies a parameter file, with either an anonymous global scope\n"
    "(`some_file.gguf`) or a named scope like `my_scope=some_file.gguf`.",
    metavar="[scope=]file",
)
PARAMETER_MODE = Flag(
    "parameter_mode",
    FlagKind.STRING,
    "file or mmap: files are memory-mapped; preload (convert): read into memory first, so another program rewriting them cannot kill the command with SIGBUS.",
    "file",
)
OVERLAY = Flag(
    "overlay", FlagKind.LIST, "A writable overlay archive (IRPA) on top of a scope's layers.", None, "[scope=]archive"
)
STRICT = Flag(
    "strict",
    FlagKind.BOOL,
    "Refuses files paramio otherwise reads with a warning (a GGUF metadata key repeated, as older gguf-py wrote).",
    False,
)
PRECEDENCE = Flag(
    "precedence", FlagKind.STRING, "Which layer wins for a key held twice: first, last or error.", "first"
)
ALLOW_EXTERNAL = Flag(
    "allow_external",
    FlagKind.LIST,
    "Also lets files named inside parameter files (IRPA external entries, shards) come\n"
    "from this folder; by default they must lie in the naming file's own folder. Repeatable.",
    None,
    "DIR",
)

CACHE = Flag(
    "cache",
    FlagKind.STRING,
    "Keeps blocks read from parameter URLs (https://, s3://, gs://, az://) in this folder,\n"
    "so a second run reads only what it has not read before. Local files are never cached.",
    None,
    "DIR",
)

ALLOW_UNPINNED = Flag(
    "allow-unpinned",
    FlagKind.BOOL,
    "Reads parameter URLs whose server gives neither an ETag nor a Last-Modified date, so an\n"
    "object replaced during the read goes unnoticed unless its size changes (refused by default).",
    False,
)

ALLOW_REDIRECT_HOST = Flag(
    "allow-redirect-host",
    FlagKind.LIST,
    "Lets a parameter URL redirect to this host (a Hub's 302 to its storage host, say); a\n"
    "redirect to a host other than the URL's own is refused by default. Repeatable.",
    None,
    "HOST",
)

_TRUE = {"", "true", "1"}
_FALSE = {"false", "0"}


class ParsedFlags:
    """Flag values by name (defaults filled in), the positional arguments, and the flags the
    command does not know, kept only when the caller allows them (`parse_flags` ``foreign``)."""

    __slots__ = ("values", "positional", "foreign")

    def __init__(self, values: dict[str, object], positional: list[str], foreign: list[str] | None = None) -> None:
        self.values = values
        self.positional = positional
        self.foreign: list[str] = [] if foreign is None else foreign

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedFlags):
            return NotImplemented
        return (self.values, self.positional, self.foreign) == (other.values, other.positional, other.foreign)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return f"ParsedFlags(values={self.values!r}, positional={self.positional!r}, foreign={self.foreign!r})"

    def on(self, name: str) -> bool:
        """A bool flag's value."""
        return bool(self.values[canonical_name(name)])

    def text(self, name: str) -> str:
        return str(self.values[canonical_name(name)])

    def number(self, name: str) -> int:
        value = self.values[canonical_name(name)]
        assert isinstance(value, int)
        return value

    def many(self, name: str) -> list[str]:
        """A list flag's values, in command-line order."""
        value = self.values[canonical_name(name)]
        assert isinstance(value, list)
        return value

    def single_input(self) -> str:
        """The one ``--parameters`` value of a command that reads one set and takes no
        positional arguments (`shard`, `merge`). Raises `UsageError` otherwise."""
        if self.positional:
            raise UsageError(f"unexpected argument {self.positional[0]!r}")
        inputs = self.many("parameters")
        if len(inputs) != 1:
            raise UsageError("--parameters=file is required, once")
        return inputs[0]


def canonical_name(name: str) -> str:
    """The one spelling of a flag name: ``-`` read as ``_`` (IREE's names use ``_``)."""
    return name.replace("-", "_")


def all_flags(flags: Iterable[Flag]) -> dict[str, Flag]:
    """Every flag a command takes, by canonical name."""
    table = {canonical_name(f.name): f for f in _COMMON}
    table.update({canonical_name(f.name): f for f in flags})
    return table


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice nearest to a mistyped `word`, if one is near enough to be a typo."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_flag_message(name: str, known: Iterable[str]) -> str:
    near = suggest(canonical_name(name), known)
    hint = f"did you mean --{near}?" if near is not None else "see --help"
    return f"unknown flag '--{name}' ({hint})"


def parse_flags(argv: Sequence[str], flags: Iterable[Flag], *, foreign: bool = False) -> ParsedFlags:
    """Parse `argv` against `flags` (plus --help, --debug, --flagfile).

    With `foreign`, flags the command does not know are kept in `ParsedFlags.foreign` (as
    written) for the command to pass on; otherwise each is a usage error.

    Raises `UsageError` naming the flag for an unknown flag, a missing or malformed value, or
    an unreadable flagfile.
    """
    table = all_flags(flags)
    values: dict[str, object] = {}
    for f in table.values():
        values[canonical_name(f.name)] = [] if f.kind is FlagKind.LIST else f.default
    parsed = ParsedFlags(values, [])
    _parse_into(list(argv), table, parsed, depth=0, foreign=foreign)
    return parsed


def _parse_into(argv: list[str], table: Mapping[str, Flag], parsed: ParsedFlags, depth: int, foreign: bool) -> None:
    values, positional = parsed.values, parsed.positional
    rest = iter(argv)
    for arg in rest:
        if arg == "--":  # the end of the flags: what follows is positional, even ``-x``
            positional.extend(rest)
            break
        if arg.startswith("-") and not arg.startswith("--") and arg != "-":
            if arg == "-h":
                values["help"] = True
                continue
            raise UsageError(_short_option_message(arg, table))
        if not arg.startswith("--"):
            positional.append(arg)
            continue
        written, sep, raw = arg[2:].partition("=")
        flag = table.get(canonical_name(written))
        if flag is None:
            if foreign:
                parsed.foreign.append(arg)
                continue
            raise UsageError(unknown_flag_message(written, table))
        name = canonical_name(flag.name)
        value = _unquote(raw.strip())
        if flag.name == "flagfile":
            if not sep or not value:
                raise UsageError("--flagfile needs a path: --flagfile=path")
            if depth >= _MAX_FLAGFILE_DEPTH:
                raise UsageError(f"--flagfile={value}: flag files nest more than {_MAX_FLAGFILE_DEPTH} deep")
            _parse_into(_read_flagfile(value), table, parsed, depth + 1, foreign)
            continue
        if flag.kind is FlagKind.BOOL:
            low = value.lower()
            if not sep or low in _TRUE:
                values[name] = True
            elif low in _FALSE:
                values[name] = False
            else:
                raise UsageError(f"--{written}={raw}: expected true or false")
        elif not sep:
            raise UsageError(f"--{written} needs a value: --{written}={flag.metavar or 'value'}")
        elif flag.kind is FlagKind.INT:
            try:
                values[name] = int(value, 0)
            except ValueError:
                raise UsageError(f"--{written}={raw}: expected an integer") from None
        elif flag.kind is FlagKind.LIST:
            current = values[name]
            assert isinstance(current, list)
            current.append(value)
        else:
            values[name] = value


#: What a single-letter option usually stands for in other tools, when several flags start so.
_USUAL_LONG_NAMES = ("output", "quiet", "json", "parameters", "help")


def _short_option_message(arg: str, table: Mapping[str, Flag]) -> str:
    """A single-dash option is never a file name: ``-h`` is help (handled by the caller), any
    other is an unknown flag, with the long flag it most likely means."""
    name = arg.lstrip("-").partition("=")[0]
    near = [f for f in table if f.startswith(canonical_name(name))] if len(name) == 1 else []
    usual = [f for f in _USUAL_LONG_NAMES if f in near]  # -o is --output more often than --on_loss
    if len(near) == 1 or usual:
        hint = f"did you mean --{(usual or near)[0]}?"
    else:
        guess = suggest(canonical_name(name), table)
        hint = f"did you mean --{guess}?" if guess is not None else "flags are --name=value; see --help"
    return f"unknown flag '{arg}' ({hint}; a file name starting with '-' goes after '--')"


def _unquote(value: str) -> str:
    """``"text"`` -> ``text``, as IREE reads string values (its --help writes them quoted, and
    the help is a flagfile)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _read_flagfile(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise UsageError(f"--flagfile={path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"--flagfile={path}: not UTF-8 text") from exc
    out: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            out.append(s)
    return out


def format_help(title: str, description: str, flags: Iterable[Flag]) -> str:
    """Help in IREE's style: a banner, the description with examples, then every flag with
    its help text and default (so the help text is itself a valid flagfile, as IREE's is)."""
    bar = "# " + "=" * 76
    # The description is commented too (IREE leaves it bare, so its help is no flagfile).
    about = [f"# {line}".rstrip() for line in description.rstrip().splitlines()]
    lines = [bar, f"# paramio {title}", bar, "", *about, ""]
    for f in (*flags, *_COMMON):
        name = canonical_name(f.name)  # one spelling in every command's help: IREE's ``_``
        for h in f.help.splitlines():
            lines.append(f"# {h}")
        if f.kind is FlagKind.LIST or f.name in ("flagfile", "help", "debug") or f.default is None:
            lines.append(f"# --{name}={f.metavar or '...'}" if f.kind is not FlagKind.BOOL else f"# --{name}")
        elif f.kind is FlagKind.BOOL:
            lines.append(f"--{name}={'true' if f.default else 'false'}")
        elif f.kind is FlagKind.INT:
            lines.append(f"--{name}={f.default}")
        else:
            lines.append(f'--{name}="{f.default}"')
        lines.append("")
    return "\n".join(lines)


def env_debug() -> bool:
    """``PARAMIO_DEBUG=1`` shows tracebacks even when flag parsing itself fails."""
    return os.environ.get("PARAMIO_DEBUG", "") not in ("", "0")


def wants_debug(argv: Sequence[str]) -> bool:
    """Whether --debug is on, read before full parsing so even flag errors can show a traceback."""
    on = env_debug()
    for a in argv:
        if a == "--debug":
            on = True
        elif a.startswith("--debug="):
            on = a[8:].strip().lower() in _TRUE
    return on


def run_command(
    tool: str,
    argv: Sequence[str],
    flags: Sequence[Flag],
    description: str,
    body: Callable[[ParsedFlags], int],
    *,
    foreign: bool = False,
) -> int:
    """Parse flags, answer --help, run `body`; errors become one line and an exit status.
    `foreign`: keep unknown flags for `body` (see `parse_flags`)."""
    from paramio.cli.errors import guarded

    # Every command that reads parameter files (it takes --parameters or --allow_external)
    # takes the remote options too: one rule, not a list of commands to keep in step.
    names = {canonical_name(f.name) for f in flags}
    if names & {"parameters", "allow_external"}:
        flags = [
            *flags,
            *(f for f in (CACHE, ALLOW_UNPINNED, ALLOW_REDIRECT_HOST) if canonical_name(f.name) not in names),
        ]

    def go() -> int:
        parsed = parse_flags(argv, flags, foreign=foreign)
        if parsed.on("help"):
            sys.stdout.write(format_help(tool, description, flags) + "\n")
            return 0
        with remote_options(parsed):
            return body(parsed)

    return guarded(tool, go, debug=lambda: wants_debug(argv))


def remote_options(parsed: ParsedFlags) -> input_options:
    """The options every URL the command opens gets (``--cache``, ``--allow-unpinned``,
    ``--allow-redirect-host``), for the command's run: ``with remote_options(parsed):``.
    Raises `UsageError` for a ``--cache`` that is no folder."""
    from paramio.formats.inputs import input_options

    options: dict[str, object] = {}
    folder = parsed.values.get("cache")
    if folder:
        if os.path.exists(str(folder)) and not os.path.isdir(str(folder)):
            raise UsageError(f"--cache={folder}: not a folder")
        options["cache"] = str(folder)
    if parsed.values.get("allow_unpinned"):
        options["allow_unpinned"] = True
    if "allow_redirect_host" in parsed.values and parsed.many("allow-redirect-host"):
        options["allowed_hosts"] = list(parsed.many("allow-redirect-host"))
    return input_options(options)


def precedence_of(parsed: ParsedFlags) -> str:
    """The ``--precedence`` value, checked."""
    value = parsed.text("precedence")
    if value not in ("first", "last", "error"):
        raise UsageError(f"--precedence={value}: expected first, last or error")
    return value


def allowed_external(parsed: ParsedFlags) -> list[str]:
    """The ``--allow_external`` folders, each checked to be an existing folder."""
    folders = parsed.many("allow-external")
    for d in folders:
        if not os.path.isdir(d):
            raise UsageError(f"--allow_external={d}: not a folder")
    return folders


def load_scopes(
    values: Sequence[str], allow_external: Sequence[str] = (), *, strict: bool = False, copy: bool = False
) -> ScopeMap:
    """``--parameters`` values loaded IREE's way (one flat index per scope, first file wins);
    a malformed value is a usage error (exit 2), a bad file a `ParamioError` (exit 1).
    Files named inside them must lie beside them or in an `allow_external` folder; `strict`
    (``--strict``) refuses what is otherwise read with a `FormatWarning`. `copy` reads the files
    into memory (``--parameter_mode=preload``): no SIGBUS if another program rewrites them."""
    from paramio.core.errors import InvalidArgumentError
    from paramio.index.scopes import ScopeMap, parse_parameters_flag

    for v in values:
        try:
            parse_parameters_flag(v)
        except InvalidArgumentError as exc:
            raise UsageError(str(exc)) from None
    return ScopeMap.from_flags(values, strict=strict, allow_external=list(allow_external), copy=copy)


def files_from(parsed: ParsedFlags) -> list[str]:
    """``--parameters`` values followed by bare FILE arguments, which mean ``--parameters=FILE``
    for the commands that take no other positional argument (dump, verify, convert)."""
    return [*parsed.many("parameters"), *parsed.positional]

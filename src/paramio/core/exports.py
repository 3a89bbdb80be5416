"""Lazy re-exports: a package names its public attributes and the modules defining them, and
each is imported on first use. This is paramio's one mechanism for keeping start-up light:
``import paramio``, ``paramio --help`` and a command's ``--help`` import no NumPy, and a
command imports only the module tree it uses (`tests/core/test_startup.py`). A package writes its
public names once, as imports under ``if TYPE_CHECKING:`` (what type checkers read); its lazy
table and ``__all__`` are read from those lines (`typed_exports`)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType


def import_module(name: str) -> ModuleType:
    """`importlib.import_module` for an absolute `name`, without importing `importlib` (nor the
    `warnings` it imports): every command's start goes through here."""
    __import__(name)
    return sys.modules[name]


def typed_exports(source_path: str) -> dict[str, tuple[str, str]]:
    """The public names a package's ``if TYPE_CHECKING:`` block imports, read from its source:
    public name -> (module, attribute). So the names are written once, as imports type checkers
    read, and the package imports each on first use (`attach`) from the same lines.

    Reads ``from MODULE import A, B as B, (C, ...)`` statements of the first ``if TYPE_CHECKING:``
    block (a plain text scan: ``import paramio`` must not pay for `ast` or `re`).
    Raises `ImportError` if the source cannot be read (a package installed without it)."""
    try:
        with open(source_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ImportError(f"{source_path}: cannot read the package's export list: {exc}") from exc
    table: dict[str, tuple[str, str]] = {}
    inside = False
    statement = ""
    for line in lines:
        if not inside:
            inside = line.startswith("if TYPE_CHECKING:")
            continue
        if line and not line[0].isspace():
            break  # the block ended
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        statement = f"{statement} {text}" if statement else text
        if statement.count("(") > statement.count(")"):
            continue  # a parenthesised list goes on
        words = statement.split(" import ", 1)
        statement = ""
        if len(words) != 2 or not words[0].startswith("from "):
            continue
        module = words[0][5:].strip()
        for item in words[1].replace("(", " ").replace(")", " ").split(","):
            parts = item.split()
            if not parts:
                continue
            attribute, name = parts[0], parts[-1]  # "A" or "A as B"
            if name in table:
                raise ValueError(f"{name!r} is exported by both {table[name][0]} and {module}")
            table[name] = (module, attribute)
    if not table:
        raise ImportError(f"{source_path}: no names under 'if TYPE_CHECKING:'")
    return table


def attach(package: str, namespace: dict[str, object], table: Mapping[str, tuple[str, str]]) -> Callable[[str], object]:
    """A module ``__getattr__`` for `package` resolving the names in `table` (name -> (module,
    attribute), from `typed_exports`), and then its submodules (``paramio.errors``,
    ``paramio.formats``): each is imported on first use and stored in `namespace` (the
    package's globals), so later lookups are plain reads."""

    def __getattr__(name: str) -> object:
        where = table.get(name)
        if where is not None:
            module, attribute = where
            value = getattr(import_module(module), attribute)
            namespace[name] = value
            return value
        if not name.startswith("__"):
            try:
                value = import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise  # the submodule exists; something it imports is missing
            else:
                namespace[name] = value
                return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


#: Formats defined above the formats layer, as ``(name, extensions, module that registers it)``.
#: The package root, which may name every layer, declares them (`declare_format_above`) and
#: `paramio.formats.contract` reads them: the format registry knows such a format by name and
#: extension, and imports its module only when it is used, without naming a layer above its own.
_FORMATS_ABOVE: list[tuple[str, tuple[str, ...], str]] = []


def declare_format_above(name: str, extensions: tuple[str, ...], module: str) -> None:
    """Declare format `name` (its `extensions`; `module` registers it when imported)."""
    _FORMATS_ABOVE.append((name, extensions, module))


def formats_above() -> list[tuple[str, tuple[str, ...], str]]:
    """The formats `declare_format_above` declared, in order."""
    return list(_FORMATS_ABOVE)


#: Functions a lower layer calls but a higher one defines, as role -> ``"module:name"``; the
#: package root declares them (`declare_above`), as it declares formats above, so the lower
#: layer reaches the function through this table and names no module above its own.
_ABOVE: dict[str, str] = {}


def declare_above(role: str, target: str) -> None:
    """Declare that `role` is served by `target`, ``"module:name"``, imported when first asked for."""
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{target!r}: expected 'module:name'")
    _ABOVE[role] = target


def above(role: str) -> object:
    """The object `declare_above` declared for `role`, its module imported now. `LookupError`
    if nothing was declared (the package root was not imported, which Python never allows)."""
    target = _ABOVE.get(role)
    if target is None:
        raise LookupError(f"nothing serves {role!r}: paramio's package root declares it")
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)

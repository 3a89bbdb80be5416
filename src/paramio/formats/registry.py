"""Which format reads or writes a path: by explicit name, extension, or magic bytes.

Each format is a package under `paramio.formats` exposing the same functions:

``read_path(path, *, writable, use_mmap, allow_external) -> FormatContents``
    read one file (or a whole sharded set reached from any of its files); files named inside
    it must resolve beside it or in `allow_external` (`paramio.sources.paths`);
``write_path(path, entries, *, attributes, <options>) -> None``
    write entries atomically; every writer takes ``alignment``, ``durable``, ``progress`` and
    ``max_shard_size`` (a sharded set), and its signature lists every option it takes: an
    unknown option is a `TypeError` here, before anything is read or written;
``prepare(entries, attributes, options) -> Prepared`` and ``plan_losses(entries, attributes)``
    in the format's ``writer`` module: what the writer keeps, carries and drops
    (`paramio.formats.conversion`), asked before anything is written;
``sniff(head: bytes) -> bool``
    whether the first bytes of a file look like this format.

Formats are imported only when first used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import inspect
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, ParamioError, SourceError, UnsupportedFormatError
from paramio.sources.paths import AllowExternal

if TYPE_CHECKING:
    from paramio.formats.conversion import Loss, Prepared

__all__ = [
    "FORMATS",
    "FormatContents",
    "check_options",
    "detect_format",
    "format_module",
    "plan_losses",
    "read_path",
    "write_path",
    "writer_options",
]


@dataclasses.dataclass(slots=True)
class FormatContents:
    """What a reader found: entries in file order, file-level attributes, the files read."""

    #: A list, or `LazyEntries` whose entries are built on first use.
    entries: Sequence[ParameterEntry]
    attributes: dict[str, object] = dataclasses.field(default_factory=dict)
    paths: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class FormatInfo:
    name: str
    module: str
    extensions: tuple[str, ...]
    #: The module with ``prepare``/``plan_losses``; ``<module>.writer`` unless given.
    writer_module: str = ""

    @property
    def writer(self) -> str:
        return self.writer_module or f"{self.module}.writer"


FORMATS: dict[str, FormatInfo] = {
    "irpa": FormatInfo("irpa", "paramio.formats.irpa", (".irpa", ".irpa.index.json")),
    "safetensors": FormatInfo(
        "safetensors", "paramio.formats.safetensors", (".safetensors", ".safetensors.index.json")
    ),
    "gguf": FormatInfo("gguf", "paramio.formats.gguf", (".gguf",)),
    # Tensor-parallel sets: a manifest over per-device files of the formats above.
    "tp": FormatInfo("tp", "paramio.sharding.tpset", (".tp.json",), "paramio.sharding.tpset"),
}


def format_module(name: str) -> ModuleType:
    info = FORMATS.get(name.lower())
    if info is None:
        raise InvalidArgumentError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    return importlib.import_module(info.module)


def detect_format(path: str | os.PathLike[str], *, for_writing: bool = False) -> str:
    """The format of `path`: by extension (case-insensitive, as IREE), else by magic bytes."""
    p = os.fspath(path)
    lower = p.lower()
    for info in sorted(FORMATS.values(), key=lambda i: -max(len(e) for e in i.extensions)):
        if any(lower.endswith(ext) for ext in info.extensions):
            return info.name
    if not for_writing:
        from paramio.formats.inputs import open_input

        src = open_input(p, use_mmap=False)  # a FIFO or device is refused, never read
        try:
            head = src.read(0, min(64, src.size))
        finally:
            src.close()
        for info in FORMATS.values():
            try:
                mod = importlib.import_module(info.module)
            except ImportError:
                continue
            sniff: Callable[[bytes], bool] | None = getattr(mod, "sniff", None)
            if sniff is not None and sniff(head):
                return info.name
    raise UnsupportedFormatError(
        "unsupported file format; use an extension .irpa, .gguf or .safetensors or pass format=",
        path=p,
    )


def read_path(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    writable: bool = False,
    use_mmap: bool = True,
    strict: bool = False,
    allow_external: AllowExternal = None,
    source_options: Mapping[str, Any] | None = None,
) -> FormatContents:
    """Read a parameter file with the format given or detected; facts a paramio writer carried
    for the format (``paramio.carried``, see `paramio.formats.conversion`) are put back.

    `strict` refuses what paramio otherwise reads past with a `paramio.core.errors.FormatWarning`
    (a GGUF metadata key repeated, as older gguf-py wrote them).
    Files named inside the file (IRPA external entries, shards) must resolve inside its folder
    or a folder in `allow_external` (``True``: anywhere); `SourceError` otherwise.

    `path` may be a URL (``https://``, ``s3://``, ``gs://``, ``az://``, ``file://``): the open
    reads the header and tables only, and files named inside resolve against the URL's folder.
    `source_options` go to `paramio.sources.open_source` for every object opened (``cache=``,
    ``config=``, ``retry=`` ...)."""
    from paramio.formats.conversion import restore
    from paramio.formats.inputs import input_options, is_url

    p = os.fspath(path)
    if source_options and not is_url(p):
        names = ", ".join(sorted(source_options))
        raise InvalidArgumentError(f"options {names} apply to URLs only, not to a local file", path=p)
    with input_options(source_options), _redacting(p):
        name = format or detect_format(path)
        mod = format_module(name)
        # Only formats with something to be strict about take the keyword.
        extra: dict[str, object] = {"strict": True} if strict and name == "gguf" else {}
        try:
            contents: FormatContents = mod.read_path(
                p, writable=writable, use_mmap=use_mmap, allow_external=allow_external, **extra
            )
        except ValueError as exc:
            # A name read from a file (an EXTERNAL path, a shard, a split sibling) with a NUL byte:
            # `os.open` refuses it with ValueError, which is no paramio error. Sources check for
            # it themselves; this boundary keeps the promise for any path that reaches the OS.
            if isinstance(exc, ParamioError) or "null byte" not in str(exc):
                raise
            raise SourceError(f"a file name read from this file holds a NUL byte ({exc})", path=p) from exc
    if is_url(p):
        from paramio.sources.retry import redact_url

        contents.paths = [redact_url(x) for x in contents.paths]
    return restore(name, contents)


@contextlib.contextmanager
def _redacting(path: str) -> Iterator[None]:
    """Errors naming the URL `path` (or its siblings) name it without its credentials: readers
    put the path they were given in messages; only the sources redact on their own."""
    from paramio.core.errors import ParamioError
    from paramio.formats.inputs import is_url

    if not is_url(path):
        yield
        return
    from paramio.sources.retry import redact_url

    shown = redact_url(path)
    user = path.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
    if shown == path:
        yield
        return

    def clean(text: str) -> str:
        text = text.replace(path, shown)
        return text.replace(user + "@", "") if user else text

    try:
        yield
    except ParamioError as exc:
        exc.path = clean(exc.path) if exc.path is not None else None
        exc.reason = clean(exc.reason)
        exc.args = tuple(clean(a) if isinstance(a, str) else a for a in exc.args)
        raise


def write_path(
    path: str | os.PathLike[str],
    entries: Iterable[ParameterEntry] | Sequence[ParameterEntry],
    *,
    format: str | None = None,
    attributes: dict[str, object] | None = None,
    on_loss: str = "warn",
    **options: object,
) -> None:
    """Write entries to `path` in the format given or implied by the extension, atomically. A URL
    (``s3://``, ``gs://``, ``az://``) is built locally and uploaded (`paramio.formats.uploads`).

    What the target cannot hold as given (a splat written as data, a type stored under a
    stand-in, an attribute JSON cannot hold) is found before anything is written and, by
    `on_loss`: ``"warn"`` — a `paramio.core.errors.ConversionWarning` per loss; ``"error"`` —
    `InvalidArgumentError` and no file; ``"ignore"``. Use `plan_losses` to get the list.
    """
    from paramio.formats.conversion import report_losses
    from paramio.formats.inputs import current_options, is_url

    name = format or detect_format(path, for_writing=True)
    p = os.fspath(path)
    check_options(name, options)
    prepared = _prepare(name, list(entries), attributes or {}, {**options, "path": p})
    report_losses(prepared.losses, on_loss, path=p, fmt=name)
    mod = format_module(name)
    if is_url(p):  # built locally, then uploaded (`paramio.formats.uploads`)
        from paramio.formats.uploads import write_remote

        def build(local: str) -> None:
            mod.write_path(local, prepared.entries, attributes=prepared.attributes, **options)

        write_remote(p, build, options=current_options())
        return
    mod.write_path(p, prepared.entries, attributes=prepared.attributes, **options)


@functools.cache
def writer_options(name: str) -> frozenset[str]:
    """The keyword options format `name`'s ``write_path`` takes (besides `attributes`)."""
    params = inspect.signature(format_module(name).write_path).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise AssertionError(f"the {name} writer must list its options, not take **kwargs")
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY) - {"attributes"}


def check_options(name: str, options: dict[str, object]) -> None:
    """Raise `TypeError` naming the first option the format's writer does not take, as Python
    does for a function call: a misspelt ``alignmnet=`` must not be silently ignored."""
    accepted = writer_options(name.lower())
    for key in options:
        if key not in accepted:
            raise TypeError(
                f"write_path() got an unexpected keyword argument {key!r} "
                f"(the {name} writer takes: {', '.join(sorted(accepted))})"
            )


def _prepare(
    name: str, entries: list[ParameterEntry], attributes: dict[str, object], options: dict[str, object]
) -> Prepared:
    info = FORMATS.get(name.lower())
    if info is None:
        raise InvalidArgumentError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    writer = importlib.import_module(info.writer)
    prepared: Prepared = writer.prepare(entries, attributes, options)
    return prepared


def plan_losses(
    path: str | os.PathLike[str],
    entries: Iterable[ParameterEntry] | Sequence[ParameterEntry],
    *,
    format: str | None = None,
    attributes: dict[str, object] | None = None,
    **options: object,
) -> list[Loss]:
    """What `write_path` with the same arguments would report, without writing anything."""
    name = format or detect_format(path, for_writing=True)
    check_options(name, options)
    return _prepare(name, list(entries), attributes or {}, {**options, "path": os.fspath(path)}).losses

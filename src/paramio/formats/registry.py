"""Which format reads or writes a path (by explicit name, extension, or magic bytes), and the
calls that dispatch to it.

Every format is a `paramio.formats.contract.Format` registered with the registry there; this
module is the public face over it: `detect_format`, `read_path`, `write_path`, `plan_losses`,
`check_options`, `writer_options`, and `FORMATS`, a live name -> `Format` view. Nothing here
names a format: what differs between formats is a field of their contract.

Formats are imported only when first used.
"""

from __future__ import annotations

import functools
import os

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError, ParamioError, SourceError, UnsupportedFormatError
from paramio.formats.contract import (
    Format,
    FormatContents,
    FormatTable,
    declared_extensions,
    format_for_head,
    format_name_for_path,
    get_format,
)
from paramio.sources.paths import AllowExternal

TYPE_CHECKING = False  # `typing.TYPE_CHECKING` without importing typing (start-up: see paramio/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import ModuleType, TracebackType
    from typing import Any

    from paramio.core.source import ByteSource
    from paramio.formats.conversion import Loss, Prepared
    from paramio.formats.digests import DigestSink

__all__ = [
    "FORMATS",
    "FormatContents",
    "check_options",
    "detect_format",
    "format_module",
    "plan_losses",
    "read_path",
    "read_source",
    "write_path",
    "writer_options",
]

#: name -> `Format`, live: ``name in FORMATS`` and listing the names import no format.
FORMATS: Mapping[str, Format] = FormatTable()


def format_module(name: str) -> ModuleType:
    """The module defining format `name`'s reader (the package, for the built-in formats).
    Raises `InvalidArgumentError` for an unknown name."""
    import importlib

    return importlib.import_module(get_format(name).read_path.__module__)


def detect_format(path: str | os.PathLike[str], *, for_writing: bool = False) -> str:
    """The format of `path`: by extension (case-insensitive, as IREE), else by magic bytes."""
    p = os.fspath(path)
    if p[:5].lower() == "hf://" and not for_writing:  # the cached file it names (`paramio.sources.hf`)
        from paramio.sources.hf import resolve_hf

        p = resolve_hf(p)
    name = format_name_for_path(p)
    if name is not None:
        return name
    if not for_writing:
        from paramio.formats.inputs import open_input

        src = open_input(p, use_mmap=False)  # a FIFO or device is refused, never read
        try:
            head = src.read(0, min(64, src.size))
        finally:
            src.close()
        fmt = format_for_head(head)
        if fmt is not None:
            return fmt.name
    known = [e[0] for e in declared_extensions().values()]
    listed = ", ".join(known[:-1]) + " or " + known[-1] if len(known) > 1 else "".join(known)
    raise UnsupportedFormatError(f"unsupported file format; use an extension {listed} or pass format=", path=p)


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
    from paramio.formats.inputs import input_options, is_url, local_path

    p = os.fspath(path)
    if p[:5].lower() == "hf://":  # a Hugging Face model: the cached file, else the Hub's URL
        from paramio.sources.hf import hub_options, resolve_hf

        p = path = resolve_hf(p)
        if is_url(p):
            source_options = {**hub_options(), **(source_options or {})}
    # A file:// URL is a local path, under every rule a plain path follows (symlink confinement).
    p = local_path(p) or p
    if source_options and not is_url(p):
        names = ", ".join(sorted(source_options))
        raise InvalidArgumentError(f"options {names} apply to URLs only, not to a local file", path=p)
    with input_options(source_options), _redacting(p):
        fmt = get_format(format or detect_format(path))
        try:
            contents = fmt.read_path(
                p, writable=writable, use_mmap=use_mmap, allow_external=allow_external, strict=strict
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
    return restore(fmt, contents)


def read_source(source: ByteSource, format: str) -> FormatContents:
    """One file of `format` read from `source` (a file handle's bytes, say), carried facts put
    back. Raises `InvalidArgumentError` for an unknown format or one that cannot be read from
    one object (a manifest naming other files), else what the reader raises."""
    from paramio.formats.conversion import restore

    fmt = get_format(format)
    if fmt.read_source is None:
        raise InvalidArgumentError(f"format {fmt.name!r} cannot be read from one byte source", path=source.name)
    return restore(fmt, fmt.read_source(source))


class _redacting:  # noqa: N801 - used as a function: ``with _redacting(path):``
    """Errors naming the URL `path` (or its siblings) name it without its credentials: readers
    put the path they were given in messages; only the sources redact on their own. (A class,
    not a `contextlib.contextmanager`: a listing, often a whole process, enters one.)"""

    __slots__ = ("_path",)

    def __init__(self, path: str) -> None:
        self._path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        from paramio.formats.inputs import is_url

        path = self._path
        if not isinstance(exc, ParamioError) or not is_url(path):
            return
        from paramio.sources.retry import redact_url

        shown = redact_url(path)
        if shown == path:
            return
        user = path.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]

        def clean(text: str) -> str:
            text = text.replace(path, shown)
            return text.replace(user + "@", "") if user else text

        exc.path = clean(exc.path) if exc.path is not None else None
        exc.reason = clean(exc.reason)
        exc.args = tuple(clean(a) if isinstance(a, str) else a for a in exc.args)


def write_path(
    path: str | os.PathLike[str],
    entries: Iterable[ParameterEntry] | Sequence[ParameterEntry],
    *,
    format: str | None = None,
    attributes: dict[str, object] | None = None,
    on_loss: str = "warn",
    expand_splats: object = False,  # a bool; `object` so that callers may pass **options through
    digests: object = None,  # True, False, None or an algorithm name: `paramio.formats.digests.written_record`
    **options: object,
) -> None:
    """Write entries to `path` in the format given or implied by the extension, atomically. A URL
    (``s3://``, ``gs://``, ``az://``) is built locally and uploaded (`paramio.formats.uploads`).

    A format with no splat entries (safetensors, GGUF) writes a splat's bytes as data: more than
    `paramio.formats.conversion.SPLAT_EXPANSION_ALLOWANCE` bytes of them (or than the real data,
    if more) needs `expand_splats=True`, and never more than the free space where the file is
    built (`InvalidArgumentError`, `WriteError`, before any byte is written).

    What the target cannot hold as given (a splat written as data, a type stored under a
    stand-in, an attribute JSON cannot hold) is found before anything is written and, by
    `on_loss`: ``"warn"`` — a `paramio.core.errors.ConversionWarning` per loss; ``"error"`` —
    `paramio.core.errors.LossError` (an `InvalidArgumentError`) and no file; ``"ignore"``. Use
    `plan_losses` to get the list.

    `digests`: ``True`` (or an algorithm: ``"blake3"``, ``"xxh3"``, ``"sha256"``) stores a digest of
    every entry in the file's attributes; ``None`` (the default) stores them again, computed
    anew, when `attributes` carry a record (a conversion never keeps a digest of bytes it did not
    write), and ``False`` drops a carried record; a `paramio.formats.digests.DigestRecord` gives
    the digests of entries whose bytes the caller knows (``paramio.convert`` carries its input's
    for entries it did not change) and computes the rest with its algorithm. Digests are
    computed while the bytes are copied: each input byte is read once
    (`paramio.formats.digests.DigestSink`).
    """
    from paramio.formats.digests import activated
    from paramio.formats.inputs import current_options, is_url

    fmt, p, prepared, sink = prepare_write(
        path,
        entries,
        format=format,
        attributes=attributes,
        on_loss=on_loss,
        expand_splats=expand_splats,
        digests=digests,
        **options,
    )
    with activated(sink):  # None too: a nested write never reports to an outer one
        if is_url(p):  # built locally, then uploaded (`paramio.formats.uploads`)
            from paramio.formats.uploads import write_remote

            def build(local: str) -> None:
                fmt.write_path(local, prepared.entries, attributes=prepared.attributes, **options)

            write_remote(p, build, options=current_options())
            return
        fmt.write_path(p, prepared.entries, attributes=prepared.attributes, **options)


def prepare_write(
    path: str | os.PathLike[str],
    entries: Iterable[ParameterEntry] | Sequence[ParameterEntry],
    *,
    format: str | None = None,
    attributes: dict[str, object] | None = None,
    on_loss: str = "warn",
    expand_splats: object = False,
    digests: object = None,
    **options: object,
) -> tuple[Format, str, Prepared, DigestSink | None]:
    """Everything `write_path` does before the format's writer runs (the format, the path, the
    digest record laid out, what is kept and carried, the splat and loss checks): (format, path,
    prepared entries and attributes, the digest sink to activate while writing, or None). The
    scale-out engine plans a conversion with it and has the writer run member by member
    elsewhere (`paramio.scaleout`)."""
    from paramio.formats.conversion import check_splat_expansion, report_losses
    from paramio.formats.digests import DIGESTS_KEY, plan_sink, with_record
    from paramio.formats.inputs import local_path

    fmt = get_format(format or detect_format(path, for_writing=True))
    p = os.fspath(path)
    p = local_path(p) or p  # a file:// URL is the local path it names
    check_options(fmt.name, options)
    entries = list(entries)
    attributes = attributes or {}
    sink: DigestSink | None = None
    if digests is not None or DIGESTS_KEY in attributes:  # before carrying moves the record
        # Laid out with placeholders now, the digests computed as the writer copies.
        sink = plan_sink(entries, attributes, digests)
        attributes = with_record(attributes, sink.record() if sink is not None else None)
    prepared = _prepare(fmt, entries, attributes, {**options, "path": p})
    check_splat_expansion(prepared.entries, fmt.name, p, keeps_splats=fmt.splats, expand_splats=bool(expand_splats))
    report_losses(prepared.losses, on_loss, path=p, fmt=fmt.name)
    return fmt, p, prepared, sink


def writer_options(name: str) -> frozenset[str]:
    """The keyword options format `name`'s ``write_path`` takes (besides `attributes`)."""
    fmt = get_format(name)
    return _options_of(fmt.name, fmt.write_path)


@functools.cache
def _options_of(name: str, writer: Callable[..., None]) -> frozenset[str]:
    import inspect  # here: writing asks, a listing never does

    params = inspect.signature(writer).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise AssertionError(f"the {name} writer must list its options, not take **kwargs")
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY) - {"attributes"}


def check_options(name: str, options: dict[str, object]) -> None:
    """Raise `TypeError` naming the first option the format's writer does not take, as Python
    does for a function call: a misspelt ``alignmnet=`` must not be silently ignored."""
    accepted = writer_options(name)
    for key in options:
        if key not in accepted:
            raise TypeError(
                f"write_path() got an unexpected keyword argument {key!r} "
                f"(the {name} writer takes: {', '.join(sorted(accepted))})"
            )


def _prepare(
    fmt: Format | str, entries: list[ParameterEntry], attributes: dict[str, object], options: dict[str, object]
) -> Prepared:
    """What `fmt`'s writer keeps, carries and loses of `entries` and `attributes`."""
    if isinstance(fmt, str):
        fmt = get_format(fmt)
    return fmt.prepare(entries, attributes, options)


def plan_losses(
    path: str | os.PathLike[str],
    entries: Iterable[ParameterEntry] | Sequence[ParameterEntry],
    *,
    format: str | None = None,
    attributes: dict[str, object] | None = None,
    **options: object,
) -> list[Loss]:
    """What `write_path` with the same arguments would report, without writing anything."""
    fmt = get_format(format or detect_format(path, for_writing=True))
    check_options(fmt.name, options)
    return _prepare(fmt, list(entries), attributes or {}, {**options, "path": os.fspath(path)}).losses

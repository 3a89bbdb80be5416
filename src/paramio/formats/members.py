"""Where the files a manifest names live: one function, so remote sets are an addition later.

A sharded set (an IRPA set's ``*.irpa.index.json``, a tensor-parallel ``*.tp.json``) names its
files by bare file name, relative to the manifest. Every reader of such a manifest resolves the
names through `member_path`: a file next to the manifest on the local disk, or for a manifest
URL the object beside it (`paramio.formats.inputs.beside`).
"""

from __future__ import annotations

import os

from paramio.core.errors import FormatError
from paramio.formats.inputs import beside, is_url, open_input
from paramio.sources.paths import AllowExternal, Confinement

__all__ = ["MAX_MANIFEST_SIZE", "member_path", "read_manifest_json"]

#: The longest file name (bytes) a local manifest may name: POSIX filesystems' NAME_MAX.
NAME_MAX = 255
#: A manifest larger than this is refused before it is read (100 MB, as safetensors headers).
MAX_MANIFEST_SIZE = 100_000_000


def member_path(manifest: str, name: object, allow_external: AllowExternal = None) -> str:
    """The path of the set member `name` listed by `manifest`.

    Raises `FormatError` when `name` is not a plain file name (a path, ``..``, empty): a manifest
    may only name files beside it, never elsewhere on the disk. A plain name that is a symlink
    resolving out of the manifest's folder (and out of `allow_external`) is `SourceError`.
    """
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or os.sep in name
        or "\x00" in name
    ):
        raise FormatError(f"member {name!r} must be a file name next to the manifest", path=manifest)
    if not is_url(manifest) and len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise FormatError(
            f"member {name[:40]!r}... is {len(name)} characters long; no file name is longer than {NAME_MAX} bytes",
            path=manifest,
        )
    path = beside(manifest, name)  # for a URL: the lexical rule every source shares
    if not is_url(manifest) and os.path.lexists(path):  # a missing member is reported by whoever opens it
        Confinement.beside(manifest, allow_external).resolve(name, key=name, what="member")
    return path


def read_manifest_json(path: str, *, what: str = "manifest", limit: int = MAX_MANIFEST_SIZE) -> dict[str, object]:
    """A manifest's (or an index file's: `what`) JSON object, size-checked against `limit` before
    reading. Raises `FormatError`, and `SourceError` when it cannot be read (or is not a regular
    file: a FIFO or device is refused, never read)."""
    src = open_input(path, use_mmap=False)
    try:
        size = src.size
        if size > limit:
            raise FormatError(f"{what} has {size} bytes; the limit is {limit}", path=path)
        raw = src.read(0, size)
    finally:
        src.close()
    from paramio.core.jsontext import loads  # `json.loads` without importing json (and re)

    try:
        doc = loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}", path=path) from exc
    if not isinstance(doc, dict):
        raise FormatError(f"{what} must be a JSON object", path=path)
    return doc

"""Where the files a manifest names live: one function, so remote sets are an addition later.

A sharded set (an IRPA set's ``*.irpa.index.json``, a tensor-parallel ``*.tp.json``) names its
files by bare file name, relative to the manifest. Every reader of such a manifest resolves the
names through `member_path`: today a file next to the manifest on the local disk; a remote
source will resolve the same names against the manifest's URL (``source.sibling(name)``).
"""

from __future__ import annotations

import json
import os

from paramio.errors import FormatError, SourceError

__all__ = ["MAX_MANIFEST_SIZE", "member_path", "read_manifest_json"]

#: A manifest larger than this is refused before it is read (100 MB, as safetensors headers).
MAX_MANIFEST_SIZE = 100_000_000


def member_path(manifest: str, name: object) -> str:
    """The path of the set member `name` listed by `manifest`.

    Raises `FormatError` when `name` is not a plain file name (a path, ``..``, empty): a manifest
    may only name files beside it, never elsewhere on the disk.
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
    return os.path.join(os.path.dirname(manifest), name)


def read_manifest_json(path: str) -> dict[str, object]:
    """A manifest's JSON object, size-checked before reading. Raises `FormatError`, `SourceError`."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_MANIFEST_SIZE:
                raise FormatError(f"manifest has {size} bytes; the limit is {MAX_MANIFEST_SIZE}", path=path)
            raw = f.read(MAX_MANIFEST_SIZE + 1)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"manifest is not valid JSON: {exc}", path=path) from exc
    if not isinstance(doc, dict):
        raise FormatError("manifest must be a JSON object", path=path)
    return doc

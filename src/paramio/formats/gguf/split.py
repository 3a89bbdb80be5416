"""Split GGUF sets (``model-00001-of-00003.gguf`` ...) opened as one index from any of their files.

Each shard carries ``split.no`` (u16, 0-based), ``split.count`` (u16) and ``split.tensors.count``
(i32, the total over all shards); llama.cpp's ``gguf-split`` and gguf-py's writer put every other
key in the first shard only. paramio reads every shard, checks that the three keys agree with the
file names and with each other, and joins the tensors in shard order.
"""

from __future__ import annotations

import os

from paramio.core.errors import FormatError, SourceError
from paramio.formats.gguf.constants import (
    SPLIT_COUNT,
    SPLIT_KEYS,
    SPLIT_NAME,
    SPLIT_NO,
    SPLIT_TENSORS_COUNT,
)
from paramio.formats.gguf.reader import GGUFFile, read_gguf
from paramio.formats.inputs import beside, is_url, open_input
from paramio.sources.paths import AllowExternal, Confinement

__all__ = ["read_split_set", "shard_paths", "split_info"]


def _int_kv(f: GGUFFile, key: str, path: str) -> int | None:
    record = f.kv.get(key)
    if record is None:
        return None
    value = record.get("value")
    if record.get("type") == "array" or not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{key} must be an integer, not {record.get('type')}", path=path, key=key)
    return value


def split_info(f: GGUFFile, path: str) -> tuple[int, int, int] | None:
    """(split.no, split.count, split.tensors.count) when the file belongs to a set of 2 or more."""
    count = _int_kv(f, SPLIT_COUNT, path)
    if count is None or count <= 1:
        return None
    no = _int_kv(f, SPLIT_NO, path)
    total = _int_kv(f, SPLIT_TENSORS_COUNT, path)
    if no is None or total is None:
        missing = SPLIT_NO if no is None else SPLIT_TENSORS_COUNT
        raise FormatError(f"split file has {SPLIT_COUNT}={count} but no {missing}", path=path, key=missing)
    if not 0 <= no < count:
        raise FormatError(f"{SPLIT_NO}={no} is outside 0..{count - 1}", path=path, key=SPLIT_NO)
    return no, count, total


def shard_paths(path: str, count: int) -> list[str]:
    """All file names of the set `path` belongs to (from its ``-NNNNN-of-NNNNN.gguf`` name)."""
    base = os.path.basename(path)
    m = SPLIT_NAME.match(base)
    if m is None:
        raise FormatError(
            f"file is shard of a {count}-file split set but its name does not end in -NNNNN-of-{count:05d}.gguf",
            path=path,
        )
    if int(m["count"]) != count:
        raise FormatError(
            f"file name says {int(m['count'])} shards but {SPLIT_COUNT} says {count}", path=path, key=SPLIT_COUNT
        )
    ext = base[m.end("count") :]
    return [beside(path, f"{m['stem']}-{i + 1:05d}-of-{count:05d}{ext}") for i in range(count)]


def read_split_set(
    first: GGUFFile,
    path: str,
    info: tuple[int, int, int],
    *,
    writable: bool,
    use_mmap: bool,
    allow_external: AllowExternal = None,
    strict: bool = False,
) -> tuple[list[GGUFFile], list[str]]:
    """Every shard of the set `path` belongs to, in order, checked against each other. The
    other shards must resolve (symlinks followed) inside the folder of `path` or a folder in
    `allow_external`; `SourceError` otherwise."""
    no, count, total = info
    paths = shard_paths(path, count)
    m = SPLIT_NAME.match(os.path.basename(path))
    assert m is not None
    if int(m["no"]) != no + 1:
        raise FormatError(f"file name says shard {int(m['no'])} but {SPLIT_NO}={no} (0-based)", path=path, key=SPLIT_NO)
    files: list[GGUFFile] = []
    remote = is_url(path)  # a URL's siblings are checked lexically, by `beside`
    confinement = None if remote else Confinement.beside(path, allow_external)
    for i, p in enumerate(paths):
        if i == no:
            files.append(first)
            continue
        if confinement is not None and os.path.lexists(p):
            confinement.resolve(os.path.basename(p), what=f"shard {i + 1} of {count}")
        try:
            source = open_input(p, writable=writable, use_mmap=use_mmap)
        except SourceError as exc:
            raise SourceError(
                f"shard {i + 1} of {count} of the split set of {path} is missing: {exc.reason}", path=p
            ) from exc
        f = read_gguf(source, strict=strict)
        got = split_info(f, p)
        if got != (i, count, total):
            raise FormatError(
                f"split keys ({SPLIT_NO}, {SPLIT_COUNT}, {SPLIT_TENSORS_COUNT}) are {got}, expected {(i, count, total)}",
                path=p,
            )
        files.append(f)
    found = sum(len(f.entries) for f in files)
    if found != total:
        raise FormatError(
            f"{SPLIT_TENSORS_COUNT} says {total} tensors but the {count} shards hold {found}",
            path=path,
            key=SPLIT_TENSORS_COUNT,
        )
    return files, paths


def without_split_keys(kv: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    return {k: v for k, v in kv.items() if k not in SPLIT_KEYS}

"""Whole files against the digests their publishers record: a ``sha256sum`` list, or the Git LFS
pointer files Hugging Face keeps for every large file (``oid sha256:<hex>`` and ``size``).

A list names files relative to its own folder (``sha256sum -c`` run there); a pointer describes
one file, given beside it. The sizes a pointer records are checked before any byte is hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Sequence

from paramio.core.errors import FormatError, InvalidArgumentError

__all__ = ["FileCheck", "check_files", "parse_checksums"]

_SUM_LINE = re.compile(
    r"^(?:SHA256 \((?P<bsd>.+)\) = (?P<bsdhex>[0-9a-fA-F]{64})|(?P<hex>[0-9a-fA-F]{64}) [ *](?P<name>.+))$"
)
_LFS_VERSION = "version https://git-lfs.github.com/spec/v1"
_MAX_LIST = 16 << 20  # a checksum list or pointer larger than this is not one
_CHUNK = 8 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class FileCheck:
    """One file checked: what was expected, what it has, and whether they agree."""

    path: str
    expected_sha256: str
    got_sha256: str | None
    expected_size: int | None = None
    size: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.got_sha256 == self.expected_sha256

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.path}: {self.error}"
        if self.ok:
            return f"{self.path}: OK"
        return f"{self.path}: sha256 expected {self.expected_sha256}, got {self.got_sha256}"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "ok": self.ok,
            "expected_sha256": self.expected_sha256,
            "got_sha256": self.got_sha256,
            "expected_size": self.expected_size,
            "size": self.size,
            "error": self.error,
        }


def _read_small(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_LIST + 1)
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    if len(data) > _MAX_LIST:
        raise FormatError(f"larger than {_MAX_LIST} bytes: not a checksum list or LFS pointer", path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("not UTF-8 text: not a checksum list or LFS pointer", path=path) from exc


def parse_lfs_pointer(text: str, *, where: str) -> tuple[str, int] | None:
    """(sha256, size) from a Git LFS pointer's text, or None if it is not one."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or lines[0] != _LFS_VERSION:
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    oid, size = fields.get("oid", ""), fields.get("size", "")
    if not oid.startswith("sha256:") or not re.fullmatch(r"[0-9a-f]{64}", oid[7:]) or not size.isdigit():
        raise FormatError("an LFS pointer without 'oid sha256:<64 hex>' and 'size <bytes>'", path=where)
    return oid[7:], int(size)


def parse_checksums(text: str, *, where: str) -> list[tuple[str, str]]:
    """(sha256, file name) pairs of a ``sha256sum`` list (GNU or BSD lines; blank and ``#`` lines skipped)."""
    out: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        s = line.rstrip("\r")
        if not s.strip() or s.lstrip().startswith("#"):
            continue
        m = _SUM_LINE.match(s)
        if m is None:
            raise FormatError(f"line {number} is not '<sha256>  <file>'", path=where)
        if m["bsd"] is not None:
            out.append((m["bsdhex"].lower(), m["bsd"]))
        else:
            out.append((m["hex"].lower(), m["name"]))
    if not out:
        raise FormatError("names no file", path=where)
    return out


def _sha256_of(path: str, expected_size: int | None) -> tuple[str | None, int | None, str | None]:
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        return None, None, f"cannot read: {exc.strerror or exc}"
    if expected_size is not None and size != expected_size:
        return None, size, f"size {size} bytes, the pointer says {expected_size}"
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                h.update(view[:n])
    except OSError as exc:
        return None, size, f"cannot read: {exc.strerror or exc}"
    return h.hexdigest(), size, None


def check_files(
    lists: Sequence[str | os.PathLike[str]], files: Sequence[str | os.PathLike[str]] = ()
) -> list[FileCheck]:
    """Check files against ``sha256sum`` lists and LFS pointers, in the order given.

    A list checks the files it names (relative to its folder); a pointer checks each of
    `files` (at least one). Raises `FormatError` for a list or pointer that is neither, and
    `InvalidArgumentError` for a pointer with no file to check.
    """
    out: list[FileCheck] = []
    for item in lists:
        where = os.fspath(item)
        text = _read_small(where)
        pointer = parse_lfs_pointer(text, where=where)
        if pointer is not None:
            if not files:
                raise InvalidArgumentError(f"{where} is an LFS pointer: name the file it describes")
            sha, size = pointer
            for f in files:
                got, actual, error = _sha256_of(os.fspath(f), size)
                out.append(FileCheck(os.fspath(f), sha, got, size, actual, error))
            continue
        folder = os.path.dirname(where)
        for sha, name in parse_checksums(text, where=where):
            path = os.path.join(folder, name)
            got, actual, error = _sha256_of(path, None)
            out.append(FileCheck(path, sha, got, None, actual, error))
    return out

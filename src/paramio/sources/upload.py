"""Remote outputs: an object written in parts that appears whole under its name or not at all.

Object stores have no rename, so the local rule (temp file, fsync, rename) becomes the multipart
upload: parts are sent as they fill, and only completing the upload makes the object visible;
aborting drops the parts. obstore's buffered writer does the protocol (one plain PUT when the
whole object fits in one part); `RemoteUpload` gives it paramio's shape (``commit``/``abort``,
a context manager that aborts on an exception) and paramio's errors.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import obstore

from paramio.core.buffers import Buffer
from paramio.core.errors import InvalidArgumentError, WriteError
from paramio.sources.objectstore import store_for, translate
from paramio.sources.retry import redact_url

__all__ = ["RemoteUpload", "delete_object", "open_upload", "part_size_for"]

#: The part size up to 156 GiB objects (S3's smallest part is 5 MiB). Measured on s3rver for a
#: 512 MiB upload: 5, 16, 32 and 64 MiB parts all ran at 121-141 MiB/s (the server's speed), so
#: the size is chosen for memory (parts in flight) and request count, not speed.
DEFAULT_PART_SIZE = 16 << 20
#: S3's (and GCS's XML API's) most parts in one upload; Azure allows 50,000 blocks.
MAX_PARTS = 10_000
#: S3's largest part.
MAX_PART_SIZE = 5 << 30


def part_size_for(size: int | None, part_size: int = DEFAULT_PART_SIZE) -> int:
    """`part_size`, or larger (whole MiB) when an object of `size` bytes would need more than
    `MAX_PARTS` parts of it. Raises `InvalidArgumentError` past 10,000 parts of 5 GiB."""
    if size is None:
        return part_size
    need = -(-size // MAX_PARTS)
    need = -(-need // (1 << 20)) << 20
    if need > MAX_PART_SIZE:
        raise InvalidArgumentError(f"an object of {size} bytes needs parts over 5 GiB (at most {MAX_PARTS} parts)")
    return max(part_size, need)


class _Aborted(Exception):
    """Handed to the writer's ``__exit__`` to make it abort rather than complete."""


class RemoteUpload:
    """An open upload to `url`. `write` appends; `commit` completes it; `abort` (or leaving a
    ``with`` block by an exception) drops it. Nothing exists under the name before `commit`."""

    def __init__(self, writer: Any, url: str) -> None:
        self._writer = writer
        self.url = redact_url(url)
        self.written = 0
        self._state = "open"

    def write(self, data: Buffer) -> int:
        if self._state != "open":
            raise WriteError(f"upload already {self._state}", path=self.url)
        try:
            # A copy: obstore keeps the buffer it is given until the part is sent, and callers
            # reuse theirs (a chunk buffer refilled per read): uploads came out corrupted.
            n = int(self._writer.write(bytes(memoryview(data).cast("B"))))  # type: ignore[arg-type]
        except Exception as exc:
            self.abort()
            raise WriteError(
                f"upload failed at byte {self.written}: {translate(exc, self.url).reason}", path=self.url
            ) from exc
        self.written += n
        return n

    def commit(self) -> None:
        """Complete the upload. Raises `WriteError` (the upload is then aborted)."""
        if self._state != "open":
            raise WriteError(f"upload already {self._state}", path=self.url)
        try:
            self._writer.close()
        except Exception as exc:
            self.abort()
            raise WriteError(f"completing the upload failed: {translate(exc, self.url).reason}", path=self.url) from exc
        self._state = "committed"

    def abort(self) -> None:
        """Drop the parts sent so far; a no-op after `commit` or a first `abort`."""
        if self._state != "open":
            return
        self._state = "aborted"
        try:
            self._writer.__exit__(_Aborted, _Aborted(), None)
        except Exception:  # the upload is gone either way; a failed abort leaves parts the store expires
            pass

    def __enter__(self) -> RemoteUpload:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            if self._state == "open":
                self.commit()
        else:
            self.abort()


def open_upload(
    url: str,
    *,
    part_size: int = DEFAULT_PART_SIZE,
    size: int | None = None,
    max_concurrency: int = 4,
    **options: Any,
) -> RemoteUpload:
    """Start an upload to the object `url` (s3, gs, az, ...). `size`, when known, raises the
    part size so the upload stays within `MAX_PARTS` (memory: about `max_concurrency` parts).
    `options` as for `store_for`. Raises `InvalidArgumentError` for a bad URL or option."""
    options.setdefault("store_retries", 3)
    part_size = part_size_for(size, part_size)
    store, path = store_for(url, **options)
    writer = obstore.open_writer(store, path, buffer_size=part_size, max_concurrency=max_concurrency)
    return RemoteUpload(writer, url)


def delete_object(url: str, **options: Any) -> None:
    """Remove the object `url` (a job undoing what it uploaded); a missing one is not an error.
    Raises `WriteError` when the store refuses."""
    upload_options = {k: v for k, v in options.items() if k in ("config", "client_options", "timeout")}
    store, path = store_for(url, store_retries=3, **upload_options)
    try:
        obstore.delete(store, path)
    except FileNotFoundError:
        return
    except Exception as exc:
        raise WriteError(f"cannot remove: {translate(exc, url).reason}", path=redact_url(url)) from exc

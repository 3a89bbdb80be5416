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
from paramio.core.errors import WriteError
from paramio.sources.objectstore import store_for, translate
from paramio.sources.retry import redact_url

__all__ = ["RemoteUpload", "open_upload"]

#: S3's smallest part (except the last); larger parts mean fewer requests for big models.
DEFAULT_PART_SIZE = 16 << 20


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
            n = int(self._writer.write(memoryview(data).cast("B")))  # type: ignore[arg-type]
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
    url: str, *, part_size: int = DEFAULT_PART_SIZE, max_concurrency: int = 4, **options: Any
) -> RemoteUpload:
    """Start an upload to the object `url` (s3, gs, az, ...). `options` as for `store_for`.
    Raises `InvalidArgumentError` for a bad URL or option."""
    options.setdefault("store_retries", 3)
    store, path = store_for(url, **options)
    writer = obstore.open_writer(store, path, buffer_size=part_size, max_concurrency=max_concurrency)
    return RemoteUpload(writer, url)

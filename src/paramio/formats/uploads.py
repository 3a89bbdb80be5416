"""Writing to an object store URL: build the output locally, then upload it, atomically.

Every writer seeks back (headers are written after the data they describe, or data out of
order), which an object upload cannot do, so the output is written by the format's own writer
into a private temporary folder (``tempfile.gettempdir()``: the output's size in local space)
and each file is then streamed up as a multipart upload (`paramio.sources.upload`), one part in
memory at a time. No object appears under its name before its upload completes, and a failure
anywhere aborts the upload in progress. A sharded set is several objects: its shards go first,
its index or manifest last, so the set never names a shard that is not there.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from paramio.core.errors import WriteError

__all__ = ["UPLOAD_OPTIONS", "write_remote"]

#: The remote options an upload takes (a cache or a retry policy apply to reads only).
UPLOAD_OPTIONS = ("config", "client_options", "timeout")

_CHUNK = 16 << 20  # read from the local build a part at a time: the upload's memory bound


def write_remote(url: str, write: Callable[[str], None], *, options: Mapping[str, Any] | None = None) -> list[str]:
    """Call ``write(local_path)`` for a local file named as the object of `url`, then upload
    every file it wrote (shards before indexes) beside `url`. Returns the URLs written.

    Raises what `write` raises (nothing is uploaded), `WriteError` when an upload fails (the
    failed object does not exist; objects already uploaded stay)."""
    from paramio.formats.inputs import beside
    from paramio.sources.upload import open_upload

    name = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    if not name:
        raise WriteError("names a folder, not an object; add a file name", path=url)
    upload_options = {k: v for k, v in (options or {}).items() if k in UPLOAD_OPTIONS}
    with tempfile.TemporaryDirectory(prefix="paramio-upload-") as folder:
        write(os.path.join(folder, name))
        made = sorted(os.listdir(folder), key=lambda n: (n.endswith(".json"), n))
        written = []
        buf = bytearray(_CHUNK)
        for made_name in made:
            target = url if made_name == name else beside(url, made_name)
            local = os.path.join(folder, made_name)
            size = os.path.getsize(local)  # parts large enough that a huge object fits S3's 10,000
            with open(local, "rb") as f, open_upload(target, size=size, **upload_options) as up:
                while n := f.readinto(buf):
                    up.write(memoryview(buf)[:n])
            written.append(target)
        return written

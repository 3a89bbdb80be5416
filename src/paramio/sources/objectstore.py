"""Remote objects over HTTP(S), S3, GCS and Azure, through obstore (Rust's object_store).

The protocols, signing and credential chains are obstore's; this module adds what paramio
needs on top: one HEAD per open (size, ETag, Last-Modified), ranged GETs pinned to that ETag
(``If-Match``, and each response's ETag checked for servers that ignore it: an object replaced
mid-read is an error, not a mix of two versions), our own
retries with backoff (obstore's are turned off, so one policy decides and the error can say how
many attempts were made), a length check on every body, and errors translated at this boundary.

Configuration is the ecosystem's: obstore reads ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ALLOW_HTTP`` (and ``GOOGLE_*``, ``AZURE_*``)
from the environment; `config=` passes the same keys explicitly. Imported only when a URL is
opened (through `paramio.sources.registry`); needs ``pip install 'paramio[remote]'``.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import obstore
import obstore.exceptions as obx
from obstore.store import from_url

from paramio.core.errors import InvalidArgumentError
from paramio.sources.aio import AsyncByteSource, BridgedSource, run_sync
from paramio.sources.cache import CachedSource, DiskCache
from paramio.sources.names import join_url
from paramio.sources.retry import TRANSIENT_STATUSES, RemoteSourceError, RetryPolicy, redact_url, with_retries

__all__ = ["ObjectStoreSource", "open_object", "open_object_async", "store_for"]

#: URL schemes served here, and the obstore scheme each maps to.
SCHEMES = ("http", "https", "s3", "gs", "az", "abfs", "abfss", "azure")

_ALLOW_HTTP_ENV = {
    "s3": "AWS_ALLOW_HTTP",
    "az": "AZURE_ALLOW_HTTP",
    "abfs": "AZURE_ALLOW_HTTP",
    "abfss": "AZURE_ALLOW_HTTP",
}
_STATUS = re.compile(r"(?:status(?: code)?:?\s*)(\d{3})")
_REASONS = {401: "unauthenticated", 403: "permission denied", 404: "not found", 412: "object changed while reading"}


def translate(exc: BaseException, url: str, start: int | None = None, end: int | None = None) -> RemoteSourceError:
    """obstore's exception as a `RemoteSourceError` (status and reason only, never its text)."""
    if isinstance(exc, RemoteSourceError):
        return exc
    text = str(exc)
    found = _STATUS.search(text)
    status: int | None = int(found.group(1)) if found else None
    if isinstance(exc, (FileNotFoundError, obx.NotFoundError)):
        status = status or 404
    elif isinstance(exc, obx.PermissionDeniedError):
        status = status or 403
    elif isinstance(exc, obx.UnauthenticatedError):
        status = status or 401
    elif isinstance(exc, obx.PreconditionError):
        status = 412
    elif isinstance(exc, obx.NotSupportedError) and start is not None:
        return RemoteSourceError(
            "server ignored the Range header (it answered with the whole object)", url=url, start=start, end=end
        )
    if status is not None:
        reason = _REASONS.get(status, "server error" if status >= 500 else "request refused")
        if status == 416:
            reason = "range not satisfiable"
        return RemoteSourceError(
            reason, url=url, start=start, end=end, status=status, transient=status in TRANSIENT_STATUSES
        )
    low = text.lower()
    if "timed out" in low or "timeout" in low:
        return RemoteSourceError("timed out", url=url, start=start, end=end, transient=True)
    if "body" in low:
        return RemoteSourceError("response body cut short", url=url, start=start, end=end, transient=True)
    if "connect" in low or "sending request" in low or "closed" in low or "reset" in low:
        return RemoteSourceError("connection failed", url=url, start=start, end=end, transient=True)
    return RemoteSourceError(f"request failed ({type(exc).__name__})", url=url, start=start, end=end)


def store_for(
    url: str,
    *,
    config: Mapping[str, Any] | None = None,
    client_options: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
    store_retries: int = 0,
) -> tuple[Any, str]:
    """The obstore store serving `url`'s bucket or host, and the object's path inside it.

    `store_retries` is obstore's own retry count: 0 for reads (paramio's `RetryPolicy` retries
    them), more for uploads, whose part PUTs only obstore can repeat.
    Plain ``http://`` is allowed for an http URL (the user asked for it); for object stores only
    when ``AWS_ALLOW_HTTP``/``allow_http`` says so, as in the AWS tools.
    Raises `InvalidArgumentError` for a URL without a host or bucket, or a bad option."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    if scheme not in SCHEMES or not u.netloc:
        raise InvalidArgumentError(f"not an object URL: {redact_url(url)!r}")
    path = unquote(u.path.lstrip("/"))
    if not path or path.endswith("/"):
        raise InvalidArgumentError(f"URL names no object: {redact_url(url)!r}")
    client: dict[str, Any] = {"timeout": f"{timeout}s", "connect_timeout": f"{min(timeout, 10.0)}s"}
    # Passing client options replaces the ones obstore would read from the environment, so the
    # standard "allow a plain-HTTP endpoint" variables are honoured here.
    if scheme == "http" or os.environ.get(_ALLOW_HTTP_ENV.get(scheme, ""), "").lower() in ("1", "true", "yes"):
        client["allow_http"] = True
    client.update(client_options or {})
    try:
        store = from_url(  # type: ignore[call-overload]
            f"{scheme}://{u.netloc.rsplit('@', 1)[-1]}",
            config=dict(config or {}) or None,
            client_options=client,
            retry_config={"max_retries": store_retries},
        )
    except Exception as exc:  # obstore raises ValueError/its own errors for bad keys
        raise InvalidArgumentError(
            f"cannot configure {scheme}:// access: {type(exc).__name__}", path=redact_url(url)
        ) from exc
    return store, path


class ObjectStoreSource(AsyncByteSource):
    """One remote object, opened (its HEAD done): ranged reads pinned to the ETag it had then."""

    def __init__(
        self,
        store: Any,
        path: str,
        url: str,
        meta: Mapping[str, Any],
        *,
        retry: RetryPolicy,
        max_concurrency: int = 8,
        max_request: int | None = None,
        max_gap: int | None = None,
    ) -> None:
        self._store, self._path, self.url = store, path, redact_url(url)
        self.name = self.url
        self._size = int(meta["size"])
        self.etag: str | None = meta.get("e_tag")
        modified = meta.get("last_modified")
        self.last_modified: str | None = modified.isoformat() if isinstance(modified, _dt.datetime) else None
        self._retry = retry
        self.max_concurrency = max_concurrency
        if max_request is not None:
            self.max_request = max_request
        if max_gap is not None:
            self.max_gap = max_gap

    @property
    def size(self) -> int:
        return self._size

    @property
    def validator(self) -> str:
        """What must match for cached bytes to stand for this object: ETag, date and size."""
        return f"{self.etag or ''}|{self.last_modified or ''}|{self._size}"

    async def fetch_into(self, offset: int, out: memoryview) -> None:
        end = offset + len(out)
        if end == offset:
            return
        options: dict[str, Any] = {"range": (offset, end)}
        if self.etag:
            options["if_match"] = self.etag

        async def once() -> None:
            try:
                result = await obstore.get_async(self._store, self._path, options=options)  # type: ignore[arg-type]
                sent_etag = result.meta.get("e_tag")
                data = await result.bytes_async()
            except Exception as exc:
                raise translate(exc, self.url, offset, end) from exc
            # Not every server honours If-Match (s3rver, some gateways): the response's own ETag
            # says whether these bytes are the version opened.
            if self.etag and sent_etag and sent_etag != self.etag:
                raise RemoteSourceError(
                    "object changed while reading (its ETag is not the one it was opened with)",
                    url=self.url,
                    start=offset,
                    end=end,
                )
            got = len(data)
            if got > len(out):
                raise RemoteSourceError(
                    f"server sent {got} bytes for a {len(out)}-byte range (it ignored the Range header)",
                    url=self.url,
                    start=offset,
                    end=end,
                )
            if got < len(out):
                raise RemoteSourceError(
                    f"truncated: body holds {got} of {len(out)} bytes",
                    url=self.url,
                    start=offset,
                    end=end,
                    transient=True,
                )
            out[:] = memoryview(data).cast("B")

        await with_retries(self._retry, once)

    async def sibling(self, name: str) -> ObjectStoreSource:
        url = join_url(self.url, name)
        path = unquote(urlsplit(url).path.lstrip("/"))
        return await _open(self._store, path, url, self._retry, self.max_concurrency, self.max_request, self.max_gap)


async def _open(
    store: Any, path: str, url: str, retry: RetryPolicy, max_concurrency: int, max_request: int, max_gap: int
) -> ObjectStoreSource:
    async def head() -> Any:
        try:
            return await obstore.head_async(store, path)
        except Exception as exc:
            raise translate(exc, url) from exc

    meta = await with_retries(retry, head)
    return ObjectStoreSource(
        store, path, url, meta, retry=retry, max_concurrency=max_concurrency, max_request=max_request, max_gap=max_gap
    )


async def open_object_async(
    url: str,
    *,
    config: Mapping[str, Any] | None = None,
    client_options: Mapping[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    timeout: float = 30.0,
    max_concurrency: int = 8,
    max_request: int = AsyncByteSource.max_request,
    max_gap: int = AsyncByteSource.max_gap,
    cache: DiskCache | str | os.PathLike[str] | None = None,
) -> AsyncByteSource:
    """Open the object at `url` (one HEAD), reading through `cache` (a `DiskCache` or a folder
    for one) when given. Raises `RemoteSourceError` naming the URL and the status (404, 403,
    ...), `InvalidArgumentError` for a URL or option obstore refuses."""
    store, path = store_for(url, config=config, client_options=client_options, timeout=timeout)
    source = await _open(store, path, url, retry or RetryPolicy(), max_concurrency, max_request, max_gap)
    if cache is None:
        return source
    return CachedSource(source, cache if isinstance(cache, DiskCache) else DiskCache(cache))


def open_object(url: str, *, page_size: int = 64 * 1024, **options: Any) -> BridgedSource:
    """`open_object_async` as a sync `ByteSource` (see `BridgedSource` for its view pages)."""
    return BridgedSource(run_sync(open_object_async(url, **options)), page_size=page_size)

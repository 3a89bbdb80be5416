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

import asyncio
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
from paramio.sources.redirects import AllowedHosts, probe
from paramio.sources.registry import REMOTE_SCHEMES
from paramio.sources.retry import TRANSIENT_STATUSES, RemoteSourceError, RetryPolicy, redact_url, with_retries

__all__ = ["ObjectStoreSource", "open_object", "open_object_async", "store_for"]

#: URL schemes served here (the registry's one list).
SCHEMES = REMOTE_SCHEMES

_ALLOW_HTTP_ENV = {
    "s3": "AWS_ALLOW_HTTP",
    "az": "AZURE_ALLOW_HTTP",
    "abfs": "AZURE_ALLOW_HTTP",
    "abfss": "AZURE_ALLOW_HTTP",
    "azure": "AZURE_ALLOW_HTTP",
}
_STATUS = re.compile(r"(?:status(?: code)?:?\s*)(\d{3})")
_REASONS = {401: "unauthenticated", 403: "permission denied", 404: "not found", 412: "object changed while reading"}
_RANGE = re.compile(r"Requested (\d+)\.\.(\d+), got (\d+)\.\.(\d+)")

#: What a failure was, read from obstore's text (its exception types do not say), in the order
#: tried: the first pattern found names it, says whether another try may pass, and is the reason.
_KINDS: tuple[tuple[str, str, bool], ...] = (
    ("error following redirect", "too many redirects (a redirect loop?)", False),
    ("ConnectionRefused", "connection refused", True),
    ("dns error", "host name not found (DNS lookup failed)", False),
    ("kind: Timeout", "timed out (no data within the timeout)", True),
    ("TimedOut", "timed out (no data within the timeout)", True),
    ("ConnectionReset", "connection reset by the server", True),
    ("certificate", "TLS certificate refused", False),
    ("kind: Connect", "connection failed", True),
    ("error decoding response body", "response body cut short", True),
    ("IncompleteMessage", "response body cut short", True),
    ("kind: Body", "response body cut short", True),
    ("MissingContentLength", "the server sent no Content-Length (each object's size is needed)", False),
    ("source: Header", "the server's response headers are missing or malformed", False),
)


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
    wrong = _RANGE.search(text)
    if wrong is not None:
        a, b = int(wrong.group(3)), int(wrong.group(4))
        return RemoteSourceError(
            f"server answered another range than asked (bytes {a}-{b - 1})", url=url, start=start, end=end
        )
    if status is not None:
        reason = _REASONS.get(status, "server error" if status >= 500 else "request refused")
        if status == 416:
            reason = "range not satisfiable"
        return RemoteSourceError(
            reason, url=url, start=start, end=end, status=status, transient=status in TRANSIENT_STATUSES
        )
    for needle, reason, transient in _KINDS:
        if needle in text:
            return RemoteSourceError(reason, url=url, start=start, end=end, transient=transient)
    low = text.lower()
    if "timed out" in low:
        return RemoteSourceError("timed out", url=url, start=start, end=end, transient=True)
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

    `timeout` is how long a request may go without receiving anything (connecting, or between
    two reads of the body), not a bound on the whole request: a large range read over a slow but
    steady link must be able to finish. `store_retries` is obstore's own retry count: 0 for reads
    (paramio's `RetryPolicy` retries them), more for uploads, whose part PUTs only obstore can
    repeat. An http(s) URL's query (a presigned URL's signature) is sent with every request.
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
    client: dict[str, Any] = {
        "timeout": f"{max(timeout, _TOTAL_TIMEOUT)}s",
        "read_timeout": f"{timeout}s",
        "connect_timeout": f"{min(timeout, 10.0)}s",
    }
    # Passing client options replaces the ones obstore would read from the environment, so the
    # standard "allow a plain-HTTP endpoint" variables are honoured here.
    if scheme == "http" or os.environ.get(_ALLOW_HTTP_ENV.get(scheme, ""), "").lower() in ("1", "true", "yes"):
        client["allow_http"] = True
    client.update(client_options or {})
    base = f"{scheme}://{u.netloc.rsplit('@', 1)[-1]}"
    if scheme in ("http", "https") and u.query:
        base += "/?" + u.query  # obstore keeps the base URL's query on every object URL it builds
    try:
        store = from_url(  # type: ignore[call-overload]
            base,
            config=dict(config or {}) or None,
            client_options=client,
            retry_config={"max_retries": store_retries},
        )
    except Exception as exc:  # obstore raises ValueError/its own errors for bad keys
        raise InvalidArgumentError(
            f"cannot configure {scheme}:// access: {type(exc).__name__}", path=redact_url(url)
        ) from exc
    return store, path


#: The bound on a whole request, far above any `timeout` (which bounds silence, not duration):
#: only a server trickling bytes forever meets it.
_TOTAL_TIMEOUT = 6 * 3600.0
#: obstore's Last-Modified when the server sent none.
_NO_DATE = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class ObjectStoreSource(AsyncByteSource):
    """One remote object, opened (its HEAD done): ranged reads pinned to the version it had then.

    The pin is what the server gives: ``If-Match`` with the ETag (and each response's ETag
    checked), else ``If-Unmodified-Since`` with the Last-Modified date (and each response's date
    checked); and in every case the object's total size in each ``Content-Range``. An object with
    neither an ETag nor a date cannot be pinned: opening it raises unless `allow_unpinned`."""

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
        allow_unpinned: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self._store, self._path, self.url = store, path, redact_url(url)
        self._options: Mapping[str, Any] = options or {}
        self.name = self.url
        self._size = int(meta["size"])
        self.etag: str | None = meta.get("e_tag") or None
        modified = meta.get("last_modified")
        self._modified = modified if isinstance(modified, _dt.datetime) and modified != _NO_DATE else None
        self.last_modified: str | None = self._modified.isoformat() if self._modified is not None else None
        if self.etag is None and self._modified is None and not allow_unpinned:
            raise RemoteSourceError(
                "the server gives neither an ETag nor a Last-Modified date, so a read cannot tell "
                "whether the object was replaced meanwhile (pass allow_unpinned=True, or "
                "--allow-unpinned, to read it anyway)",
                url=url,
            )
        self._retry = retry
        self.max_concurrency = max_concurrency
        if max_request is not None:
            self.max_request = max_request
        if max_gap is not None:
            self.max_gap = max_gap
        self._allow_unpinned = allow_unpinned

    @property
    def size(self) -> int:
        return self._size

    @property
    def validator(self) -> str:
        """What must match for cached bytes to stand for this object: ETag, date and size."""
        return f"{self.etag or ''}|{self.last_modified or ''}|{self._size}"

    def _changed(self, meta: Mapping[str, Any]) -> str | None:
        """Why a response's metadata shows another version than the one opened, or None."""
        size = meta.get("size")
        if isinstance(size, int) and size != self._size:
            return f"its size is now {size} bytes, it was {self._size} when opened"
        sent_etag = meta.get("e_tag")
        if self.etag and sent_etag and sent_etag != self.etag:
            return "its ETag is not the one it was opened with"
        modified = meta.get("last_modified")
        if (
            self._modified is not None
            and isinstance(modified, _dt.datetime)
            and modified not in (_NO_DATE, self._modified)
        ):
            return f"it was modified at {modified.isoformat()}, after it was opened"
        return None

    async def fetch_into(self, offset: int, out: memoryview) -> None:
        end = offset + len(out)
        if end == offset:
            return
        options: dict[str, Any] = {"range": (offset, end)}
        if self.etag:
            options["if_match"] = self.etag
        elif self._modified is not None:
            options["if_unmodified_since"] = self._modified

        async def once() -> None:
            try:
                result = await obstore.get_async(self._store, self._path, options=options)  # type: ignore[arg-type]
                meta = result.meta
                data = await result.bytes_async()
            except Exception as exc:
                raise translate(exc, self.url, offset, end) from exc
            # Not every server honours If-Match or If-Unmodified-Since (s3rver, some gateways):
            # the response's own ETag, date and total size say whether these bytes are the
            # version opened.
            why = self._changed(meta)
            if why is not None:
                raise RemoteSourceError(f"object changed while reading ({why})", url=self.url, start=offset, end=end)
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
        """The object `name` beside this one, opened the way this one was (its redirects
        checked again: a member must stay on the hosts its manifest may use)."""
        return await _open_url(join_url(self.url, name), self._options)


async def _missing_bucket(store: Any, url: str) -> bool:
    """Whether a 404 for `url` (an object-store URL) means its bucket or container is missing:
    one listing of at most one key, which only a missing bucket answers with 404."""
    if urlsplit(url).scheme.lower() in ("http", "https"):
        return False
    try:
        stream = obstore.list(store, chunk_size=1)
        await stream.__anext__()
    except StopAsyncIteration:
        return False
    except Exception as exc:
        return translate(exc, url).status == 404
    return False


async def _open(
    store: Any,
    path: str,
    url: str,
    retry: RetryPolicy,
    max_concurrency: int,
    max_request: int,
    max_gap: int,
    *,
    allow_unpinned: bool = False,
    meta: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> ObjectStoreSource:
    # A presigned URL is signed for GET only: its metadata comes from a one-byte ranged GET
    # (the total size from its Content-Range), not a HEAD, which the signature would not cover.
    presigned = bool(urlsplit(url).query) and urlsplit(url).scheme.lower() in ("http", "https")

    async def head() -> Any:
        try:
            if presigned:
                result = await obstore.get_async(store, path, options={"range": (0, 1)})
                await result.bytes_async()
                return result.meta
            return await obstore.head_async(store, path)
        except Exception as exc:
            err = translate(exc, url)
            if err.status == 404 and await _missing_bucket(store, url):
                bucket = urlsplit(url).netloc.rsplit("@", 1)[-1]
                raise RemoteSourceError(f"bucket {bucket!r} does not exist", url=url, status=404) from exc
            raise err from exc

    found: Mapping[str, Any] = meta if meta is not None else await with_retries(retry, head)
    return ObjectStoreSource(
        store,
        path,
        url,
        found,
        retry=retry,
        max_concurrency=max_concurrency,
        max_request=max_request,
        max_gap=max_gap,
        allow_unpinned=allow_unpinned,
        options=options,
    )


def _without_authorization(client_options: Mapping[str, Any]) -> dict[str, Any]:
    """`client_options` less an ``Authorization`` default header: a redirect to another host
    (a Hub's storage host) does not carry the credentials given for the first."""
    out = dict(client_options)
    headers = {k: v for k, v in dict(out.get("default_headers") or {}).items() if str(k).lower() != "authorization"}
    if headers:
        out["default_headers"] = headers
    else:
        out.pop("default_headers", None)
    return out


async def _open_url(url: str, options: Mapping[str, Any]) -> ObjectStoreSource:
    """The object at `url` opened with `options` (`open_object_async`'s, less `cache`). An
    http(s) URL is opened by `paramio.sources.redirects.probe` (redirects only to allowed
    hosts); reads then go to where it led."""
    timeout = float(options.get("timeout", 30.0))
    target, meta = url, None
    if urlsplit(url).scheme.lower() in ("http", "https"):
        found = await asyncio.to_thread(
            probe,
            url,
            allowed_hosts=options.get("allowed_hosts"),
            timeout=timeout,
            client_options=options.get("client_options"),
        )
        target, meta = found.url, found.meta
    client_options = options.get("client_options")
    if target != url and client_options and urlsplit(target).netloc != urlsplit(url).netloc:
        client_options = _without_authorization(client_options)
    store, path = store_for(target, config=options.get("config"), client_options=client_options, timeout=timeout)
    return await _open(
        store,
        path,
        url,
        options.get("retry") or RetryPolicy(),
        int(options.get("max_concurrency", 8)),
        int(options.get("max_request", AsyncByteSource.max_request)),
        int(options.get("max_gap", AsyncByteSource.max_gap)),
        allow_unpinned=bool(options.get("allow_unpinned", False)),
        meta=meta,
        options=options,
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
    allow_unpinned: bool = False,
    allowed_hosts: AllowedHosts = None,
) -> AsyncByteSource:
    """Open the object at `url` (one HEAD), reading through `cache` (a `DiskCache` or a folder
    for one) when given. `timeout`: seconds a request may go without receiving data.
    `allowed_hosts`: hosts an http(s) redirect may lead to besides the URL's own (``True``:
    any); a redirect elsewhere is refused, naming the host.
    `allow_unpinned`: read an object whose server gives neither an ETag nor a Last-Modified date
    (a replacement during the read then goes unnoticed unless its size changes).

    Raises `RemoteSourceError` naming the URL and the status (404, 403, ...) or what failed
    (connection refused, timed out, a missing bucket, an object that cannot be pinned),
    `InvalidArgumentError` for a URL or option obstore refuses."""
    options = {
        "config": config,
        "client_options": client_options,
        "retry": retry,
        "timeout": timeout,
        "max_concurrency": max_concurrency,
        "max_request": max_request,
        "max_gap": max_gap,
        "allow_unpinned": allow_unpinned,
        "allowed_hosts": allowed_hosts,
    }
    source = await _open_url(url, options)
    if cache is None:
        return source
    return CachedSource(source, cache if isinstance(cache, DiskCache) else DiskCache(cache))


def open_object(url: str, *, page_size: int = 64 * 1024, **options: Any) -> BridgedSource:
    """`open_object_async` as a sync `ByteSource` (see `BridgedSource` for its view pages)."""
    return BridgedSource(run_sync(open_object_async(url, **options)), page_size=page_size)

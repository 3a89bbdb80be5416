"""Opening an http(s) URL without following redirects blindly.

obstore's client follows every redirect, to any host: a model (or a manifest naming members)
could make paramio send requests to hosts the user never named, a cloud metadata endpoint say.
So the open of an http(s) object is paramio's own request (a HEAD, or for a presigned URL a
one-byte ranged GET, which its signature covers), sent without following redirects: each
redirect is checked against the URL's own host and the hosts the user allowed
(`allowed_hosts=`, ``--allow-redirect-host``; a Hub-style 302 to a storage host needs it), and
the object's metadata (size, ETag, Last-Modified) comes from the final answer. The ranged reads
then go straight to that final URL.

What this cannot see: a server that answers the open directly but redirects a later ranged GET
(obstore follows that one). Such a response is still refused by the pinning (its size, ETag or
date is not the one opened), but the request has been sent.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from paramio.sources.retry import RemoteSourceError

__all__ = ["AllowedHosts", "Probe", "probe"]

#: ``True`` (any host), or host names (``host`` or ``host:port``) redirects may lead to.
AllowedHosts = bool | Iterable[str] | None

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_HOPS = 10
_TOTAL = re.compile(r"bytes \d+-\d+/(\d+)")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status: we decide


def _host(url: str) -> str:
    u = urlsplit(url)
    host = (u.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(u.scheme.lower())
    return host if u.port in (None, default) else f"{host}:{u.port}"


def _allowed(target: str, origin: str, allowed: AllowedHosts) -> bool:
    if allowed is True or _host(target) == _host(origin):
        return True
    if not allowed:
        return False
    names = {a.lower() for a in allowed}
    return _host(target) in names or (urlsplit(target).hostname or "").lower() in names


def _opener(client_options: Mapping[str, Any]) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context()
    if str(client_options.get("allow_invalid_certificates", "")).lower() in ("1", "true", "yes"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    root = client_options.get("root_certificate")
    if root:
        context.load_verify_locations(cadata=root.decode() if isinstance(root, bytes) else root)
    handlers: list[Any] = [_NoRedirect(), urllib.request.HTTPSHandler(context=context)]
    proxy = client_options.get("proxy_url")
    if proxy:
        handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    return urllib.request.build_opener(*handlers)


class Probe:
    """What the open found: the final URL and, when it answered plainly, the object's metadata
    in obstore's shape (``size``, ``e_tag``, ``last_modified``); `meta` is None when the answer
    was an error, which the caller then reports through obstore's own request."""

    def __init__(self, url: str, meta: dict[str, Any] | None) -> None:
        self.url, self.meta = url, meta


def _meta(headers: Any, ranged: bool) -> dict[str, Any] | None:
    if ranged:
        found = _TOTAL.fullmatch(headers.get("Content-Range", "") or "")
        if found is None:
            return None
        size = int(found.group(1))
    else:
        length = headers.get("Content-Length")
        if length is None or not length.isdigit():
            return None
        size = int(length)
    modified: _dt.datetime | None = None
    text = headers.get("Last-Modified")
    if text:
        try:
            modified = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            modified = None
    if modified is not None and modified.tzinfo is None:
        modified = modified.replace(tzinfo=_dt.UTC)
    return {"size": size, "e_tag": headers.get("ETag"), "last_modified": modified}


def probe(
    url: str,
    *,
    allowed_hosts: AllowedHosts = None,
    timeout: float = 30.0,
    client_options: Mapping[str, Any] | None = None,
) -> Probe:
    """Open `url` (http or https) following redirects only to allowed hosts.

    Raises `RemoteSourceError` for a redirect to another host (naming it and the option that
    allows it) and for a redirect chain longer than 10 hops."""
    options = dict(client_options or {})
    opener = _opener(options)
    headers = {str(k): str(v) for k, v in dict(options.get("default_headers") or {}).items()}
    if options.get("user_agent"):
        headers["User-Agent"] = str(options["user_agent"])
    current = url
    for _ in range(_MAX_HOPS + 1):
        ranged = bool(urlsplit(current).query)  # presigned for GET: a HEAD is not covered
        request = urllib.request.Request(
            current,
            method="GET" if ranged else "HEAD",
            headers={**headers, **({"Range": "bytes=0-0"} if ranged else {})},
        )
        try:
            with opener.open(request, timeout=timeout) as response:
                if ranged and response.status != 206:
                    return Probe(current, None)
                return Probe(current, _meta(response.headers, ranged))
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.code in _REDIRECTS else None
            exc.close()
            if location is None:
                return Probe(current, None)
            target = urljoin(current, location)
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise RemoteSourceError(
                    f"redirected to a {urlsplit(target).scheme or 'relative'}: URL, which is never followed", url=url
                ) from None
            if not _allowed(target, url, allowed_hosts):
                host = _host(target)
                raise RemoteSourceError(
                    f"redirected to another host, {host}, which is not followed unless allowed "
                    f"(allowed_hosts=[{host!r}], or --allow-redirect-host={host})",
                    url=url,
                ) from None
            if _host(target) != _host(current):  # credentials stay with the host they were given for
                headers.pop("Authorization", None)
            current = target
        except (urllib.error.URLError, OSError, ValueError):
            return Probe(current, None)  # obstore's own request says what failed
    raise RemoteSourceError(f"too many redirects (more than {_MAX_HOPS}: a redirect loop?)", url=url)
